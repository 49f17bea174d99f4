// Host-side schedules: plain numbers computed per step and fed to the compiled step as scalar inputs.
//
// Both follow the authors' `cosine_scheduler(base, final, epochs, niter_per_ep, warmup_epochs, start_warmup_value)`
// (CLoVE main_pretrain.py / contrast/util.py, the DINO helper), indexed per optimiser step t = 0 … T−1:
//   t < W:  np.linspace(start, base, W)[t]      — reaches `base` at t = W − 1 (not at t = W);
//   t ≥ W:  final + ½(base − final)(1 + cos(π·i/(T − W))), i = t − W — `base` again at t = W, and at the last
//           step T − 1 still slightly above `final`, which the cosine only reaches at t = T (not a step).
// The learning rate is cosine_scheduler(peak, 0.01·peak, …, warm-up W, start = peak/100); the EMA momentum is
// cosine_scheduler(base, 1, …) with no warm-up.

export interface LearningRateSchedule {
  readonly peak: number;
  readonly warmupSteps: number;
  readonly totalSteps: number;
  /** Start and end as a fraction of the peak (1% in the official code: `--warmup-multiplier 100`, cosine to 0.01·peak). */
  readonly floorFraction?: number;
}

const clamp = (x: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, x));

/**
 * The authors' cosine_scheduler at step `step` (warm-up of `warmupSteps` from `start`, then the half-cosine from
 * `base` to `final` over the remaining steps), with their arithmetic, so the values agree to the last bit:
 * numpy's linspace is start + t·((base − start)/(W − 1)) with its last entry set to `base` exactly (a single
 * entry is `start`). Steps are clamped to [0, totalSteps]; t = totalSteps, one past the authors' last step,
 * continues the cosine to `final` (or stays at `base` when the warm-up fills the whole run).
 */
export function cosineScheduleAt(step: number, base: number, final: number, totalSteps: number, warmupSteps = 0, start = 0): number {
  const t = clamp(step, 0, totalSteps);
  const w = clamp(warmupSteps, 0, totalSteps);
  if (t < w) {
    if (w === 1) return start;
    if (t === w - 1) return base;
    return start + t * ((base - start) / (w - 1));
  }
  const span = totalSteps - w;
  const i = t - w;
  return span > 0 ? final + 0.5 * (base - final) * (1 + Math.cos((Math.PI * i) / span)) : base;
}

/**
 * Linear warm-up from floor·peak (step 0) to peak (step warmupSteps − 1), then a half-cosine from peak (step
 * warmupSteps) towards floor·peak (CLOVE_SPEC §g; cosineScheduleAt). Steps outside [0, totalSteps] are clamped.
 */
export function learningRateAt(step: number, s: LearningRateSchedule): number {
  const f = s.floorFraction ?? 0.01;
  // As the authors write them: final = peak·0.01, start = peak / warmup_multiplier (100 = 1/0.01 exactly).
  return cosineScheduleAt(step, s.peak, s.peak * f, s.totalSteps, s.warmupSteps, s.peak / (1 / f));
}

/** EMA momentum m(t) = 1 − (1 − base)·½(1 + cos(πt/T)): base at t = 0, rising to 1 at t = T (no warm-up). */
export function emaMomentumAt(step: number, base: number, totalSteps: number): number {
  return cosineScheduleAt(step, base, 1, totalSteps);
}

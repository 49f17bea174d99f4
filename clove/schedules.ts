// Host-side schedules: plain numbers computed per step and fed to the compiled step as scalar inputs.

export interface LearningRateSchedule {
  readonly peak: number;
  readonly warmupSteps: number;
  readonly totalSteps: number;
  /** Start and end as a fraction of the peak (1% in the official code: `--warmup-multiplier 100`, cosine to 0.01·peak). */
  readonly floorFraction?: number;
}

const clamp = (x: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, x));

/**
 * Linear warm-up from floor·peak (step 0) to peak (step = warmupSteps), then a half-cosine from peak down to
 * floor·peak at totalSteps (CLOVE_SPEC §g). Steps outside [0, totalSteps] are clamped.
 */
export function learningRateAt(step: number, s: LearningRateSchedule): number {
  const floor = (s.floorFraction ?? 0.01) * s.peak;
  const t = clamp(step, 0, s.totalSteps);
  if (t < s.warmupSteps) return floor + (s.peak - floor) * (t / s.warmupSteps);
  const span = s.totalSteps - s.warmupSteps;
  const progress = span > 0 ? (t - s.warmupSteps) / span : 0;
  return floor + (s.peak - floor) * 0.5 * (1 + Math.cos(Math.PI * progress));
}

/** EMA momentum m(t) = 1 − (1 − base)·½(1 + cos(πt/T)): base at t = 0, rising to 1 at t = T (no warm-up). */
export function emaMomentumAt(step: number, base: number, totalSteps: number): number {
  const t = clamp(step, 0, totalSteps);
  return 1 - (1 - base) * 0.5 * (1 + Math.cos((Math.PI * t) / totalSteps));
}

// Paired bootstrap confidence intervals for Δ = metric(A) − metric(B) (EVAL_PROTOCOLS.md §3d.6).
// "Paired" means both models are re-scored on the same resample of evaluation units, so the variation that
// comes from which canvases happen to be in the test set cancels in Δ. Metrics are given as functions of
// per-unit weights (weight k = unit drawn k times), which is how metrics.ts evaluates them without copies.

/** splitmix32: a tiny, well-mixed 32-bit generator; returns uniform floats in [0, 1). */
export function splitmix32(seed: number): () => number {
  let state = seed | 0;
  return () => {
    state = (state + 0x9e3779b9) | 0;
    let t = state ^ (state >>> 16);
    t = Math.imul(t, 0x21f0aaba);
    t ^= t >>> 15;
    t = Math.imul(t, 0x735a2d97);
    t ^= t >>> 15;
    return (t >>> 0) / 4294967296;
  };
}

/** Uniform integer in [0, n). */
export function randomIndex(random: () => number, n: number): number {
  return Math.floor(random() * n);
}

/** Linear-interpolation percentile of sorted values (numpy's default method); q in [0, 100]. */
export function percentileOfSorted(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const position = (q / 100) * (sorted.length - 1);
  const lo = Math.floor(position);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (position - lo);
}

/** A metric evaluated with unit u counted weights[u] times; called with all-ones weights for the point estimate. */
export type WeightedMetric = (weights: Float64Array) => number;

export interface BootstrapOptions {
  readonly resamples: number;
  readonly seed: number;
  /** Two-sided coverage, e.g. 0.95. */
  readonly level: number;
}

export const DEFAULT_BOOTSTRAP: BootstrapOptions = { resamples: 1000, seed: 0, level: 0.95 };

export interface DeltaInterval {
  /** metric(A) − metric(B) on all units. */
  readonly delta: number;
  readonly lo: number;
  readonly hi: number;
  readonly level: number;
  /** Resamples whose Δ was defined (a resample can miss every positive of a class and give NaN). */
  readonly validResamples: number;
  readonly units: number;
}

/**
 * Percentile bootstrap CI of metricA − metricB over `units` paired units: each resample draws `units` unit
 * indices with replacement from a splitmix32 stream seeded by `seed`, so a (seed, units) pair always gives the
 * same resamples for every model compared.
 */
export function pairedBootstrapDelta(
  units: number,
  metricA: WeightedMetric,
  metricB: WeightedMetric,
  options: BootstrapOptions = DEFAULT_BOOTSTRAP,
): DeltaInterval {
  if (!Number.isInteger(units) || units < 1) throw new Error(`pairedBootstrapDelta: need ≥ 1 unit, got ${units}`);
  if (!(options.level > 0 && options.level < 1)) throw new Error(`pairedBootstrapDelta: level ${options.level} not in (0, 1)`);
  const ones = new Float64Array(units).fill(1);
  const delta = metricA(ones) - metricB(ones);
  const random = splitmix32(options.seed);
  const weights = new Float64Array(units);
  const deltas: number[] = [];
  for (let b = 0; b < options.resamples; b++) {
    weights.fill(0);
    for (let k = 0; k < units; k++) weights[randomIndex(random, units)]++;
    const d = metricA(weights) - metricB(weights);
    if (!Number.isNaN(d)) deltas.push(d);
  }
  const sorted = Float64Array.from(deltas).sort();
  const tail = ((1 - options.level) / 2) * 100;
  return {
    delta,
    lo: percentileOfSorted(sorted, tail),
    hi: percentileOfSorted(sorted, 100 - tail),
    level: options.level,
    validResamples: deltas.length,
    units,
  };
}

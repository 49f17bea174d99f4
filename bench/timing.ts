// Timing: warm-up runs, then timed runs, each one a complete unit of device work (the callee synchronizes
// before returning). Only the median is reported as "the" time; min, max and the samples go into the JSON.
import { readFileSync } from 'node:fs';

export interface Timing {
  readonly warmup: number;
  readonly iterations: number;
  readonly medianMs: number;
  readonly minMs: number;
  readonly maxMs: number;
  readonly samplesMs: readonly number[];
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error('median of no samples');
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export function summarize(samplesMs: readonly number[], warmup: number): Timing {
  return {
    warmup,
    iterations: samplesMs.length,
    medianMs: median(samplesMs),
    minMs: Math.min(...samplesMs),
    maxMs: Math.max(...samplesMs),
    samplesMs,
  };
}

/** Runs `once` warmup + iterations times; `once` returns only after its work has finished on the device. */
export async function timeRuns(once: () => Promise<void>, warmup: number, iterations: number): Promise<Timing> {
  if (!(Number.isInteger(iterations) && iterations >= 1)) throw new Error(`timeRuns: iterations must be a positive integer, got ${iterations}`);
  for (let i = 0; i < warmup; i++) await once();
  const samples: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    await once();
    samples.push(performance.now() - t0);
  }
  return summarize(samples, warmup);
}

/**
 * How many runs a row gets. The first run is always a warm-up (it pays for lazy builds and first-touch
 * allocation) and its time is kept as `firstRunMs`; `warmup` − 1 more untimed runs follow; then as many timed
 * runs as fit in `budgetMs` at the first run's pace, clamped to [min, max]. Slow backends thereby get fewer
 * runs instead of none, and the row says how many it got.
 */
export interface IterationPolicy {
  readonly warmup: number;
  readonly min: number;
  readonly max: number;
  readonly budgetMs: number;
}

export function iterationsFor(firstRunMs: number, p: IterationPolicy): number {
  const affordable = Math.floor(p.budgetMs / Math.max(firstRunMs, 1e-3));
  return Math.max(p.min, Math.min(p.max, affordable));
}

/** Warm-up (the first run is timed separately), then the policy's number of timed runs. */
export async function timeAdaptive(once: () => Promise<void>, p: IterationPolicy): Promise<{ readonly timing: Timing; readonly firstRunMs: number }> {
  if (!(Number.isInteger(p.min) && p.min >= 1 && p.max >= p.min)) throw new Error(`IterationPolicy needs 1 <= min <= max, got ${JSON.stringify(p)}`);
  let firstRunMs = Number.NaN;
  if (p.warmup >= 1) {
    const t0 = performance.now();
    await once();
    firstRunMs = performance.now() - t0;
  }
  const iterations = iterationsFor(Number.isNaN(firstRunMs) ? 0 : firstRunMs, p);
  const timing = await timeRuns(once, Math.max(0, p.warmup - 1), iterations);
  return { timing: { ...timing, warmup: Math.max(0, p.warmup) }, firstRunMs };
}

/** The 1-, 5- and 15-minute load averages: this machine is shared, so every table carries them. */
export function loadAverage(): string {
  try {
    return readFileSync('/proc/loadavg', 'utf8').trim().split(/\s+/).slice(0, 3).join(' ');
  } catch (error) {
    return `unavailable (${String(error)})`;
  }
}

export const GFLOPS = (flops: number, ms: number): number => flops / 1e9 / (ms / 1e3);

// The shared probe recipe of EVAL_PROTOCOLS.md §3c: per-channel standardisation with the train mean and
// standard deviation, an appended bias column, and closed-form ridge (XᵀX + λN·I′)W = XᵀT whose bias is not
// regularised. The normal equations are built once per training set and re-solved for every λ of the grid,
// so the λ search costs five D×D solves rather than five passes over the training rows.
import {
  accumulateBlock,
  createNormalEquations,
  solveRidgeSystem,
  symmetrise,
  type NormalEquations,
} from './linalg.ts';

/** The λ grid of the protocols (relative: λ·N is added to the diagonal). */
export const RIDGE_LAMBDAS: readonly number[] = [1e-4, 1e-3, 1e-2, 1e-1, 1];

/** Added to every standard deviation so that constant channels standardise to 0 instead of NaN. */
export const STD_EPSILON = 1e-6;

/** Row-major feature matrix [rows, dim] in float32, as the feature extractors produce it. */
export interface FeatureRows {
  readonly data: Float32Array;
  readonly rows: number;
  readonly dim: number;
}

/** Row-major target matrix [rows, targets]. */
export interface TargetRows {
  readonly data: Float32Array | Float64Array;
  readonly targets: number;
}

export interface Standardiser {
  readonly mean: Float64Array;
  /** Standard deviation (population, as numpy's default) plus STD_EPSILON. */
  readonly scale: Float64Array;
}

/** Normal equations of the standardised, bias-augmented training rows, reusable across λ. */
export interface RidgeProblem {
  readonly featureDim: number;
  readonly targets: number;
  readonly standardiser: Standardiser;
  readonly equations: NormalEquations;
}

/** A solved probe: predictions are standardise(x)·W[0:D] + W[D]. */
export interface RidgeProbe {
  readonly featureDim: number;
  readonly targets: number;
  readonly lambda: number;
  readonly standardiser: Standardiser;
  /** Row-major [featureDim + 1, targets]; the last row is the bias. */
  readonly weights: Float64Array;
}

const BLOCK_ROWS = 256;

function checkRows(where: string, rows: FeatureRows): void {
  if (rows.data.length !== rows.rows * rows.dim) {
    throw new Error(`${where}: features hold ${rows.data.length} values, expected rows ${rows.rows} × dim ${rows.dim}`);
  }
}

/** Per-channel mean and standard deviation over the rows kept by `keep` (all rows when absent). */
export function fitStandardiser(features: FeatureRows, keep?: Uint8Array): Standardiser {
  checkRows('fitStandardiser', features);
  const { data, rows, dim } = features;
  const mean = new Float64Array(dim);
  const scale = new Float64Array(dim);
  let count = 0;
  for (let r = 0; r < rows; r++) {
    if (keep !== undefined && keep[r] === 0) continue;
    count++;
    const off = r * dim;
    for (let c = 0; c < dim; c++) mean[c] += data[off + c];
  }
  if (count === 0) throw new Error(`fitStandardiser: no rows kept out of ${rows}`);
  for (let c = 0; c < dim; c++) mean[c] /= count;
  // Two passes (mean, then squared deviations) avoid the cancellation of E[x²] − E[x]².
  for (let r = 0; r < rows; r++) {
    if (keep !== undefined && keep[r] === 0) continue;
    const off = r * dim;
    for (let c = 0; c < dim; c++) {
      const d = data[off + c] - mean[c];
      scale[c] += d * d;
    }
  }
  for (let c = 0; c < dim; c++) scale[c] = Math.sqrt(scale[c] / count) + STD_EPSILON;
  return { mean, scale };
}

/**
 * Standardises the training rows, appends the bias column and accumulates the normal equations in float64,
 * one block of rows at a time (the standardised design matrix is never materialised).
 * Rows with keep[r] === 0 are left out entirely (they count neither in the statistics nor in N).
 */
export function buildRidgeProblem(features: FeatureRows, targets: TargetRows, keep?: Uint8Array): RidgeProblem {
  checkRows('buildRidgeProblem', features);
  const { data, rows, dim } = features;
  const t = targets.targets;
  if (targets.data.length !== rows * t) {
    throw new Error(`buildRidgeProblem: targets hold ${targets.data.length} values, expected rows ${rows} × targets ${t}`);
  }
  if (keep !== undefined && keep.length !== rows) {
    throw new Error(`buildRidgeProblem: keep mask has ${keep.length} entries for ${rows} rows`);
  }
  const standardiser = fitStandardiser(features, keep);
  const { mean, scale } = standardiser;
  const p = dim + 1;
  const equations = createNormalEquations(p, t);
  const design = new Float64Array(p * BLOCK_ROWS);
  const targetBlock = new Float64Array(t * BLOCK_ROWS);
  let filled = 0;
  const flush = (): void => {
    if (filled === 0) return;
    // The block is stored column-major with a stride of `filled` so accumulateBlock reads it densely.
    accumulateBlock(equations, design.subarray(0, p * filled), targetBlock.subarray(0, t * filled), filled);
    filled = 0;
  };
  const staged = new Float64Array(p * BLOCK_ROWS);
  for (let r = 0; r < rows; r++) {
    if (keep !== undefined && keep[r] === 0) continue;
    const off = r * dim;
    for (let c = 0; c < dim; c++) staged[filled * p + c] = (data[off + c] - mean[c]) / scale[c];
    staged[filled * p + dim] = 1;
    for (let k = 0; k < t; k++) targetBlock[filled * t + k] = targets.data[r * t + k];
    filled++;
    if (filled === BLOCK_ROWS) {
      transposeInto(staged, design, filled, p);
      flush();
    }
  }
  if (filled > 0) {
    transposeInto(staged, design, filled, p);
    flush();
  }
  symmetrise(equations);
  return { featureDim: dim, targets: t, standardiser, equations };
}

function transposeInto(rowMajor: Float64Array, columnMajor: Float64Array, count: number, p: number): void {
  for (let r = 0; r < count; r++) for (let c = 0; c < p; c++) columnMajor[c * count + r] = rowMajor[r * p + c];
}

/** Solves the probe for one λ (relative: λ·N is added to the non-bias diagonal). */
export function solveRidge(problem: RidgeProblem, lambda: number): RidgeProbe {
  if (!(lambda > 0) || !Number.isFinite(lambda)) throw new Error(`solveRidge: λ must be finite and > 0, got ${lambda}`);
  const { featureDim, targets, standardiser, equations } = problem;
  const weights = solveRidgeSystem(equations, lambda * equations.rows, [featureDim]);
  return { featureDim, targets, lambda, standardiser, weights };
}

/** Predictions [rows, targets] (row-major, float64) of a solved probe on raw (unstandardised) feature rows. */
export function predictRidge(probe: RidgeProbe, features: FeatureRows): Float64Array {
  checkRows('predictRidge', features);
  if (features.dim !== probe.featureDim) {
    throw new Error(`predictRidge: probe expects ${probe.featureDim} features per row, got ${features.dim}`);
  }
  const { featureDim: dim, targets: t, weights } = probe;
  const { mean, scale } = probe.standardiser;
  // Folding the standardisation into the weights makes prediction one multiply-add per (feature, target).
  const folded = new Float64Array(dim * t);
  const bias = new Float64Array(t);
  for (let k = 0; k < t; k++) bias[k] = weights[dim * t + k];
  for (let c = 0; c < dim; c++) {
    for (let k = 0; k < t; k++) {
      const w = weights[c * t + k] / scale[c];
      folded[c * t + k] = w;
      bias[k] -= mean[c] * w;
    }
  }
  const out = new Float64Array(features.rows * t);
  const { data } = features;
  for (let r = 0; r < features.rows; r++) {
    const o = r * t;
    for (let k = 0; k < t; k++) out[o + k] = bias[k];
    const off = r * dim;
    for (let c = 0; c < dim; c++) {
      const x = data[off + c];
      if (x === 0) continue;
      const w = c * t;
      for (let k = 0; k < t; k++) out[o + k] += x * folded[w + k];
    }
  }
  return out;
}

export interface LambdaSelection<Model> {
  readonly lambda: number;
  readonly model: Model;
  /** Validation score per λ, in grid order. */
  readonly scores: readonly number[];
}

/**
 * Picks λ by a validation metric (higher is better; NaN counts as worst). Ties keep the first λ of the grid,
 * i.e. the smallest, as Python's max() does in the reference.
 */
export function selectLambda<Model>(
  lambdas: readonly number[],
  fit: (lambda: number) => Model,
  validationScore: (model: Model) => number,
): LambdaSelection<Model> {
  if (lambdas.length === 0) throw new Error('selectLambda: empty λ grid');
  const scores: number[] = [];
  let best: { lambda: number; model: Model; score: number } | undefined;
  for (const lambda of lambdas) {
    const model = fit(lambda);
    const raw = validationScore(model);
    scores.push(raw);
    const score = Number.isNaN(raw) ? -Infinity : raw;
    if (best === undefined || score > best.score) best = { lambda, model, score };
  }
  if (best === undefined) throw new Error('selectLambda: no λ evaluated');
  return { lambda: best.lambda, model: best.model, scores };
}

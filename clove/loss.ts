// The CLoVE ranking loss in its two readings (CLOVE_SPEC §e and §9.1), for one (student view, teacher view)
// pair, and `cloveLoss`, which averages it over the spec's view pairs. Everything is a DSL expression, so the
// loss differentiates and compiles with the rest of the step.
//
// Both variants normalise their inputs per cell (so any positive per-cell scale cancels) and pass the teacher
// through stopGradient themselves, so no gradient can reach the teacher whatever the caller does. Negatives are
// chosen with topkIndices and read back with gather (no scatter); masked entries get a finite sentinel, never
// ±Inf (GPU paths have no infinities), and rows that lack enough candidates are handled by an explicit
// validity mask instead of the official code's +Inf.
import * as T from '../dsl/tensor.ts';
import type { Tensor } from '../dsl/tensor.ts';
import { clampMin, l2Normalize } from '../dsl/nn.ts';
import type { Config } from './config.ts';

/** A loss's registered name (`official`, `per-pair`, or one a user added with withVariants). */
export type LossVariant = Config['loss']['variant'];
export type NegativePool = Config['loss']['negativePool'];
export type Reduction = Config['loss']['reduction'];

export interface LossOptions {
  readonly variant: LossVariant;
  /** λ, the weight of the positive term. */
  readonly lambda: number;
  /** μ, the hinge margin. */
  readonly margin: number;
  /** Candidates ranked per query row; the most similar is dropped and the other k − 1 are averaged. */
  readonly k: number;
  /** Which teacher cells may serve as negatives: the unmatched ones (official code) or all of them (poster). */
  readonly negativePool: NegativePool;
  /** per-pair only: per-image sum over matched pairs, or their mean. */
  readonly reduction: Reduction;
}

/** The official code's settings (CLOVE_SPEC §8): λ = 2, μ = 100, k = 10 from the unmatched pool. */
export const officialLossDefaults: LossOptions = { variant: 'official', lambda: 2, margin: 100, k: 10, negativePool: 'unmatched', reduction: 'mean' };

/**
 * Defaults of the poster's per-pair reading. The pool is 'all': the poster says "top-k most similar local
 * features of F^t, excluding the most similar one", which drops the likely positive by rank instead of by
 * mask. The reduction is 'mean': a sum would scale the gradient (hence the effective learning rate) with the
 * number of matches, which varies with crop overlap and grid size. λ, μ and k keep the code's values because
 * the poster gives none, so switching variants changes only where the hinge sits and how negatives are pooled.
 */
export const perPairLossDefaults: LossOptions = { variant: 'per-pair', lambda: 2, margin: 100, k: 10, negativePool: 'all', reduction: 'mean' };

/** Similarity given to excluded candidates: far below any cosine, finite on every backend. */
export const EXCLUDED_SIMILARITY = -1e4;

export interface PairLoss {
  /** Scalar loss of this view pair, averaged over images. */
  readonly loss: Tensor<0>;
  /** Mean cosine over the matched (i, j) pairs of the batch (0 when nothing matched). No gradient. */
  readonly posCos: Tensor<0>;
  /** Mean over valid query rows of the hard-negative cosine. No gradient. */
  readonly negCos: Tensor<0>;
}

export interface HardNegatives {
  /** [N, Lq, k − 1] i32: teacher cells ranked 2..k by similarity among the allowed candidates. */
  readonly indices: Tensor<3>;
  /** [N, Lq] 0/1: the row had at least k allowed candidates. */
  readonly valid: Tensor<2>;
}

function checkShapes(C: Tensor<3>, F: Tensor<3>, mask: Tensor<3>, k: number): void {
  const [n, lq, d] = C.shape;
  const [nf, lk, df] = F.shape;
  const ok = C.shape.length === 3 && F.shape.length === 3 && n === nf && d === df && mask.shape.length === 3 && mask.shape[0] === n && mask.shape[1] === lq && mask.shape[2] === lk;
  if (!ok) {
    throw new Error(`clove loss: expected C [N, Lq, D], F [N, Lk, D] and mask [N, Lq, Lk], got C [${C.shape.join(',')}], F [${F.shape.join(',')}], mask [${mask.shape.join(',')}]`);
  }
  if (!(Number.isInteger(k) && k >= 2 && k <= lk)) {
    throw new Error(`clove loss: k = ${k} must be an integer in [2, Lk = ${lk}] (the most similar candidate is dropped, at least one must remain)`);
  }
}

/**
 * The k most similar allowed candidates of each row, without the first. `excluded` is 1 where a candidate is
 * not allowed (e.g. matched cells). Rows with fewer than k allowed candidates are marked invalid; their indices
 * may point at excluded cells and must not be used.
 */
export function hardNegatives(cos: Tensor<3>, excluded: Tensor<3>, k: number): HardNegatives {
  const [n, lq] = cos.shape;
  const candidates = T.where(T.gt(excluded, 0.5), EXCLUDED_SIMILARITY, cos);
  const ranked = T.topkIndices(T.stopGradient(candidates), k, -1, true);
  const indices = T.slice(ranked, [[0, n], [0, lq], [1, k]]);
  const allowed = T.sum(T.sub(1, excluded), [2]);
  const valid = T.cast(T.ge(allowed, k - 0.5), 'f32');
  return { indices, valid };
}

/** Per-cell unit embeddings and their cosines; the teacher is cut from the gradient here. */
function cosines(C: Tensor<3>, F: Tensor<3>): { readonly c: Tensor<3>; readonly f: Tensor<3>; readonly cos: Tensor<3> } {
  const c = l2Normalize(C, -1);
  const f = l2Normalize(T.stopGradient(F), -1);
  return { c, f, cos: T.matmul(c, T.transpose(f)) };
}

const safeDiv = (a: Tensor<0>, count: Tensor<0>): Tensor<0> => T.div(a, T.maximum(count, 1));

/** Mean matched cosine over the whole batch, for metrics. */
function matchedCosine(cos: Tensor<3>, mask: Tensor<3>): Tensor<0> {
  return T.stopGradient(safeDiv(T.sum(T.mul(cos, mask)), T.sum(mask)));
}

/**
 * The official loss (CLOVE_SPEC §e), per image: ℓ = −2·cos; P = Σ_M ℓ / (|M| + 1e-6); n_i = mean of the
 * logits ranked 2..k among the row's unmatched keys; N = mean over all rows; L = max(0, λP − N + μ). An image
 * with any row short of k candidates contributes 0 (the code's +Inf). The result is the mean over images.
 */
export function officialLoss(C: Tensor<3>, F: Tensor<3>, mask: Tensor<3>, o: LossOptions): PairLoss {
  checkShapes(C, F, mask, o.k);
  const { cos } = cosines(C, F);
  const logits = T.mul(cos, -2);
  const positive = T.div(T.sum(T.mul(logits, mask), [1, 2]), T.add(T.sum(mask, [1, 2]), 1e-6));
  const excluded = o.negativePool === 'unmatched' ? mask : T.zerosLike(mask);
  const { indices, valid } = hardNegatives(cos, excluded, o.k);
  const negativeCos = T.div(T.sum(T.gather(cos, indices, 2), [2]), o.k - 1);
  const negative = T.mul(T.sum(negativeCos, [1]), -2 / cos.shape[1]);
  const imageValid = T.ge(T.sum(valid, [1]), cos.shape[1] - 0.5);
  // MarginRankingLoss is `clamp_min(λP − N + μ, 0)`: at a tie the gradient passes (clampMin), it is not split.
  const hinge = clampMin(T.add(T.sub(T.mul(positive, o.lambda), negative), o.margin), 0);
  const perImage = T.where(imageValid, hinge, 0);
  return {
    loss: T.div(T.sum(perImage), cos.shape[0]),
    posCos: matchedCosine(cos, mask),
    negCos: T.stopGradient(safeDiv(T.sum(T.mul(negativeCos, valid)), T.sum(valid))),
  };
}

/**
 * The poster's per-pair loss (Eq. 2): over matched (i, j), max(0, −λ·cos(C_i, F_j) + cos(C_i, F_neg,i) + μ),
 * where F_neg,i is the mean of the teacher cells ranked 2..k for row i (a vector, then a cosine). Pairs of rows
 * short of k candidates contribute 0. Per image: the sum, or the mean over contributing pairs; then the mean
 * over images.
 */
export function perPairLoss(C: Tensor<3>, F: Tensor<3>, mask: Tensor<3>, o: LossOptions): PairLoss {
  checkShapes(C, F, mask, o.k);
  const [n, lq, lk] = mask.shape;
  const { c, f, cos } = cosines(C, F);
  const excluded = o.negativePool === 'unmatched' ? mask : T.zerosLike(mask);
  const { indices, valid } = hardNegatives(cos, excluded, o.k);
  // Selection weights [N, Lq, Lk]: 1/(k−1) on each chosen cell, from a one-hot comparison (gather-only).
  const wide = [n, lq, o.k - 1, lk] as const;
  const onehot = T.cast(T.eq(T.broadcastTo(T.expandDims(indices, 3), wide), T.iota(wide, 3)), 'f32');
  const selection = T.div(T.sum(onehot, [2]), o.k - 1);
  const negativeMean = l2Normalize(T.matmul(selection, f), -1);
  const negativeCos = T.sum(T.mul(c, negativeMean), [2]);
  const counted = T.mul(mask, T.expandDims(valid, 2));
  // The same clamp_min convention at the hinge's kink as the official variant.
  const hinge = clampMin(T.add(T.add(T.mul(cos, -o.lambda), T.expandDims(negativeCos, 2)), o.margin), 0);
  const perImageSum = T.sum(T.mul(hinge, counted), [1, 2]);
  const perImage = o.reduction === 'sum' ? perImageSum : T.div(perImageSum, T.maximum(T.sum(counted, [1, 2]), 1));
  return {
    loss: T.div(T.sum(perImage), n),
    posCos: matchedCosine(cos, mask),
    negCos: T.stopGradient(safeDiv(T.sum(T.mul(negativeCos, valid)), T.sum(valid))),
  };
}

/**
 * One view pair's loss: student cells C [N, Lq, D], teacher cells F [N, Lk, D] and the positive mask [N, Lq, Lk] to
 * a scalar loss and its two logged cosines. A user's loss has this type too; it should pass F through
 * stopGradient itself, as ours do.
 */
export type PairLossFunction = (C: Tensor<3>, F: Tensor<3>, mask: Tensor<3>, o: LossOptions) => PairLoss;

/** The two built-in readings, by the name `loss.variant` gives. */
export const builtinPairLosses: Readonly<Record<string, PairLossFunction>> = { official: officialLoss, 'per-pair': perPairLoss };

/** The built-in loss `o.variant` names (a registry lookup with a clear error is `lookupVariant`'s job upstream). */
export function pairLoss(C: Tensor<3>, F: Tensor<3>, mask: Tensor<3>, o: LossOptions): PairLoss {
  const loss = Object.prototype.hasOwnProperty.call(builtinPairLosses, o.variant) ? builtinPairLosses[o.variant] : undefined;
  if (loss === undefined) throw new Error(`pairLoss: loss.variant '${o.variant}' is not a built-in loss (known: ${Object.keys(builtinPairLosses).join(', ')})`);
  return loss(C, F, mask, o);
}

// ---- view pairs ----------------------------------------------------------------------------------------------

export interface ViewRef {
  readonly kind: 'global' | 'local';
  readonly index: number;
}

/** One loss term: a student (query) view against a teacher global view. */
export interface ViewPair {
  readonly query: ViewRef;
  /** Index of the teacher's global view. */
  readonly key: number;
  /** `global0.global1`, `local3.global0`, ...: also the suffix of the mask input's name. */
  readonly name: string;
}

const refName = (r: ViewRef): string => `${r.kind}${r.index}`;

/**
 * The spec's terms (CLOVE_SPEC §b): global 0 vs teacher global 1 and global 1 vs teacher global 0, then each
 * local view against each teacher global view. No view meets itself; teachers see no local view.
 */
export function viewPairs(nLocal: number): ViewPair[] {
  const pair = (query: ViewRef, key: number): ViewPair => ({ query, key, name: `${refName(query)}.global${key}` });
  const pairs = [pair({ kind: 'global', index: 0 }, 1), pair({ kind: 'global', index: 1 }, 0)];
  for (let l = 0; l < nLocal; l++) pairs.push(pair({ kind: 'local', index: l }, 0), pair({ kind: 'local', index: l }, 1));
  return pairs;
}

/** Name of the positive-mask input of a pair (computed on the host by the matcher). */
export const maskInputName = (pair: ViewPair): string => `mask.${pair.name}`;

export interface StudentCells {
  /** Per global view, [N, Lg, D]. */
  readonly global: readonly Tensor<3>[];
  /** Per local view, [N, Ll, D]. */
  readonly local: readonly Tensor<3>[];
}

export interface CloveLoss extends PairLoss {
  /** Fraction of query cells with at least one positive, averaged over pairs. */
  readonly matchedFraction: Tensor<0>;
  /** Each pair's own loss, by pair name. */
  readonly terms: Readonly<Record<string, Tensor<0>>>;
}

/** The loss of a whole step: every view pair's loss (`pair`, the built-in `o.variant` by default), averaged over the pairs (and so their metrics). */
export function cloveLoss(
  student: StudentCells,
  teacher: readonly Tensor<3>[],
  masks: Readonly<Record<string, Tensor<3>>>,
  o: LossOptions,
  pair: PairLossFunction = pairLoss,
): CloveLoss {
  if (student.global.length !== 2 || teacher.length !== 2) {
    throw new Error(`cloveLoss: expected 2 student and 2 teacher global views, got ${student.global.length} and ${teacher.length}`);
  }
  const pairs = viewPairs(student.local.length);
  const terms = pairs.map((p) => {
    const mask = masks[p.name];
    if (mask === undefined) throw new Error(`cloveLoss: no mask for view pair '${p.name}' (given: ${Object.keys(masks).join(', ')})`);
    const query = p.query.kind === 'global' ? student.global[p.query.index] : student.local[p.query.index];
    const term = pair(query, teacher[p.key], mask, o);
    const rowsMatched = T.cast(T.gt(T.sum(mask, [2]), 0.5), 'f32');
    return { name: p.name, term, matched: T.div(T.sum(rowsMatched), rowsMatched.shape[0] * rowsMatched.shape[1]) };
  });
  const average = (pick: (t: (typeof terms)[number]) => Tensor<0>): Tensor<0> =>
    T.div(terms.map(pick).reduce((a, b) => T.add(a, b)), terms.length);
  return {
    loss: average((t) => t.term.loss),
    posCos: average((t) => t.term.posCos),
    negCos: average((t) => t.term.negCos),
    matchedFraction: T.stopGradient(average((t) => t.matched)),
    terms: Object.fromEntries(terms.map((t) => [t.name, t.term.loss])),
  };
}

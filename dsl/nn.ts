// Composite layers written in the DSL: they add no primitive and no rule; their gradients come from the
// primitives' rules. Each follows the PyTorch definition named in its comment.
import * as T from './tensor.ts';
import type { Tensor } from './tensor.ts';

/**
 * nn.ReLU / torch.relu, gradient included: PyTorch's backward (threshold_backward) passes the cotangent where
 * x > 0 and gives 0 at x = 0 exactly. `maximum` sends a tie's cotangent to its second operand (here the constant
 * 0), so x gets none at 0. That 0 matters: at step 0 the zero-initialised last BN γ of every residual block makes
 * `relu(0 + identity)` tie at 0 for about half its entries. NaN stays NaN, as in torch.relu.
 */
export const relu = <R extends number>(x: Tensor<R>): Tensor<R> => T.maximum(x, 0);

/**
 * torch.clamp_min(x, lo) (also `clamp(min=lo)`), gradient included: the cotangent passes where x ≥ lo, ties
 * included, and is 0 where x < lo (PyTorch's rule `where(self >= min, grad, 0)`). Written maximum(lo, x), so a tie
 * goes to x (maximum's second operand). Use it where the authors' code clamps: F.normalize's norm,
 * MarginRankingLoss's hinge. NaN stays NaN.
 */
export const clampMin = <R extends number>(x: Tensor<R>, lo: number): Tensor<R> => T.maximum(lo, x);

/** Mean over `axes`, keeping them as size-1 dims (so the result broadcasts against x). */
export function meanKeep<R extends number>(x: Tensor<R>, axes: readonly number[]): Tensor<R> {
  const count = axes.reduce((a, ax) => a * x.shape[ax < 0 ? ax + x.shape.length : ax], 1);
  return T.div(T.sumKeep(x, axes), count);
}
export const mean = (x: Tensor): Tensor<0> => T.div(T.sum(x), x.shape.reduce((a, c) => a * c, 1));

/** Variance over `axes` (biased unless `unbiased`), keeping the axes. */
export function varianceKeep<R extends number>(x: Tensor<R>, axes: readonly number[], unbiased = false): Tensor<R> {
  const count = axes.reduce((a, ax) => a * x.shape[ax < 0 ? ax + x.shape.length : ax], 1);
  const centered = T.sub(x, meanKeep(x, axes));
  return T.div(T.sumKeep(T.mul(centered, centered), axes), unbiased ? Math.max(count - 1, 1) : count);
}

/** Numerically stable softmax (torch.softmax): the max is subtracted under stopGradient (softmax is shift-invariant). */
export function softmax<R extends number>(x: Tensor<R>, axis = -1): Tensor<R> {
  const e = T.exp(T.sub(x, T.stopGradient(T.maxKeep(x, [axis]))));
  return T.div(e, T.sumKeep(e, [axis]));
}
export function logSoftmax<R extends number>(x: Tensor<R>, axis = -1): Tensor<R> {
  const shifted = T.sub(x, T.stopGradient(T.maxKeep(x, [axis])));
  return T.sub(shifted, T.log(T.sumKeep(T.exp(shifted), [axis])));
}

/**
 * F.normalize: x / max(‖x‖₂, eps) along `axis`. The clamp is applied to the squared norm (max(‖x‖², eps²),
 * then sqrt: the same value) so that a zero row never reaches sqrt's derivative 1/(2·sqrt(0)) = ∞, which the
 * clamp's zero cotangent would turn into 0·∞ = NaN gradients (PyTorch returns x/eps's gradient there too).
 * The clamp is `clampMin` (F.normalize's `clamp_min`): at a tie the whole cotangent goes to the norm.
 */
export function l2Normalize<R extends number>(x: Tensor<R>, axis = -1, eps = 1e-12): Tensor<R> {
  const norm = T.sqrt(clampMin(T.sumKeep(T.mul(x, x), [axis]), eps * eps));
  return T.div(x, norm);
}

/** Cosine similarity along `axis` (F.cosine_similarity with each operand normalized separately, eps 1e-8). */
export const cosineSimilarity = (a: Tensor, c: Tensor, axis = -1, eps = 1e-8): Tensor =>
  T.sum(T.mul(l2Normalize(a, axis, eps), l2Normalize(c, axis, eps)), [axis]);

export interface LinearParams {
  readonly weight: Tensor<2>;
  readonly bias?: Tensor<1>;
}
/** nn.Linear on the last axis: x·Wᵀ + b, W of shape [out, in]. Leading dims are flattened into one matmul. */
export function linear<R extends number>(x: Tensor<R>, p: LinearParams): Tensor<R> {
  const inF = x.shape[x.shape.length - 1];
  const outF = p.weight.shape[0];
  const lead = x.shape.slice(0, -1);
  const y = T.matmul(T.reshape(x, [-1, inF]), T.transpose(p.weight));
  const withBias = p.bias === undefined ? y : T.add(y, p.bias);
  return T.reshape(withBias, [...lead, outF]) as Tensor<R>;
}

/** 1×1 convolution over NCHW with an OIHW weight [out, in, 1, 1] (kept 4-D so it exports as torch's conv weight). */
export const conv1x1 = (x: Tensor<4>, weight: Tensor<4>): Tensor<4> => T.conv2d(x, weight);

export interface BatchNormParams {
  readonly weight?: Tensor<1>;
  readonly bias?: Tensor<1>;
}
export interface BatchNormState {
  readonly runningMean: Tensor<1>;
  readonly runningVar: Tensor<1>;
}
export interface BatchNormOptions {
  readonly training: boolean;
  readonly momentum?: number;
  readonly eps?: number;
}
/**
 * nn.BatchNorm over the channel axis 1 of [N, C, ...]. Training mode normalizes with the batch statistics
 * and returns the updated running statistics as new state (running var uses the unbiased batch variance, as
 * PyTorch does); eval mode uses the running statistics and returns the state unchanged.
 */
export function batchNorm<R extends number>(
  x: Tensor<R>,
  p: BatchNormParams,
  state: BatchNormState,
  o: BatchNormOptions,
): { readonly y: Tensor<R>; readonly state: BatchNormState } {
  const eps = o.eps ?? 1e-5;
  const m = o.momentum ?? 0.1;
  const C = x.shape[1];
  const axes = x.shape.map((_d, i) => i).filter((i) => i !== 1);
  const perChannel = (v: Tensor<1>): Tensor => T.reshape(v, x.shape.map((d, i) => (i === 1 ? C : 1)));
  let y: Tensor<R>;
  let next = state;
  if (o.training) {
    const mu = meanKeep(x, axes);
    const v = varianceKeep(x, axes);
    y = T.mul(T.sub(x, mu), T.rsqrt(T.add(v, eps)));
    const count = axes.reduce((a, ax) => a * x.shape[ax], 1);
    const batchMean = T.stopGradient(T.reshape(mu, [C]));
    const unbiased = T.stopGradient(T.mul(T.reshape(v, [C]), count / Math.max(count - 1, 1)));
    next = {
      runningMean: T.add(T.mul(state.runningMean, 1 - m), T.mul(batchMean, m)),
      runningVar: T.add(T.mul(state.runningVar, 1 - m), T.mul(unbiased, m)),
    };
  } else {
    y = T.mul(T.sub(x, perChannel(state.runningMean)), T.rsqrt(T.add(perChannel(state.runningVar), eps))) as Tensor<R>;
  }
  if (p.weight !== undefined) y = T.mul(y, perChannel(p.weight)) as Tensor<R>;
  if (p.bias !== undefined) y = T.add(y, perChannel(p.bias)) as Tensor<R>;
  return { y, state: next };
}

export interface AttentionParams {
  /** Packed [3D, D] projection of q, k, v (nn.MultiheadAttention's in_proj_weight). */
  readonly inProjWeight: Tensor<2>;
  readonly inProjBias: Tensor<1>;
  readonly outProjWeight: Tensor<2>;
  readonly outProjBias: Tensor<1>;
}
export interface AttentionOptions {
  readonly heads: number;
  /** Cosine attention: l2-normalized q and k, logits divided by this temperature instead of scaled by 1/√d. */
  readonly cosineTemperature?: number;
}
/**
 * Self-attention with nn.MultiheadAttention semantics (batch_first, q = k = v = x, no dropout): packed
 * in-projection, heads split into contiguous chunks of D/h, softmax(QKᵀ/√(D/h))V, output projection.
 * Returns the output [B, L, D] and the attention weights averaged over heads [B, L, L] (PyTorch's default).
 */
export function multiHeadAttention(x: Tensor<3>, p: AttentionParams, o: AttentionOptions): { readonly out: Tensor<3>; readonly weights: Tensor<3> } {
  const [B, L, D] = x.shape;
  const h = o.heads;
  const dh = D / h;
  const qkv = linear(x, { weight: p.inProjWeight, bias: p.inProjBias });
  const head = (part: number): Tensor<4> =>
    T.permute(T.reshape(T.slice(qkv, [[0, B], [0, L], [part * D, (part + 1) * D]]), [B, L, h, dh]), [0, 2, 1, 3]);
  let q = head(0);
  let k = head(1);
  const v = head(2);
  let logits: Tensor<4>;
  if (o.cosineTemperature !== undefined) {
    q = l2Normalize(q, -1);
    k = l2Normalize(k, -1);
    logits = T.div(T.matmul(q, T.transpose(k)), o.cosineTemperature);
  } else {
    logits = T.mul(T.matmul(q, T.transpose(k)), 1 / Math.sqrt(dh));
  }
  const attn = softmax(logits, -1);
  const ctx = T.reshape(T.permute(T.matmul(attn, v), [0, 2, 1, 3]), [B, L, D]);
  return {
    out: linear(ctx, { weight: p.outProjWeight, bias: p.outProjBias }),
    weights: T.div(T.sum(attn, [1]), h),
  };
}

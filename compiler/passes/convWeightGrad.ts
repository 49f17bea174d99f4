// How conv2d's weight gradient (the `convWeightGrad` primitive) is computed: the target chooses per node
// (`Target.chooseAlgorithms`) between the primitive's own kernel ('direct': one output per work item, the whole
// N·Ho·Wo reduction in its loop), one batched matrix product per tap ('taps') and a convolution of the input with
// the cotangent, batch and channel axes swapped ('conv'). This file holds the rewrites; the thresholds are
// measurements of each target and live with it.
import * as b from '../build.ts';
import type { Graph, Node } from '../ir.ts';
import { mapGraph } from './rewrite.ts';

export type WeightGradAlgorithm = 'direct' | 'taps' | 'conv';

export interface WeightGradChoice {
  readonly algorithm: (node: Node<'convWeightGrad'>) => WeightGradAlgorithm;
  /** Longest reduction one output's loop may run before the batch is split in chunks summed at the end. */
  readonly maxLoop: number;
  /** Array inputs one kernel may read (the taps' results are concatenated in chunks of this many). */
  readonly maxKernelInputs: number;
}

/** Multiply-adds of one tap's product: the measure the targets' thresholds are stated in. */
export const productsPerTap = (node: Node<'convWeightGrad'>): number => {
  const [O, Ci] = node.shape;
  const [N, , Ho, Wo] = node.inputs[1].shape;
  return (O / node.params.groups) * Ci * N * Ho * Wo;
};

export const expandConvWeightGrads = (choice: WeightGradChoice) => (graph: Graph): Graph =>
  mapGraph(graph, (n) => {
    if (n.op !== 'convWeightGrad') return n;
    const node = n as Node<'convWeightGrad'>;
    const algorithm = choice.algorithm(node);
    if (algorithm === 'taps') return weightGradByTaps(node, choice);
    if (algorithm === 'conv') return weightGradByConv(node, choice.maxLoop);
    return node;
  });

/** The smallest divisor P of N that brings a loop of `length` products (length/P per chunk) under `maxLoop`, or N. */
export function batchSplit(N: number, length: number, maxLoop: number): number {
  for (let P = 1; P <= N; P++) if (N % P === 0 && length / P <= maxLoop) return P;
  return N;
}

/**
 * dW[:, :, a, e] = Σ_{n,i,j} g[n, :, i, j] ⊗ x[n, :, i·s + a·d − p, j·s + e·d − p]: one batched product per tap
 * (a, e) of the cotangent, laid out [groups, Co, N·Ho·Wo], with a strided window of x stored channels-last, so
 * the output channels of g are a dot's rows and x's channels its contiguous columns. g's layout is materialized
 * once for all taps; the scheduler copies each tap's strided window of x into a buffer of its own (reading it
 * through index arithmetic made gpu.js's products slower, bench/FINDINGS.md (f)). The contraction over the batch
 * is split in P chunks (summed once at the end) where one loop would exceed `maxLoop`.
 */
export function weightGradByTaps(node: Node<'convWeightGrad'>, choice: Pick<WeightGradChoice, 'maxLoop' | 'maxKernelInputs'>): Node {
  const [x, g] = node.inputs;
  const { stride, padding, dilation, groups: G, kernel: [kh, kw] } = node.params;
  const [N, , H, W] = x.shape;
  const [O, Ci] = node.shape;
  const Co = O / G;
  const [, , Ho, Wo] = g.shape;
  const P = batchSplit(N, N * Ho * Wo, choice.maxLoop);
  const n = N / P;
  const xp = padding[0] + padding[1] > 0 ? b.pad(x, [0, 0, padding[0], padding[1]], [0, 0, padding[0], padding[1]]) : x;
  const [Hp, Wp] = [H + 2 * padding[0], W + 2 * padding[1]];
  const xLast = b.permute(b.reshape(xp, [N, G, Ci, Hp, Wp]), [1, 0, 3, 4, 2]); // [G, N, Hp, Wp, Ci]
  const gRows = b.reshape(b.permute(b.reshape(g, [P, n, G, Co, Ho, Wo]), [2, 0, 3, 1, 4, 5]), [G * P, Co, n * Ho * Wo]);
  const taps: Node[] = [];
  for (let a = 0; a < kh; a++) {
    for (let e = 0; e < kw; e++) {
      const [y0, x0] = [a * dilation[0], e * dilation[1]];
      const window = b.slice(xLast, [0, 0, y0, x0, 0], [G, N, y0 + (Ho - 1) * stride[0] + 1, x0 + (Wo - 1) * stride[1] + 1, Ci], [1, 1, stride[0], stride[1], 1]);
      taps.push(b.reshape(b.dot(gRows, b.reshape(window, [G * P, n * Ho * Wo, Ci])), [1, G, P, Co, Ci]));
    }
  }
  const partials = concatInChunks(taps, 0, choice.maxKernelInputs); // [kh·kw, G, P, Co, Ci]
  const summed = P === 1 ? b.reshape(partials, [kh * kw, O, Ci]) : b.reshape(b.sum(partials, [2]), [kh * kw, O, Ci]);
  return b.reshape(b.permute(summed, [1, 2, 0]), [O, Ci, kh, kw]);
}

/** Concatenation along `axis` as a tree of concats of at most `width` operands each. */
function concatInChunks(xs: readonly Node[], axis: number, width: number): Node {
  if (xs.length <= width) return xs.length === 1 ? xs[0] : b.concat(xs, axis);
  const chunks: Node[] = [];
  for (let k = 0; k < xs.length; k += width) chunks.push(concatInChunks(xs.slice(k, k + width), axis, width));
  return concatInChunks(chunks, axis, width);
}

/**
 * The weight gradient as a convolution of the input (channels as the batch) with the cotangent (batch as the
 * input channels), exchanging the roles of stride and dilation. Each output sums N·Ho·Wo products: where that
 * exceeds `maxLoop`, the batch is split into P groups of convolutions (extra conv groups), the P partial weight
 * gradients summed after; P divides N so no padding is needed.
 */
export function weightGradByConv(node: Node<'convWeightGrad'>, maxLoop: number): Node {
  const [x, g] = node.inputs;
  const { stride, padding, dilation, groups, kernel: [kh, kw] } = node.params;
  const [N, C, H, W] = x.shape;
  const [O, Ci] = node.shape;
  const Co = O / groups;
  const [, , Ho, Wo] = g.shape;
  const xp = padding[0] + padding[1] > 0 ? b.pad(x, [0, 0, padding[0], padding[1]], [0, 0, padding[0], padding[1]]) : x;
  const [Hp, Wp] = [H + 2 * padding[0], W + 2 * padding[1]];
  const xt = b.reshape(b.permute(b.reshape(xp, [N, groups, C / groups, Hp, Wp]), [2, 1, 0, 3, 4]), [Ci, groups * N, Hp, Wp]);
  const gt = b.reshape(b.permute(b.reshape(g, [N, groups, Co, Ho, Wo]), [1, 2, 0, 3, 4]), [O, N, Ho, Wo]);
  const P = batchSplit(N, N * Ho * Wo, maxLoop);
  const n = N / P;
  const gs = P === 1 ? gt : b.reshape(b.permute(b.reshape(gt, [groups, Co, P, n, Ho, Wo]), [0, 2, 1, 3, 4, 5]), [groups * P * Co, n, Ho, Wo]);
  const full = b.conv2d(xt, gs, { stride: dilation, dilation: stride, groups: groups * P });
  const [fh, fw] = [full.shape[2], full.shape[3]];
  const summed = P === 1 ? full : b.reshape(b.sum(b.reshape(full, [Ci, groups, P, Co, fh, fw]), [2]), [Ci, O, fh, fw]);
  const cropped = fh === kh && fw === kw ? summed : b.slice(summed, [0, 0, 0, 0], [Ci, O, kh, kw]);
  return b.permute(cropped, [1, 0, 2, 3]);
}

import * as b from '../build.ts';
import { fail, numel, ok, showShape, type Node } from '../ir.ts';
import { MAX_KERNEL_INPUTS } from '../targets/gpujs/dispatch.ts';
import { all, fadd, fconst, fmul, fref, guard, iadd, iclamp, iconst, idiv, imul, inRange, isub, type B, type F, type I } from '../kernel/ir.ts';
import type { LowerCtx } from '../lowering.ts';
import type { Prim } from '../prim.ts';

/** Output length of a convolution/pooling window along one axis. */
export const windowOut = (size: number, k: number, stride: number, pad: number, dilation = 1): number =>
  Math.floor((size + 2 * pad - dilation * (k - 1) - 1) / stride) + 1;

const posInts = (xs: readonly number[]) => xs.every((v) => Number.isInteger(v) && v >= 1);

/**
 * 2-D convolution, NCHW input and OIHW weight, with stride, symmetric zero padding, dilation and groups
 * (PyTorch semantics). Both gradients are again convolutions: the input gradient convolves the stride-dilated
 * cotangent with the flipped, group-transposed weight; the weight gradient convolves the input with the
 * cotangent (batch and channel axes swapped), exchanging the roles of stride and dilation.
 */
export const conv2d: Prim<'conv2d'> = {
  name: 'conv2d',
  arity: 2,
  kind: 'contraction',
  multiplyAdds: (node) => {
    const [, cg, kh, kw] = node.inputs[1].shape;
    return numel(node.shape) * cg * kh * kw;
  },
  shape: (p, [x, w]) => {
    const shapes = `(input ${showShape(x.shape)}, weight ${showShape(w.shape)})`;
    if (x.shape.length !== 4 || w.shape.length !== 4) return fail(`expects NCHW input and OIHW weight ${shapes}`);
    if (!posInts([...p.stride, ...p.dilation, p.groups]) || !p.padding.every((v) => Number.isInteger(v) && v >= 0))
      return fail(`invalid stride/padding/dilation/groups ${JSON.stringify(p)}`);
    const [, C, H, W] = x.shape;
    const [O, Cg, kh, kw] = w.shape;
    if (C % p.groups !== 0 || O % p.groups !== 0) return fail(`channels ${C}→${O} are not divisible by groups ${p.groups} ${shapes}`);
    if (Cg * p.groups !== C) return fail(`expects ${Cg * p.groups} input channels, got ${C} ${shapes}`);
    const Ho = windowOut(H, kh, p.stride[0], p.padding[0], p.dilation[0]);
    const Wo = windowOut(W, kw, p.stride[1], p.padding[1], p.dilation[1]);
    if (Ho < 1 || Wo < 1) return fail(`kernel ${kh}×${kw} (dilation ${p.dilation}) does not fit the padded ${H}×${W} input ${shapes}`);
    if (x.dtype !== 'f32' || w.dtype !== 'f32') return fail(`needs f32 operands ${shapes}`);
    return ok([x.shape[0], O, Ho, Wo], 'f32');
  },
  vjp: (node, g) => [inputGrad(node, g), weightGrad(node, g)],
  interp: (p, [x, w], out, ctx) => {
    const [N, C, H, W] = x.shape;
    const [O, Cg, kh, kw] = w.shape;
    const [, , Ho, Wo] = out.shape;
    const Og = O / p.groups;
    const r = ctx.alloc(numel(out.shape));
    const [sh, sw] = p.stride;
    const [ph, pw] = p.padding;
    const [dh, dw] = p.dilation;
    for (let n = 0; n < N; n++)
      for (let o = 0; o < O; o++) {
        const grp = Math.floor(o / Og);
        for (let i = 0; i < Ho; i++)
          for (let j = 0; j < Wo; j++) {
            let acc = 0;
            for (let c = 0; c < Cg; c++) {
              const xc = ((n * C + grp * Cg + c) * H) * W;
              const wc = ((o * Cg + c) * kh) * kw;
              for (let a = 0; a < kh; a++) {
                const y = i * sh - ph + a * dh;
                if (y < 0 || y >= H) continue;
                for (let e = 0; e < kw; e++) {
                  const xx = j * sw - pw + e * dw;
                  if (xx < 0 || xx >= W) continue;
                  acc += x.data[xc + y * W + xx] * w.data[wc + a * kw + e];
                }
              }
            }
            r[((n * O + o) * Ho + i) * Wo + j] = acc;
          }
      }
    return r;
  },
  lower: (node, idx, ctx) => lowerConv(node, [idx], ctx)[0],
  // A thread computes TILE output channels of one pixel: each input element it reads serves all of them
  // (so the channels must lie in one group).
  tile: {
    axis: (node, width) => ((node.inputs[1].shape[0] / node.params.groups) % width === 0 ? 1 : null),
    lower: (node, idxs, ctx) => lowerConv(node, idxs, ctx),
  },
  linearIn: [0, 1],
};

function inputGrad(node: Node<'conv2d'>, g: Node): Node {
  const [x, w] = node.inputs;
  const { stride, padding, dilation, groups } = node.params;
  const [O, Ci, kh, kw] = w.shape;
  const Co = O / groups;
  const k = [kh, kw];
  const lo = [0, 1].map((a) => dilation[a] * (k[a] - 1) - padding[a]);
  // Rows/cols of the input that no window reached on the high side still need a (zero) gradient.
  const rest = [0, 1].map((a) => x.shape[2 + a] + 2 * padding[a] - dilation[a] * (k[a] - 1) - 1 - (g.shape[2 + a] - 1) * stride[a]);
  const gp = b.pad(g, [0, 0, lo[0], lo[1]], [0, 0, lo[0] + rest[0], lo[1] + rest[1]], [0, 0, stride[0] - 1, stride[1] - 1]);
  const wt = b.flip(b.reshape(b.permute(b.reshape(w, [groups, Co, Ci, kh, kw]), [0, 2, 1, 3, 4]), [groups * Ci, Co, kh, kw]), [2, 3]);
  return b.conv2d(gp, wt, { dilation, groups });
}

/** Windows of at most this many taps may get their weight gradient as one matrix product per tap... */
export const TAP_GRAD_MAX_TAPS = 9;
/**
 * ...when each tap's product has at least this many multiply-adds. Measured on webasm (2 cores, 2026-11-28): for
 * a 3×3 64→64 conv on 16×32×32 (67 M per tap) the taps took 0.77 s against 1.28 s for the convolution form; for
 * cpu-small's convs (≤ 1 M per tap) the extra ~20 launches per layer made the step ~15% slower.
 */
export const TAP_GRAD_MIN_PRODUCTS = 2 ** 22;

function weightGrad(node: Node<'conv2d'>, g: Node): Node {
  const [O, Ci, kh, kw] = node.inputs[1].shape;
  const [N, , Ho, Wo] = g.shape;
  const perTap = (O / node.params.groups) * Ci * N * Ho * Wo;
  return kh * kw <= TAP_GRAD_MAX_TAPS && perTap >= TAP_GRAD_MIN_PRODUCTS ? weightGradByTaps(node, g) : weightGradByConv(node, g);
}

/**
 * dW[:, :, a, e] = Σ_{n,i,j} g[n, :, i, j] ⊗ x[n, :, i·s + a·d − p, j·s + e·d − p]: one batched product per tap
 * (a, e) of the cotangent, laid out [groups, Co, N·Ho·Wo], with a strided window of x stored channels-last, so
 * the output channels of g are a dot's rows (register-tiled) and x's channels its contiguous columns. g's layout
 * is materialized once for all taps; the scheduler copies each tap's strided window of x into a buffer of its own
 * (reading it through index arithmetic made the products slower, bench/FINDINGS.md (f)). The contraction over the batch
 * is split in P chunks (summed once at the end) like `weightGradByConv`.
 */
export function weightGradByTaps(node: Node<'conv2d'>, g: Node): Node {
  const [x, w] = node.inputs;
  const { stride, padding, dilation, groups: G } = node.params;
  const [N, , H, W] = x.shape;
  const [O, Ci, kh, kw] = w.shape;
  const Co = O / G;
  const [, , Ho, Wo] = g.shape;
  const P = batchSplit(N, N * Ho * Wo);
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
  const partials = concatInChunks(taps, 0); // [kh·kw, G, P, Co, Ci]
  const summed = P === 1 ? b.reshape(partials, [kh * kw, O, Ci]) : b.reshape(b.sum(partials, [2]), [kh * kw, O, Ci]);
  return b.reshape(b.permute(summed, [1, 2, 0]), [O, Ci, kh, kw]);
}

/** Concatenation along `axis` as a tree of concats of at most MAX_KERNEL_INPUTS operands each. */
function concatInChunks(xs: readonly Node[], axis: number): Node {
  if (xs.length <= MAX_KERNEL_INPUTS) return xs.length === 1 ? xs[0] : b.concat(xs, axis);
  const chunks: Node[] = [];
  for (let k = 0; k < xs.length; k += MAX_KERNEL_INPUTS) chunks.push(concatInChunks(xs.slice(k, k + MAX_KERNEL_INPUTS), axis));
  return concatInChunks(chunks, axis);
}

export function weightGradByConv(node: Node<'conv2d'>, g: Node): Node {
  const [x, w] = node.inputs;
  const { stride, padding, dilation, groups } = node.params;
  const [N, C, H, W] = x.shape;
  const [O, Ci, kh, kw] = w.shape;
  const Co = O / groups;
  const [, , Ho, Wo] = g.shape;
  const xp = padding[0] + padding[1] > 0 ? b.pad(x, [0, 0, padding[0], padding[1]], [0, 0, padding[0], padding[1]]) : x;
  const [Hp, Wp] = [H + 2 * padding[0], W + 2 * padding[1]];
  const xt = b.reshape(b.permute(b.reshape(xp, [N, groups, C / groups, Hp, Wp]), [2, 1, 0, 3, 4]), [Ci, groups * N, Hp, Wp]);
  const gt = b.reshape(b.permute(b.reshape(g, [N, groups, Co, Ho, Wo]), [1, 2, 0, 3, 4]), [O, N, Ho, Wo]);
  // Two-level reduction over the batch: each output sums N·Ho·Wo products, too long a loop for one thread on a
  // GPU when N·Ho·Wo is large. Split the batch into P groups of convolutions (extra conv groups), then sum the
  // P partial weight gradients; P divides N so no padding is needed.
  const P = batchSplit(N, N * Ho * Wo);
  const n = N / P;
  const xs = P === 1 ? xt : b.reshape(xt, [Ci, groups * N, Hp, Wp]);
  const gs = P === 1 ? gt : b.reshape(b.permute(b.reshape(gt, [groups, Co, P, n, Ho, Wo]), [0, 2, 1, 3, 4, 5]), [groups * P * Co, n, Ho, Wo]);
  const full = b.conv2d(xs, gs, { stride: dilation, dilation: stride, groups: groups * P });
  const [fh, fw] = [full.shape[2], full.shape[3]];
  const summed = P === 1 ? full : b.reshape(b.sum(b.reshape(full, [Ci, groups, P, Co, fh, fw]), [2]), [Ci, O, fh, fw]);
  const cropped = fh === kh && fw === kw ? summed : b.slice(summed, [0, 0, 0, 0], [Ci, O, kh, kw]);
  return b.permute(cropped, [1, 0, 2, 3]);
}

/** Loops of at most this many products per weight-gradient thread before the batch is split. */
export const WEIGHT_GRAD_MAX_LOOP = 4096;

/** The smallest divisor P of N that brings the per-thread loop (length/P) under WEIGHT_GRAD_MAX_LOOP, or N. */
export function batchSplit(N: number, length: number): number {
  for (let P = 1; P <= N; P++) if (N % P === 0 && length / P <= WEIGHT_GRAD_MAX_LOOP) return P;
  return N;
}

/** One pass over the window accumulating the outputs at flat indices `idxs` (channels of one pixel when several). */
function lowerConv(node: Node<'conv2d'>, idxs: readonly I[], ctx: LowerCtx): F[] {
  const [x, w] = node.inputs;
  const [, C, H, W] = x.shape;
  const [O, Cg, kh, kw] = w.shape;
  const { stride, padding, dilation, groups } = node.params;
  const coords = idxs.map((idx) => ctx.coords(node.shape, idx));
  // A tile spans output channels only: its pixel (n, i, j) is shared, so the reads of x coincide.
  const [[n, , i, j]] = coords;
  const outs = coords.map(([, o]) => ({ o, grp: groups === 1 ? iconst(0) : ctx.bindIndex(idiv(o, O / groups)), acc: ctx.variable(fconst(0)) }));
  // Each operand's plane: a base hoisted out of the window loops, or for a large operand (an activation, or the
  // cotangent when this conv is a weight gradient) its coordinates.
  const [largeX, largeW] = [ctx.large(x.shape), ctx.large(w.shape)];
  const xAt = (xc: I, row: I, col: I): I => (largeX ? ctx.flat([n, xc, row, col], x.shape) : iadd(iadd(xc, imul(row, iconst(W))), col));
  const wAt = (o: I, wc: I, a: I, e: I): I => (largeW ? ctx.flat([o, wc, a, e], w.shape) : iadd(iadd(wc, imul(a, iconst(kw))), e));
  ctx.loop(Cg, (c) => {
    const bases = outs.map(({ o, grp }) => ({
      xc: ctx.bindIndex(largeX ? iadd(imul(grp, iconst(Cg)), c) : imul(iadd(iadd(imul(n, iconst(C)), imul(grp, iconst(Cg))), c), iconst(H * W))),
      wc: largeW ? c : ctx.bindIndex(imul(iadd(imul(o, iconst(Cg)), c), iconst(kh * kw))),
    }));
    ctx.loop(kh, (a) => {
      const y = ctx.bindIndex(isub(iadd(imul(i, iconst(stride[0])), imul(a, iconst(dilation[0]))), iconst(padding[0])));
      ctx.loop(kw, (e) => {
        const xx = ctx.bindIndex(isub(iadd(imul(j, iconst(stride[1])), imul(e, iconst(dilation[1]))), iconst(padding[1])));
        // Taps outside the input read a clamped (in-bounds) element and count as zero.
        const inside: B | null = all([inRange(y, 0, H), inRange(xx, 0, W)].filter((b): b is B => b !== null));
        const [cy, cx] = [ctx.bindIndex(iclamp(y, 0, H - 1)), ctx.bindIndex(iclamp(xx, 0, W - 1))];
        outs.forEach(({ o, acc }, t) => {
          const { xc, wc } = bases[t];
          const wv = ctx.input(1, wAt(o, wc, a, e));
          ctx.set(acc, fadd(fref(acc), fmul(guard(inside, ctx.input(0, xAt(xc, cy, cx)), fconst(0)), wv)));
        });
      });
    });
  });
  return outs.map((t) => fref(t.acc));
}

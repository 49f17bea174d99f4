import * as b from '../build.ts';
import { fail, numel, ok, showShape, type Node } from '../ir.ts';
import { all, fadd, fconst, fmul, fref, guard, iadd, iclamp, iconst, idiv, imul, inRange, isub, type B, type F, type I } from '../kernel/ir.ts';
import type { LowerCtx } from '../lowering.ts';
import type { ConvParams } from '../params.ts';
import type { Prim } from '../prim.ts';

/** Output length of a convolution/pooling window along one axis. */
export const windowOut = (size: number, k: number, stride: number, pad: number, dilation = 1): number =>
  Math.floor((size + 2 * pad - dilation * (k - 1) - 1) / stride) + 1;

export const posInts = (xs: readonly number[]): boolean => xs.every((v) => Number.isInteger(v) && v >= 1);

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
  vjp: (node, g) => {
    const [x, w] = node.inputs;
    return [convInputGrad(x, w, node.params, g), b.convWeightGrad(x, g, node.params, [w.shape[2], w.shape[3]])];
  },
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

/** The cotangent of conv2d(x, w, p)'s input, given its output's cotangent g. */
export function convInputGrad(x: Node, w: Node, p: ConvParams, g: Node): Node {
  const { stride, padding, dilation, groups } = p;
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

import * as b from '../build.ts';
import { fail, numel, ok, showShape } from '../ir.ts';
import { all, fadd, fconst, fmul, fref, guard, iadd, iclamp, iconst, idiv, imul, inRange, isub, type B } from '../kernel/ir.ts';
import type { Prim } from '../prim.ts';
import { convInputGrad, posInts, windowOut } from './conv2d.ts';

/**
 * conv2d's weight gradient as a primitive of its own, so that how it is computed is a target's decision
 * (`Target.chooseAlgorithms`, `passes/convWeightGrad.ts`: one matrix product per tap, or a convolution with batch and
 * channels swapped), not fixed when the gradient graph is built:
 *   dW[o, c, a, e] = Σ_{n,i,j} g[n, o, i, j] · x[n, grp(o)·Ci + c, i·s + a·d − p, j·s + e·d − p]
 * for the forward conv2d(x, w) with those parameters, g its cotangent; taps outside the input count as zero.
 */
export const convWeightGrad: Prim<'convWeightGrad'> = {
  name: 'convWeightGrad',
  arity: 2,
  kind: 'contraction',
  multiplyAdds: (node) => {
    const [N, , Ho, Wo] = node.inputs[1].shape;
    return numel(node.shape) * N * Ho * Wo;
  },
  shape: (p, [x, g]) => {
    const shapes = `(input ${showShape(x.shape)}, cotangent ${showShape(g.shape)})`;
    if (x.shape.length !== 4 || g.shape.length !== 4) return fail(`expects an NCHW input and an NCHW cotangent ${shapes}`);
    if (!posInts([...p.stride, ...p.dilation, ...p.kernel, p.groups]) || !p.padding.every((v) => Number.isInteger(v) && v >= 0))
      return fail(`invalid kernel/stride/padding/dilation/groups ${JSON.stringify(p)}`);
    const [N, C, H, W] = x.shape;
    const [Ng, O, Ho, Wo] = g.shape;
    if (N !== Ng) return fail(`batch sizes differ ${shapes}`);
    if (C % p.groups !== 0 || O % p.groups !== 0) return fail(`channels ${C}→${O} are not divisible by groups ${p.groups} ${shapes}`);
    const [kh, kw] = p.kernel;
    const [eh, ew] = [windowOut(H, kh, p.stride[0], p.padding[0], p.dilation[0]), windowOut(W, kw, p.stride[1], p.padding[1], p.dilation[1])];
    if (eh !== Ho || ew !== Wo) return fail(`a ${kh}×${kw} kernel gives ${eh}×${ew} outputs, the cotangent has ${Ho}×${Wo} ${shapes}`);
    if (x.dtype !== 'f32' || g.dtype !== 'f32') return fail(`needs f32 operands ${shapes}`);
    return ok([O, C / p.groups, kh, kw], 'f32');
  },
  // Bilinear: ⟨h, dW(x, g)⟩ = ⟨conv2d(x, h), g⟩, so g's cotangent is the forward conv with h as its weight and
  // x's is that conv's input gradient.
  vjp: (node, h) => {
    const [x, g] = node.inputs;
    const { stride, padding, dilation, groups } = node.params;
    const conv = { stride, padding, dilation, groups };
    return [convInputGrad(x, h, conv, g), b.conv2d(x, h, conv)];
  },
  interp: (p, [x, g], out, ctx) => {
    const [N, C, H, W] = x.shape;
    const [, O, Ho, Wo] = g.shape;
    const [, Ci, kh, kw] = out.shape;
    const Co = O / p.groups;
    const r = ctx.alloc(numel(out.shape));
    for (let o = 0; o < O; o++)
      for (let c = 0; c < Ci; c++) {
        const xc = Math.floor(o / Co) * Ci + c;
        for (let a = 0; a < kh; a++)
          for (let e = 0; e < kw; e++) {
            let acc = 0;
            for (let n = 0; n < N; n++)
              for (let i = 0; i < Ho; i++) {
                const y = i * p.stride[0] + a * p.dilation[0] - p.padding[0];
                if (y < 0 || y >= H) continue;
                for (let j = 0; j < Wo; j++) {
                  const xx = j * p.stride[1] + e * p.dilation[1] - p.padding[1];
                  if (xx < 0 || xx >= W) continue;
                  acc += g.data[((n * O + o) * Ho + i) * Wo + j] * x.data[((n * C + xc) * H + y) * W + xx];
                }
              }
            r[((o * Ci + c) * kh + a) * kw + e] = acc;
          }
      }
    return r;
  },
  // One output per work item, its whole N·Ho·Wo reduction in one loop: the kernel a target runs when the
  // reduction is short (the other algorithms cost layout copies that only pay back on long ones).
  lower: (node, idx, ctx) => {
    const [x, g] = node.inputs;
    const [N, , H, W] = x.shape;
    const [, O, Ho, Wo] = g.shape;
    const { stride, padding, dilation, groups } = node.params;
    const Ci = node.shape[1];
    const [o, c, a, e] = ctx.coords(node.shape, idx);
    const xc = groups === 1 ? c : ctx.bindIndex(iadd(imul(idiv(o, O / groups), iconst(Ci)), c));
    const acc = ctx.variable(fconst(0));
    ctx.loop(N, (n) => {
      ctx.loop(Ho, (i) => {
        const y = ctx.bindIndex(isub(iadd(imul(i, iconst(stride[0])), imul(a, iconst(dilation[0]))), iconst(padding[0])));
        ctx.loop(Wo, (j) => {
          const xx = ctx.bindIndex(isub(iadd(imul(j, iconst(stride[1])), imul(e, iconst(dilation[1]))), iconst(padding[1])));
          const inside: B | null = all([inRange(y, 0, H), inRange(xx, 0, W)].filter((v): v is B => v !== null));
          const xv = ctx.input(0, ctx.flat([n, xc, iclamp(y, 0, H - 1), iclamp(xx, 0, W - 1)], x.shape));
          ctx.set(acc, fadd(fref(acc), fmul(guard(inside, xv, fconst(0)), ctx.input(1, ctx.flat([n, o, i, j], g.shape)))));
        });
      });
    });
    return fref(acc);
  },
  linearIn: [0, 1],
};

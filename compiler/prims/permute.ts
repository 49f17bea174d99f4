import * as b from '../build.ts';
import { fail, numel, ok, showShape, stridesOf } from '../ir.ts';
import { type I } from '../kernel/ir.ts';
import type { Prim } from '../prim.ts';
import { stridedGather } from './checks.ts';

export const inversePerm = (perm: readonly number[]): number[] => {
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  return inv;
};

/** out.shape[k] = x.shape[perm[k]]. */
export const permute: Prim<'permute'> = {
  name: 'permute',
  arity: 1,
  kind: 'movement',
  shape: (p, [x]) => {
    const isPerm = p.perm.length === x.shape.length && [...p.perm].sort((a, c) => a - c).every((v, i) => v === i);
    return isPerm ? ok(p.perm.map((a) => x.shape[a]), x.dtype) : fail(`[${p.perm.join(',')}] is not a permutation of the axes of ${showShape(x.shape)}`);
  },
  vjp: (node, g) => [b.permute(g, inversePerm(node.params.perm))],
  interp: (p, [x], out, ctx) => {
    const r = ctx.alloc(numel(out.shape));
    const xs = stridesOf(x.shape);
    stridedGather(x.data, out.shape, 0, p.perm.map((a) => xs[a]), r);
    return r;
  },
  lower: (node, idx, ctx) => {
    const c = ctx.coords(node.shape, idx);
    const src = new Array<I>(c.length);
    node.params.perm.forEach((p, k) => (src[p] = c[k]));
    return ctx.input(0, ctx.flat(src, node.inputs[0].shape));
  },
  linearIn: [0],
};

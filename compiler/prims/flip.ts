import * as b from '../build.ts';
import { fail, numel, ok, stridesOf } from '../ir.ts';
import { iconst, isub } from '../kernel/ir.ts';
import type { Prim } from '../prim.ts';
import { badAxes, stridedGather } from './checks.ts';
/** Reverse the order of elements along `axes`. */
export const flip: Prim<'flip'> = {
  name: 'flip',
  arity: 1,
  kind: 'movement',
  cheapReread: true,
  shape: (p, [x]) => {
    const bad = badAxes(p.axes, x.shape.length);
    return bad === undefined ? ok(x.shape, x.dtype) : fail(bad);
  },
  vjp: (node, g) => [b.flip(g, node.params.axes)],
  interp: (p, [x], out, ctx) => {
    const r = ctx.alloc(numel(out.shape));
    const xs = stridesOf(x.shape);
    // A flipped axis starts at its last element and walks backwards.
    const base = p.axes.reduce((acc, a) => acc + (x.shape[a] - 1) * xs[a], 0);
    stridedGather(x.data, out.shape, base, xs.map((s, k) => (p.axes.includes(k) ? -s : s)), r);
    return r;
  },
  lower: (node, idx, ctx) => {
    const c = ctx.coords(node.shape, idx);
    return ctx.input(0, ctx.flat(c.map((v, k) => (node.params.axes.includes(k) ? isub(iconst(node.shape[k] - 1), v) : v)), node.shape));
  },
  linearIn: [0],
};

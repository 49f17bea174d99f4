import { itof } from '../kernel/ir.ts';
import type { Prim } from '../prim.ts';
import { forEachIndex } from './checks.ts';
import { leafShape } from './leaves.ts';
/** out[..., i, ...] = i along `axis`. */
export const iota: Prim<'iota'> = {
  name: 'iota',
  arity: 0,
  kind: 'leaf',
  shape: (p) =>
    leafShape(p.shape, p.dtype, Number.isInteger(p.axis) && p.axis >= 0 && p.axis < p.shape.length ? undefined : `axis ${p.axis} out of range for rank ${p.shape.length}`),
  vjp: () => [],
  interp: (p, _i, out, ctx) => {
    const r = ctx.alloc(out.shape.reduce((a, c) => a * c, 1));
    forEachIndex(out.shape, (idx, flat) => {
      r[flat] = idx[p.axis];
    });
    return r;
  },
  lower: (node, idx, ctx) => itof(ctx.coords(node.shape, idx)[node.params.axis]),
  linearIn: [],
};

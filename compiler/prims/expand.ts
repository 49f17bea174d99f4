import * as b from '../build.ts';
import { fail, numel, ok, showShape, stridesOf } from '../ir.ts';
import { iconst } from '../kernel/ir.ts';
import type { Prim } from '../prim.ts';
import { badShape, stridedGather } from './checks.ts';
/** Broadcast size-1 axes to `shape` (same rank). The cotangent is summed back over the broadcast axes. */
export const expand: Prim<'expand'> = {
  name: 'expand',
  arity: 1,
  kind: 'movement',
  cheapReread: true,
  shape: (p, [x]) => {
    const bad = badShape(p.shape);
    if (bad !== undefined) return fail(bad);
    const fits = p.shape.length === x.shape.length && x.shape.every((d, i) => d === p.shape[i] || d === 1);
    return fits ? ok(p.shape, x.dtype) : fail(`cannot broadcast ${showShape(x.shape)} to ${showShape(p.shape)}`);
  },
  vjp: (node, g) => [b.unexpand(g, node.inputs[0].shape)],
  interp: (_p, [x], out, ctx) => {
    const r = ctx.alloc(numel(out.shape));
    stridedGather(x.data, out.shape, 0, stridesOf(x.shape).map((st, i) => (x.shape[i] === 1 ? 0 : st)), r);
    return r;
  },
  lower: (node, idx, ctx) => {
    const x = node.inputs[0].shape;
    const c = ctx.coords(node.shape, idx);
    return ctx.input(0, ctx.flat(c.map((v, k) => (x[k] === 1 ? iconst(0) : v)), x));
  },
  linearIn: [0],
};

import { fadd, fconst } from '../kernel/ir.ts';
import { lowerReduce } from './reduce.ts';
import * as b from '../build.ts';
import { numel } from '../ir.ts';
import type { Prim } from '../prim.ts';
import { reduceInterp, reduceShape } from './reduce.ts';
/** Sum over `axes` (removed from the shape). The cotangent is broadcast back. */
export const sum: Prim<'sum'> = {
  name: 'sum',
  arity: 1,
  kind: 'reduction',
  shape: (p, inputs) => reduceShape(p.axes, inputs),
  vjp: (node, g) => [b.unreduce(g, node.params.axes, node.inputs[0].shape)],
  interp: (p, [x], out, ctx) => reduceInterp(x, p.axes, ctx.alloc(numel(out.shape)), 0, (a, v) => a + v),
  lower: (node, idx, ctx) => lowerReduce(node, idx, ctx, fconst(0), fadd),
  linearIn: [0],
};

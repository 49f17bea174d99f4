import { lowerReduce } from './reduce.ts';
import { fconst, fmax } from '../kernel/ir.ts';
import { NEG_SENTINEL } from './pool2d.ts';
import * as b from '../build.ts';
import { numel } from '../ir.ts';
import type { Prim } from '../prim.ts';
import { reduceInterp, reduceShape } from './reduce.ts';
/** Max over `axes`. The cotangent is shared evenly among tied maxima (JAX semantics). */
export const reduceMax: Prim<'reduceMax'> = {
  name: 'reduceMax',
  arity: 1,
  shape: (p, inputs) => reduceShape(p.axes, inputs),
  vjp: (node, g) => {
    const x = node.inputs[0];
    const axes = node.params.axes;
    const isMax = b.cast(b.eq(x, b.unreduce(node, axes, x.shape)), 'f32');
    const count = b.unreduce(b.sum(isMax, axes), axes, x.shape);
    return [b.div(b.mul(b.unreduce(g, axes, x.shape), isMax), count)];
  },
  interp: (p, [x], out, ctx) => reduceInterp(x, p.axes, ctx.alloc(numel(out.shape)), -Infinity, (a, v) => (v > a ? v : a)),
  lower: (node, idx, ctx) => lowerReduce(node, idx, ctx, fconst(NEG_SENTINEL), fmax),
  linearIn: [],
};

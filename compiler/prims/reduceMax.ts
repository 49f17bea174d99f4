import { lowerReduce } from './reduce.ts';
import { fconst, fmax } from '../kernel/ir.ts';
import { NEG_SENTINEL } from './pool2d.ts';
import * as b from '../build.ts';
import { numel, type Node } from '../ir.ts';
import type { Prim } from '../prim.ts';
import { reduceInterp, reduceShape } from './reduce.ts';
/**
 * Max over `axes`. The whole cotangent of a slice goes to its FIRST maximum in row-major order over the reduced
 * axes: PyTorch's `torch.max(x, dim)` (values, indices) returns the first maximal index and its backward
 * sends the gradient there, and max pooling (pool2d.ts) does the same. (`torch.amax` and JAX's `max` share it
 * evenly among ties instead.) The method never depends on it: the model's only max reductions are softmax's
 * stabilising shift, under stopGradient, as inside PyTorch's softmax.
 */
export const reduceMax: Prim<'reduceMax'> = {
  name: 'reduceMax',
  arity: 1,
  kind: 'reduction',
  shape: (p, inputs) => reduceShape(p.axes, inputs),
  vjp: (node, g) => {
    const x = node.inputs[0];
    const axes = node.params.axes;
    const isMax = b.cast(b.eq(x, b.unreduce(node, axes, x.shape)), 'f32');
    // Gather-only "first": key = isMax·(M − r), r the row-major position within the slice (M elements); its
    // maximum picks the lowest r among the maxima. Integers, exact in f32 up to 2^24 elements per slice.
    let position: Node = b.zerosLike(isMax);
    let size = 1;
    for (let k = axes.length - 1; k >= 0; k--) {
      const along = b.iota(axes[k], x.shape, 'f32');
      position = k === axes.length - 1 ? along : b.add(position, b.mul(along, b.scalar(size, isMax)));
      size *= x.shape[axes[k]];
    }
    const key = b.mul(isMax, b.sub(b.scalar(size, isMax), position));
    const first = b.mul(isMax, b.cast(b.eq(key, b.unreduce(b.reduceMax(key, axes), axes, x.shape)), 'f32'));
    return [b.mul(b.unreduce(g, axes, x.shape), first)];
  },
  interp: (p, [x], out, ctx) => reduceInterp(x, p.axes, ctx.alloc(numel(out.shape)), -Infinity, (a, v) => (v > a ? v : a)),
  lower: (node, idx, ctx) => lowerReduce(node, idx, ctx, fconst(NEG_SENTINEL), fmax),
  linearIn: [],
};

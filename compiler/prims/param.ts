import type { Prim } from '../prim.ts';
import { leafShape } from './leaves.ts';
/** A trainable parameter, bound by name when a graph runs. Gradients are taken with respect to these. */
export const param: Prim<'param'> = {
  name: 'param',
  arity: 0,
  shape: (p) => leafShape(p.shape, p.dtype, p.name === '' ? 'parameters need a name' : undefined),
  vjp: () => [],
  interp: (p, _i, out, ctx) => ctx.lookup(p.name, out),
  lower: (node) => {
    throw new Error(`param '${node.params.name}' is a buffer: the scheduler binds it, it is never inlined`);
  },
  linearIn: [],
};

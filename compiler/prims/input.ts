import type { Prim } from '../prim.ts';
import { leafShape } from './leaves.ts';
/** A per-call input (images, masks, step counters), bound by name when a graph runs. */
export const input: Prim<'input'> = {
  name: 'input',
  arity: 0,
  shape: (p) => leafShape(p.shape, p.dtype, p.name === '' ? 'inputs need a name' : undefined),
  vjp: () => [],
  interp: (p, _i, out, ctx) => ctx.lookup(p.name, out),
  lower: (node) => {
    throw new Error(`input '${node.params.name}' is a buffer: the scheduler binds it, it is never inlined`);
  },
  linearIn: [],
};

import { ok } from '../ir.ts';
import type { Prim } from '../prim.ts';
/** Identity in the forward pass; blocks the cotangent (teacher outputs enter the loss through this). */
export const stopGradient: Prim<'stopGradient'> = {
  name: 'stopGradient',
  arity: 1,
  kind: 'movement',
  cheapReread: true,
  keepsBytes: true,
  shape: (_p, [x]) => ok(x.shape, x.dtype),
  vjp: () => [null],
  interp: (_p, [x], _o, ctx) => {
    const out = ctx.alloc(x.data.length);
    out.set(x.data);
    return out;
  },
  lower: (_n, idx, ctx) => ctx.input(0, idx),
  linearIn: [],
};

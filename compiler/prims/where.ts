import * as b from '../build.ts';
import { fail, ok, sameShape, showShape } from '../ir.ts';
import { fcmp, fconst, fselect } from '../kernel/ir.ts';
import type { Prim } from '../prim.ts';
/** where(cond, a, b): a where cond is true, else b (equal shapes; the DSL broadcasts). */
export const where: Prim<'where'> = {
  name: 'where',
  arity: 3,
  kind: 'elementwise',
  shape: (_p, [c, x, y]) => {
    if (c.dtype !== 'bool') return fail(`condition must be bool, got ${c.dtype}`);
    if (!sameShape(c.shape, x.shape) || !sameShape(x.shape, y.shape))
      return fail(`cannot broadcast ${showShape(c.shape)}, ${showShape(x.shape)} and ${showShape(y.shape)}`);
    if (x.dtype !== y.dtype) return fail(`branch dtypes differ: ${x.dtype} and ${y.dtype}`);
    return ok(x.shape, x.dtype);
  },
  vjp: (node, g) => {
    const zero = b.zerosLike(g);
    return [null, b.where(node.inputs[0], g, zero), b.where(node.inputs[0], zero, g)];
  },
  interp: (_p, [c, x, y], _o, ctx) => {
    const out = ctx.alloc(x.data.length);
    for (let i = 0; i < out.length; i++) out[i] = c.data[i] !== 0 ? x.data[i] : y.data[i];
    return out;
  },
  lower: (_n, idx, ctx) => fselect(fcmp('!=', ctx.input(0, idx), fconst(0)), ctx.input(1, idx), ctx.input(2, idx)),
  linearIn: [1, 2],
};

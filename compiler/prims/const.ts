import { fconst } from '../kernel/ir.ts';
import type { Prim } from '../prim.ts';
import { leafShape } from './leaves.ts';
/** A tensor filled with one value. Non-finite values are rejected: GPU paths use finite sentinels. */
export const constPrim: Prim<'const'> = {
  name: 'const',
  arity: 0,
  kind: 'leaf',
  shape: (p) => leafShape(p.shape, p.dtype, Number.isFinite(p.value) ? undefined : `value ${p.value} is not finite (use a finite sentinel)`),
  vjp: () => [],
  interp: (p, _i, out, ctx) => ctx.alloc(out.shape.reduce((a, c) => a * c, 1)).fill(p.value),
  lower: (node) => fconst(node.params.value),
  linearIn: [],
};

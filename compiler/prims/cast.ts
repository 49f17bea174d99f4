import * as b from '../build.ts';
import { ok } from '../ir.ts';
import { fcmp, fconst, fselect, unary } from '../kernel/ir.ts';
import type { Prim } from '../prim.ts';
/** Dtype conversion: f32→i32 truncates toward zero, anything→bool is `!= 0`, bool→number is 0/1. */
export const cast: Prim<'cast'> = {
  name: 'cast',
  arity: 1,
  kind: 'elementwise',
  shape: (p, [x]) => ok(x.shape, p.dtype),
  // Only float→float carries a gradient; integer and boolean results are piecewise constant.
  vjp: (node, g) => [node.params.dtype === 'f32' && node.inputs[0].dtype === 'f32' ? b.cast(g, 'f32') : null],
  interp: (p, [x], _o, ctx) => {
    const out = ctx.alloc(x.data.length);
    for (let i = 0; i < out.length; i++) {
      const v = x.data[i];
      out[i] = p.dtype === 'bool' ? (v !== 0 ? 1 : 0) : p.dtype === 'i32' ? Math.trunc(v) : v;
    }
    return out;
  },
  lower: (node, idx, ctx) => {
    const x = ctx.input(0, idx);
    const to = node.params.dtype;
    return to === 'bool' ? fselect(fcmp('!=', x, fconst(0)), fconst(1), fconst(0)) : to === 'i32' ? unary('trunc', x) : x;
  },
  linearIn: [],
};

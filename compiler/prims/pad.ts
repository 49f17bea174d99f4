import { all, fconst, guard, iclamp, icmp, iconst, idiv, imul, inRange, isub, type B } from '../kernel/ir.ts';
import * as b from '../build.ts';
import { fail, numel, ok, stridesOf } from '../ir.ts';
import type { Prim } from '../prim.ts';
import { forEachIndex } from './checks.ts';

/**
 * XLA-style pad: `lo`/`hi` elements of `value` before/after each axis (negative = crop) and `interior`
 * values between neighbours. Interior padding is how strided convolutions and slices get their gradients
 * without scatter.
 */
export const pad: Prim<'pad'> = {
  name: 'pad',
  arity: 1,
  kind: 'movement',
  introducesValues: true,
  shape: (p, [x]) => {
    const r = x.shape.length;
    if (p.lo.length !== r || p.hi.length !== r || p.interior.length !== r) return fail(`needs lo/hi/interior of length ${r}`);
    if (!p.interior.every((v) => Number.isInteger(v) && v >= 0)) return fail(`interior padding must be non-negative integers`);
    if (![...p.lo, ...p.hi].every(Number.isInteger)) return fail('padding must be integers');
    if (!Number.isFinite(p.value)) return fail(`pad value ${p.value} is not finite`);
    const shape = x.shape.map((d, i) => p.lo[i] + p.hi[i] + d + (d - 1) * p.interior[i]);
    return shape.every((d) => d >= 1) ? ok(shape, x.dtype) : fail(`padding [${p.lo}]/[${p.hi}] leaves an empty axis of [${x.shape}]`);
  },
  vjp: (node, g) => {
    const { lo, hi, interior } = node.params;
    const x = node.inputs[0];
    // Undo cropping first (zero cotangent for cropped elements), then pick every (interior+1)-th element.
    const grown = b.pad(g, lo.map((v) => Math.max(0, -v)), hi.map((v) => Math.max(0, -v)));
    const start = lo.map((v) => Math.max(v, 0));
    const step = interior.map((v) => v + 1);
    const stop = x.shape.map((d, i) => start[i] + (d - 1) * step[i] + 1);
    return [b.slice(grown, start, stop, step)];
  },
  interp: (p, [x], out, ctx) => {
    const r = ctx.alloc(numel(out.shape)).fill(p.value);
    const os = stridesOf(out.shape);
    forEachIndex(x.shape, (idx, flat) => {
      let o = 0;
      for (let k = 0; k < idx.length; k++) {
        const pos = p.lo[k] + idx[k] * (p.interior[k] + 1);
        if (pos < 0 || pos >= out.shape[k]) return;
        o += pos * os[k];
      }
      r[o] = x.data[flat];
    });
    return r;
  },
  // Positions that fall between elements (interior) or outside the input take `value`; the input is read at a
  // clamped index so the (always evaluated) read stays in bounds.
  lower: (node, idx, ctx) => {
    const { lo, interior, value } = node.params;
    const x = node.inputs[0].shape;
    const c = ctx.coords(node.shape, idx);
    const conds: B[] = [];
    const src = c.map((v, k) => {
      if (lo[k] === 0 && interior[k] === 0 && x[k] === node.shape[k]) return v;
      const shifted = ctx.bindIndex(isub(v, iconst(lo[k])));
      const q = interior[k] === 0 ? shifted : ctx.bindIndex(idiv(shifted, interior[k] + 1));
      if (interior[k] > 0) conds.push(icmp('==', imul(q, iconst(interior[k] + 1)), shifted));
      const inside = inRange(q, 0, x[k]);
      if (inside !== null) conds.push(inside);
      return ctx.bindIndex(iclamp(q, 0, x[k] - 1));
    });
    return guard(all(conds), ctx.input(0, ctx.flat(src, x)), fconst(value));
  },
  linearIn: [0],
};

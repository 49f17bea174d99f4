import { fail, numel, ok, showShape, stridesOf } from '../ir.ts';
import { and, fadd, fcmp, fconst, fref, fselect, icmp, itof, or, type I } from '../kernel/ir.ts';
import type { Prim } from '../prim.ts';
import { forEachIndex } from './checks.ts';

/**
 * Indices of the k largest (or smallest) entries along `axis`, best first; ties go to the lower index (as
 * jax.lax.top_k documents; torch.topk leaves the order of equal values unspecified, so no convention can match
 * it in general). Defined by rank counting (rank_i = #{j better than i}), which needs no sort and lowers to a
 * gather-only kernel. Indices are piecewise constant in x: no gradient. The values' gradient comes from
 * `gather` (the whole cotangent to the chosen index, as torch.topk's values backward does); at a tie it only
 * decides which of the equal entries is chosen.
 */
export const topk: Prim<'topk'> = {
  name: 'topk',
  arity: 1,
  kind: 'selection',
  shape: (p, [x]) => {
    const r = x.shape.length;
    if (!Number.isInteger(p.axis) || p.axis < 0 || p.axis >= r) return fail(`axis ${p.axis} out of range for ${showShape(x.shape)}`);
    if (!Number.isInteger(p.k) || p.k < 1 || p.k > x.shape[p.axis]) return fail(`k = ${p.k} must be in 1..${x.shape[p.axis]} for ${showShape(x.shape)} along axis ${p.axis}`);
    if (x.dtype === 'bool') return fail('cannot rank a bool tensor');
    return ok(x.shape.map((d, i) => (i === p.axis ? p.k : d)), 'i32');
  },
  vjp: () => [null],
  interp: (p, [x], out, ctx) => {
    const r = ctx.alloc(numel(out.shape));
    const n = x.shape[p.axis];
    const xs = stridesOf(x.shape);
    const os = stridesOf(out.shape);
    const outer = x.shape.map((d, i) => (i === p.axis ? 1 : d));
    const better = (a: number, c: number) => (p.largest ? a > c : a < c);
    forEachIndex(outer, (ix) => {
      const base = ix.reduce((acc, v, k) => acc + v * xs[k], 0);
      const obase = ix.reduce((acc, v, k) => acc + v * os[k], 0);
      const vals = Array.from({ length: n }, (_v, j) => x.data[base + j * xs[p.axis]]);
      const order = [...vals.keys()].sort((i, j) => (better(vals[i], vals[j]) ? -1 : better(vals[j], vals[i]) ? 1 : i - j));
      for (let q = 0; q < p.k; q++) r[obase + q * os[p.axis]] = order[q];
    });
    return r;
  },
  // Rank counting (no sort): rank_i = #{j better than i, ties to the lower index}; the answer for output slot q
  // is the i whose rank is q. O(n²) per output, fine for the cell counts it serves (n ≤ a few hundred).
  lower: (node, idx, ctx) => {
    const { axis, largest } = node.params;
    const x = node.inputs[0].shape;
    const n = x[axis];
    const c = ctx.coords(node.shape, idx);
    const at = (v: I) => ctx.flat(c.map((u, k) => (k === axis ? v : u)), x);
    const better = largest ? '>' : '<';
    const found = ctx.variable(fconst(0));
    ctx.loop(n, (i) => {
      const xi = ctx.input(0, at(i));
      const rank = ctx.variable(fconst(0));
      ctx.loop(n, (j) => {
        const xj = ctx.input(0, at(j));
        const beats = or(fcmp(better, xj, xi), and(fcmp('==', xj, xi), icmp('<', j, i)));
        ctx.set(rank, fadd(fref(rank), fselect(beats, fconst(1), fconst(0))));
      });
      ctx.set(found, fadd(fref(found), fselect(fcmp('==', fref(rank), itof(c[axis])), itof(i), fconst(0))));
    });
    return fref(found);
  },
  linearIn: [],
};

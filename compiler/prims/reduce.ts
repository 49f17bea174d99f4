// Shared rules of the axis reductions (sum and reduceMax each have their own file).
import { fail, ok, stridesOf, type Shape, type ShapeInfo, type ShapeResult } from '../ir.ts';
import type { Buf, Value } from '../prim.ts';
import { fref, iadd, iconst, imul, type F, type I } from '../kernel/ir.ts';
import type { LowerCtx } from '../lowering.ts';
import { badAxes, forEachIndex } from './checks.ts';

export const reducedShape = (shape: Shape, axes: readonly number[]): number[] => shape.filter((_d, i) => !axes.includes(i));

export function reduceShape(axes: readonly number[], [x]: readonly ShapeInfo[]): ShapeResult {
  const bad = badAxes(axes, x.shape.length);
  if (bad !== undefined) return fail(`${bad} (input ${JSON.stringify(x.shape)})`);
  if (x.dtype === 'bool') return fail('cannot reduce a bool tensor (cast it first)');
  return ok(reducedShape(x.shape, axes), x.dtype);
}

/** Fold every input element into its output slot: out[o] = combine(out[o], x[i]) starting from `init`. */
export function reduceInterp(x: Value, axes: readonly number[], out: Buf, init: number, combine: (acc: number, v: number) => number): Buf {
  out.fill(init);
  const kept = x.shape.map((_d, i) => i).filter((i) => !axes.includes(i));
  const ostr = stridesOf(kept.map((i) => x.shape[i]));
  forEachIndex(x.shape, (idx, flat) => {
    let o = 0;
    for (let k = 0; k < kept.length; k++) o += idx[kept[k]] * ostr[k];
    out[o] = combine(out[o], x.data[flat]);
  });
  return out;
}

/** One loop over the reduced elements of output slot `idx`, folding them with the associative `combine`. */
export function lowerReduce(node: { readonly shape: Shape; readonly inputs: readonly { readonly shape: Shape }[]; readonly params: { readonly axes: readonly number[] } }, idx: I, ctx: LowerCtx, init: F, combine: (a: F, b: F) => F): F {
  const x = node.inputs[0].shape;
  const axes = node.params.axes;
  const kept = x.map((_d, i) => i).filter((i) => !axes.includes(i));
  const oc = kept.length === 0 ? [] : ctx.coords(node.shape, idx);
  const xs = stridesOf(x);
  const large = ctx.large(x);
  const base = kept.length === 0 || large ? iconst(0) : ctx.bindIndex(kept.reduce<I>((acc, ax, k) => iadd(acc, imul(oc[k], iconst(xs[ax]))), iconst(0)));
  const rshape = axes.map((a) => x[a]);
  const count = rshape.reduce((a, c) => a * c, 1);
  const acc = ctx.variable(init);
  ctx.accumulate(count, [acc], (r) => {
    const rc = ctx.coords(rshape, r);
    if (large) return [ctx.input(0, ctx.flat(x.map((_d, ax) => (axes.includes(ax) ? rc[axes.indexOf(ax)] : oc[kept.indexOf(ax)])), x))];
    const off = axes.reduce<I>((acc, ax, k) => iadd(acc, imul(rc[k], iconst(xs[ax]))), iconst(0));
    return [ctx.input(0, iadd(base, off))];
  }, combine);
  return fref(acc);
}

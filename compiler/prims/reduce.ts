// Shared rules of the axis reductions (sum and reduceMax each have their own file).
import { fail, ok, stridesOf, type Shape, type ShapeInfo, type ShapeResult } from '../ir.ts';
import type { Buf, Value } from '../prim.ts';
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

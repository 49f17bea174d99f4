// Small validators shared by shape rules, so messages read the same everywhere.
import { showShape, type Shape } from '../ir.ts';

export const isDim = (d: number): boolean => Number.isInteger(d) && d >= 1;
export const badShape = (shape: Shape): string | undefined =>
  shape.every(isDim) ? undefined : `invalid shape ${showShape(shape)} (dims must be positive integers)`;

/** Checks that `axes` are distinct, in range for `rank`. */
export function badAxes(axes: readonly number[], rank: number): string | undefined {
  if (!axes.every((a) => Number.isInteger(a) && a >= 0 && a < rank)) return `axes [${axes.join(',')}] out of range for rank ${rank}`;
  if (new Set(axes).size !== axes.length) return `axes [${axes.join(',')}] repeat`;
  return undefined;
}

/** Iterate all multi-indices of `shape` in row-major order. `idx` is reused between calls: copy to keep. */
export function forEachIndex(shape: Shape, body: (idx: number[], flat: number) => void): void {
  const n = shape.reduce((a, c) => a * c, 1);
  const idx = new Array<number>(shape.length).fill(0);
  for (let flat = 0; flat < n; flat++) {
    body(idx, flat);
    for (let ax = shape.length - 1; ax >= 0; ax--) {
      if (++idx[ax] < shape[ax]) break;
      idx[ax] = 0;
    }
  }
}

/**
 * out[idx] = data[base + Σ idx[k]·strides[k]] over every index of `outShape`: the interpreter of every
 * movement op that is a strided view (permute, expand, slice, flip).
 */
export function stridedGather(data: ArrayLike<number>, outShape: Shape, base: number, strides: readonly number[], out: { [i: number]: number }): void {
  forEachIndex(outShape, (idx, flat) => {
    let o = base;
    for (let k = 0; k < idx.length; k++) o += idx[k] * strides[k];
    out[flat] = data[o];
  });
}

// How the threads of a kernel cover its output, and the register-tiled buffer layout. Pure functions of
// shapes, shared by the scheduler (which decides tiling), the code generator and the runtime launch.
import { numel, type Shape } from '../../ir.ts';

/** Float arithmetic represents every integer below this exactly (f32 has a 24-bit significand). */
export const FLOAT_EXACT = 2 ** 24;

/** Array inputs one kernel may read: WebGPU gives gpu.js 8 storage buffers per stage, one is the output (DESIGN: ≤ 6). */
export const MAX_KERNEL_INPUTS = 6;

/** Outputs per thread of a register-tiled kernel: gpu.js's widest return type, `Array(4)`. */
export const TILE = 4;

/** gpu.js's largest 2-D dispatch side: 65 535 workgroups of 8 threads on WebGPU. */
const MAX_DISPATCH_SIDE = 65_535 * 8;

export interface Dispatch {
  /** The gpu.js `output`: [X] (flat) or [X, Y], x fastest; the thread's flat index is y·X + x either way. */
  readonly output: readonly [number] | readonly [number, number];
  /** Axes from `split` on are covered by thread.x, the ones before it by thread.y (0: all by x). */
  readonly split: number;
}

/**
 * A 2-D dispatch puts a suffix of the axes on thread.x and the rest on thread.y. On webasm, the 4 lanes of a
 * SIMD quad share thread.y, so whatever depends only on the leading axes (a dot's row of A, a conv's weights)
 * is computed once per quad and read with one scalar load instead of a 4-lane gather; on WebGPU the 8×8
 * workgroups tile the output exactly. Hence the shortest suffix whose size is a multiple of 8 (so no quad
 * crosses a row) with a leading extent that is a multiple of 8 too; a flat dispatch when there is none.
 */
export function dispatchOf(shape: Shape): Dispatch {
  const total = numel(shape);
  const fits = (x: number, y: number) => x <= MAX_DISPATCH_SIDE && y <= MAX_DISPATCH_SIDE;
  let x = 1;
  for (let split = shape.length - 1; split >= 1; split--) {
    x *= shape[split];
    if (x % 8 === 0 && (total / x) % 8 === 0 && fits(x, total / x)) return { output: [x, total / x], split };
  }
  // A large output needs 2-D: a flat thread.x would pass 2^24, past exact float coordinates.
  if (total >= FLOAT_EXACT) {
    x = 1;
    for (let split = shape.length - 1; split >= 1; split--) {
      x *= shape[split];
      if (fits(x, total / x)) return { output: [x, total / x], split };
    }
  }
  return { output: [total], split: 0 };
}

/** Whether every thread of a kernel over `shape` (tiled along `tile` or not) has exact float coordinates. */
export const exactDispatch = (shape: Shape, tile: number | null): boolean => {
  const d = kernelDispatch(shape, tile);
  return d.output.every((side) => side < FLOAT_EXACT);
};

/** The shape a tiled kernel dispatches over: one thread per TILE outputs along `axis`. */
export const quadShape = (shape: Shape, axis: number): number[] => shape.map((d, k) => (k === axis ? d / TILE : d));

/**
 * Whether a kernel computing `shape` can be tiled along `axis`: the axis divides into tiles and stays on
 * thread.y (uniform across a SIMD quad), so the tile's shared reads are loaded once per quad.
 */
export function tileable(shape: Shape, axis: number): boolean {
  return shape[axis] % TILE === 0 && dispatchOf(quadShape(shape, axis)).split > axis;
}

/** The dispatch of a kernel computing `shape`, register-tiled along axis `tile` or not (null). */
export const kernelDispatch = (shape: Shape, tile: number | null): Dispatch => dispatchOf(tile === null ? shape : quadShape(shape, tile));

// Node-level constructors: one per primitive, plus the few helpers that VJP rules need (broadcast/unbroadcast).
// These work on raw nodes with exact shapes; the user-facing, rank-typed and broadcasting API is `dsl/`.
import { intern, sameShape, type DType, type Node, type Shape, type ShapeInfo, type ShapeResult } from './ir.ts';
import type { ConvParams, Pair, PrimName, PrimParams } from './params.ts';
import { registry } from './registry.ts';

export function mk<Op extends PrimName>(op: Op, params: PrimParams[Op], inputs: readonly Node[]): Node<Op> {
  const rule = registry[op].shape as (p: PrimParams[Op], i: readonly ShapeInfo[]) => ShapeResult;
  return intern(op, params, inputs, rule);
}

const none = {} as Record<string, never>;

// leaves
export const param = (name: string, shape: Shape, dtype: DType = 'f32') => mk('param', { name, shape, dtype }, []);
export const input = (name: string, shape: Shape, dtype: DType = 'f32') => mk('input', { name, shape, dtype }, []);
export const constant = (value: number, shape: Shape, dtype: DType = 'f32') => mk('const', { value, shape, dtype }, []);
export const iota = (axis: number, shape: Shape, dtype: DType = 'i32') => mk('iota', { axis, shape, dtype }, []);
export const zerosLike = (x: Node) => constant(0, x.shape, x.dtype);
export const scalarLike = (x: Node, value: number) => constant(value, x.shape, x.dtype);

// unary
export const neg = (x: Node) => mk('neg', none, [x]);
export const exp = (x: Node) => mk('exp', none, [x]);
export const log = (x: Node) => mk('log', none, [x]);
export const sqrt = (x: Node) => mk('sqrt', none, [x]);
export const rsqrt = (x: Node) => mk('rsqrt', none, [x]);
export const reciprocal = (x: Node) => mk('reciprocal', none, [x]);
export const abs = (x: Node) => mk('abs', none, [x]);
export const sign = (x: Node) => mk('sign', none, [x]);
export const tanh = (x: Node) => mk('tanh', none, [x]);

// binary (equal shapes)
export const add = (a: Node, b: Node) => mk('add', none, [a, b]);
export const sub = (a: Node, b: Node) => mk('sub', none, [a, b]);
export const mul = (a: Node, b: Node) => mk('mul', none, [a, b]);
export const div = (a: Node, b: Node) => mk('div', none, [a, b]);
export const maximum = (a: Node, b: Node) => mk('maximum', none, [a, b]);
export const minimum = (a: Node, b: Node) => mk('minimum', none, [a, b]);
export const pow = (a: Node, b: Node) => mk('pow', none, [a, b]);
export const lt = (a: Node, b: Node) => mk('lt', none, [a, b]);
export const le = (a: Node, b: Node) => mk('le', none, [a, b]);
export const eq = (a: Node, b: Node) => mk('eq', none, [a, b]);
export const ne = (a: Node, b: Node) => mk('ne', none, [a, b]);
export const where = (c: Node, a: Node, b: Node) => mk('where', none, [c, a, b]);

// reductions
export const sum = (x: Node, axes: readonly number[]) => mk('sum', { axes: [...axes].sort((a, b) => a - b) }, [x]);
export const reduceMax = (x: Node, axes: readonly number[]) => mk('reduceMax', { axes: [...axes].sort((a, b) => a - b) }, [x]);

// movement
export const reshape = (x: Node, shape: Shape) => mk('reshape', { shape }, [x]);
export const permute = (x: Node, perm: readonly number[]) => mk('permute', { perm }, [x]);
export const expand = (x: Node, shape: Shape) => mk('expand', { shape }, [x]);
export const pad = (
  x: Node,
  lo: readonly number[],
  hi: readonly number[],
  interior: readonly number[] = lo.map(() => 0),
  value = 0,
) => mk('pad', { lo, hi, interior, value }, [x]);
export const slice = (x: Node, start: readonly number[], stop: readonly number[], step: readonly number[] = start.map(() => 1)) =>
  mk('slice', { start, stop, step }, [x]);
export const flip = (x: Node, axes: readonly number[]) => mk('flip', { axes: [...axes].sort((a, b) => a - b) }, [x]);
export const concat = (xs: readonly Node[], axis: number) => mk('concat', { axis }, xs);

// contractions
export const dot = (a: Node, b: Node) => mk('dot', none, [a, b]);
export const conv2d = (x: Node, w: Node, o: { stride?: Pair; padding?: Pair; dilation?: Pair; groups?: number } = {}) =>
  mk('conv2d', { stride: o.stride ?? [1, 1], padding: o.padding ?? [0, 0], dilation: o.dilation ?? [1, 1], groups: o.groups ?? 1 }, [x, w]);
export const convWeightGrad = (x: Node, g: Node, p: ConvParams, kernel: Pair) => mk('convWeightGrad', { ...p, kernel }, [x, g]);
export const pool2d = (x: Node, mode: 'max' | 'avg', kernel: Pair, stride: Pair, padding: Pair) =>
  mk('pool2d', { mode, kernel, stride, padding }, [x]);

// indexing, gradient control, conversion
export const gather = (x: Node, idx: Node, axis: number) => mk('gather', { axis }, [x, idx]);
export const topk = (x: Node, k: number, axis: number, largest = true) => mk('topk', { k, axis, largest }, [x]);
export const stopGradient = (x: Node) => mk('stopGradient', none, [x]);
export const cast = (x: Node, dtype: DType) => (x.dtype === dtype ? x : mk('cast', { dtype }, [x]));

// ---- helpers used by VJP rules ------------------------------------------------------------------------------
/** Sum `g` (shape of an expand's output) back to `shape` (the expand's input, same rank, 1s where expanded). */
export function unexpand(g: Node, shape: Shape): Node {
  if (sameShape(g.shape, shape)) return g;
  const axes = shape.flatMap((d, i) => (d === 1 && g.shape[i] !== 1 ? [i] : []));
  return reshape(sum(g, axes), shape);
}

/** Insert size-1 axes at the (sorted) positions a reduction removed, then expand back to `shape`. */
export function unreduce(g: Node, axes: readonly number[], shape: Shape): Node {
  const kept = shape.map((d, i) => (axes.includes(i) ? 1 : d));
  return expand(reshape(g, kept), shape);
}

/** Accumulate cotangents with symbolic zeros (null). */
export const addCot = (a: Node | null, b: Node | null): Node | null => (a === null ? b : b === null ? a : add(a, b));

export const scalar = (value: number, like: Node) => constant(value, like.shape, like.dtype);

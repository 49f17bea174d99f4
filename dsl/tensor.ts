// The user-facing tensor type and primitive operations, with the rank in the type and NumPy broadcasting.
//
// A Tensor<R> *is* a graph node (hash-consed: building the same expression twice gives the same object), with
// a phantom rank. Every function here is pure: it builds nodes and never computes. Construction is total:
// a bad shape gives an invalid node whose error `typecheck` reports, together with every other error.
import * as b from '../compiler/build.ts';
import type { DType, Node, Shape } from '../compiler/ir.ts';
import type { Pair } from '../compiler/params.ts';

declare const rankBrand: unique symbol;
export type Tensor<R extends number = number> = Node & { readonly [rankBrand]?: R };

// ---- type-level rank arithmetic (ranks 0..8) ----------------------------------------------------------------
type Tuple<N extends number, Acc extends readonly unknown[] = []> = Acc['length'] extends N ? Acc : Tuple<N, [...Acc, unknown]>;
export type MaxRank<A extends number, B extends number> = number extends A | B
  ? number
  : Tuple<A> extends [...Tuple<B>, ...unknown[]]
    ? A
    : B;
export type SubRank<A extends number, K extends number> = number extends A | K
  ? number
  : Tuple<A> extends [...Tuple<K>, ...infer Rest]
    ? Rest['length']
    : never;
export type AddRank<A extends number, K extends number> = number extends A | K ? number : [...Tuple<A>, ...Tuple<K>]['length'] & number;

const asT = <R extends number>(n: Node): Tensor<R> => n as Tensor<R>;
const normAxis = (axis: number, rank: number): number => (axis < 0 ? axis + rank : axis);

// ---- leaves -------------------------------------------------------------------------------------------------
/** A trainable parameter, bound by name when the program runs. */
export const param = <const S extends readonly number[]>(name: string, shape: S, dtype: DType = 'f32'): Tensor<S['length']> =>
  asT(b.param(name, shape, dtype));
/** A per-call input (images, masks, scalars such as the learning rate). */
export const input = <const S extends readonly number[]>(name: string, shape: S, dtype: DType = 'f32'): Tensor<S['length']> =>
  asT(b.input(name, shape, dtype));
export const full = <const S extends readonly number[]>(shape: S, value: number, dtype: DType = 'f32'): Tensor<S['length']> =>
  asT(b.constant(value, shape, dtype));
export const scalar = (value: number, dtype: DType = 'f32'): Tensor<0> => asT(b.constant(value, [], dtype));
export const zerosLike = <R extends number>(x: Tensor<R>): Tensor<R> => asT(b.zerosLike(x));
export const onesLike = <R extends number>(x: Tensor<R>): Tensor<R> => asT(b.scalarLike(x, 1));
export const iota = <const S extends readonly number[]>(shape: S, axis: number, dtype: DType = 'i32'): Tensor<S['length']> =>
  asT(b.iota(normAxis(axis, shape.length), shape, dtype));

// ---- broadcasting -------------------------------------------------------------------------------------------
/** The NumPy broadcast of two shapes, or undefined when they are incompatible. */
export function broadcastShapes(a: Shape, c: Shape): number[] | undefined {
  const r = Math.max(a.length, c.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const x = a[a.length - r + i] ?? 1;
    const y = c[c.length - r + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) return undefined;
    out.push(Math.max(x, y));
  }
  return out;
}

/** Broadcast `x` to `shape` (prepend 1s, then expand). */
export function broadcastTo<const S extends readonly number[]>(x: Tensor, shape: S): Tensor<S['length']> {
  if (x.shape.length === shape.length && x.shape.every((d, i) => d === shape[i])) return asT(x);
  const lifted = x.shape.length < shape.length ? b.reshape(x, [...Array(shape.length - x.shape.length).fill(1), ...x.shape]) : x;
  return asT(b.expand(lifted, shape));
}

type Operand = Tensor | number;
function operands(a: Operand, c: Operand): [Node, Node] {
  const like = typeof a === 'number' ? (c as Node) : a;
  const x = typeof a === 'number' ? b.constant(a, [], like.dtype) : a;
  const y = typeof c === 'number' ? b.constant(c, [], like.dtype) : c;
  const shape = broadcastShapes(x.shape, y.shape);
  // Incompatible shapes go through unchanged: the primitive's shape rule then reports them.
  if (shape === undefined || !x.valid || !y.valid) return [x, y];
  return [broadcastTo(x, shape), broadcastTo(y, shape)];
}

type BinaryResult<A extends Operand, C extends Operand> = A extends Tensor<infer RA>
  ? C extends Tensor<infer RC>
    ? Tensor<MaxRank<RA, RC>>
    : Tensor<RA>
  : C extends Tensor<infer RC>
    ? Tensor<RC>
    : Tensor<0>;

const binary =
  (f: (x: Node, y: Node) => Node) =>
  <A extends Operand, C extends Operand>(a: A, c: C): BinaryResult<A, C> => {
    const [x, y] = operands(a, c);
    return f(x, y) as BinaryResult<A, C>;
  };

// ---- elementwise --------------------------------------------------------------------------------------------
export const add = binary(b.add);
export const sub = binary(b.sub);
export const mul = binary(b.mul);
export const div = binary(b.div);
export const maximum = binary(b.maximum);
export const minimum = binary(b.minimum);
export const pow = binary(b.pow);
export const lt = binary(b.lt);
export const le = binary(b.le);
export const gt = binary((x, y) => b.lt(y, x));
export const ge = binary((x, y) => b.le(y, x));
export const eq = binary(b.eq);
export const ne = binary(b.ne);

const unary =
  (f: (x: Node) => Node) =>
  <R extends number>(x: Tensor<R>): Tensor<R> =>
    asT(f(x));
export const neg = unary(b.neg);
export const exp = unary(b.exp);
export const log = unary(b.log);
export const sqrt = unary(b.sqrt);
export const rsqrt = unary(b.rsqrt);
export const reciprocal = unary(b.reciprocal);
export const abs = unary(b.abs);
export const sign = unary(b.sign);
export const tanh = unary(b.tanh);
export const stopGradient = unary(b.stopGradient);
export const cast = <R extends number>(x: Tensor<R>, dtype: DType): Tensor<R> => asT(b.cast(x, dtype));

/** where(cond, a, b) with broadcasting of all three. */
export function where<R extends number>(cond: Tensor<R>, a: Operand, c: Operand): Tensor<R> {
  const [x, y] = operands(a, c);
  const shape = broadcastShapes(cond.shape, x.shape) ?? cond.shape;
  const ok = broadcastShapes(cond.shape, x.shape) !== undefined;
  return asT(ok ? b.where(broadcastTo(cond, shape), broadcastTo(x, shape), broadcastTo(y, shape)) : b.where(cond, x, y));
}

// ---- reductions ---------------------------------------------------------------------------------------------
const allAxes = (x: Node) => x.shape.map((_d, i) => i);
const norm = (x: Node, axes: readonly number[] | undefined) => (axes ?? allAxes(x)).map((a) => normAxis(a, x.shape.length));

function keep<R extends number>(x: Node, r: Node, axes: readonly number[]): Tensor<R> {
  return asT(b.reshape(r, x.shape.map((d, i) => (axes.includes(i) ? 1 : d))));
}

/** Sum over `axes` (all when omitted); the axes are removed. */
export function sum<R extends number, const A extends readonly number[]>(x: Tensor<R>, axes: A): Tensor<SubRank<R, A['length']>>;
export function sum(x: Tensor): Tensor<0>;
export function sum(x: Tensor, axes?: readonly number[]): Tensor {
  return asT(b.sum(x, norm(x, axes)));
}
/** Sum over `axes`, keeping them as size-1 dims. */
export const sumKeep = <R extends number>(x: Tensor<R>, axes: readonly number[]): Tensor<R> => keep(x, b.sum(x, norm(x, axes)), norm(x, axes));

export function max<R extends number, const A extends readonly number[]>(x: Tensor<R>, axes: A): Tensor<SubRank<R, A['length']>>;
export function max(x: Tensor): Tensor<0>;
export function max(x: Tensor, axes?: readonly number[]): Tensor {
  return asT(b.reduceMax(x, norm(x, axes)));
}
export const maxKeep = <R extends number>(x: Tensor<R>, axes: readonly number[]): Tensor<R> => keep(x, b.reduceMax(x, norm(x, axes)), norm(x, axes));

// ---- movement -----------------------------------------------------------------------------------------------
/** Row-major reshape; one dim may be -1 (inferred). */
export function reshape<const S extends readonly number[]>(x: Tensor, shape: S): Tensor<S['length']> {
  const known = shape.filter((d) => d !== -1).reduce((a, c) => a * c, 1);
  const total = x.shape.reduce((a, c) => a * c, 1);
  const resolved = shape.map((d) => (d === -1 && known > 0 && total % known === 0 ? total / known : d));
  return asT(b.reshape(x, resolved));
}
export const permute = <R extends number>(x: Tensor<R>, perm: readonly number[]): Tensor<R> =>
  asT(b.permute(x, perm.map((a) => normAxis(a, x.shape.length))));
/** Swap the last two axes. */
export const transpose = <R extends number>(x: Tensor<R>): Tensor<R> => {
  const r = x.shape.length;
  return permute(x, [...Array(Math.max(0, r - 2)).keys(), r - 1, r - 2]);
};
export const expandDims = <R extends number>(x: Tensor<R>, axis: number): Tensor<AddRank<R, 1>> => {
  const a = normAxis(axis, x.shape.length + 1);
  return asT(b.reshape(x, [...x.shape.slice(0, a), 1, ...x.shape.slice(a)]));
};
export const squeeze = <R extends number>(x: Tensor<R>, axis: number): Tensor<SubRank<R, 1>> => {
  const a = normAxis(axis, x.shape.length);
  return asT(b.reshape(x, x.shape.filter((_d, i) => i !== a)));
};
/** Zero (or `value`) padding: `widths[i] = [before, after]` per axis; negative widths crop. */
export const pad = <R extends number>(x: Tensor<R>, widths: readonly (readonly [number, number])[], value = 0): Tensor<R> =>
  asT(b.pad(x, widths.map((w) => w[0]), widths.map((w) => w[1]), widths.map(() => 0), value));
/** x[start:stop:step] per axis; omitted trailing axes are taken whole. */
export function slice<R extends number>(x: Tensor<R>, ranges: readonly (readonly [number, number, number?])[]): Tensor<R> {
  const r = x.shape.length;
  const full = (i: number) => ranges[i] ?? [0, x.shape[i], 1];
  return asT(
    b.slice(
      x,
      [...Array(r).keys()].map((i) => full(i)[0]),
      [...Array(r).keys()].map((i) => full(i)[1]),
      [...Array(r).keys()].map((i) => full(i)[2] ?? 1),
    ),
  );
}
export const flip = <R extends number>(x: Tensor<R>, axes: readonly number[]): Tensor<R> => asT(b.flip(x, axes.map((a) => normAxis(a, x.shape.length))));
export const concat = <R extends number>(xs: readonly Tensor<R>[], axis: number): Tensor<R> =>
  asT(b.concat(xs, normAxis(axis, xs[0]?.shape.length ?? 1)));

// ---- contractions, windows, indexing ------------------------------------------------------------------------
/** Matrix product with NumPy matmul semantics for rank ≥ 2 operands (batch dims broadcast). */
export function matmul<A extends number, C extends number>(a: Tensor<A>, c: Tensor<C>): Tensor<MaxRank<A, C>> {
  const batch = broadcastShapes(a.shape.slice(0, -2), c.shape.slice(0, -2));
  if (batch === undefined || a.shape.length < 2 || c.shape.length < 2) return asT(b.dot(a, c));
  return asT(b.dot(broadcastTo(a, [...batch, ...a.shape.slice(-2)]), broadcastTo(c, [...batch, ...c.shape.slice(-2)])));
}

export interface ConvOptions {
  readonly stride?: number | Pair;
  readonly padding?: number | Pair;
  readonly dilation?: number | Pair;
  readonly groups?: number;
}
const pair = (v: number | Pair | undefined, d: number): Pair => (v === undefined ? [d, d] : typeof v === 'number' ? [v, v] : v);

/** NCHW × OIHW convolution (PyTorch semantics). */
export const conv2d = (x: Tensor<4>, w: Tensor<4>, o: ConvOptions = {}): Tensor<4> =>
  asT(b.conv2d(x, w, { stride: pair(o.stride, 1), padding: pair(o.padding, 0), dilation: pair(o.dilation, 1), groups: o.groups ?? 1 }));

export interface PoolOptions {
  readonly stride?: number | Pair;
  readonly padding?: number | Pair;
}
export const maxPool2d = (x: Tensor<4>, kernel: number | Pair, o: PoolOptions = {}): Tensor<4> =>
  asT(b.pool2d(x, 'max', pair(kernel, 1), pair(o.stride ?? kernel, 1), pair(o.padding, 0)));
export const avgPool2d = (x: Tensor<4>, kernel: number | Pair, o: PoolOptions = {}): Tensor<4> =>
  asT(b.pool2d(x, 'avg', pair(kernel, 1), pair(o.stride ?? kernel, 1), pair(o.padding, 0)));

/** torch.gather / take_along_axis. */
export const gather = <R extends number>(x: Tensor<R>, indices: Tensor<R>, axis: number): Tensor<R> =>
  asT(b.gather(x, indices, normAxis(axis, x.shape.length)));
/** Indices (i32) of the k largest (or smallest) entries along `axis`, best first. No gradient. */
export const topkIndices = <R extends number>(x: Tensor<R>, k: number, axis = -1, largest = true): Tensor<R> =>
  asT(b.topk(x, k, normAxis(axis, x.shape.length), largest));

// The parameters of every primitive. Adding a primitive starts here: the registry (`registry.ts`) is typed
// as a total map over these names, so a primitive without a complete rule set is a compile error.
import type { DType, Shape } from './ir.ts';

type NoParams = Record<string, never>;
export type Pair = readonly [number, number];

export interface ConvParams {
  readonly stride: Pair;
  readonly padding: Pair;
  readonly dilation: Pair;
  readonly groups: number;
}

export interface PrimParams {
  // leaves
  param: { readonly name: string; readonly shape: Shape; readonly dtype: DType };
  input: { readonly name: string; readonly shape: Shape; readonly dtype: DType };
  const: { readonly value: number; readonly shape: Shape; readonly dtype: DType };
  iota: { readonly axis: number; readonly shape: Shape; readonly dtype: DType };
  // unary elementwise
  neg: NoParams;
  exp: NoParams;
  log: NoParams;
  sqrt: NoParams;
  rsqrt: NoParams;
  reciprocal: NoParams;
  abs: NoParams;
  sign: NoParams;
  tanh: NoParams;
  // binary elementwise (operands of equal shape: the DSL inserts reshape/expand for NumPy broadcasting)
  add: NoParams;
  sub: NoParams;
  mul: NoParams;
  div: NoParams;
  maximum: NoParams;
  minimum: NoParams;
  pow: NoParams;
  // comparisons (bool results) and selection
  lt: NoParams;
  le: NoParams;
  eq: NoParams;
  ne: NoParams;
  where: NoParams;
  // reductions over a set of axes (the axes are removed)
  sum: { readonly axes: readonly number[] };
  reduceMax: { readonly axes: readonly number[] };
  // movement
  reshape: { readonly shape: Shape };
  permute: { readonly perm: readonly number[] };
  expand: { readonly shape: Shape };
  /** XLA-style pad: lo/hi may be negative (cropping); interior inserts that many values between elements. */
  pad: { readonly lo: readonly number[]; readonly hi: readonly number[]; readonly interior: readonly number[]; readonly value: number };
  slice: { readonly start: readonly number[]; readonly stop: readonly number[]; readonly step: readonly number[] };
  flip: { readonly axes: readonly number[] };
  concat: { readonly axis: number };
  // contractions
  dot: NoParams;
  conv2d: ConvParams;
  /** conv2d's weight gradient: the forward conv's parameters and its kernel size. */
  convWeightGrad: ConvParams & { readonly kernel: Pair };
  pool2d: { readonly mode: 'max' | 'avg'; readonly kernel: Pair; readonly stride: Pair; readonly padding: Pair };
  // indexing
  gather: { readonly axis: number };
  topk: { readonly k: number; readonly axis: number; readonly largest: boolean };
  // gradient control and conversion
  stopGradient: NoParams;
  cast: { readonly dtype: DType };
}

export type PrimName = keyof PrimParams;

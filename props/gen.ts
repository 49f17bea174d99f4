// fast-check generators of well-typed primitive applications, one per primitive. The map is typed as total
// over PrimName, so a new primitive without a generator fails to type-check and cannot escape the
// registry-wide properties (shape rule vs interpreter, VJP vs finite differences, adjoint test).
import fc from 'fast-check';
import { mk } from '../compiler/build.ts';
import * as b from '../compiler/build.ts';
import { numel, type DType, type Node, type Shape } from '../compiler/ir.ts';
import type { PrimName, PrimParams } from '../compiler/params.ts';
import { windowOut } from '../compiler/prims/conv2d.ts';

/**
 * How to draw an operand's values. 'smooth': U(-2, 2). 'positive': U(0.5, 2) (log, sqrt, division).
 * 'separated': distinct values at least 0.01 apart and away from 0, so finite differences never cross a
 * kink or a tie (abs, max, pooling, top-k). 'interleaved': the same on the grid shifted by half its spacing,
 * so it never ties with a 'separated' operand of the same shape (the second operand of maximum/minimum).
 * 'index:n': integers in [0, n). 'bool': 0/1.
 */
export type Values = 'smooth' | 'positive' | 'separated' | 'interleaved' | `index:${number}` | 'bool';
export interface Operand {
  readonly shape: Shape;
  readonly dtype: DType;
  readonly values: Values;
}
export interface Case<Op extends PrimName> {
  readonly op: Op;
  readonly params: PrimParams[Op];
  readonly operands: readonly Operand[];
}

const dim = fc.integer({ min: 1, max: 4 });
const shapeOf = (minRank: number, maxRank: number) => fc.integer({ min: minRank, max: maxRank }).chain((r) => fc.array(dim, { minLength: r, maxLength: r }));
const f32 = (shape: Shape, values: Values = 'smooth'): Operand => ({ shape, dtype: 'f32', values });
const subsetOf = (n: number) => fc.subarray([...Array(n).keys()]);
const permutationOf = (n: number) => fc.shuffledSubarray([...Array(n).keys()], { minLength: n, maxLength: n });

/** A convolution's sizes and parameters whose window fits its padded input (conv2d and its weight gradient). */
const convCase = fc
  .record({
    n: fc.integer({ min: 1, max: 2 }),
    groups: fc.integer({ min: 1, max: 2 }),
    cg: fc.integer({ min: 1, max: 3 }),
    og: fc.integer({ min: 1, max: 2 }),
    h: fc.integer({ min: 3, max: 7 }),
    w: fc.integer({ min: 3, max: 7 }),
    kh: fc.integer({ min: 1, max: 3 }),
    kw: fc.integer({ min: 1, max: 3 }),
    stride: fc.tuple(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 2 })),
    padding: fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 2 })),
    dilation: fc.tuple(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 2 })),
  })
  .filter((c) => windowOut(c.h, c.kh, c.stride[0], c.padding[0], c.dilation[0]) >= 1 && windowOut(c.w, c.kw, c.stride[1], c.padding[1], c.dilation[1]) >= 1);

const unary = <Op extends PrimName>(op: Op, values: Values = 'smooth') =>
  shapeOf(0, 4).map((s): Case<Op> => ({ op, params: {} as PrimParams[Op], operands: [f32(s, values)] }));
const binary = <Op extends PrimName>(op: Op, va: Values = 'smooth', vb: Values = va) =>
  shapeOf(0, 4).map((s): Case<Op> => ({ op, params: {} as PrimParams[Op], operands: [f32(s, va), f32(s, vb)] }));
const leaf = <Op extends 'param' | 'input' | 'const' | 'iota'>(op: Op, params: (s: number[]) => PrimParams[Op]) =>
  shapeOf(1, 4).map((s): Case<Op> => ({ op, params: params(s), operands: [] }));
const reduce = <Op extends 'sum' | 'reduceMax'>(op: Op, values: Values) =>
  shapeOf(1, 4).chain((s) => subsetOf(s.length).map((axes): Case<Op> => ({ op, params: { axes } as PrimParams[Op], operands: [f32(s, values)] })));

export const generators: { readonly [Op in PrimName]: fc.Arbitrary<Case<Op>> } = {
  param: leaf('param', (shape) => ({ name: 'p', shape, dtype: 'f32' })),
  input: leaf('input', (shape) => ({ name: 'i', shape, dtype: 'f32' })),
  const: leaf('const', (shape) => ({ value: 1.5, shape, dtype: 'f32' })),
  iota: shapeOf(1, 4).chain((shape) => fc.integer({ min: 0, max: shape.length - 1 }).map((axis): Case<'iota'> => ({ op: 'iota', params: { axis, shape, dtype: 'i32' }, operands: [] }))),
  neg: unary('neg'),
  exp: unary('exp'),
  log: unary('log', 'positive'),
  sqrt: unary('sqrt', 'positive'),
  rsqrt: unary('rsqrt', 'positive'),
  reciprocal: unary('reciprocal', 'positive'),
  abs: unary('abs', 'separated'),
  sign: unary('sign', 'separated'),
  tanh: unary('tanh'),
  add: binary('add'),
  sub: binary('sub'),
  mul: binary('mul'),
  div: binary('div', 'smooth', 'positive'),
  maximum: binary('maximum', 'separated', 'interleaved'),
  minimum: binary('minimum', 'separated', 'interleaved'),
  pow: binary('pow', 'positive', 'smooth'),
  lt: binary('lt'),
  le: binary('le'),
  eq: binary('eq', 'separated'),
  ne: binary('ne', 'separated'),
  where: shapeOf(0, 4).map((s): Case<'where'> => ({ op: 'where', params: {}, operands: [{ shape: s, dtype: 'bool', values: 'bool' }, f32(s), f32(s)] })),
  sum: reduce('sum', 'smooth'),
  reduceMax: reduce('reduceMax', 'separated'),
  reshape: shapeOf(1, 4).chain((s) =>
    fc.oneof(fc.constant([numel(s)]), permutationOf(s.length).map((p) => [1, ...p.map((i) => s[i])])).map((shape): Case<'reshape'> => ({ op: 'reshape', params: { shape }, operands: [f32(s)] })),
  ),
  permute: shapeOf(1, 4).chain((s) => permutationOf(s.length).map((perm): Case<'permute'> => ({ op: 'permute', params: { perm }, operands: [f32(s)] }))),
  expand: shapeOf(1, 4).chain((s) =>
    fc.array(fc.boolean(), { minLength: s.length, maxLength: s.length }).map((ones): Case<'expand'> => ({
      op: 'expand',
      params: { shape: s },
      operands: [f32(s.map((d, i) => (ones[i] ? 1 : d)))],
    })),
  ),
  pad: shapeOf(1, 3).chain((s) =>
    fc
      .tuple(
        fc.array(fc.integer({ min: -1, max: 2 }), { minLength: s.length, maxLength: s.length }),
        fc.array(fc.integer({ min: -1, max: 2 }), { minLength: s.length, maxLength: s.length }),
        fc.array(fc.integer({ min: 0, max: 2 }), { minLength: s.length, maxLength: s.length }),
        fc.constantFrom(0, 0.5),
      )
      .filter(([lo, hi, interior]) => s.every((d, i) => lo[i] + hi[i] + d + (d - 1) * interior[i] >= 1))
      .map(([lo, hi, interior, value]): Case<'pad'> => ({ op: 'pad', params: { lo, hi, interior, value }, operands: [f32(s)] })),
  ),
  slice: shapeOf(1, 4).chain((s) =>
    fc
      .tuple(...s.map((d) => fc.tuple(fc.integer({ min: 0, max: d - 1 }), fc.integer({ min: 1, max: d }), fc.integer({ min: 1, max: 3 }))))
      .map((rs): Case<'slice'> => {
        const start = rs.map(([a, c]) => Math.min(a, c - 1));
        const stop = rs.map(([a, c]) => Math.max(c, Math.min(a, c - 1) + 1));
        return { op: 'slice', params: { start, stop, step: rs.map((r) => r[2]) }, operands: [f32(s)] };
      }),
  ),
  flip: shapeOf(1, 4).chain((s) => subsetOf(s.length).map((axes): Case<'flip'> => ({ op: 'flip', params: { axes }, operands: [f32(s)] }))),
  concat: shapeOf(1, 3).chain((s) =>
    fc
      .tuple(fc.integer({ min: 0, max: s.length - 1 }), fc.array(dim, { minLength: 1, maxLength: 3 }))
      .map(([axis, sizes]): Case<'concat'> => ({ op: 'concat', params: { axis }, operands: sizes.map((n) => f32(s.map((d, i) => (i === axis ? n : d)))) })),
  ),
  dot: fc.tuple(shapeOf(0, 2), dim, dim, dim).map(([batch, m, k, n]): Case<'dot'> => ({ op: 'dot', params: {}, operands: [f32([...batch, m, k]), f32([...batch, k, n])] })),
  conv2d: convCase.map((c): Case<'conv2d'> => ({
    op: 'conv2d',
    params: { stride: c.stride, padding: c.padding, dilation: c.dilation, groups: c.groups },
    operands: [f32([c.n, c.groups * c.cg, c.h, c.w]), f32([c.groups * c.og, c.cg, c.kh, c.kw])],
  })),
  convWeightGrad: convCase.map((c): Case<'convWeightGrad'> => ({
    op: 'convWeightGrad',
    params: { stride: c.stride, padding: c.padding, dilation: c.dilation, groups: c.groups, kernel: [c.kh, c.kw] },
    operands: [
      f32([c.n, c.groups * c.cg, c.h, c.w]),
      f32([c.n, c.groups * c.og, windowOut(c.h, c.kh, c.stride[0], c.padding[0], c.dilation[0]), windowOut(c.w, c.kw, c.stride[1], c.padding[1], c.dilation[1])]),
    ],
  })),
  pool2d: fc
    .record({
      mode: fc.constantFrom<'max' | 'avg'>('max', 'avg'),
      nc: fc.tuple(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 2 })),
      hw: fc.tuple(fc.integer({ min: 2, max: 6 }), fc.integer({ min: 2, max: 6 })),
      k: fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 })),
      s: fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 })),
      p: fc.tuple(fc.integer({ min: 0, max: 1 }), fc.integer({ min: 0, max: 1 })),
    })
    .map((c) => ({ ...c, p: [Math.min(c.p[0], Math.floor(c.k[0] / 2)), Math.min(c.p[1], Math.floor(c.k[1] / 2))] as const }))
    .filter((c) => windowOut(c.hw[0], c.k[0], c.s[0], c.p[0]) >= 1 && windowOut(c.hw[1], c.k[1], c.s[1], c.p[1]) >= 1)
    .map((c): Case<'pool2d'> => ({
      op: 'pool2d',
      params: { mode: c.mode, kernel: c.k, stride: c.s, padding: c.p },
      operands: [f32([c.nc[0], c.nc[1], c.hw[0], c.hw[1]], 'separated')],
    })),
  gather: shapeOf(1, 3).chain((s) =>
    fc.tuple(fc.integer({ min: 0, max: s.length - 1 }), dim).map(([axis, m]): Case<'gather'> => ({
      op: 'gather',
      params: { axis },
      operands: [f32(s), { shape: s.map((d, i) => (i === axis ? m : d)), dtype: 'i32', values: `index:${s[axis]}` }],
    })),
  ),
  topk: shapeOf(1, 3).chain((s) =>
    fc
      .tuple(fc.integer({ min: 0, max: s.length - 1 }), fc.boolean())
      .chain(([axis, largest]) =>
        fc.integer({ min: 1, max: s[axis] }).map((k): Case<'topk'> => ({ op: 'topk', params: { k, axis, largest }, operands: [f32(s, 'separated')] })),
      ),
  ),
  stopGradient: unary('stopGradient'),
  cast: shapeOf(0, 3).chain((s) => fc.constantFrom<DType>('i32', 'bool').map((dtype): Case<'cast'> => ({ op: 'cast', params: { dtype }, operands: [f32(s)] }))),
};

/** Any primitive application, drawn uniformly over the registry. */
export const anyCase: fc.Arbitrary<Case<PrimName>> = fc.oneof(...(Object.values(generators) as fc.Arbitrary<Case<PrimName>>[]));

// ---- values -------------------------------------------------------------------------------------------------
/** mulberry32: a tiny seeded PRNG so values are reproducible from the fast-check seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function drawValues(op: Operand, rand: () => number): Float64Array {
  const n = numel(op.shape);
  const out = new Float64Array(n);
  if (op.values === 'separated' || op.values === 'interleaved') {
    // A random permutation of a grid with spacing 0.05, shifted away from 0: every value is at least 0.0125 from
    // it (the old shift of 0.025 put the middle value of an odd count exactly on 0, ReLU's and abs's kink).
    // The interleaved grid sits halfway between: 0.025 from every 'separated' value of the same count.
    const shift = op.values === 'separated' ? 0.0125 : 0.0375;
    const grid = [...Array(n).keys()].map((i) => (i - n / 2) * 0.05 + shift);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [grid[i], grid[j]] = [grid[j], grid[i]];
    }
    out.set(grid);
    return out;
  }
  for (let i = 0; i < n; i++) {
    const u = rand();
    if (op.values === 'smooth') out[i] = 4 * u - 2;
    else if (op.values === 'positive') out[i] = 0.5 + 1.5 * u;
    else if (op.values === 'bool') out[i] = u < 0.5 ? 1 : 0;
    else out[i] = Math.floor(u * Number(op.values.slice(6)));
  }
  return out;
}

/** Build the case as a node over input leaves named x0, x1, … */
export function buildCase(c: Case<PrimName>): { node: Node; leaves: Node[] } {
  const leaves = c.operands.map((o, i) => b.input(`x${i}`, o.shape, o.dtype));
  return { node: mk(c.op, c.params, leaves), leaves };
}

// Properties of the composite layers in dsl/nn.ts: forward values against hand computations in plain TS and
// gradients (built by vjp / valueAndGrad from the primitives' rules) against float64 central differences.
//
// Tolerances: forward values are compared in float64 with a relative tolerance of 1e-12 (the DSL and the
// hand loops sum in different orders, so only rounding at ~1e-16 per operation separates them; 1e-12 leaves
// room for the few dozen operations chained in attention). Gradients use props/gradcheck.ts's default
// (h = 1e-5, rtol 1e-6, atol 1e-7, justified there), except batch norm: its 1/σ³ curvature on batches of a
// few elements makes the O(h²·f''') truncation term large (measured worst over 3000 random cases: 3.7e-7
// relative, for a [3,2,1] input), too close to 1e-6, so it uses rtol 1e-5 (27× margin).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as E from 'fp-ts/lib/Either.js';
import fc from 'fast-check';
import { vjp } from '../compiler/autodiff.ts';
import { makeGraph, numel, stridesOf, type Node, type Shape } from '../compiler/ir.ts';
import { interpret } from '../compiler/interp/interpret.ts';
import * as T from '../dsl/tensor.ts';
import * as nn from '../dsl/nn.ts';
import { valueAndGrad } from '../dsl/grad.ts';
import { flatten, isTensor, type ParamTree } from '../dsl/tree.ts';
import { checkGradients, defaultTolerance, evalF64, vjpMismatches, weightedSum, type LeafCheck, type Tolerance } from './gradcheck.ts';
import { drawValues, prng } from './gen.ts';
import { property } from './prop.ts';

// ---- generators and host-side helpers -------------------------------------------------------------------------
const dim = fc.integer({ min: 1, max: 4 });
const shapeArb = (minRank: number, maxRank: number) =>
  fc.integer({ min: minRank, max: maxRank }).chain((r) => fc.array(dim, { minLength: r, maxLength: r }));
const seedArb = fc.integer({ min: 1, max: 2 ** 31 - 1 });
const smooth = (shape: Shape, rand: () => number): Float64Array => drawValues({ shape, dtype: 'f32', values: 'smooth' }, rand);
const positive = (shape: Shape, rand: () => number): Float64Array => drawValues({ shape, dtype: 'f32', values: 'positive' }, rand);
const scaledBy = (k: number, xs: Float64Array): Float64Array => xs.map((v) => v * k);

const FORWARD_RTOL = 1e-12;
function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, rtol = FORWARD_RTOL, atol = 1e-14): void {
  assert.equal(actual.length, expected.length, `${what}: ${actual.length} values, expected ${expected.length}`);
  for (let i = 0; i < actual.length; i++) {
    const [a, e] = [actual[i], expected[i]];
    assert.ok(Math.abs(a - e) <= atol + rtol * Math.max(Math.abs(a), Math.abs(e)), `${what}[${i}]: got ${a}, expected ${e}`);
  }
}
const noFailures = (checks: readonly LeafCheck[], what: string): void =>
  assert.deepEqual(checks.filter((c) => !c.ok), [], `${what}: gradient disagrees with central differences`);

/** For each element of `shape`, the flat index of its group when `axes` are reduced with kept dims. */
function groupOf(shape: Shape, axes: readonly number[]): { readonly group: Int32Array; readonly groups: number; readonly count: number } {
  const kept = shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const keptStrides = stridesOf(kept);
  const strides = stridesOf(shape);
  const group = new Int32Array(numel(shape));
  for (let flat = 0; flat < group.length; flat++) {
    let g = 0;
    for (let ax = 0; ax < shape.length; ax++) if (!axes.includes(ax)) g += (Math.floor(flat / strides[ax]) % shape[ax]) * keptStrides[ax];
    group[flat] = g;
  }
  return { group, groups: numel(kept), count: numel(shape) / numel(kept) };
}
function groupMean(x: ArrayLike<number>, shape: Shape, axes: readonly number[]): Float64Array {
  const { group, groups, count } = groupOf(shape, axes);
  const m = new Float64Array(groups);
  for (let i = 0; i < x.length; i++) m[group[i]] += x[i] / count;
  return m;
}
function groupVariance(x: ArrayLike<number>, shape: Shape, axes: readonly number[], unbiased: boolean): Float64Array {
  const { group, groups, count } = groupOf(shape, axes);
  const m = groupMean(x, shape, axes);
  const v = new Float64Array(groups);
  for (let i = 0; i < x.length; i++) v[group[i]] += (x[i] - m[group[i]]) ** 2;
  return v.map((s) => s / (unbiased ? Math.max(count - 1, 1) : count));
}

const normAxis = (axis: number, rank: number): number => (axis < 0 ? axis + rank : axis);
/** Reduce along one axis, keeping it: the per-row (along `axis`) sum of f(x). */
const rowSums = (x: ArrayLike<number>, shape: Shape, axis: number, f: (v: number) => number = (v) => v): Float64Array => {
  const { group, groups } = groupOf(shape, [axis]);
  const s = new Float64Array(groups);
  for (let i = 0; i < x.length; i++) s[group[i]] += f(x[i]);
  return s;
};

// ---- relu, mean, variance -------------------------------------------------------------------------------------
describe('relu, mean and variance', () => {
  test('relu is max(x, 0) and its gradient matches central differences (values away from the kink)', () => {
    property(
      fc.property(shapeArb(0, 4), seedArb, (shape, seed) => {
        const rand = prng(seed);
        const x = T.input('x', shape);
        const xs = drawValues({ shape, dtype: 'f32', values: 'separated' }, rand);
        assertClose(evalF64({ y: nn.relu(x) }, { x: xs }).y.data, xs.map((v) => Math.max(v, 0)), 'relu');
        assert.deepEqual(vjpMismatches(nn.relu(x), [x], { x: xs }, rand), []);
      }),
      60,
    );
  });

  // PyTorch's subgradients at the kink, which the authors' first step relies on (the zero-initialised last BN γ
  // of each residual block makes relu(0 + identity) tie at 0 for about half its entries).
  const kinked = (shape: Shape, rand: () => number, at: number): Float64Array =>
    Float64Array.from({ length: numel(shape) }, () => at + [-1, -0.5, 0, 0, 0.5, 1][Math.floor(rand() * 6)]);
  const gradOf = (y: T.Tensor, x: T.Tensor, xs: Float64Array, rand: () => number): { readonly g: Float64Array; readonly w: Float64Array } => {
    const { loss, weights } = weightedSum(y, 'w', rand);
    const [g] = vjp(loss, [x]);
    return { g: Float64Array.from(evalF64({ g }, { x: xs, w: weights }).g.data), w: weights };
  };

  test('relu: gradient exactly 0 at x = 0 (and at −0), 1 above, 0 below, as torch.relu; NaN stays NaN', () => {
    property(
      fc.property(shapeArb(0, 4), seedArb, (shape, seed) => {
        const rand = prng(seed);
        const x = T.input('x', shape);
        const xs = kinked(shape, rand, 0).map((v) => (v === 0 && rand() < 0.5 ? -0 : v));
        const { g, w } = gradOf(nn.relu(x), x, xs, rand);
        g.forEach((v, i) => assert.ok(v === (xs[i] > 0 ? w[i] : 0), `x = ${xs[i]}: gradient ${v}, PyTorch's ${xs[i] > 0 ? w[i] : 0}`));
        assert.deepEqual([...evalF64({ y: nn.relu(x) }, { x: xs }).y.data].map((v) => v + 0), [...xs].map((v) => Math.max(v, 0) + 0));
      }),
      60,
    );
    const x = T.input('x', [2]);
    assert.ok(Number.isNaN(evalF64({ y: nn.relu(x) }, { x: new Float64Array([NaN, 1]) }).y.data[0]), 'relu(NaN) is NaN');
  });

  test('clampMin: the whole gradient at a tie (x = lo), none below, as torch.clamp_min', () => {
    property(
      fc.property(shapeArb(0, 4), seedArb, fc.constantFrom(0, 1e-6, -0.25, 2), (shape, seed, lo) => {
        const rand = prng(seed);
        const x = T.input('x', shape);
        const xs = kinked(shape, rand, lo);
        const { g, w } = gradOf(nn.clampMin(x, lo), x, xs, rand);
        g.forEach((v, i) => assert.ok(v === (xs[i] >= lo ? w[i] : 0), `x = ${xs[i]}, lo = ${lo}: gradient ${v}`));
        assertClose(evalF64({ y: nn.clampMin(x, lo) }, { x: xs }).y.data, xs.map((v) => Math.max(v, lo)), 'clampMin');
      }),
      60,
    );
  });

  test('meanKeep/mean match hand computation; gradients match central differences', () => {
    property(
      fc.property(
        shapeArb(1, 4).chain((s) => fc.tuple(fc.constant(s), fc.subarray([...s.keys()]), fc.boolean())),
        seedArb,
        ([shape, axes, negativeAxes], seed) => {
          const rand = prng(seed);
          const x = T.input('x', shape);
          const xs = smooth(shape, rand);
          // Negative axes must mean the same as their positive counterparts.
          const asGiven = negativeAxes ? axes.map((a) => a - shape.length) : axes;
          const mk = nn.meanKeep(x, asGiven);
          assert.deepEqual(mk.shape, shape.map((d, i) => (axes.includes(i) ? 1 : d)));
          const r = evalF64({ mk, m: nn.mean(x) }, { x: xs });
          assertClose(r.mk.data, groupMean(xs, shape, axes), 'meanKeep');
          assertClose(r.m.data, [xs.reduce((a, c) => a + c, 0) / xs.length], 'mean');
          assert.deepEqual(vjpMismatches(mk, [x], { x: xs }, rand), []);
          assert.deepEqual(vjpMismatches(nn.mean(x), [x], { x: xs }, rand), []);
        },
      ),
      60,
    );
  });

  test('varianceKeep (biased and unbiased) matches hand computation; gradients match central differences', () => {
    property(
      fc.property(
        shapeArb(1, 4).chain((s) => fc.tuple(fc.constant(s), fc.subarray([...s.keys()], { minLength: 1 }), fc.boolean())),
        seedArb,
        ([shape, axes, unbiased], seed) => {
          const rand = prng(seed);
          const x = T.input('x', shape);
          const xs = smooth(shape, rand);
          const v = nn.varianceKeep(x, axes, unbiased);
          assertClose(evalF64({ v }, { x: xs }).v.data, groupVariance(xs, shape, axes, unbiased), `varianceKeep(unbiased=${unbiased})`);
          assert.deepEqual(vjpMismatches(v, [x], { x: xs }, rand), []);
        },
      ),
      60,
    );
  });
});

// ---- batch norm -----------------------------------------------------------------------------------------------
const bnShape = fc
  .tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 3 }), fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 2 }))
  .map(([n, c, rest]) => [n, c, ...rest])
  // At least 3 values per channel: with 1 the batch variance is 0 (a valid but degenerate case the
  // finite-difference check cannot see through eps), and 2 makes the normalized output ±1 regardless of x.
  .filter((s) => numel(s) / s[1] >= 3);

const BN_TOL: Tolerance = { ...defaultTolerance, rtol: 1e-5 };


/** A batch-norm case over `shape` (NCHW or NC): leaves named bn.*, and their values drawn from `rand`. */
function bnFixture(shape: readonly number[], rand: () => number) {
  const C = shape[1];
  const x = T.input('x', shape);
  const p = { weight: T.param('bn.weight', [C]), bias: T.param('bn.bias', [C]) };
  const state = { runningMean: T.input('bn.runningMean', [C]), runningVar: T.input('bn.runningVar', [C]) };
  const values = {
    x: smooth(shape, rand),
    'bn.weight': smooth([C], rand),
    'bn.bias': smooth([C], rand),
    'bn.runningMean': smooth([C], rand),
    'bn.runningVar': positive([C], rand),
  };
  return { C, eps: 1e-5, x, p, state, values };
}

describe('batchNorm', () => {
  test('training mode: output, running statistics and gradients (x, weight, bias)', () => {
    property(
      fc.property(bnShape, seedArb, fc.constantFrom(0.1, 0.01, 0.5), (shape, seed, momentum) => {
        const rand = prng(seed);
        const { C, eps, x, p, state, values } = bnFixture(shape, rand);
        const { y, state: next } = nn.batchNorm(x, p, state, { training: true, momentum, eps });
        const r = evalF64({ y, mean: next.runningMean, var: next.runningVar }, values);

        const axes = shape.map((_d, i) => i).filter((i) => i !== 1);
        const mu = groupMean(values.x, shape, axes);
        const biased = groupVariance(values.x, shape, axes, false);
        const unbiased = groupVariance(values.x, shape, axes, true);
        const channelOf = (flat: number) => Math.floor(flat / stridesOf(shape)[1]) % C;
        const expectedY = values.x.map((v, i) => {
          const c = channelOf(i);
          return ((v - mu[c]) / Math.sqrt(biased[c] + eps)) * values['bn.weight'][c] + values['bn.bias'][c];
        });
        assertClose(r.y.data, expectedY, 'batchNorm training output');
        // PyTorch: running = (1 − m)·old + m·batch, with the unbiased batch variance.
        assertClose(r.mean.data, values['bn.runningMean'].map((old, c) => (1 - momentum) * old + momentum * mu[c]), 'running mean');
        assertClose(r.var.data, values['bn.runningVar'].map((old, c) => (1 - momentum) * old + momentum * unbiased[c]), 'running var');

        const { loss, weights } = weightedSum(y, 'w', rand);
        const w = T.input('w', shape);
        const vg = valueAndGrad((params: nn.BatchNormParams) => ({
          value: T.sum(T.mul(nn.batchNorm(x, params, state, { training: true, momentum, eps }).y, w)),
          aux: undefined,
        }))(p);
        assert.equal(vg.value, loss, 'rebuilding the same loss must give the same (hash-consed) node');
        const leaves = [x, ...flatten(p as ParamTree, isTensor).map(([, t]) => t)];
        const grads = [vjp(loss, [x])[0], ...flatten(vg.grads, isTensor).map(([, t]) => t)];
        noFailures(checkGradients(loss, leaves, grads, { ...values, w: weights }, rand, BN_TOL), 'batchNorm training');
        // The running statistics are state, not part of the differentiated output: no gradient reaches them.
        assert.ok(vjp(loss, [state.runningMean, state.runningVar]).every((g) => g.op === 'const' && (g.params as { value: number }).value === 0));
      }),
      40,
    );
  });

  test('eval mode: output from running statistics, state unchanged, gradients (x, weight, bias, running stats)', () => {
    property(
      fc.property(bnShape, seedArb, (shape, seed) => {
        const rand = prng(seed);
        const { C, eps, x, p, state, values } = bnFixture(shape, rand);
        const { y, state: next } = nn.batchNorm(x, p, state, { training: false, eps });
        assert.equal(next, state, 'eval mode must return the state it was given');
        const channelOf = (flat: number) => Math.floor(flat / stridesOf(shape)[1]) % C;
        const expectedY = values.x.map((v, i) => {
          const c = channelOf(i);
          return ((v - values['bn.runningMean'][c]) / Math.sqrt(values['bn.runningVar'][c] + eps)) * values['bn.weight'][c] + values['bn.bias'][c];
        });
        assertClose(evalF64({ y }, values).y.data, expectedY, 'batchNorm eval output');
        assert.deepEqual(vjpMismatches(y, [x, p.weight, p.bias, state.runningMean, state.runningVar], values, rand), []);
      }),
      40,
    );
  });
});

// ---- softmax, logSoftmax --------------------------------------------------------------------------------------
const rowsArb = shapeArb(1, 3).chain((s) => fc.tuple(fc.constant(s), fc.integer({ min: -s.length, max: s.length - 1 })));

describe('softmax and logSoftmax', () => {
  test('rows sum to 1, exp(logSoftmax) = softmax, gradients match central differences', () => {
    property(
      fc.property(rowsArb, seedArb, ([shape, axis], seed) => {
        const rand = prng(seed);
        const x = T.input('x', shape);
        const xs = scaledBy(2, smooth(shape, rand));
        const r = evalF64({ s: nn.softmax(x, axis), ls: nn.logSoftmax(x, axis) }, { x: xs });
        const ax = normAxis(axis, shape.length);
        const expected = rowSums(xs, shape, ax, Math.exp);
        const { group } = groupOf(shape, [ax]);
        assertClose(r.s.data, xs.map((v, i) => Math.exp(v) / expected[group[i]]), 'softmax');
        assertClose(rowSums(r.s.data, shape, ax), new Float64Array(expected.length).fill(1), 'softmax row sums');
        assertClose(r.ls.data.map(Math.exp), r.s.data, 'exp(logSoftmax)');
        assert.deepEqual(vjpMismatches(nn.softmax(x, axis), [x], { x: xs }, rand), []);
        assert.deepEqual(vjpMismatches(nn.logSoftmax(x, axis), [x], { x: xs }, rand), []);
      }),
      60,
    );
  });

  test('stable for inputs around ±1e4 in float32 and float64 (no NaN/Inf, shift-invariant)', () => {
    property(
      fc.property(rowsArb, seedArb, fc.constantFrom(1e4, -1e4), ([shape, axis], seed, shift) => {
        const rand = prng(seed);
        const x = T.input('x', shape);
        // Multiples of 1/64 in [-2, 2]: exact in float32 even after adding ±1e4 (its ulp there is 2⁻¹⁰), so
        // shifting changes nothing but the magnitude and the f32 results must agree with the unshifted ones.
        const xs = smooth(shape, rand).map((v) => Math.round(v * 64) / 64);
        const shifted = xs.map((v) => v + shift);
        const ax = normAxis(axis, shape.length);
        const g = makeGraph({ s: nn.softmax(x, axis), ls: nn.logSoftmax(x, axis) });
        for (const precision of ['f32', 'f64'] as const) {
          const run = (v: Float64Array) => {
            const r = interpret(g, { x: v }, precision);
            if (E.isLeft(r)) throw new Error(r.left);
            return r.right;
          };
          const [a, c] = [run(xs), run(shifted)];
          assert.ok([...c.s.data, ...c.ls.data].every(Number.isFinite), `${precision}: non-finite softmax at shift ${shift}`);
          const tol = precision === 'f32' ? 1e-6 : 1e-12;
          assertClose(c.s.data, a.s.data, `${precision} softmax(x + ${shift})`, tol, 1e-7);
          assertClose(c.ls.data, a.ls.data, `${precision} logSoftmax(x + ${shift})`, tol, 1e-6);
          assertClose(rowSums(c.s.data, shape, ax), new Float64Array(numel(shape) / shape[ax]).fill(1), `${precision} row sums`, tol * 4);
        }
        // Rows mixing +1e4 and −1e4: the softmax saturates to (near) one-hot but stays finite and normalized.
        const mixed = xs.map((v, i) => v + (i % 2 === 0 ? 1e4 : -1e4));
        const r = interpret(g, { x: mixed }, 'f32');
        if (E.isLeft(r)) throw new Error(r.left);
        assert.ok([...r.right.s.data, ...r.right.ls.data].every(Number.isFinite), 'non-finite softmax on mixed ±1e4 rows');
        assertClose(rowSums(r.right.s.data, shape, ax), new Float64Array(numel(shape) / shape[ax]).fill(1), 'mixed row sums', 1e-6);
      }),
      40,
    );
  });
});

// ---- l2Normalize, cosineSimilarity ----------------------------------------------------------------------------
describe('l2Normalize and cosineSimilarity', () => {
  test('l2Normalize gives unit rows and matches central differences', () => {
    property(
      fc.property(rowsArb, seedArb, ([shape, axis], seed) => {
        const rand = prng(seed);
        const x = T.input('x', shape);
        const xs = smooth(shape, rand);
        const y = nn.l2Normalize(x, axis);
        const ax = normAxis(axis, shape.length);
        const norms = rowSums(xs, shape, ax, (v) => v * v).map(Math.sqrt);
        const { group } = groupOf(shape, [ax]);
        const ys = evalF64({ y }, { x: xs }).y.data;
        assertClose(ys, xs.map((v, i) => v / Math.max(norms[group[i]], 1e-12)), 'l2Normalize');
        // Rows whose norm is far above eps must come out with unit norm.
        const outNorms = rowSums(ys, shape, ax, (v) => v * v).map(Math.sqrt);
        outNorms.forEach((n, k) => norms[k] > 1e-6 && assert.ok(Math.abs(n - 1) < 1e-12, `row ${k} has norm ${n}`));
        assert.deepEqual(vjpMismatches(y, [x], { x: xs }, rand), []);
      }),
      60,
    );
  });

  test('l2Normalize of a zero row is zero, with a finite (no NaN) gradient, in f32 and f64', () => {
    property(
      fc.property(rowsArb, seedArb, ([shape, axis], seed) => {
        const rand = prng(seed);
        const x = T.input('x', shape);
        const ax = normAxis(axis, shape.length);
        // Zero the first row along `axis`; the others stay random.
        const { group } = groupOf(shape, [ax]);
        const xs = smooth(shape, rand).map((v, i) => (group[i] === 0 ? 0 : v));
        const y = nn.l2Normalize(x, axis);
        const { loss, weights } = weightedSum(y, 'w', rand);
        const g = makeGraph({ y, dx: vjp(loss, [x])[0] });
        for (const precision of ['f32', 'f64'] as const) {
          const r = interpret(g, { x: xs, w: weights }, precision);
          if (E.isLeft(r)) throw new Error(r.left);
          assert.ok(r.right.y.data.every((v, i) => Number.isFinite(v) && (group[i] !== 0 || v === 0)), `${precision}: zero row must map to zeros`);
          assert.ok(r.right.dx.data.every(Number.isFinite), `${precision}: gradient at a zero row is not finite: ${r.right.dx.data.join(',')}`);
        }
      }),
      40,
    );
  });

  test('cosineSimilarity matches hand computation, cos(a, a) = 1, gradients match central differences', () => {
    property(
      fc.property(rowsArb, seedArb, ([shape, axis], seed) => {
        const rand = prng(seed);
        const a = T.input('a', shape);
        const c = T.input('c', shape);
        const values = { a: smooth(shape, rand), c: smooth(shape, rand) };
        const ax = normAxis(axis, shape.length);
        const na = rowSums(values.a, shape, ax, (v) => v * v).map((s) => Math.max(Math.sqrt(s), 1e-8));
        const nc = rowSums(values.c, shape, ax, (v) => v * v).map((s) => Math.max(Math.sqrt(s), 1e-8));
        const products = values.a.map((v, i) => v * values.c[i]);
        const expected = rowSums(products, shape, ax).map((s, k) => s / (na[k] * nc[k]));
        const r = evalF64({ cos: nn.cosineSimilarity(a, c, axis), self: nn.cosineSimilarity(a, a, axis) }, values);
        assert.deepEqual(r.cos.shape, shape.filter((_d, i) => i !== ax));
        assertClose(r.cos.data, expected, 'cosineSimilarity');
        assertClose(r.self.data, new Float64Array(expected.length).fill(1), 'cos(a, a)');
        assert.deepEqual(vjpMismatches(nn.cosineSimilarity(a, c, axis), [a, c], values, rand), []);
      }),
      60,
    );
  });
});

// ---- linear, conv1x1 ------------------------------------------------------------------------------------------
describe('linear and conv1x1', () => {
  test('linear = x·Wᵀ + b on the last axis; valueAndGrad matches central differences', () => {
    property(
      fc.property(shapeArb(0, 2), dim, dim, fc.boolean(), seedArb, (lead, inF, outF, withBias, seed) => {
        const rand = prng(seed);
        const x = T.input('x', [...lead, inF]);
        const weight = T.param('fc.weight', [outF, inF]);
        const bias = T.param('fc.bias', [outF]);
        const p: nn.LinearParams = withBias ? { weight, bias } : { weight };
        // valueAndGrad differentiates a tree of tensors; the optional bias is simply absent from it.
        const tree: ParamTree = withBias ? { weight, bias } : { weight };
        const asLinear = (t: ParamTree): nn.LinearParams => ({
          weight: t.weight as T.Tensor<2>,
          ...(t.bias === undefined ? {} : { bias: t.bias as T.Tensor<1> }),
        });
        const values: Record<string, Float64Array> = { x: smooth(x.shape, rand), 'fc.weight': smooth([outF, inF], rand), 'fc.bias': smooth([outF], rand) };
        const y = nn.linear(x, p);
        assert.deepEqual(y.shape, [...lead, outF]);
        const rows = numel(lead);
        const expected = new Float64Array(rows * outF);
        for (let r = 0; r < rows; r++)
          for (let o = 0; o < outF; o++) {
            let acc = withBias ? values['fc.bias'][o] : 0;
            for (let i = 0; i < inF; i++) acc += values.x[r * inF + i] * values['fc.weight'][o * inF + i];
            expected[r * outF + o] = acc;
          }
        assertClose(evalF64({ y }, values).y.data, expected, 'linear');

        const wy = weightedSum(y, 'w', rand);
        const vg = valueAndGrad((t: ParamTree) => ({ value: T.sum(T.mul(nn.linear(x, asLinear(t)), T.input('w', y.shape))), aux: undefined }))(tree);
        assert.equal(vg.value, wy.loss, 'valueAndGrad must build the same (hash-consed) loss node');
        const named = flatten(vg.grads, isTensor);
        assert.deepEqual(named.map(([n]) => n), withBias ? ['bias', 'weight'] : ['weight']);
        const leaves = [x, ...flatten(tree, isTensor).map(([, t]) => t)];
        const grads = [vjp(wy.loss, [x])[0], ...named.map(([, t]) => t)];
        noFailures(checkGradients(wy.loss, leaves, grads, { ...values, w: wy.weights }, rand), 'linear');
      }),
      60,
    );
  });

  test('conv1x1 mixes channels per pixel; gradients match central differences', () => {
    property(
      fc.property(fc.tuple(dim, dim, dim, dim, dim), seedArb, ([n, cin, cout, h, w], seed) => {
        const rand = prng(seed);
        const x = T.input('x', [n, cin, h, w]);
        const k = T.param('proj.weight', [cout, cin, 1, 1]);
        const values = { x: smooth(x.shape, rand), 'proj.weight': smooth(k.shape, rand) };
        const y = nn.conv1x1(x, k);
        const expected = new Float64Array(n * cout * h * w);
        for (let b = 0; b < n; b++)
          for (let o = 0; o < cout; o++)
            for (let q = 0; q < h * w; q++) {
              let acc = 0;
              for (let c = 0; c < cin; c++) acc += values.x[(b * cin + c) * h * w + q] * values['proj.weight'][o * cin + c];
              expected[(b * cout + o) * h * w + q] = acc;
            }
        assertClose(evalF64({ y }, values).y.data, expected, 'conv1x1');
        assert.deepEqual(vjpMismatches(y, [x, k], values, rand), []);
      }),
      60,
    );
  });
});

// ---- multi-head attention -------------------------------------------------------------------------------------
interface AttentionCase {
  readonly batch: number;
  readonly length: number;
  readonly heads: number;
  readonly headDim: number;
  readonly temperature: number | undefined;
}
const attentionArb: fc.Arbitrary<AttentionCase> = fc.record({
  batch: fc.integer({ min: 1, max: 2 }),
  length: fc.integer({ min: 1, max: 4 }),
  heads: fc.integer({ min: 1, max: 3 }),
  headDim: fc.integer({ min: 1, max: 3 }),
  temperature: fc.option(fc.constantFrom(0.2, 0.5, 1), { nil: undefined }),
});

/**
 * torch.nn.MultiheadAttention(D, heads, batch_first=True)(x, x, x) written as direct loops, one head at a
 * time: q/k/v = x·W_{q,k,v}ᵀ + b from the packed in_proj, scores = q·k/√dh (or, for the cosine variant,
 * cos(q, k)/temperature with each operand normalized by max(‖·‖, 1e-12)), softmax over keys, the heads'
 * contexts concatenated, out_proj, and the attention weights averaged over heads.
 */
function referenceAttention(
  x: Float64Array,
  w: { inW: Float64Array; inB: Float64Array; outW: Float64Array; outB: Float64Array },
  c: AttentionCase,
): { out: Float64Array; weights: Float64Array } {
  const { batch: B, length: L, heads: H, headDim: dh } = c;
  const D = H * dh;
  const out = new Float64Array(B * L * D);
  const weights = new Float64Array(B * L * L);
  const project = (b: number, l: number, row: number): number => {
    let acc = w.inB[row];
    for (let i = 0; i < D; i++) acc += x[(b * L + l) * D + i] * w.inW[row * D + i];
    return acc;
  };
  for (let b = 0; b < B; b++) {
    const ctx = new Float64Array(L * D);
    for (let h = 0; h < H; h++) {
      const vec = (part: number, l: number): number[] => {
        const v = [...Array(dh).keys()].map((j) => project(b, l, part * D + h * dh + j));
        if (c.temperature === undefined) return v;
        const n = Math.max(Math.hypot(...v), 1e-12);
        return v.map((e) => e / n);
      };
      for (let l = 0; l < L; l++) {
        const q = vec(0, l);
        const scores = [...Array(L).keys()].map((m) => {
          const k = vec(1, m);
          const s = q.reduce((a, qe, j) => a + qe * k[j], 0);
          return c.temperature === undefined ? s / Math.sqrt(dh) : s / c.temperature;
        });
        const top = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - top));
        const z = e.reduce((a, v) => a + v, 0);
        for (let m = 0; m < L; m++) {
          const a = e[m] / z;
          weights[(b * L + l) * L + m] += a / H;
          for (let j = 0; j < dh; j++) ctx[l * D + h * dh + j] += a * project(b, m, 2 * D + h * dh + j);
        }
      }
    }
    for (let l = 0; l < L; l++)
      for (let o = 0; o < D; o++) {
        let acc = w.outB[o];
        for (let i = 0; i < D; i++) acc += ctx[l * D + i] * w.outW[o * D + i];
        out[(b * L + l) * D + o] = acc;
      }
  }
  return { out, weights };
}

describe('multiHeadAttention', () => {
  test('forward matches a per-head loop of nn.MultiheadAttention; weights rows sum to 1', () => {
    property(
      fc.property(attentionArb, seedArb, (c, seed) => {
        const rand = prng(seed);
        const D = c.heads * c.headDim;
        const x = T.input('x', [c.batch, c.length, D]);
        const p: nn.AttentionParams = {
          inProjWeight: T.param('attn.in_proj_weight', [3 * D, D]),
          inProjBias: T.param('attn.in_proj_bias', [3 * D]),
          outProjWeight: T.param('attn.out_proj.weight', [D, D]),
          outProjBias: T.param('attn.out_proj.bias', [D]),
        };
        const w = { inW: smooth([3 * D, D], rand), inB: smooth([3 * D], rand), outW: smooth([D, D], rand), outB: smooth([D], rand) };
        const xs = smooth(x.shape, rand);
        const { out, weights } = nn.multiHeadAttention(x, p, { heads: c.heads, cosineTemperature: c.temperature });
        assert.deepEqual(out.shape, [c.batch, c.length, D]);
        assert.deepEqual(weights.shape, [c.batch, c.length, c.length]);
        const r = evalF64(
          { out, weights },
          { x: xs, 'attn.in_proj_weight': w.inW, 'attn.in_proj_bias': w.inB, 'attn.out_proj.weight': w.outW, 'attn.out_proj.bias': w.outB },
        );
        const ref = referenceAttention(xs, w, c);
        // Scores reach |q·k|/√dh ≈ 30 with these magnitudes; exp amplifies their ~1e-15 rounding into the
        // weights, which stays far below 1e-10.
        assertClose(r.out.data, ref.out, 'attention output', 1e-10, 1e-10);
        assertClose(r.weights.data, ref.weights, 'attention weights', 1e-10, 1e-12);
        assertClose(rowSums(r.weights.data, r.weights.shape, 2), new Float64Array(c.batch * c.length).fill(1), 'weights row sums');
      }),
      50,
    );
  });

  test('gradients (x and every projection, via valueAndGrad) match central differences', () => {
    property(
      fc.property(attentionArb, seedArb, (c, seed) => {
        const rand = prng(seed);
        const D = c.heads * c.headDim;
        const x = T.input('x', [c.batch, c.length, D]);
        const p = {
          inProjWeight: T.param('attn.in_proj_weight', [3 * D, D]),
          inProjBias: T.param('attn.in_proj_bias', [3 * D]),
          outProjWeight: T.param('attn.out_proj.weight', [D, D]),
          outProjBias: T.param('attn.out_proj.bias', [D]),
        };
        // Weights scaled to keep the logits O(1): saturated softmaxes make every derivative ~0 and the
        // check vacuous.
        const values: Record<string, Float64Array> = {
          x: smooth(x.shape, rand),
          'attn.in_proj_weight': scaledBy(0.5, smooth([3 * D, D], rand)),
          'attn.in_proj_bias': scaledBy(0.5, smooth([3 * D], rand)),
          'attn.out_proj.weight': scaledBy(0.5, smooth([D, D], rand)),
          'attn.out_proj.bias': smooth([D], rand),
          wOut: smooth([c.batch, c.length, D], rand),
          wAttn: smooth([c.batch, c.length, c.length], rand),
        };
        const wOut = T.input('wOut', [c.batch, c.length, D]);
        const wAttn = T.input('wAttn', [c.batch, c.length, c.length]);
        const lossOf = (params: nn.AttentionParams): T.Tensor<0> => {
          const { out, weights } = nn.multiHeadAttention(x, params, { heads: c.heads, cosineTemperature: c.temperature });
          return T.add(T.sum(T.mul(out, wOut)), T.sum(T.mul(weights, wAttn)));
        };
        const vg = valueAndGrad((params: typeof p) => ({ value: lossOf(params), aux: undefined }))(p);
        const leaves = [x, ...flatten(p as ParamTree, isTensor).map(([, t]) => t)];
        const grads: Node[] = [vjp(vg.value, [x])[0], ...flatten(vg.grads, isTensor).map(([, t]) => t)];
        noFailures(checkGradients(vg.value, leaves, grads, values, rand), `attention ${JSON.stringify(c)}`);
      }),
      40,
    );
  });
});

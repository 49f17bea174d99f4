// Registry-wide properties: every primitive (iterated from the registry's generators, so new primitives
// are covered automatically) must have a shape rule that agrees with its interpreter, a VJP that agrees with
// central finite differences in float64, and — where it is linear — pass the adjoint (dot-product) test.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as E from 'fp-ts/lib/Either.js';
import fc from 'fast-check';
import { vjp } from '../compiler/autodiff.ts';
import * as b from '../compiler/build.ts';
import { makeGraph, numel, stridesOf, type Node } from '../compiler/ir.ts';
import { interpret, type Bindings } from '../compiler/interp/interpret.ts';
import type { PrimName } from '../compiler/params.ts';
import { registry } from '../compiler/registry.ts';
import { buildCase, drawValues, generators, prng, type Case } from './gen.ts';
import { property } from './prop.ts';

const evalF64 = (outputs: Record<string, Node>, bindings: Bindings) => {
  const r = interpret(makeGraph(outputs), bindings, 'f64');
  if (E.isLeft(r)) throw new Error(r.left);
  return r.right;
};
const dotp = (a: ArrayLike<number>, c: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * c[i];
  return s;
};
const withSeed = <Op extends PrimName>(gen: fc.Arbitrary<Case<Op>>) => fc.tuple(gen, fc.integer({ min: 1, max: 2 ** 31 - 1 }));

function bind(c: Case<PrimName>, seed: number): Record<string, Float64Array> {
  const rand = prng(seed);
  return Object.fromEntries(c.operands.map((o, i) => [`x${i}`, drawValues(o, rand)]));
}

// Central differences in float64 with h = 1e-5 have truncation error O(h²·f''') ≈ 1e-10 and rounding error
// ≈ 1e-16/h ≈ 1e-11 relative to the values involved; 1e-6 relative (plus 1e-7 absolute for results near 0)
// leaves two orders of magnitude of margin while still catching any wrong factor or sign.
const H = 1e-5;
const RTOL = 1e-6;
const ATOL = 1e-7;

const differentiable = (c: Case<PrimName>) =>
  c.operands.length > 0 && c.operands.some((o) => o.dtype === 'f32') && !['lt', 'le', 'eq', 'ne', 'topk', 'cast', 'sign', 'stopGradient'].includes(c.op);

describe('every primitive in the registry', () => {
  for (const name of Object.keys(generators) as PrimName[]) {
    const gen = generators[name] as fc.Arbitrary<Case<PrimName>>;

    test(`${name}: shape rule agrees with the interpreter`, () => {
      property(
        fc.property(withSeed(gen), ([c, seed]) => {
          const { node } = buildCase(c);
          assert.ok(node.valid, `generated case is ill-typed: ${node.error}`);
          const bindings = { ...bind(c, seed), p: new Float64Array(numel(node.shape)).fill(0.25), i: new Float64Array(numel(node.shape)).fill(0.5) };
          const out = evalF64({ y: node }, bindings).y;
          assert.equal(out.data.length, numel(node.shape));
          if (node.dtype === 'bool') assert.ok(out.data.every((v) => v === 0 || v === 1), 'bool outputs must be 0/1');
          if (node.dtype === 'i32') assert.ok(out.data.every(Number.isInteger), 'i32 outputs must be integers');
        }),
        40,
      );
    });

    if (name === 'param' || name === 'input' || name === 'const' || name === 'iota') continue;

    test(`${name}: VJP agrees with central finite differences (float64)`, () => {
      property(
        fc.property(withSeed(gen), ([c, seed]) => {
          const { node, leaves } = buildCase(c);
          // Scalarize with a random weighting w so every output element is checked.
          const w = b.input('w', node.shape, 'f32');
          const loss = b.sum(b.mul(b.cast(node, 'f32'), w), node.shape.map((_d, i) => i));
          const grads = vjp(loss, leaves);
          const values = bind(c, seed);
          const rand = prng(seed ^ 0x5bd1e995);
          values.w = drawValues({ shape: node.shape, dtype: 'f32', values: 'smooth' }, rand);
          const outs: Record<string, Node> = { loss };
          grads.forEach((g, i) => (outs[`g${i}`] = g));
          const base = evalF64(outs, values);
          c.operands.forEach((o, i) => {
            if (o.dtype !== 'f32') return;
            const g = base[`g${i}`].data;
            assert.equal(g.length, numel(o.shape), `gradient of operand ${i} has the wrong size`);
            if (!differentiable(c)) {
              assert.ok(g.every((v) => v === 0), `${name} must have a zero gradient`);
              return;
            }
            const v = drawValues({ shape: o.shape, dtype: 'f32', values: 'smooth' }, rand);
            const shifted = (sgn: number) => {
              const x = Float64Array.from(values[`x${i}`], (xv, k) => xv + sgn * H * v[k]);
              return evalF64({ loss }, { ...values, [`x${i}`]: x }).loss.data[0];
            };
            const fd = (shifted(1) - shifted(-1)) / (2 * H);
            const an = dotp(g, v);
            assert.ok(
              Math.abs(fd - an) <= ATOL + RTOL * Math.max(Math.abs(fd), Math.abs(an), 1),
              `operand ${i}: finite difference ${fd} vs VJP ${an} (case ${JSON.stringify(c)})`,
            );
          });
        }),
        40,
      );
    });

    const linear = registry[name].linearIn;
    if (linear === 'all' || linear.length > 0) {
      test(`${name}: adjoint (dot-product) test in its linear operands`, () => {
        property(
          fc.property(withSeed(gen), ([c, seed]) => {
            const { node, leaves } = buildCase(c);
            const indices = linear === 'all' ? leaves.map((_l, i) => i) : linear;
            const values = bind(c, seed);
            const rand = prng(seed ^ 0x2545f491);
            const ct = b.input('ct', node.shape, 'f32');
            const grads = vjp(b.sum(b.mul(node, ct), node.shape.map((_d, i) => i)), leaves);
            values.ct = drawValues({ shape: node.shape, dtype: 'f32', values: 'smooth' }, rand);
            for (const i of indices) {
              // <f(x) − f(0), y> = <x, f*(y)> holds for linear and affine maps (pad with a nonzero value).
              const zeroed = { ...values, [`x${i}`]: new Float64Array(values[`x${i}`].length) };
              const fx = evalF64({ y: node }, values).y.data;
              const f0 = evalF64({ y: node }, zeroed).y.data;
              const lhs = dotp(Float64Array.from(fx, (v, k) => v - f0[k]), values.ct);
              const rhs = dotp(values[`x${i}`], evalF64({ g: grads[i] }, values).g.data);
              assert.ok(Math.abs(lhs - rhs) <= 1e-9 * Math.max(1, Math.abs(lhs)), `operand ${i}: <Ax,y>=${lhs} but <x,A*y>=${rhs}`);
            }
          }),
          30,
        );
      });
    }
  }
});

// ---- tie and kink conventions (PyTorch's where the authors' code relies on them) --------------------------------
// The float64 checks above draw 'separated' values, since central differences are undefined at a tie; these
// properties draw values from a tiny set instead, so ties are the rule, and compare the VJP exactly with a
// brute-force oracle of PyTorch's convention written here: the whole cotangent of a max goes to the FIRST
// maximum in scan order (torch.max(x, dim)'s index, max_pool2d's recorded index).
const tied = (n: number, rand: () => number): Float64Array => Float64Array.from({ length: n }, () => Math.floor(rand() * 3) - 1);

/** The VJP of Σ node ⊙ w with respect to its input leaf, in float64. */
function tiedGradient(node: Node, leaf: Node, xs: Float64Array, w: Float64Array): Float64Array {
  const ct = b.input('w', node.shape, 'f32');
  const [g] = vjp(b.sum(b.mul(node, ct), node.shape.map((_d, i) => i)), [leaf]);
  return Float64Array.from(evalF64({ g }, { x: xs, w }).g.data);
}

describe('tie conventions: the whole gradient goes to the first maximum', () => {
  test('reduceMax over random axes, values with ties, equals the brute-force first-maximum oracle', () => {
    property(
      fc.property(generators.reduceMax as fc.Arbitrary<Case<'reduceMax'>>, fc.integer({ min: 1, max: 2 ** 31 - 1 }), (c, seed) => {
        const rand = prng(seed);
        const shape = c.operands[0].shape;
        const axes = c.params.axes;
        const x = b.input('x', shape, 'f32');
        const node = b.reduceMax(x, axes);
        const xs = tied(numel(shape), rand);
        const w = Float64Array.from({ length: numel(node.shape) }, () => rand() * 4 - 2);
        // Oracle: walk x in row-major order (within one output slot that is row-major order over the reduced
        // axes) and keep the first strictly larger value, as torch.max(x, dim) does.
        const kept = shape.map((_d, i) => i).filter((i) => !axes.includes(i));
        const outStrides = stridesOf(kept.map((i) => shape[i]));
        const strides = stridesOf(shape);
        const best = new Map<number, number>();
        for (let flat = 0; flat < xs.length; flat++) {
          const slot = kept.reduce((acc, ax, k) => acc + (Math.floor(flat / strides[ax]) % shape[ax]) * outStrides[k], 0);
          const at = best.get(slot);
          if (at === undefined || xs[flat] > xs[at]) best.set(slot, flat);
        }
        const want = new Float64Array(xs.length);
        for (const [slot, flat] of best) want[flat] += w[slot];
        const got = tiedGradient(node, x, xs, w);
        got.forEach((v, k) => assert.ok(v === want[k], `[${k}] ${v} vs ${want[k]}: x = [${[...xs]}] (shape [${shape}], axes [${axes}])`));
      }),
      150,
    );
  });

  test('max pooling with ties (random kernel, stride, padding) equals the brute-force first-maximum oracle', () => {
    const maxPools = (generators.pool2d as fc.Arbitrary<Case<'pool2d'>>).filter((c) => c.params.mode === 'max');
    property(
      fc.property(maxPools, fc.integer({ min: 1, max: 2 ** 31 - 1 }), (c, seed) => {
        const rand = prng(seed);
        const shape = c.operands[0].shape;
        const { kernel, stride, padding } = c.params;
        const x = b.input('x', shape, 'f32');
        const node = b.pool2d(x, 'max', kernel, stride, padding);
        const xs = tied(numel(shape), rand);
        const w = Float64Array.from({ length: numel(node.shape) }, () => rand() * 4 - 2);
        // Oracle: PyTorch's max_pool2d scans each window's in-bounds positions row by row and records the
        // position of the first strictly larger value; the backward adds the window's cotangent there.
        const [N, C, H, W] = shape;
        const [, , Ho, Wo] = node.shape;
        const want = new Float64Array(xs.length);
        for (let nc = 0; nc < N * C; nc++)
          for (let i = 0; i < Ho; i++)
            for (let j = 0; j < Wo; j++) {
              let at = -1;
              for (let a = 0; a < kernel[0]; a++)
                for (let e = 0; e < kernel[1]; e++) {
                  const [y, xx] = [i * stride[0] - padding[0] + a, j * stride[1] - padding[1] + e];
                  if (y < 0 || y >= H || xx < 0 || xx >= W) continue;
                  const flat = (nc * H + y) * W + xx;
                  if (at < 0 || xs[flat] > xs[at]) at = flat;
                }
              want[at] += w[(nc * Ho + i) * Wo + j];
            }
        const got = tiedGradient(node, x, xs, w);
        got.forEach((v, k) => assert.ok(Math.abs(v - want[k]) <= 1e-12, `[${k}] ${v} vs ${want[k]}: x = [${[...xs]}] (${JSON.stringify(c.params)}, shape [${shape}])`));
      }),
      150,
    );
  });

  test('maximum/minimum: the strict winner takes the cotangent, a tie goes to the second operand', () => {
    property(
      fc.property(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 2 ** 31 - 1 }), (n, seed) => {
        const rand = prng(seed);
        const [a, c] = [b.input('x', [n], 'f32'), b.input('c', [n], 'f32')];
        const [as, cs] = [tied(n, rand), tied(n, rand)];
        const w = Float64Array.from({ length: n }, () => rand() * 4 - 2);
        for (const [op, wins] of [[b.maximum, (p: number, q: number) => p > q], [b.minimum, (p: number, q: number) => p < q]] as const) {
          const [ga, gc] = vjp(b.sum(b.mul(op(a, c), b.input('w', [n], 'f32')), [0]), [a, c]);
          const got = evalF64({ ga, gc }, { x: as, c: cs, w });
          for (let i = 0; i < n; i++) {
            const first = wins(as[i], cs[i]);
            assert.ok(got.ga.data[i] === (first ? w[i] : 0) && got.gc.data[i] === (first ? 0 : w[i]), `${as[i]} vs ${cs[i]}: [${got.ga.data[i]}, ${got.gc.data[i]}]`);
          }
        }
      }),
      60,
    );
  });

  test('abs has gradient 0 at 0 (PyTorch: grad·sgn(x); JAX would give 1); sign has none, at 0 included', () => {
    const x = b.input('x', [4], 'f32');
    const xs = new Float64Array([-2, 0, -0, 2]);
    const [ga] = vjp(b.sum(b.abs(x), [0]), [x]);
    assert.deepEqual([...evalF64({ ga }, { x: xs }).ga.data].map((v) => v + 0), [-1, 0, 0, 1]);
    const [gs] = vjp(b.sum(b.mul(b.sign(x), x), [0]), [x]); // only the x factor contributes
    assert.deepEqual([...evalF64({ gs }, { x: xs }).gs.data].map((v) => v + 0), [-1, 0, 0, 1]);
  });

  test('topk: among equal values the lower index ranks first (jax.lax.top_k; torch.topk leaves it unspecified)', () => {
    property(
      fc.property(fc.integer({ min: 1, max: 10 }), fc.boolean(), fc.integer({ min: 1, max: 2 ** 31 - 1 }), (n, largest, seed) => {
        const rand = prng(seed);
        const xs = tied(n, rand);
        const k = 1 + Math.floor(rand() * n);
        const got = [...evalF64({ i: b.topk(b.input('x', [n], 'f32'), k, 0, largest) }, { x: xs }).i.data];
        const want = [...xs.keys()].sort((i, j) => (largest ? xs[j] - xs[i] : xs[i] - xs[j]) || i - j).slice(0, k);
        assert.deepEqual(got, want, `x = [${[...xs]}], k = ${k}`);
      }),
      60,
    );
  });
});

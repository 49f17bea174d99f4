// Properties of the DSL surface: hash-consing laws, rank typing, whole-graph shape checking, parameter trees,
// grad over trees, stopGradient, interpreter errors as values, and float32 vs float64 interpretation.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as E from 'fp-ts/lib/Either.js';
import fc from 'fast-check';
import { vjp } from '../compiler/autodiff.ts';
import { makeGraph, numel, reachable, showShape, withScope, type Node, type Shape } from '../compiler/ir.ts';
import { interpret } from '../compiler/interp/interpret.ts';
import { cse } from '../compiler/passes/index.ts';
import type { PrimName } from '../compiler/params.ts';
import { formatShapeErrors, typecheck } from '../compiler/typecheck.ts';
import { grad, valueAndGrad } from '../dsl/grad.ts';
import * as nn from '../dsl/nn.ts';
import * as T from '../dsl/tensor.ts';
import { flatten, isTensor, mapTree, specOf, TreeSpec, unflatten, type ParamTree, type Tree } from '../dsl/tree.ts';
import { anyCase, buildCase, drawValues, prng, type Case } from './gen.ts';
import { checkGradients, evalF64 } from './gradcheck.ts';
import { property } from './prop.ts';

const seedArb = fc.integer({ min: 1, max: 2 ** 31 - 1 });
const dim = fc.integer({ min: 1, max: 4 });
const shapeArb = (minRank: number, maxRank: number) =>
  fc.integer({ min: minRank, max: maxRank }).chain((r) => fc.array(dim, { minLength: r, maxLength: r }));
const smooth = (shape: Shape, rand: () => number): Float64Array => drawValues({ shape, dtype: 'f32', values: 'smooth' }, rand);

// ---- hash-consing ---------------------------------------------------------------------------------------------
const stepOps = ['add', 'sub', 'mul', 'maximum', 'neg', 'tanh', 'scale', 'flip', 'sumKeep', 'softmax'] as const;
interface Step {
  readonly op: (typeof stepOps)[number];
  readonly a: number;
  readonly b: number;
  readonly k: number;
}
const stepArb: fc.Arbitrary<Step> = fc.record({
  op: fc.constantFrom(...stepOps),
  a: fc.nat(),
  b: fc.nat(),
  k: fc.constantFrom(0, 1, -1, 0.5, 2),
});

/** Build a random expression over two [2,3] inputs; every intermediate tensor is returned, leaves first. */
function buildSteps(steps: readonly Step[], names: readonly [string, string]): T.Tensor[] {
  const pool: T.Tensor[] = [T.input(names[0], [2, 3]), T.input(names[1], [2, 3])];
  for (const s of steps) {
    const x = pool[s.a % pool.length];
    const y = pool[s.b % pool.length];
    const next: T.Tensor = {
      add: () => T.add(x, y),
      sub: () => T.sub(x, y),
      mul: () => T.mul(x, y),
      maximum: () => T.maximum(x, y),
      neg: () => T.neg(x),
      tanh: () => T.tanh(x),
      scale: () => T.mul(x, s.k),
      flip: () => T.flip(x, [s.b % 2]),
      sumKeep: () => T.add(x, T.sumKeep(y, [s.b % 2])),
      softmax: () => nn.softmax(x, s.b % 2),
    }[s.op]();
    pool.push(next);
  }
  return pool;
}

const commutativeOps = { add: T.add, mul: T.mul, maximum: T.maximum, minimum: T.minimum, eq: T.eq, ne: T.ne } as const;

describe('hash-consing', () => {
  test('building the same expression twice yields the identical node at every step', () => {
    property(
      fc.property(fc.array(stepArb, { minLength: 1, maxLength: 12 }), (steps) => {
        const first = buildSteps(steps, ['hc.a', 'hc.b']);
        const second = buildSteps(steps, ['hc.a', 'hc.b']);
        first.forEach((n, i) => assert.equal(n, second[i], `step ${i} (${n.op}) was rebuilt as a new node`));
      }),
      100,
    );
  });

  test('renaming an input changes exactly the nodes that depend on it', () => {
    property(
      fc.property(fc.array(stepArb, { minLength: 1, maxLength: 12 }), (steps) => {
        const original = buildSteps(steps, ['hc.a', 'hc.b']);
        const renamed = buildSteps(steps, ['hc.a2', 'hc.b']);
        const leaf = original[0];
        original.forEach((n, i) => {
          const depends = reachable([n]).includes(leaf);
          assert.equal(n === renamed[i], !depends, `step ${i} (${n.op}): depends on the renamed input: ${depends}`);
        });
      }),
      100,
    );
  });

  test('constants are the same node exactly when value (SameValue: NaN = NaN, -0 ≠ 0), shape and dtype agree', () => {
    const special = fc.constantFrom(0, -0, NaN, Infinity, -Infinity, 1, 1e-45);
    const value = fc.oneof(special, fc.double(), fc.integer({ min: -3, max: 3 }));
    property(
      fc.property(value, value, shapeArb(0, 2), shapeArb(0, 2), fc.constantFrom<'f32' | 'i32'>('f32', 'i32'), (u, v, s1, s2, dtype) => {
        const same = Object.is(u, v) && s1.length === s2.length && s1.every((d, i) => d === s2[i]);
        assert.equal(T.full(s1, u) === T.full(s2, v), same, `full(${showShape(s1)}, ${u}) vs full(${showShape(s2)}, ${v})`);
        assert.equal(T.full(s1, u, dtype) === T.full(s1, u, 'f32'), dtype === 'f32');
      }),
      200,
    );
  });

  test('different params give different nodes (axes, shapes, names)', () => {
    const x = T.input('hc.x', [2, 3, 4]);
    assert.notEqual(T.sum(x, [0]), T.sum(x, [1]));
    assert.equal(T.sum(x, [0, 2]), T.sum(x, [2, 0]), 'reduction axes are a set');
    assert.notEqual(T.reshape(x, [6, 4]), T.reshape(x, [4, 6]));
    assert.equal(T.reshape(x, [6, -1]), T.reshape(x, [6, 4]), 'an inferred dim is resolved before interning');
    assert.notEqual(T.param('hc.w', [3]), T.input('hc.w', [3]));
    assert.notEqual(T.param('hc.w', [3]), T.param('hc.w', [1, 3]));
    assert.notEqual(T.param('hc.w', [3]), T.param('hc.v', [3]));
  });

  test('commutative operands are not merged at construction, but are by cse; non-commutative ones never', () => {
    property(
      fc.property(fc.constantFrom(...(Object.keys(commutativeOps) as (keyof typeof commutativeOps)[])), shapeArb(0, 3), (op, shape) => {
        const a = T.input('hc.p', shape);
        const c = T.input('hc.q', shape);
        const f = commutativeOps[op];
        const [ac, ca] = [f(a, c), f(c, a)];
        assert.notEqual(ac, ca, `${op}(a, c) and ${op}(c, a) must stay distinct at construction`);
        const merged = cse(makeGraph({ ac, ca }));
        assert.equal(merged.outputs.ac, merged.outputs.ca, `cse must merge ${op}(a, c) with ${op}(c, a)`);
        const subs = cse(makeGraph({ ac: T.sub(a, c), ca: T.sub(c, a) }));
        assert.notEqual(subs.outputs.ac, subs.outputs.ca, 'cse must not merge a − c with c − a');
      }),
      40,
    );
  });

  test('withScope labels nodes without changing their identity', () => {
    const x = T.input('hc.scoped', [2]);
    const outside = T.exp(x);
    const inside = withScope('encoder.layer1', () => T.exp(x));
    assert.equal(inside, outside);
    const fresh = withScope('encoder.layer1', () => T.log(x));
    assert.equal(fresh.layer, 'encoder.layer1');
    assert.equal(withScope('a', () => withScope('b', () => T.sqrt(x))).layer, 'a.b');
  });
});

// ---- rank typing ----------------------------------------------------------------------------------------------
describe('rank typing', () => {
  test('ranks are tracked in the types (checked by tsc) and bad ranks still build an invalid node at run time', () => {
    const x3 = T.input('rank.x3', [2, 3, 4]);
    const x4 = T.input('rank.x4', [1, 3, 4, 4]);
    const w = T.param('rank.w', [5, 3, 1, 1]);
    const ok4: T.Tensor<4> = T.conv2d(x4, w);
    const reduced: T.Tensor<2> = T.sum(x3, [0]);
    const lifted: T.Tensor<4> = T.expandDims(x3, 0);
    const squeezed: T.Tensor<3> = T.squeeze(lifted, 0);
    const x4b = T.input('rank.x4b', [5, 2, 3, 4]);
    const broadcast: T.Tensor<4> = T.add(x3, x4b);
    const product: T.Tensor<3> = T.matmul(x3, T.param('rank.m', [4, 5]));
    const typed = { ok4, reduced, lifted, squeezed, broadcast, product };
    for (const [name, n] of Object.entries(typed)) assert.ok(n.valid, `${name} should be well-typed: ${n.error}`);

    // @ts-expect-error conv2d takes a rank-4 NCHW input, not a rank-3 one
    const badConv = T.conv2d(x3, w);
    // @ts-expect-error conv2d takes a rank-4 OIHW weight
    const badWeight = T.conv2d(x4, T.param('rank.w2', [5, 3]));
    assert.ok(!badConv.valid && !badWeight.valid, 'the rank errors tsc reports are also shape errors at run time');
    // @ts-expect-error summing one axis of a rank-3 tensor leaves rank 2, not 3
    const wrongSum: T.Tensor<3> = T.sum(x3, [0]);
    // @ts-expect-error expandDims adds one axis
    const wrongLift: T.Tensor<3> = T.expandDims(x3, 0);
    // @ts-expect-error broadcasting a rank-3 with a rank-4 tensor gives rank 4
    const wrongBroadcast: T.Tensor<3> = T.add(x3, x4b);
    // @ts-expect-error multiHeadAttention takes [B, L, D]
    const wrongAttention = nn.multiHeadAttention(x4, { inProjWeight: T.param('rank.in', [9, 3]), inProjBias: T.param('rank.inb', [9]), outProjWeight: T.param('rank.out', [3, 3]), outProjBias: T.param('rank.outb', [3]) }, { heads: 1 });
    // Only the types are wrong here; the values are the well-shaped results (attention on rank 4 is not).
    assert.deepEqual([wrongSum.shape, wrongLift.shape, wrongBroadcast.shape], [[3, 4], [1, 2, 3, 4], [5, 2, 3, 4]]);
    assert.equal(wrongAttention.out.valid, false, 'attention on a rank-4 input must be an invalid node');
  });
});

// ---- typecheck ------------------------------------------------------------------------------------------------
const breakKinds = ['matmul', 'conv2d', 'reshape', 'add'] as const;
interface Breakage {
  readonly kind: (typeof breakKinds)[number];
  readonly a: number;
  readonly b: number;
  readonly c: number;
  readonly consumers: readonly ('relu' | 'sum' | 'mixValid' | 'mixBroken' | 'linear')[];
}
const breakageArb: fc.Arbitrary<Breakage> = fc.record({
  kind: fc.constantFrom(...breakKinds),
  a: fc.integer({ min: 2, max: 5 }),
  b: fc.integer({ min: 1, max: 5 }),
  c: fc.integer({ min: 1, max: 3 }),
  consumers: fc.array(fc.constantFrom<'relu' | 'sum' | 'mixValid' | 'mixBroken' | 'linear'>('relu', 'sum', 'mixValid', 'mixBroken', 'linear'), { maxLength: 3 }),
});

interface Broken {
  readonly node: T.Tensor;
  readonly op: PrimName;
  readonly layer: string;
  readonly message: string;
}

/** Build one broken node inside its layer scope, with the exact message typecheck must report for it. */
function breakNode(i: number, br: Breakage): Broken {
  const { a, b, c } = br;
  switch (br.kind) {
    case 'matmul': {
      const layer = `head.fc${i}`;
      const node = withScope(layer, () => T.matmul(T.input(`${layer}.x`, [a, b]), T.param(`${layer}.w`, [b + c, a])));
      return { node, op: 'dot', layer, message: `${layer}: dot cannot multiply [${a},${b}] by [${b + c},${a}] (inner dims ${b} and ${b + c} differ)` };
    }
    case 'conv2d': {
      const layer = `encoder.layer${i}.0.conv1`;
      const [cin, cw] = [b, b * (c + 1)];
      const x = [a, cin, 4, 4];
      const w = [2 * cw, cw, 3, 3];
      const node = withScope(layer, () => T.conv2d(T.input(`${layer}.x`, [a, cin, 4, 4]), T.param(`${layer}.weight`, [2 * cw, cw, 3, 3])));
      return { node, op: 'conv2d', layer, message: `${layer}: conv2d expects ${cw} input channels, got ${cin} (input ${showShape(x)}, weight ${showShape(w)})` };
    }
    case 'reshape': {
      const layer = `neck.flatten${i}`;
      const node = withScope(layer, () => T.reshape(T.input(`${layer}.x`, [a, b]), [a * b + c]));
      return { node, op: 'reshape', layer, message: `${layer}: reshape cannot reshape [${a},${b}] (${a * b} elements) to [${a * b + c}]` };
    }
    case 'add': {
      const layer = `fuse${i}`;
      const node = withScope(layer, () => T.add(T.input(`${layer}.x`, [a, b]), T.input(`${layer}.y`, [a + c, b])));
      return { node, op: 'add', layer, message: `${layer}: add cannot broadcast [${a},${b}] with [${a + c},${b}]` };
    }
  }
}

describe('typecheck', () => {
  test('the example message: layer path, op, channels and both shapes', () => {
    const y = withScope('encoder', () =>
      withScope('layer2.0.conv1', () => T.conv2d(T.input('tc.x', [8, 32, 16, 16]), T.param('encoder.layer2.0.conv1.weight', [128, 64, 3, 3]), { padding: 1 })),
    );
    const r = typecheck(makeGraph({ y: nn.relu(y) }));
    assert.ok(E.isLeft(r));
    assert.deepEqual(
      r.left.map((e) => e.message),
      ['encoder.layer2.0.conv1: conv2d expects 64 input channels, got 32 (input [8,32,16,16], weight [128,64,3,3])'],
    );
    assert.deepEqual(r.left[0].inputShapes, [[8, 32, 16, 16], [128, 64, 3, 3]]);
  });

  test('k independently broken nodes (plus everything downstream) give exactly k errors, each naming op, shapes and layer', () => {
    property(
      fc.property(fc.array(breakageArb, { maxLength: 5 }), shapeArb(1, 3), (breakages, validShape) => {
        const broken = breakages.map((br, i) => breakNode(i, br));
        // A valid side computation that must not produce errors and stays valid.
        const v = T.input('tc.valid', validShape);
        const valid = nn.softmax(T.tanh(v));
        const outputs: Record<string, T.Tensor> = { valid };
        const downstream: T.Tensor[] = [];
        broken.forEach((bk, i) => {
          let cur = bk.node;
          for (const consumer of breakages[i].consumers) {
            cur = {
              relu: () => nn.relu(cur),
              sum: () => T.sum(cur),
              mixValid: () => T.add(cur, valid),
              mixBroken: () => T.mul(cur, broken[(i + 1) % broken.length].node),
              linear: () => nn.linear(cur, { weight: T.param(`tc.down${i}`, [2, 3]) }),
            }[consumer]();
            downstream.push(cur);
          }
          outputs[`out${i}`] = cur;
        });
        const g = makeGraph(outputs);
        const r = typecheck(g);
        assert.ok(valid.valid);
        for (const d of downstream) assert.ok(!d.valid && d.error === undefined, `downstream ${d.op} must be invalid without an error of its own`);
        if (broken.length === 0) {
          assert.ok(E.isRight(r), 'a graph without broken nodes must type-check');
          return;
        }
        assert.ok(E.isLeft(r), 'broken graph passed typecheck');
        const errors = r.left;
        assert.equal(errors.length, broken.length, `expected ${broken.length} errors, got:\n${formatShapeErrors(errors)}`);
        const byMessage = new Map(errors.map((e) => [e.message, e]));
        for (const bk of broken) {
          const e = byMessage.get(bk.message);
          assert.ok(e !== undefined, `missing error "${bk.message}" in:\n${formatShapeErrors(errors)}`);
          assert.equal(e.op, bk.op);
          assert.equal(e.layer, bk.layer);
          assert.deepEqual(e.inputShapes, bk.node.inputs.map((n) => n.shape));
          for (const s of e.inputShapes) assert.ok(e.message.includes(showShape(s)), `"${e.message}" does not name input shape ${showShape(s)}`);
        }
        const report = formatShapeErrors(errors).split('\n');
        assert.equal(report.length, broken.length);
        assert.ok(report.every((line, i) => line === `  ${errors[i].message}`));
        // The interpreter refuses the same graph with a value, not an exception.
        assert.ok(E.isLeft(interpret(g, {})));
      }),
      100,
    );
  });
});

// ---- parameter trees ------------------------------------------------------------------------------------------
type ShapeTree = Tree<number[]>;
const isShape = (v: unknown): v is number[] => Array.isArray(v);
const keyArb = fc.stringMatching(/^[a-z][a-z0-9_]{0,4}$/);
const { tree: shapeTreeArb } = fc.letrec<{ tree: ShapeTree }>((tie) => ({
  tree: fc.dictionary(keyArb, fc.oneof({ depthSize: 'small', maxDepth: 3 }, shapeArb(0, 3), tie('tree')), { minKeys: 1, maxKeys: 4 }),
}));

/** Tensors for a tree of shapes, built by explicit recursion (not through flatten/unflatten, which are under test). */
function paramsOf(shapes: ShapeTree, prefix: string, reverseKeys = false): ParamTree {
  const keys = Object.keys(shapes);
  const out: Record<string, T.Tensor | ParamTree> = {};
  for (const k of reverseKeys ? keys.reverse() : keys) {
    const v = shapes[k];
    const name = prefix === '' ? k : `${prefix}.${k}`;
    out[k] = isShape(v) ? T.param(name, v) : paramsOf(v, name, reverseKeys);
  }
  return out;
}
const leafAt = (tree: ParamTree, name: string): unknown =>
  name.split('.').reduce<unknown>((node, k) => (node as Record<string, unknown>)[k], tree);

describe('parameter trees', () => {
  test('flatten names every leaf by its dotted path, independent of key order; unflatten inverts it; specOf lists shapes', () => {
    property(
      fc.property(shapeTreeArb, (shapes) => {
        const tree = paramsOf(shapes, 'model');
        const flat = flatten(tree, isTensor);
        for (const [name, leaf] of flat) {
          assert.equal(leafAt(tree, name), leaf, `'${name}' does not lead to its leaf`);
          assert.equal((leaf.params as { name: string }).name, `model.${name}`);
        }
        assert.equal(new Set(flat.map(([n]) => n)).size, flat.length, 'names must be unique');
        assert.deepEqual(flatten(paramsOf(shapes, 'model', true), isTensor), flat, 'flatten must not depend on key insertion order');
        assert.deepEqual(unflatten(flat), tree);
        const spec = specOf(tree);
        assert.ok(TreeSpec.is(spec));
        assert.deepEqual(spec, Object.fromEntries(flat.map(([n, t]) => [n, [...t.shape]])));
        const mapped = mapTree(tree, isTensor, (t, name) => `${name}:${showShape(t.shape)}`);
        assert.deepEqual(flatten(mapped, (v): v is string => typeof v === 'string').map(([, s]) => s), flat.map(([n, t]) => `${n}:${showShape(t.shape)}`));
      }),
      100,
    );
  });

  test('grad of a tree has the tree structure and the analytic values (d/dθ Σ c·θ² = 2cθ)', () => {
    property(
      fc.property(shapeTreeArb, seedArb, (shapes, seed) => {
        const rand = prng(seed);
        const tree = paramsOf(shapes, 'g');
        const leaves = flatten(tree, isTensor);
        const coefficient = (name: string, shape: Shape) => T.input(`coef.${name}`, shape);
        const f = (p: ParamTree): T.Tensor<0> =>
          flatten(p, isTensor)
            .map(([name, t]): T.Tensor<0> => T.sum(T.mul(coefficient(name, t.shape), T.mul(t, t))))
            .reduce((acc, term) => T.add(acc, term));
        const grads = grad(f)(tree);
        assert.deepEqual(specOf(grads), specOf(tree));
        const values: Record<string, Float64Array> = {};
        for (const [name, t] of leaves) {
          values[`g.${name}`] = smooth(t.shape, rand);
          values[`coef.${name}`] = smooth(t.shape, rand);
        }
        const flatGrads = flatten(grads, isTensor);
        const r = evalF64(Object.fromEntries(flatGrads.map(([n, g]) => [n, g])), values);
        for (const [name] of flatGrads) {
          const expected = values[`g.${name}`].map((x, k) => 2 * values[`coef.${name}`][k] * x);
          r[name].data.forEach((v, k) => assert.ok(Math.abs(v - expected[k]) <= 1e-12 * Math.max(1, Math.abs(expected[k])), `${name}[${k}]: ${v} vs ${expected[k]}`));
        }
        const loss = f(tree);
        assert.deepEqual(
          checkGradients(loss, leaves.map(([, t]) => t), flatGrads.map(([, g]) => g), values, rand).filter((c) => !c.ok),
          [],
        );
      }),
      60,
    );
  });

  test('valueAndGrad returns the value, the gradient tree and the auxiliary outputs', () => {
    const p = { w: T.param('vg.w', [3]), nested: { b: T.param('vg.b', [3]) } };
    const x = T.input('vg.x', [3]);
    const vg = valueAndGrad((q: typeof p) => {
      const y = T.add(T.mul(q.w, x), q.nested.b);
      return { value: T.sum(T.mul(y, y)), aux: { y } };
    })(p);
    const values = { 'vg.w': Float64Array.of(1, 2, 3), 'vg.b': Float64Array.of(0.5, -1, 0), 'vg.x': Float64Array.of(2, 0.5, -1) };
    const gw = flatten(vg.grads, isTensor);
    assert.deepEqual(gw.map(([n]) => n), ['nested.b', 'w']);
    const r = evalF64({ value: vg.value, y: vg.aux.y, gb: gw[0][1], gw: gw[1][1] }, values);
    const y = [1 * 2 + 0.5, 2 * 0.5 - 1, 3 * -1 + 0];
    assert.deepEqual([...r.y.data], y);
    assert.equal(r.value.data[0], y.reduce((a, v) => a + v * v, 0));
    assert.deepEqual([...r.gb.data], y.map((v) => 2 * v));
    assert.deepEqual([...r.gw.data], y.map((v, i) => 2 * v * values['vg.x'][i]));
  });
});

// ---- stopGradient ---------------------------------------------------------------------------------------------
describe('stopGradient', () => {
  test('blocks the gradient through its operand but keeps the forward value', () => {
    property(
      fc.property(shapeArb(0, 3), seedArb, (shape, seed) => {
        const rand = prng(seed);
        const x = T.input('sg.x', shape);
        const xs = smooth(shape, rand);
        // f = Σ x·sg(x): the value is Σ x², the gradient is x (only the unstopped factor), not 2x.
        const f = T.sum(T.mul(x, T.stopGradient(x)));
        const [g] = vjp(f, [x]);
        const r = evalF64({ f, g }, { 'sg.x': xs });
        assert.ok(Math.abs(r.f.data[0] - xs.reduce((a, v) => a + v * v, 0)) <= 1e-12 * Math.max(1, r.f.data[0]));
        assert.deepEqual([...r.g.data], [...xs]);
        // Everything behind a stopGradient gets a zero gradient, as a constant (nothing to compute).
        const [blocked] = vjp(T.sum(T.exp(T.stopGradient(T.tanh(x)))), [x]);
        assert.equal(blocked.op, 'const');
        assert.equal((blocked.params as { value: number }).value, 0);
        assert.deepEqual(blocked.shape, shape);
      }),
      40,
    );
  });
});

// ---- interpreter --------------------------------------------------------------------------------------------
describe('interpreter', () => {
  test('missing or wrongly sized bindings are Left values naming the leaf, its shape and the sizes', () => {
    property(
      fc.property(shapeArb(0, 3), fc.integer({ min: 0, max: 80 }), (shape, wrongLength) => {
        const n = numel(shape);
        fc.pre(wrongLength !== n);
        const img = T.input('img', shape);
        const w = T.param('enc.w', shape);
        const g = makeGraph({ y: T.mul(img, w) });
        const missing = interpret(g, { img: new Float32Array(n) });
        assert.deepEqual(missing, E.left(`no value bound for 'enc.w' (shape ${showShape(shape)})`));
        const wrong = interpret(g, { img: new Float32Array(wrongLength), 'enc.w': new Float32Array(n) });
        assert.deepEqual(wrong, E.left(`'img' has ${wrongLength} elements, expected ${n} for shape ${showShape(shape)}`));
        assert.ok(E.isRight(interpret(g, { img: new Float32Array(n), 'enc.w': new Float32Array(n) })));
      }),
      40,
    );
  });

  test('an ill-typed graph is a Left naming the bad node', () => {
    const bad = T.matmul(T.input('it.a', [2, 3]), T.input('it.b', [4, 2]));
    const r = interpret(makeGraph({ y: T.exp(bad) }), { 'it.a': new Float32Array(6), 'it.b': new Float32Array(8) });
    assert.ok(E.isLeft(r));
    assert.match(r.left, /^cannot interpret an ill-typed graph \(node \d+: dot cannot multiply \[2,3\] by \[4,2\]/);
  });

  // float32 rounds every intermediate (relative error 2⁻²⁴ ≈ 6e-8 per operation); the generated cases chain at
  // most a few dozen roundings over O(1) values, so 1e-5 relative (to max(1, |value|)) has a wide margin. Both
  // precisions see the same (float32-rounded) inputs, so discontinuous ops (comparisons, sign, casts, top-k)
  // receive identical operands and must agree exactly.
  test('float32 and float64 interpretation agree to 1e-5 on every primitive and on a small network', () => {
    const TOL = 1e-5;
    const agree = (outputs: Record<string, Node>, bindings: Record<string, Float64Array>, what: string) => {
      const g = makeGraph(outputs);
      const [r32, r64] = (['f32', 'f64'] as const).map((p) => {
        const r = interpret(g, bindings, p);
        if (E.isLeft(r)) throw new Error(`${what}: ${r.left}`);
        return r.right;
      });
      for (const [name, out] of Object.entries(outputs)) {
        const [a, c] = [r32[name].data, r64[name].data];
        assert.ok(r32[name].data instanceof Float32Array && r64[name].data instanceof Float64Array);
        for (let k = 0; k < a.length; k++) {
          const exact = out.dtype !== 'f32';
          assert.ok(exact ? a[k] === c[k] : Math.abs(a[k] - c[k]) <= TOL * Math.max(1, Math.abs(c[k])), `${what} ${name}[${k}]: f32 ${a[k]} vs f64 ${c[k]}`);
        }
      }
    };
    property(
      fc.property(anyCase, seedArb, (c: Case<PrimName>, seed) => {
        const rand = prng(seed);
        const { node } = buildCase(c);
        const bindings: Record<string, Float64Array> = Object.fromEntries(c.operands.map((o, i) => [`x${i}`, drawValues(o, rand).map(Math.fround)]));
        bindings.p = smooth(node.shape, rand).map(Math.fround);
        bindings.i = smooth(node.shape, rand).map(Math.fround);
        agree({ y: node }, bindings, c.op);
      }),
      300,
    );
    property(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 6 }), seedArb, (batch, hidden, seed) => {
        const rand = prng(seed);
        const x = T.input('nn.x', [batch, 4]);
        const h = T.tanh(nn.linear(x, { weight: T.param('nn.w1', [hidden, 4]), bias: T.param('nn.b1', [hidden]) }));
        const logits = nn.linear(h, { weight: T.param('nn.w2', [3, hidden]) });
        const loss = nn.mean(T.neg(nn.logSoftmax(logits)));
        const [dw1] = vjp(loss, [T.param('nn.w1', [hidden, 4])]);
        const round = (s: Shape) => smooth(s, rand).map(Math.fround);
        agree({ loss, logits, dw1 }, { 'nn.x': round([batch, 4]), 'nn.w1': round([hidden, 4]), 'nn.b1': round([hidden]), 'nn.w2': round([3, hidden]) }, 'network');
      }),
      40,
    );
  });
});

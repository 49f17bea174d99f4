// Properties of the graph passes (simplify, cse, dce, optimize) on random graphs built to contain the
// identities the simplifier targets: every pass preserves the interpreter's results and never adds nodes,
// simplify reaches a fixed point and leaves none of its patterns behind, and gradients survive optimize.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as E from 'fp-ts/lib/Either.js';
import fc from 'fast-check';
import { vjp } from '../compiler/autodiff.ts';
import * as b from '../compiler/build.ts';
import { makeGraph, numel, reachable, sameShape, type Graph, type Node, type Shape } from '../compiler/ir.ts';
import { interpret, type Evaluated } from '../compiler/interp/interpret.ts';
import { cse, dce, optimize, simplify, type Pass } from '../compiler/passes/index.ts';
import { drawValues, prng } from './gen.ts';
import { property } from './prop.ts';

// ---- random graphs --------------------------------------------------------------------------------------------
const kinds = [
  // plain ops
  'neg', 'tanh', 'exp', 'add', 'sub', 'mul', 'div', 'maximum', 'sum', 'where', 'flipOther',
  // identities and foldable patterns the simplifier targets
  'add0', 'mul1', 'sub0', 'div1', 'negneg', 'reshape2', 'reshapeSame', 'permute2', 'permuteId', 'flip2', 'expandSame',
  'sumNone', 'stopstop', 'sliceFull', 'padNone', 'foldBinary', 'foldUnary', 'foldExpand', 'foldSum', 'negZero',
  // commutative pairs (cse merges them)
  'swap',
] as const;
type Kind = (typeof kinds)[number];
interface Step {
  readonly kind: Kind;
  readonly i: number;
  readonly j: number;
  readonly r: number;
}
const stepArb: fc.Arbitrary<Step> = fc.record({ kind: fc.constantFrom(...kinds), i: fc.nat(), j: fc.nat(), r: fc.nat() });
const shapeArb = fc.integer({ min: 1, max: 3 }).chain((r) => fc.array(fc.integer({ min: 1, max: 3 }), { minLength: r, maxLength: r }));

const shuffled = (n: number, rand: () => number): number[] => {
  const p = [...Array(n).keys()];
  for (let k = n - 1; k > 0; k--) {
    const m = Math.floor(rand() * (k + 1));
    [p[k], p[m]] = [p[m], p[k]];
  }
  return p;
};
const subset = (n: number, rand: () => number): number[] => [...Array(n).keys()].filter(() => rand() < 0.5);
const allAxes = (x: Node): number[] => x.shape.map((_d, k) => k);

/** One step's new nodes, built from pool entries `x` and `y` (y has x's shape) with choices drawn from `rand`. */
function apply(s: Step, x: Node, y: Node, rand: () => number): Node[] {
  const c = (v: number, shape: Shape = x.shape) => b.constant(v, shape);
  switch (s.kind) {
    case 'neg': return [b.neg(x)];
    case 'tanh': return [b.tanh(x)];
    case 'exp': return [b.exp(b.tanh(x))];
    case 'add': return [b.add(x, y)];
    case 'sub': return [b.sub(x, y)];
    case 'mul': return [b.mul(x, y)];
    case 'div': return [b.div(x, b.add(b.mul(y, y), c(1)))];
    case 'maximum': return [b.maximum(x, y)];
    case 'sum': return [b.sum(x, subset(x.shape.length, rand))];
    case 'where': return [b.where(b.lt(x, y), x, b.neg(y))];
    // Two flips over (generally) different axes: not an identity, so it must survive simplify's flip rule.
    case 'flipOther': return [b.flip(b.flip(x, subset(x.shape.length, rand)), subset(x.shape.length, rand))];
    case 'add0': return [rand() < 0.5 ? b.add(x, c(0)) : b.add(c(0), x)];
    case 'mul1': return [rand() < 0.5 ? b.mul(x, c(1)) : b.mul(c(1), x)];
    case 'sub0': return [b.sub(x, c(0))];
    case 'div1': return [b.div(x, c(1))];
    case 'negneg': return [b.neg(b.neg(x))];
    case 'reshape2': {
      const targets: Shape[] = [x.shape, [numel(x.shape)], [1, ...x.shape], [...x.shape].reverse()];
      return [b.reshape(b.reshape(x, [numel(x.shape)]), targets[Math.floor(rand() * targets.length)])];
    }
    case 'reshapeSame': return [b.reshape(x, x.shape)];
    case 'permute2': {
      const p = shuffled(x.shape.length, rand);
      return [b.permute(b.permute(x, p), shuffled(x.shape.length, rand))];
    }
    case 'permuteId': return [b.permute(x, allAxes(x))];
    case 'flip2': {
      const axes = subset(x.shape.length, rand);
      return [b.flip(b.flip(x, axes), axes)];
    }
    case 'expandSame': return [b.expand(x, x.shape)];
    case 'sumNone': return [b.sum(x, [])];
    case 'stopstop': return [b.stopGradient(b.stopGradient(x))];
    case 'sliceFull': return [b.slice(x, x.shape.map(() => 0), x.shape)];
    case 'padNone': return [b.pad(x, x.shape.map(() => 0), x.shape.map(() => 0))];
    case 'foldBinary': return [b.mul(x, b.add(c(2), c(0.5)))];
    case 'foldUnary': return [b.add(x, b.exp(c(0.25)))];
    case 'foldExpand': return [b.add(x, b.expand(b.reshape(b.constant(0.75, []), x.shape.map(() => 1)), x.shape))];
    case 'foldSum': return [b.add(x, b.reshape(b.sum(c(0.1, [3, ...x.shape]), [0]), x.shape))];
    // neg(0) folds to the constant -0, which must stay distinct from +0 (1/-0 = -Inf).
    case 'negZero': return [b.mul(x, b.reciprocal(b.neg(c(0))))];
    case 'swap': return [b.add(x, y), b.add(y, x), b.mul(b.maximum(x, y), b.maximum(y, x))];
  }
}

interface RandomGraph {
  readonly graph: Graph;
  readonly leaves: readonly Node[];
}
/**
 * A graph over inputs a and b whose node list also holds dead nodes (built but not reached from the
 * outputs), so dce has something to remove. Outputs: the last node built and one picked at random.
 */
function buildGraph(steps: readonly Step[], shapeA: Shape, shapeB: Shape, pick: number): RandomGraph {
  const leaves = [b.input('a', shapeA), b.input('b', shapeB)];
  const pool: Node[] = [...leaves];
  for (const s of steps) {
    const x = pool[s.i % pool.length];
    const sameShaped = pool.filter((n) => sameShape(n.shape, x.shape));
    const y = sameShaped[s.j % sameShaped.length];
    pool.push(...apply(s, x, y, prng(s.r + 1)));
  }
  for (const n of pool) if (!n.valid) throw new Error(`generator built an ill-typed ${n.op}: ${n.error}`);
  const outputs = { y: pool[pool.length - 1], z: pool[pick % pool.length] };
  return { graph: { outputs, nodes: reachable(pool) }, leaves };
}

const graphArb = fc.record({
  steps: fc.array(stepArb, { minLength: 3, maxLength: 12 }),
  shapeA: shapeArb,
  shapeB: shapeArb,
  pick: fc.nat(),
  seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
});

// ---- comparison -------------------------------------------------------------------------------------------------
const run = (g: Graph, bindings: Record<string, Float64Array>): Record<string, Evaluated> => {
  const r = interpret(g, bindings, 'f64');
  if (E.isLeft(r)) throw new Error(r.left);
  return r.right;
};
/**
 * Exactly equal (Object.is: same NaN, same signed zero and infinities), or within 1e-12 relative: folding
 * sum(const c) to c·k differs from adding c k times by a few ulps, and that difference then propagates.
 */
const agrees = (a: number, c: number): boolean =>
  Object.is(a, c) || (Number.isFinite(a) && Number.isFinite(c) && Math.abs(a - c) <= 1e-12 * Math.max(1, Math.abs(a), Math.abs(c)));

function assertSameResults(before: Record<string, Evaluated>, after: Record<string, Evaluated>, what: string): void {
  assert.deepEqual(Object.keys(after).sort(), Object.keys(before).sort());
  for (const [name, v] of Object.entries(before)) {
    assert.deepEqual(after[name].shape, v.shape, `${what}: output ${name} changed shape`);
    v.data.forEach((x, k) => assert.ok(agrees(x, after[name].data[k]), `${what}: ${name}[${k}] was ${x}, is ${after[name].data[k]}`));
  }
}

const passes: Readonly<Record<string, Pass>> = { simplify, cse, dce, optimize };

function bindingsFor(leaves: readonly Node[], seed: number): Record<string, Float64Array> {
  const rand = prng(seed);
  return Object.fromEntries(leaves.map((l) => [(l.params as { name: string }).name, drawValues({ shape: l.shape, dtype: 'f32', values: 'smooth' }, rand)]));
}

// ---- what simplify must leave behind ----------------------------------------------------------------------------
const isConst = (n: Node, v?: number) => n.op === 'const' && (v === undefined || Object.is((n.params as { value: number }).value, v));
const foldable = new Set(['neg', 'exp', 'tanh', 'add', 'sub', 'mul', 'div', 'maximum', 'reciprocal', 'reshape', 'expand', 'permute', 'flip', 'sum']);
/** Nodes of `g` that still match a pattern simplify rewrites (a constant op whose fold is non-finite stays). */
function leftoverPatterns(g: Graph): string[] {
  const found: string[] = [];
  for (const n of g.nodes) {
    const [x, y] = n.inputs;
    const p = n.params as { perm?: readonly number[]; axes?: readonly number[] };
    const hit =
      (n.op === 'add' && (isConst(x, 0) || isConst(y, 0))) ||
      (n.op === 'mul' && (isConst(x, 1) || isConst(y, 1))) ||
      ((n.op === 'sub' && isConst(y, 0)) || (n.op === 'div' && isConst(y, 1))) ||
      (n.op === 'neg' && x.op === 'neg') ||
      (n.op === 'reshape' && (x.op === 'reshape' || sameShape(x.shape, n.shape))) ||
      (n.op === 'permute' && (x.op === 'permute' || (p.perm ?? []).every((a, k) => a === k))) ||
      (n.op === 'flip' && x.op === 'flip' && JSON.stringify(x.params) === JSON.stringify(n.params)) ||
      ((n.op === 'expand' || n.op === 'slice' || n.op === 'pad') && sameShape(x.shape, n.shape)) ||
      (n.op === 'sum' && (p.axes ?? []).length === 0) ||
      (n.op === 'stopGradient' && x.op === 'stopGradient') ||
      (foldable.has(n.op) && n.inputs.length > 0 && n.inputs.every((i) => isConst(i)) && run(makeGraph({ v: n }), {}).v.data.every(Number.isFinite));
    if (hit) found.push(`${n.op}(${n.inputs.map((i) => i.op).join(', ')})`);
  }
  return found;
}

describe('graph passes', () => {
  test('simplify, cse, dce and optimize preserve results (float64) and never add nodes', () => {
    property(
      fc.property(graphArb, ({ steps, shapeA, shapeB, pick, seed }) => {
        const { graph, leaves } = buildGraph(steps, shapeA, shapeB, pick);
        const values = bindingsFor(leaves, seed);
        const before = run(graph, values);
        for (const [name, pass] of Object.entries(passes)) {
          const after = pass(graph);
          assert.ok(after.nodes.length <= graph.nodes.length, `${name} grew the graph from ${graph.nodes.length} to ${after.nodes.length} nodes`);
          assertSameResults(before, run(after, values), name);
        }
      }),
      300,
    );
  });

  test('simplify reaches a fixed point and leaves none of its patterns behind; cse merges commutative twins', () => {
    property(
      fc.property(graphArb, ({ steps, shapeA, shapeB, pick }) => {
        const { graph } = buildGraph(steps, shapeA, shapeB, pick);
        const once = simplify(graph);
        const twice = simplify(once);
        assert.equal(twice.nodes.length, once.nodes.length, 'simplify(simplify(g)) has a different node count');
        twice.nodes.forEach((n, k) => assert.equal(n, once.nodes[k], `node ${k} (${n.op}) changed on the second simplify`));
        assert.deepEqual(leftoverPatterns(once), []);
        // After cse no two nodes are the same commutative op over the same operand set.
        const merged = cse(once);
        const seen = new Set<string>();
        for (const n of merged.nodes) {
          if (!['add', 'mul', 'maximum', 'minimum', 'eq', 'ne'].includes(n.op)) continue;
          const key = `${n.op}:${n.inputs.map((i) => i.id).sort((p, q) => p - q).join(',')}`;
          assert.ok(!seen.has(key), `cse left two ${n.op} nodes over the same operands`);
          seen.add(key);
        }
      }),
      300,
    );
  });

  test('gradients of random graphs survive optimize (values equal, node count not larger)', () => {
    property(
      fc.property(graphArb, ({ steps, shapeA, shapeB, pick, seed }) => {
        const { graph, leaves } = buildGraph(steps, shapeA, shapeB, pick);
        // loss = Σ y·wy + Σ z·wz, so every output element's cotangent differs.
        const { y, z } = graph.outputs;
        const wy = b.input('wy', y.shape);
        const wz = b.input('wz', z.shape);
        const loss = b.add(b.sum(b.mul(y, wy), allAxes(y)), b.sum(b.mul(z, wz), allAxes(z)));
        const [ga, gb] = vjp(loss, leaves);
        const g = makeGraph({ loss, ga, gb });
        const rand = prng(seed ^ 0x2545f491);
        const values = {
          ...bindingsFor(leaves, seed),
          wy: drawValues({ shape: y.shape, dtype: 'f32', values: 'smooth' }, rand),
          wz: drawValues({ shape: z.shape, dtype: 'f32', values: 'smooth' }, rand),
        };
        const optimized = optimize(g);
        assert.ok(optimized.nodes.length <= g.nodes.length, `optimize grew the gradient graph from ${g.nodes.length} to ${optimized.nodes.length}`);
        assertSameResults(run(g, values), run(optimized, values), 'optimize (gradients)');
      }),
      200,
    );
  });
});

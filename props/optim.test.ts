import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as E from 'fp-ts/lib/Either.js';
import { property } from './prop.ts';
import { input, param, type Tensor } from '../dsl/tensor.ts';
import { flatten, isTensor, type ParamTree } from '../dsl/tree.ts';
import { makeGraph } from '../compiler/ir.ts';
import { interpret } from '../compiler/interp/interpret.ts';
import { createRng } from '../clove/data/rng.ts';
import { optimizerStep, type OptimizerOptions } from '../clove/optim.ts';
import { emaUpdate } from '../clove/ema.ts';
import { cosineScheduleAt, emaMomentumAt, learningRateAt } from '../clove/schedules.ts';
import { peakLearningRate, presets } from '../clove/config.ts';

// A small tree mixing ≥2-D weights (decayed, LARS-scaled) and 1-D vectors (neither), with one all-zero weight
// to exercise LARS's "ratio 1 when a norm is zero" branch.
const leafShapes: readonly (readonly [string, readonly number[]])[] = [
  ['conv.weight', [3, 2, 1, 1]],
  ['bn.weight', [3]],
  ['bn.bias', [3]],
  ['fc.weight', [2, 4]],
  ['zero.weight', [2, 2]],
];

interface HostLeaves {
  readonly [name: string]: Float64Array;
}

function randomLeaves(seed: number, scale: number, zeroName?: string): HostLeaves {
  const rng = createRng(seed);
  return Object.fromEntries(
    leafShapes.map(([name, shape]) => {
      const size = shape.reduce((a, c) => a * c, 1);
      return [name, Float64Array.from({ length: size }, () => (name === zeroName ? 0 : scale * rng.normal()))];
    }),
  );
}

const symbolicTree = (prefix: string): ParamTree => {
  const root: Record<string, Record<string, Tensor>> = {};
  for (const [name, shape] of leafShapes) {
    const [mod, leaf] = name.split('.');
    (root[mod] ??= {})[leaf] = param(`${prefix}.${name}`, shape);
  }
  return root;
};

const bindLeaves = (prefix: string, leaves: HostLeaves): Record<string, Float64Array> =>
  Object.fromEntries(Object.entries(leaves).map(([n, v]) => [`${prefix}.${n}`, v]));

function evaluateTree(tree: ParamTree, bindings: Record<string, ArrayLike<number>>): HostLeaves {
  const outputs = Object.fromEntries(flatten(tree, isTensor));
  const r = interpret(makeGraph(outputs), bindings, 'f64');
  if (E.isLeft(r)) throw new Error(r.left);
  return Object.fromEntries(Object.entries(r.right).map(([n, v]) => [n, Float64Array.from(v.data)]));
}

const norm = (x: Float64Array): number => Math.sqrt(x.reduce((a, v) => a + v * v, 0));

/** The official lars.py + torch.optim.SGD update, written out on plain arrays. */
function referenceStep(w: Float64Array, g: Float64Array, buf: Float64Array, lr: number, o: OptimizerOptions, rank: number) {
  const decayed = rank >= 2 ? g.map((v, i) => v + o.weightDecay * w[i]) : Float64Array.from(g);
  let scale = 1;
  if (o.name === 'lars' && rank >= 2) {
    const wn = norm(w);
    const dn = norm(decayed);
    if (wn > 0 && dn > 0) scale = (o.trust * wn) / (dn + (o.eps ?? 1e-8));
  }
  const nextBuf = buf.map((b, i) => o.momentum * b + scale * decayed[i]);
  return { w: w.map((v, i) => v - lr * nextBuf[i]), buf: nextBuf };
}

const optionsArb = fc.record({
  name: fc.constantFrom('sgd' as const, 'lars' as const),
  momentum: fc.double({ min: 0, max: 0.99, noNaN: true }),
  weightDecay: fc.double({ min: 0, max: 0.1, noNaN: true }),
  trust: fc.double({ min: 1e-4, max: 0.1, noNaN: true }),
});

test('SGD and LARS steps match the hand-written PyTorch/lars.py update over two steps', () => {
  property(
    fc.property(optionsArb, fc.integer({ min: 0, max: 1_000_000 }), fc.double({ min: 1e-3, max: 2, noNaN: true }), fc.boolean(), (o, seed, lr, withZero) => {
      const params = symbolicTree('w');
      const grads = symbolicTree('g');
      const buffers = symbolicTree('m');
      const lrIn = input('lr', []) as Tensor<0>;
      const next = optimizerStep(params, grads, buffers, lrIn, o);
      let w = randomLeaves(seed, 1, withZero ? 'zero.weight' : undefined);
      let buf = randomLeaves(seed + 1, 0);
      for (let step = 0; step < 2; step++) {
        const g = randomLeaves(seed + 2 + step, 0.5);
        const bindings = { ...bindLeaves('w', w), ...bindLeaves('g', g), ...bindLeaves('m', buf), lr: [lr] };
        const gotW = evaluateTree(next.params, bindings);
        const gotBuf = evaluateTree(next.buffers, bindings);
        const wantW: Record<string, Float64Array> = {};
        const wantBuf: Record<string, Float64Array> = {};
        for (const [name, shape] of leafShapes) {
          const r = referenceStep(w[name], g[name], buf[name], lr, o, shape.length);
          wantW[name] = r.w;
          wantBuf[name] = r.buf;
          for (let i = 0; i < r.w.length; i++) {
            assert.ok(Math.abs(gotW[name][i] - r.w[i]) <= 1e-12 * (1 + Math.abs(r.w[i])), `${o.name} step ${step} ${name}[${i}]: ${gotW[name][i]} vs ${r.w[i]}`);
            assert.ok(Math.abs(gotBuf[name][i] - r.buf[i]) <= 1e-12 * (1 + Math.abs(r.buf[i])), `${o.name} step ${step} buffer ${name}[${i}]`);
          }
        }
        w = wantW;
        buf = wantBuf;
      }
    }),
    40,
  );
});

test('LARS leaves 1-D parameters to plain momentum SGD and scales ≥2-D updates to trust·‖w‖ at zero momentum', () => {
  const o: OptimizerOptions = { name: 'lars', momentum: 0, weightDecay: 0, trust: 0.001 };
  const next = optimizerStep(symbolicTree('w'), symbolicTree('g'), symbolicTree('m'), input('lr', []) as Tensor<0>, o);
  const w = randomLeaves(3, 1);
  const g = randomLeaves(4, 5);
  const got = evaluateTree(next.params, { ...bindLeaves('w', w), ...bindLeaves('g', g), ...bindLeaves('m', randomLeaves(5, 0)), lr: [1] });
  const step = (name: string) => norm(got[name].map((v, i) => v - w[name][i]));
  // ‖d‖/(‖d‖ + 1e-8) differs from 1 by about 1e-9 here.
  assert.ok(Math.abs(step('conv.weight') / (0.001 * norm(w['conv.weight'])) - 1) < 1e-8, `a LARS step has length trust·‖w‖: ${step('conv.weight')} vs ${0.001 * norm(w['conv.weight'])}`);
  assert.ok(Math.abs(step('bn.bias') - norm(g['bn.bias'])) < 1e-12, 'a 1-D step has length lr·‖g‖');
});

test('optimizerStep names a parameter without a gradient', () => {
  const o: OptimizerOptions = { name: 'sgd', momentum: 0.9, weightDecay: 0, trust: 0.001 };
  assert.throws(() => optimizerStep({ a: param('a', [2]) }, {}, { a: param('b', [2]) }, input('lr', []) as Tensor<0>, o), /'a' has no gradient/);
});

test('EMA: θ_t ← m·θ_t + (1 − m)·θ_s leaf by leaf', () => {
  property(
    fc.property(fc.integer({ min: 0, max: 1_000_000 }), fc.double({ min: 0, max: 1, noNaN: true }), (seed, m) => {
      const next = emaUpdate(symbolicTree('t'), symbolicTree('s'), input('m', []) as Tensor<0>);
      const t = randomLeaves(seed, 1);
      const s = randomLeaves(seed + 1, 1);
      const got = evaluateTree(next, { ...bindLeaves('t', t), ...bindLeaves('s', s), m: [m] });
      for (const [name] of leafShapes) {
        t[name].forEach((tv, i) => {
          const want = m * tv + (1 - m) * s[name][i];
          assert.ok(Math.abs(got[name][i] - want) <= 1e-12 * (1 + Math.abs(want)), `${name}[${i}]: ${got[name][i]} vs ${want}`);
        });
      }
    }),
    30,
  );
  assert.throws(() => emaUpdate({ a: param('ta', [2]) }, { a: param('sa', [3]) }, input('m', []) as Tensor<0>), /teacher 'a' \[2\]/);
});

test('learning rate: 1% of peak at 0, peak at the last warm-up step and the first cosine step, 1% at the end, monotone', () => {
  property(
    fc.property(fc.double({ min: 1e-3, max: 10, noNaN: true }), fc.integer({ min: 0, max: 50 }), fc.integer({ min: 1, max: 200 }), (peak, warmup, extra) => {
      const s = { peak, warmupSteps: warmup, totalSteps: warmup + extra };
      const near = (a: number, b: number) => Math.abs(a - b) <= 1e-12 * (1 + Math.abs(b));
      assert.ok(near(learningRateAt(0, s), warmup > 0 ? 0.01 * peak : peak), `start ${learningRateAt(0, s)}`);
      if (warmup > 1) assert.equal(learningRateAt(warmup - 1, s), peak, 'np.linspace reaches the peak at the last warm-up step');
      assert.equal(learningRateAt(warmup, s), peak, 'the cosine starts at the peak');
      assert.ok(near(learningRateAt(s.totalSteps, s), 0.01 * peak), `end ${learningRateAt(s.totalSteps, s)}`);
      assert.ok(learningRateAt(s.totalSteps - 1, s) > 0.01 * peak, 'the last step is still above the floor, as in cosine_scheduler');
      for (let t = 1; t <= s.totalSteps; t++) {
        const [a, b] = [learningRateAt(t - 1, s), learningRateAt(t, s)];
        const flat = t === warmup && warmup > 1; // peak at W − 1 (linspace) and at W (cosine)
        assert.ok(flat ? b === a : t <= warmup ? b > a : b < a, `not monotone at step ${t}: ${a} → ${b}`);
      }
    }),
    60,
  );
});

// ---- the authors' schedule, transcribed -----------------------------------------------------------------------
/** numpy.linspace(start, stop, num) with endpoint=True, step by step as numpy computes it. */
function npLinspace(start: number, stop: number, num: number): number[] {
  const div = num - 1;
  const delta = stop - start;
  const y = Array.from({ length: num }, (_v, i) => i);
  let scaled: number[];
  if (div > 0) {
    const step = delta / div;
    scaled = step === 0 ? y.map((v) => (v / div) * delta) : y.map((v) => v * step);
  } else {
    scaled = y.map((v) => v * delta); // 0 or 1 entries: the step is undefined
  }
  const out = scaled.map((v) => v + start);
  if (num > 1) out[num - 1] = stop;
  return out;
}

/** The authors' cosine_scheduler (CLoVE main_pretrain.py, contrast/util.py), line by line. */
function authorsCosineScheduler(baseValue: number, finalValue: number, epochs: number, niterPerEp: number, warmupEpochs = 0, startWarmupValue = 0): number[] {
  let warmupSchedule: number[] = [];
  const warmupIters = warmupEpochs * niterPerEp;
  if (warmupEpochs > 0) warmupSchedule = npLinspace(startWarmupValue, baseValue, warmupIters);
  const iters = Array.from({ length: epochs * niterPerEp - warmupIters }, (_v, i) => i);
  const schedule = iters.map((i) => finalValue + 0.5 * (baseValue - finalValue) * (1 + Math.cos((Math.PI * i) / iters.length)));
  const all = [...warmupSchedule, ...schedule];
  assert.equal(all.length, epochs * niterPerEp);
  return all;
}

const settings = fc.record({
  epochs: fc.integer({ min: 1, max: 12 }),
  niter: fc.integer({ min: 1, max: 25 }),
  warmupFraction: fc.double({ min: 0, max: 1, noNaN: true }),
  base: fc.double({ min: 1e-4, max: 20, noNaN: true }),
  final: fc.double({ min: 0, max: 20, noNaN: true }),
  start: fc.double({ min: 0, max: 20, noNaN: true }),
  momentumBase: fc.double({ min: 0.5, max: 0.9999, noNaN: true }),
});

test("schedules equal the authors' cosine_scheduler at every step, to the bit (random base, final, epochs, warm-up)", () => {
  property(
    fc.property(settings, ({ epochs, niter, warmupFraction, base, final, start, momentumBase }) => {
      const warmupEpochs = Math.floor(warmupFraction * epochs);
      const T = epochs * niter;
      const W = warmupEpochs * niter;
      const theirs = authorsCosineScheduler(base, final, epochs, niter, warmupEpochs, start);
      const lr = authorsCosineScheduler(base, base * 0.01, epochs, niter, warmupEpochs, base / 100); // main_pretrain.py
      const momentum = authorsCosineScheduler(momentumBase, 1.0, epochs, niter); // no warm-up
      const s = { peak: base, warmupSteps: W, totalSteps: T };
      for (let t = 0; t < T; t++) {
        const where = `step ${t} of ${T} (warm-up ${W})`;
        assert.ok(cosineScheduleAt(t, base, final, T, W, start) === theirs[t], `${where}: ${cosineScheduleAt(t, base, final, T, W, start)} vs ${theirs[t]}`);
        assert.ok(learningRateAt(t, s) === lr[t], `lr at ${where}: ${learningRateAt(t, s)} vs ${lr[t]}`);
        assert.ok(emaMomentumAt(t, momentumBase, T) === momentum[t], `momentum at ${where}: ${emaMomentumAt(t, momentumBase, T)} vs ${momentum[t]}`);
      }
    }),
    200,
  );
});

test('the cpu-small warm-up reaches the peak at its last step (t = W − 1), as np.linspace does', () => {
  const { optim } = presets['cpu-small'];
  const s = { peak: peakLearningRate(optim), warmupSteps: optim.warmupSteps, totalSteps: optim.steps };
  assert.deepEqual([s.peak, s.warmupSteps, s.totalSteps], [10, 28, 280]);
  assert.equal(learningRateAt(27, s), 10);
  assert.equal(learningRateAt(0, s), 0.1);
  assert.equal(learningRateAt(28, s), 10);
});

test('EMA momentum: base at 0, 1 at the end, increasing, halfway at T/2', () => {
  property(
    fc.property(fc.double({ min: 0.5, max: 0.999, noNaN: true }), fc.integer({ min: 2, max: 500 }), (base, total) => {
      assert.ok(Math.abs(emaMomentumAt(0, base, total) - base) < 1e-15);
      assert.equal(emaMomentumAt(total, base, total), 1);
      assert.ok(Math.abs(emaMomentumAt(total / 2, base, total) - (1 + base) / 2) < 1e-12);
      for (let t = 1; t <= total; t++) assert.ok(emaMomentumAt(t, base, total) > emaMomentumAt(t - 1, base, total));
    }),
    60,
  );
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from 'fp-ts/lib/Either.js';
import { makeGraph } from '../compiler/ir.ts';
import { typecheck } from '../compiler/typecheck.ts';
import { interpret, type Evaluated } from '../compiler/interp/interpret.ts';
import { presets, type Config } from '../clove/config.ts';
import { createRng } from '../clove/data/rng.ts';
import { maskInputName } from '../clove/loss.ts';
import {
  ATTENTION_OUTPUT, INPUT, STATE_PREFIX, buildTrainStep, initTrainState, metricOutputName, trainStateRecord,
  type StepShapes, type TrainStep,
} from '../clove/step.ts';

// A tiny ResNet-18 (width 4, small stem) on 16-px global and 8-px local views: 2×2 and 1×1 feature grids, so
// a whole step interprets in well under a second.
const config: Config = (() => {
  const c = structuredClone(presets.tiny);
  c.model.encoder = { name: 'resnet', depth: 18, width: 4, stem: 'small' };
  c.model.projector = { name: 'mlp', hidden: 8, out: 8 };
  c.model.predictor = { name: 'nmhsa', heads: 2, temperature: 0.2 };
  c.views = { ...c.views, globalSize: 16, localSize: 8, nLocal: 1 };
  c.loss = { ...c.loss, k: 2 };
  return c;
})();
const shapes: StepShapes = { batch: 2, channels: 3, globalSize: 16, localSize: 8, nLocal: 1 };

const built = buildTrainStep(config, shapes);
if (E.isLeft(built)) throw new Error(built.left);
const step: TrainStep = built.right;
const graph = makeGraph(step.outputs);
const size = (shape: readonly number[]): number => shape.reduce((a, c) => a * c, 1);

/** Fixed views and masks: query cell q of image b matches key cell (q + b) mod Lk, leaving every row Lk − 1 negatives. */
function fixedInputs(lr: number, ema: number): Record<string, ArrayLike<number>> {
  const rng = createRng(42);
  const inputs: Record<string, ArrayLike<number>> = {};
  for (const [name, shape] of Object.entries(step.inputs)) inputs[name] = Float32Array.from({ length: size(shape) }, () => rng.normal());
  for (const p of step.pairs) {
    const [n, lq, lk] = step.inputs[maskInputName(p)];
    const mask = new Float32Array(n * lq * lk);
    for (let b = 0; b < n; b++) for (let q = 0; q < lq; q++) mask[(b * lq + q) * lk + ((q + b) % lk)] = 1;
    inputs[maskInputName(p)] = mask;
  }
  inputs[INPUT.learningRate] = [lr];
  inputs[INPUT.emaMomentum] = [ema];
  return inputs;
}

function initialState(): Record<string, Float32Array> {
  const s = initTrainState(config, 7);
  if (E.isLeft(s)) throw new Error(s.left);
  return trainStateRecord(s.right);
}

function run(state: Record<string, ArrayLike<number>>, inputs: Record<string, ArrayLike<number>>): Record<string, Evaluated> {
  const r = interpret(graph, { ...state, ...inputs }, 'f32');
  if (E.isLeft(r)) throw new Error(r.left);
  return r.right;
}

const nextState = (out: Record<string, Evaluated>): Record<string, ArrayLike<number>> =>
  Object.fromEntries(Object.keys(step.state).map((name) => [name, out[name].data]));

test('initTrainState matches the step’s state names and shapes; the teacher is an exact copy of the student', () => {
  const state = initialState();
  assert.deepEqual(Object.keys(state).sort(), Object.keys(step.state).sort());
  for (const [name, shape] of Object.entries(step.state)) {
    assert.equal(state[name].length, size(shape), name);
    assert.deepEqual([...step.outputs[name].shape], [...shape], `output ${name} has its state's shape`);
  }
  const teacherNames = Object.keys(state).filter((n) => n.startsWith(`${STATE_PREFIX.teacher}.`));
  assert.ok(teacherNames.length > 0 && teacherNames.every((n) => !n.includes('predictor')), 'the teacher has no predictor');
  for (const name of teacherNames) assert.deepEqual(state[name], state[`${STATE_PREFIX.student}.${name.slice(STATE_PREFIX.teacher.length + 1)}`], name);
  assert.ok(Object.keys(state).some((n) => n === 'student.predictor.in_proj_weight'));
  assert.ok(Object.keys(state).some((n) => n === 'bn.teacher.encoder.layer1.0.bn2.running_var'));
  for (const [name, v] of Object.entries(state)) if (name.startsWith(`${STATE_PREFIX.momentum}.`)) assert.ok(v.every((x) => x === 0), name);
  assert.ok(E.isRight(typecheck(graph)), 'the step graph type-checks');
  assert.deepEqual(step.grids, { global: [2, 2], local: [1, 1] });
  assert.deepEqual(step.inputs[maskInputName(step.pairs[2])], [2, 1, 4]);
});

test('one step: finite loss and metrics, shapes preserved, EMA from the pre-update student, attention rows sum to 1', () => {
  const state = initialState();
  // Move the teacher away from the student so the EMA mix is visible.
  for (const name of Object.keys(state)) if (name.startsWith('teacher.')) state[name] = state[name].map((v) => v + 0.25);
  const m = 0.75;
  const out = run(state, fixedInputs(0.5, m));
  for (const metric of ['loss', 'posCos', 'negCos', 'matchedFraction'] as const) {
    assert.ok(Number.isFinite(out[metricOutputName(metric)].data[0]), metric);
  }
  assert.ok(out[metricOutputName('loss')].data[0] > 90, 'the official loss sits near μ = 100');
  assert.equal(out[metricOutputName('matchedFraction')].data[0], 1, 'every query cell has one match');
  for (const [name, shape] of Object.entries(step.state)) {
    assert.deepEqual([...out[name].shape], [...shape], name);
    assert.ok(Array.from(out[name].data).every(Number.isFinite), `${name} is finite`);
  }
  for (const name of Object.keys(state).filter((n) => n.startsWith('teacher.'))) {
    const student = state[`student.${name.slice('teacher.'.length)}`];
    const got = out[name].data;
    state[name].forEach((t, i) => assert.ok(Math.abs(got[i] - (m * t + (1 - m) * student[i])) < 1e-5, `${name}[${i}]`));
  }
  // Every block's last BN γ starts at 0, so the first step gives no gradient inside the residual branches;
  // their 1-D parameters (the bn1 affine) get neither gradient nor weight decay and stay put, all else moves.
  const unchanged = Object.keys(state).filter((n) => n.startsWith('student.') && out[n].data.every((v, i) => v === state[n][i]));
  assert.deepEqual(unchanged.sort(), Object.keys(state).filter((n) => /^student\.encoder\.layer\d\.\d\.bn1\./.test(n)).sort());
  const attention = out[ATTENTION_OUTPUT];
  assert.deepEqual([...attention.shape], [2, 4, 4]);
  for (let row = 0; row < 8; row++) {
    const sum = Array.from(attention.data.slice(row * 4, row * 4 + 4)).reduce((a, v) => a + v, 0);
    assert.ok(Math.abs(sum - 1) < 1e-5, `attention row ${row} sums to ${sum}`);
  }
  const runningMean = out['bn.student.encoder.bn1.running_mean'].data;
  assert.ok(Array.from(runningMean).some((v) => v !== 0), 'BN running statistics update');
});

test('a few interpreted steps on fixed views lower the loss', () => {
  let state: Record<string, ArrayLike<number>> = initialState();
  const inputs = fixedInputs(0.5, 0.99);
  const losses: number[] = [];
  for (let s = 0; s < 4; s++) {
    const out = run(state, inputs);
    losses.push(out[metricOutputName('loss')].data[0]);
    state = nextState(out);
  }
  assert.ok(losses.every(Number.isFinite), `losses ${losses}`);
  assert.ok(losses[losses.length - 1] < losses[0] - 0.1, `losses do not fall: ${losses.join(', ')}`);
});

test('sizes the step cannot train on are error values naming the fields', () => {
  const bigK = buildTrainStep({ ...config, loss: { ...config.loss, k: 10 } }, shapes);
  assert.ok(E.isLeft(bigK) && bigK.left.includes('loss.k = 10') && bigK.left.includes('2×2 teacher grid (4 cells)'), JSON.stringify(bigK));
  const imagenetStem = buildTrainStep({ ...config, model: { ...config.model, encoder: { ...config.model.encoder, stem: 'imagenet' } } }, shapes);
  assert.ok(E.isLeft(imagenetStem) && imagenetStem.left.includes('views.globalSize = 16 px is smaller than the feature stride 32'), JSON.stringify(imagenetStem));
  const oneValue = buildTrainStep(config, { ...shapes, batch: 1 });
  assert.ok(E.isLeft(oneValue) && oneValue.left.includes('batch statistics need at least 2'), JSON.stringify(oneValue));
});

// End to end through the DSL: a 2-layer network trained with plain SGD. The whole step (forward, loss,
// valueAndGrad, parameter update) is built ONCE as a graph with params as `param` leaves and the data and
// learning rate as `input` leaves; the interpreter then runs it 200 times, feeding the updated params back.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as E from 'fp-ts/lib/Either.js';
import { makeGraph, type Graph } from '../compiler/ir.ts';
import { interpret } from '../compiler/interp/interpret.ts';
import { optimize } from '../compiler/passes/index.ts';
import { typecheck } from '../compiler/typecheck.ts';
import { valueAndGrad } from '../dsl/grad.ts';
import * as nn from '../dsl/nn.ts';
import * as T from '../dsl/tensor.ts';
import { flatten, isTensor, type ParamTree } from '../dsl/tree.ts';
import { prng } from './gen.ts';

const POINTS = 64;
const HIDDEN = 16;
const STEPS = 200;
const LEARNING_RATE = 0.1;

type Activation = 'tanh' | 'relu';
interface Mlp extends ParamTree {
  readonly fc1: { readonly weight: T.Tensor<2>; readonly bias: T.Tensor<1> };
  readonly fc2: { readonly weight: T.Tensor<2>; readonly bias: T.Tensor<1> };
}
const params: Mlp = {
  fc1: { weight: T.param('fc1.weight', [HIDDEN, 2]), bias: T.param('fc1.bias', [HIDDEN]) },
  fc2: { weight: T.param('fc2.weight', [1, HIDDEN]), bias: T.param('fc2.bias', [1]) },
};

/** The training step: the mean squared error and every parameter after one SGD update, as one graph. */
function stepGraph(activation: Activation): Graph {
  const x = T.input('data.x', [POINTS, 2]);
  const target = T.input('data.y', [POINTS, 1]);
  const lr = T.input('lr', []);
  const act = activation === 'tanh' ? T.tanh : nn.relu;
  const vg = valueAndGrad((p: Mlp) => {
    const prediction = nn.linear(act(nn.linear(x, p.fc1)), p.fc2);
    const err = T.sub(prediction, target);
    return { value: nn.mean(T.mul(err, err)), aux: undefined };
  })(params);
  const grads = new Map(flatten(vg.grads, isTensor));
  const outputs: Record<string, T.Tensor> = { loss: vg.value };
  for (const [name, p] of flatten(params, isTensor)) outputs[name] = T.sub(p, T.mul(lr, grads.get(name) as T.Tensor));
  return makeGraph(outputs);
}

/** The toy task: y = sin(x₁) + x₂² on 64 fixed points of [-1.5, 1.5]². */
function dataset(): { x: Float32Array; y: Float32Array } {
  const rand = prng(20240611);
  const x = Float32Array.from({ length: POINTS * 2 }, () => 3 * rand() - 1.5);
  const y = Float32Array.from({ length: POINTS }, (_v, i) => Math.sin(x[2 * i]) + x[2 * i + 1] ** 2);
  return { x, y };
}

/** PyTorch's nn.Linear default init, U(±1/√fan_in), from a fixed seed. */
function initialParams(): Record<string, Float32Array> {
  const rand = prng(7);
  const uniform = (n: number, fanIn: number) => Float32Array.from({ length: n }, () => (2 * rand() - 1) / Math.sqrt(fanIn));
  return {
    'fc1.weight': uniform(HIDDEN * 2, 2),
    'fc1.bias': uniform(HIDDEN, 2),
    'fc2.weight': uniform(HIDDEN, HIDDEN),
    'fc2.bias': uniform(1, HIDDEN),
  };
}

/** Run `steps` SGD steps of `graph` from the initial params; returns the loss before every step. */
function train(graph: Graph, steps: number): number[] {
  const { x, y } = dataset();
  let current = initialParams();
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    const r = interpret(graph, { ...current, 'data.x': x, 'data.y': y, lr: [LEARNING_RATE] }, 'f32');
    if (E.isLeft(r)) throw new Error(`step ${s}: ${r.left}`);
    losses.push(r.right.loss.data[0]);
    current = Object.fromEntries(Object.keys(current).map((name) => [name, Float32Array.from(r.right[name].data)]));
  }
  return losses;
}

// Measured with these seeds (f32 interpreter): tanh 1.457 → 0.0259 (56×), relu 1.466 → 0.0119 (123×); over
// 8 other data/init seeds the factor ranged 31–70× (tanh) and 59–195× (relu). Requiring 10× leaves at least
// a 3× margin over the worst seed seen (5.6× for these seeds), while a wrong gradient sign, factor or missing
// term stalls or diverges far above it.
const REQUIRED_FACTOR = 10;

describe('end-to-end training through the interpreter', () => {
  for (const activation of ['tanh', 'relu'] as const) {
    test(`linear → ${activation} → linear, ${STEPS} SGD steps: the loss falls at least ${REQUIRED_FACTOR}×`, () => {
      const graph = stepGraph(activation);
      assert.ok(E.isRight(typecheck(graph)), 'the step graph must type-check');
      // Building it again gives the same nodes: the step really is one fixed graph.
      assert.equal(stepGraph(activation).outputs.loss, graph.outputs.loss);
      const losses = train(graph, STEPS);
      assert.ok(losses.every(Number.isFinite), `non-finite loss at step ${losses.findIndex((l) => !Number.isFinite(l))}`);
      const [first, last] = [losses[0], losses[losses.length - 1]];
      assert.ok(first / last >= REQUIRED_FACTOR, `loss fell only ${(first / last).toFixed(2)}× (${first} → ${last})`);
      // Full-batch gradient descent with a small step must also make steady progress: each 20-step window ends
      // lower than it started.
      for (let s = 20; s < STEPS; s += 20) assert.ok(losses[s] < losses[s - 20], `no progress between steps ${s - 20} and ${s}`);
    });
  }

  test('the optimized step graph trains identically (to float32 rounding)', () => {
    const graph = stepGraph('tanh');
    const optimized = optimize(graph);
    assert.ok(optimized.nodes.length <= graph.nodes.length);
    const [plain, opt] = [train(graph, 20), train(optimized, 20)];
    plain.forEach((l, s) => assert.ok(Math.abs(l - opt[s]) <= 1e-5 * Math.max(1, l), `step ${s}: ${l} vs ${opt[s]} after optimize`));
  });
});

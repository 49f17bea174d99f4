// Workload W1 of the peer benchmarks (../shared/peers/README.md, "W1 as built"), written in our DSL as ONE
// training step: student forward (encoder + projector + MHSA predictor) on both views batched together, teacher
// forward, the README's dense hinge loss in both directions, gradients, SGD with momentum and weight decay
// (PyTorch semantics: one parameter group, decay on every parameter), then the EMA teacher update from the
// updated student. Every persistent tensor is a `param` whose next value is the graph output of the same name,
// so the caller feeds outputs back by name and nothing but the loss leaves the device.
//
// This is deliberately not clove/step.ts: W1 is the peers' fixed yardstick (7×7/2 stem without max-pool,
// projector with a bias on its last conv and no final BN, residual predictor without bias on the in-projection,
// ranks 2..6 as the negative), so the comparison with PyTorch and tfjs is like for like.
import * as T from '../dsl/tensor.ts';
import type { Tensor } from '../dsl/tensor.ts';
import { batchNorm, l2Normalize, multiHeadAttention, relu } from '../dsl/nn.ts';
import { vjp } from '../compiler/autodiff.ts';
import { makeGraph, withScope, type Graph, type Shape } from '../compiler/ir.ts';
import { createRng } from '../clove/data/rng.ts';
import { STAGE_STRIDES, STEM, w1EncoderLayers, w1GridSide, type W1Shape } from './flops.ts';

export const W1_INPUT = { views: 'views', mask: 'mask', learningRate: 'lr', ema: 'ema' } as const;
export const W1_LOSS = 'loss';
export const STATE_PREFIX = { student: 'student', teacher: 'teacher', momentum: 'momentum' } as const;

/** Student parameter names and shapes (torch_bench.py's modules, flattened): encoder, head, predictor. */
export function w1ParamShapes(s: W1Shape): { readonly encoderHead: [string, Shape][]; readonly predictor: [string, Shape][] } {
  const encoderHead: [string, Shape][] = [];
  const bn = (name: string, c: number): void => {
    encoderHead.push([`${name}.weight`, [c]], [`${name}.bias`, [c]]);
  };
  for (const l of w1EncoderLayers(s)) {
    encoderHead.push([`encoder.${l.name}.weight`, [l.cOut, l.cIn, l.kernel, l.kernel]]);
    bn(`encoder.${bnOf(l.name)}`, l.cOut);
  }
  encoderHead.push(['head.conv1.weight', [s.headHidden, s.widths[3], 1, 1]]);
  bn('head.bn', s.headHidden);
  encoderHead.push(['head.conv2.weight', [s.dim, s.headHidden, 1, 1]], ['head.conv2.bias', [s.dim]]);
  const predictor: [string, Shape][] = [
    ['predictor.in_proj_weight', [3 * s.dim, s.dim]],
    ['predictor.out_proj.weight', [s.dim, s.dim]],
    ['predictor.out_proj.bias', [s.dim]],
  ];
  return { encoderHead, predictor };
}

/** The BN that follows each encoder conv: stem → stem_bn, sXbY.conv1 → sXbY.bn1, sXbY.proj → sXbY.proj_bn. */
function bnOf(conv: string): string {
  if (conv === 'stem') return 'stem_bn';
  if (conv.endsWith('.conv1')) return conv.replace(/\.conv1$/, '.bn1');
  if (conv.endsWith('.conv2')) return conv.replace(/\.conv2$/, '.bn2');
  return `${conv}_bn`;
}

type Params = Readonly<Record<string, Tensor>>;

function at(p: Params, name: string): Tensor {
  const t = p[name];
  if (t === undefined) throw new Error(`W1: no parameter '${name}' (have ${Object.keys(p).length}: ${Object.keys(p).slice(0, 5).join(', ')}, …)`);
  return t;
}

/** Train-mode BN (batch statistics); the running statistics W1 never reads are left out of the graph. */
function bnTrain(p: Params, name: string, x: Tensor<4>): Tensor<4> {
  const c = x.shape[1];
  const unused = { runningMean: T.full([c], 0) as Tensor<1>, runningVar: T.full([c], 1) as Tensor<1> };
  return batchNorm(x, { weight: at(p, `${name}.weight`) as Tensor<1>, bias: at(p, `${name}.bias`) as Tensor<1> }, unused, { training: true }).y;
}

function convBn(p: Params, conv: string, x: Tensor<4>, stride: number, padding: number): Tensor<4> {
  return bnTrain(p, bnOf(conv), T.conv2d(x, at(p, `${conv}.weight`) as Tensor<4>, { stride, padding }));
}

/** Encoder + projector: views [2B, C, S, S] → cells [2B, L, D] (row-major over the grid, as torch's flatten(2)). */
export function encoderHead(s: W1Shape, p: Params, x: Tensor<4>): Tensor<3> {
  const pe: Params = Object.fromEntries(Object.entries(p).filter(([k]) => k.startsWith('encoder.')).map(([k, v]) => [k.slice('encoder.'.length), v]));
  let h = withScope('stem', () => relu(convBn(pe, 'stem', x, STEM.stride, STEM.padding)));
  let cIn = s.widths[0];
  s.widths.forEach((w, stage) => {
    for (let b = 0; b < 2; b++) {
      const stride = b === 0 ? STAGE_STRIDES[stage] : 1;
      const name = `s${stage}b${b}`;
      const input = h;
      h = withScope(name, () => {
        const y = convBn(pe, `${name}.conv2`, relu(convBn(pe, `${name}.conv1`, input, stride, 1)), 1, 1);
        const shortcut = stride !== 1 || cIn !== w ? convBn(pe, `${name}.proj`, input, stride, 0) : input;
        return relu(T.add(y, shortcut));
      });
      cIn = w;
    }
  });
  const projected = withScope('head', () => {
    const hidden = relu(bnTrain(p, 'head.bn', T.conv2d(h, at(p, 'head.conv1.weight') as Tensor<4>)));
    const bias = T.reshape(at(p, 'head.conv2.bias'), [1, s.dim, 1, 1]);
    return T.add(T.conv2d(hidden, at(p, 'head.conv2.weight') as Tensor<4>), bias) as Tensor<4>;
  });
  const [n, d, gh, gw] = projected.shape;
  return T.permute(T.reshape(projected, [n, d, gh * gw]), [0, 2, 1]);
}

/** One MHSA layer over the cells: cosine attention (l2-normalised q, k; logits / temperature), output projection, residual. */
export function predictor(s: W1Shape, p: Params, x: Tensor<3>): Tensor<3> {
  return withScope('predictor', () => {
    const attended = multiHeadAttention(
      x,
      {
        inProjWeight: at(p, 'predictor.in_proj_weight') as Tensor<2>,
        // torch_bench.py's qkv Linear has no bias: a zero constant, which the simplifier folds away
        inProjBias: T.full([3 * s.dim], 0) as Tensor<1>,
        outProjWeight: at(p, 'predictor.out_proj.weight') as Tensor<2>,
        outProjBias: at(p, 'predictor.out_proj.bias') as Tensor<1>,
      },
      { heads: s.heads, cosineTemperature: s.temperature },
    );
    return T.add(x, attended.out);
  });
}

/**
 * The README's loss for one direction, as a sum over the masked terms: max(0, −cos(C_i, F_j) + cos(C_i, Fneg_i) + margin)
 * where Fneg_i is the normalised mean of the teacher cells ranked 2..topk by cosine to C_i, without gradient.
 */
export function denseLossSum(s: W1Shape, c: Tensor<3>, f: Tensor<3>, mask: Tensor<3>): Tensor<0> {
  const [n, l] = [c.shape[0], c.shape[1]];
  const cn = l2Normalize(c, -1);
  const fn = l2Normalize(T.stopGradient(f), -1);
  const sim = T.matmul(cn, T.transpose(fn));
  const ranked = T.topkIndices(T.stopGradient(sim), s.topk, -1, true);
  const picked = T.slice(ranked, [[0, n], [0, l], [1, s.topk]]);
  const wide = [n, l, s.topk - 1, l] as const;
  const onehot = T.cast(T.eq(T.broadcastTo(T.expandDims(picked, 3), wide), T.iota(wide, 3)), 'f32');
  const selection = T.div(T.sum(onehot, [2]), s.topk - 1);
  const negative = T.stopGradient(l2Normalize(T.matmul(selection, fn), -1));
  const negativeCos = T.sumKeep(T.mul(cn, negative), [2]);
  const terms = T.mul(relu(T.add(T.sub(negativeCos, sim), s.margin)), mask);
  return T.sum(terms);
}

export interface W1Step {
  readonly graph: Graph;
  /** Persistent tensors (student, teacher, momentum); each has an output of the same name holding its next value. */
  readonly state: Readonly<Record<string, Shape>>;
  /** Per-step inputs: both views, the view1→view2 mask, learning rate and EMA momentum. */
  readonly inputs: Readonly<Record<string, Shape>>;
  /** Names of the student's trainable parameters (without prefix). */
  readonly studentParams: readonly string[];
}

const leafRecord = (entries: readonly (readonly [string, Shape])[], prefix: string): Record<string, Tensor> =>
  Object.fromEntries(entries.map(([name, shape]) => [name, T.param(`${prefix}.${name}`, shape)]));

export function w1Inputs(s: W1Shape): Record<string, Shape> {
  const cells = w1GridSide(s) ** 2;
  return {
    [W1_INPUT.views]: [2 * s.batch, s.imageChannels, s.imageSize, s.imageSize],
    [W1_INPUT.mask]: [s.batch, cells, cells],
    [W1_INPUT.learningRate]: [],
    [W1_INPUT.ema]: [],
  };
}

/** The whole step as one graph. */
export function buildW1Step(s: W1Shape): W1Step {
  if (w1GridSide(s) ** 2 < s.topk) throw new Error(`W1: ${s.imageSize}-px views give ${w1GridSide(s) ** 2} cells, fewer than topk = ${s.topk}`);
  if (s.dim % s.heads !== 0) throw new Error(`W1: dim ${s.dim} is not divisible by ${s.heads} heads`);
  const shapes = w1ParamShapes(s);
  const all = [...shapes.encoderHead, ...shapes.predictor];
  const student = leafRecord(all, STATE_PREFIX.student);
  const teacher = leafRecord(shapes.encoderHead, STATE_PREFIX.teacher);
  const momentum = leafRecord(all, STATE_PREFIX.momentum);
  const inputs = w1Inputs(s);
  const views = T.input(W1_INPUT.views, inputs[W1_INPUT.views]) as Tensor<4>;
  const mask = T.input(W1_INPUT.mask, inputs[W1_INPUT.mask]) as Tensor<3>;
  const lr = T.input(W1_INPUT.learningRate, []) as Tensor<0>;
  const ema = T.input(W1_INPUT.ema, []) as Tensor<0>;
  const b = s.batch;
  const rows = (x: Tensor<3>, view: number): Tensor<3> => T.slice(x, [[view * b, (view + 1) * b, 1]]);

  const teacherCells = withScope('teacher', () => T.stopGradient(encoderHead(s, teacher, views)));
  const studentCells = withScope('student', () => predictor(s, student, encoderHead(s, student, views)));
  const maskT = T.permute(mask, [0, 2, 1]);
  const terms = T.add(
    denseLossSum(s, rows(studentCells, 0), rows(teacherCells, 1), mask),
    denseLossSum(s, rows(studentCells, 1), rows(teacherCells, 0), maskT),
  );
  const loss = T.div(terms, T.maximum(T.mul(T.sum(mask), 2), 1));

  const names = all.map(([name]) => name);
  const grads = vjp(loss, names.map((name) => student[name]));
  const outputs: Record<string, Tensor> = { [W1_LOSS]: loss };
  const nextStudent: Record<string, Tensor> = {};
  names.forEach((name, i) => {
    const w = student[name];
    const buffer = T.add(T.mul(momentum[name], s.momentum), T.add(grads[i] as Tensor, T.mul(w, s.weightDecay)));
    nextStudent[name] = T.sub(w, T.mul(buffer, lr));
    outputs[`${STATE_PREFIX.momentum}.${name}`] = buffer;
    outputs[`${STATE_PREFIX.student}.${name}`] = nextStudent[name];
  });
  // EMA after the optimizer step, from the updated student (torch_bench.py's order).
  for (const [name] of shapes.encoderHead) {
    outputs[`${STATE_PREFIX.teacher}.${name}`] = T.add(T.mul(teacher[name], ema), T.mul(nextStudent[name], T.sub(1, ema)));
  }
  const state: Record<string, Shape> = {};
  for (const [name, shape] of all) {
    state[`${STATE_PREFIX.student}.${name}`] = shape;
    state[`${STATE_PREFIX.momentum}.${name}`] = shape;
  }
  for (const [name, shape] of shapes.encoderHead) state[`${STATE_PREFIX.teacher}.${name}`] = shape;
  return { graph: makeGraph(outputs), state, inputs, studentParams: names };
}

/** The student forward alone (encoder, projector, predictor on both views): the FLOP model's `studentForward`. */
export function buildW1StudentForward(s: W1Shape): Graph {
  const shapes = w1ParamShapes(s);
  const student = leafRecord([...shapes.encoderHead, ...shapes.predictor], STATE_PREFIX.student);
  const views = T.input(W1_INPUT.views, w1Inputs(s)[W1_INPUT.views]) as Tensor<4>;
  return makeGraph({ cells: predictor(s, student, encoderHead(s, student, views)) });
}

/**
 * Initial state: He-normal conv weights (std √(2/(k²·Cin))), BN γ = 1, β = 0, zero biases, predictor weights
 * N(0, 1/D) (tfjs_bench.js's rules), the teacher an exact copy of the student, zero momentum.
 */
export function initW1State(s: W1Shape, seed: number): Record<string, Float32Array> {
  const rng = createRng(seed);
  const shapes = w1ParamShapes(s);
  const normal = (n: number, std: number) => Float32Array.from({ length: n }, () => rng.normal() * std);
  const init = (name: string, shape: Shape): Float32Array => {
    const n = shape.reduce((a, c) => a * c, 1);
    if (shape.length === 4) return normal(n, Math.sqrt(2 / (shape[2] * shape[3] * shape[1])));
    if (shape.length === 2) return normal(n, 1 / Math.sqrt(s.dim));
    return new Float32Array(n).fill(name.endsWith('.weight') ? 1 : 0);
  };
  const state: Record<string, Float32Array> = {};
  for (const [name, shape] of [...shapes.encoderHead, ...shapes.predictor]) {
    const v = init(name, shape);
    state[`${STATE_PREFIX.student}.${name}`] = v;
    state[`${STATE_PREFIX.momentum}.${name}`] = new Float32Array(v.length);
  }
  for (const [name] of shapes.encoderHead) state[`${STATE_PREFIX.teacher}.${name}`] = new Float32Array(state[`${STATE_PREFIX.student}.${name}`]);
  return state;
}

/** Fixed-seed views (standard normal) and a random mask of the given density; lr and EMA momentum from the shape. */
export function w1InputData(s: W1Shape, seed: number): Record<string, Float32Array> {
  const rng = createRng(seed);
  const shapes = w1Inputs(s);
  const size = (shape: Shape) => shape.reduce((a, c) => a * c, 1);
  const views = Float32Array.from({ length: size(shapes[W1_INPUT.views]) }, () => rng.normal());
  const mask = Float32Array.from({ length: size(shapes[W1_INPUT.mask]) }, () => (rng.uniform() < s.maskDensity ? 1 : 0));
  return {
    [W1_INPUT.views]: views,
    [W1_INPUT.mask]: mask,
    [W1_INPUT.learningRate]: Float32Array.of(s.learningRate),
    [W1_INPUT.ema]: Float32Array.of(s.ema),
  };
}

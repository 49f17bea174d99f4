// The micro-benchmarks as graphs of our DSL (sizes from flops.ts's MicroSizes; the smoke test shrinks them).
// Backward workloads output the forward value too, as PyTorch's backward() and tfjs's valueAndGrads compute it:
// without it the compiler would rightly drop the forward conv, which the peers pay for.
import * as T from '../dsl/tensor.ts';
import type { Tensor } from '../dsl/tensor.ts';
import { batchNorm, relu } from '../dsl/nn.ts';
import { vjp } from '../compiler/autodiff.ts';
import { makeGraph, type Graph } from '../compiler/ir.ts';
import { createRng } from '../clove/data/rng.ts';
import { microFlops, type MicroSizes } from './flops.ts';

export const MICRO_NAMES = ['matmul', 'convForward', 'convForwardBackward', 'blockForwardBackward'] as const;
export type MicroName = (typeof MICRO_NAMES)[number];

export const MICRO_TITLES: Readonly<Record<MicroName, (m: MicroSizes) => string>> = {
  matmul: (m) => `matmul ${m.matmul}×${m.matmul}×${m.matmul}`,
  convForward: (m) => `conv3x3 ${m.convChannels}→${m.convChannels} ${m.convBatch}×${m.convSize}×${m.convSize} fwd`,
  convForwardBackward: (m) => `conv3x3 ${m.convChannels}→${m.convChannels} ${m.convBatch}×${m.convSize}×${m.convSize} fwd+dX+dW`,
  blockForwardBackward: (m) => `ResNet basic block ${m.convChannels}ch ${m.convBatch}×${m.convSize}×${m.convSize} fwd+bwd`,
};

export interface MicroWorkload {
  readonly name: MicroName;
  readonly graph: Graph;
  /** Host values of every input, uploaded once. */
  readonly inputs: Readonly<Record<string, Float32Array>>;
  /** Analytic FLOPs (flops.ts), the numerator of GFLOP/s for every system. */
  readonly flops: number;
}

const normal = (n: number, std: number, seed: number): Float32Array => {
  const rng = createRng(seed);
  return Float32Array.from({ length: n }, () => rng.normal() * std);
};

export function microWorkload(name: MicroName, m: MicroSizes): MicroWorkload {
  const flops = microFlops(m)[name];
  const { convBatch: n, convChannels: c, convSize: s } = m;
  const act = [n, c, s, s] as const;
  const weight = [c, c, 3, 3] as const;
  const wStd = Math.sqrt(2 / (9 * c));
  const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
  if (name === 'matmul') {
    const a = T.input('a', [m.matmul, m.matmul]);
    const b = T.input('b', [m.matmul, m.matmul]);
    return { name, flops, graph: makeGraph({ c: T.matmul(a, b) }), inputs: { a: normal(m.matmul ** 2, 1, 1), b: normal(m.matmul ** 2, 1, 2) } };
  }
  const x = T.input('x', act) as Tensor<4>;
  const w = T.input('w', weight) as Tensor<4>;
  const xData = normal(size(act), 1, 3);
  const wData = normal(size(weight), wStd, 4);
  if (name === 'convForward') {
    return { name, flops, graph: makeGraph({ y: T.conv2d(x, w, { padding: 1 }) }), inputs: { x: xData, w: wData } };
  }
  // The cotangent dY is an input: the gradients are the VJP of sum(y · dY), i.e. exactly backward(dY).
  const gy = T.input('dy', act) as Tensor<4>;
  const gyData = normal(size(act), 1, 5);
  if (name === 'convForwardBackward') {
    const y = T.conv2d(x, w, { padding: 1 });
    const [dx, dw] = vjp(T.sum(T.mul(y, gy)), [x, w]);
    return { name, flops, graph: makeGraph({ y, dx, dw }), inputs: { x: xData, w: wData, dy: gyData } };
  }
  // conv-BN-ReLU-conv-BN, identity shortcut, ReLU; BN in train mode (batch statistics), γ = 1, β = 0 at the start.
  const w2 = T.input('w2', weight) as Tensor<4>;
  const gamma1 = T.input('bn1.weight', [c]) as Tensor<1>;
  const beta1 = T.input('bn1.bias', [c]) as Tensor<1>;
  const gamma2 = T.input('bn2.weight', [c]) as Tensor<1>;
  const beta2 = T.input('bn2.bias', [c]) as Tensor<1>;
  const unused = { runningMean: T.full([c], 0) as Tensor<1>, runningVar: T.full([c], 1) as Tensor<1> };
  const bn = (v: Tensor<4>, g: Tensor<1>, b: Tensor<1>) => batchNorm(v, { weight: g, bias: b }, unused, { training: true }).y;
  const h = relu(bn(T.conv2d(x, w, { padding: 1 }), gamma1, beta1));
  const out = relu(T.add(bn(T.conv2d(h, w2, { padding: 1 }), gamma2, beta2), x));
  const wrt = [x, w, gamma1, beta1, w2, gamma2, beta2];
  const [dx, dw1, dg1, db1, dw2, dg2, db2] = vjp(T.sum(T.mul(out, gy)), wrt);
  return {
    name,
    flops,
    graph: makeGraph({ out, dx, dw1, dg1, db1, dw2, dg2, db2 }),
    inputs: {
      x: xData,
      w: wData,
      w2: normal(size(weight), wStd, 6),
      'bn1.weight': new Float32Array(c).fill(1),
      'bn1.bias': new Float32Array(c),
      'bn2.weight': new Float32Array(c).fill(1),
      'bn2.bias': new Float32Array(c),
      dy: gyData,
    },
  };
}

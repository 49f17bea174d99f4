// The analytic FLOP model shared with the peer benchmarks (../shared/peers/flops.js), so that GFLOP/s of
// every system divide the same numerator: 1 multiply-add = 2 FLOP, only convolutions and matrix products are
// counted (BN, ReLU, softmax and the optimizer are not). `graphFlops` counts the same quantity on a compiled
// graph, which ties the model to what our programs actually contain.
import type { Graph } from '../compiler/ir.ts';
import { flopsOf } from '../compiler/facts.ts';

/** 2·N·Hout·Wout·Cout·Cin·Kh·Kw. */
export const convFlops = (n: number, hOut: number, wOut: number, cOut: number, cIn: number, k: number): number => 2 * n * hOut * wOut * cOut * cIn * k * k;

/** Geometry of W1 (defaults: the peers' README); the smoke test shrinks it. */
export interface W1Shape {
  /** Images per step; each contributes two views, batched together as 2B. */
  readonly batch: number;
  /** Side of the square views. */
  readonly imageSize: number;
  readonly imageChannels: number;
  /** Widths of the four ResNet-18 stages (the stem has the first width). */
  readonly widths: readonly [number, number, number, number];
  /** Projector hidden width (1×1 conv, BN, ReLU). */
  readonly headHidden: number;
  /** Embedding width D (projector output, attention width). */
  readonly dim: number;
  readonly heads: number;
  /** Cosine-attention temperature. */
  readonly temperature: number;
  /** Teacher cells ranked per query; ranks 2..topk are averaged into the negative. */
  readonly topk: number;
  readonly margin: number;
  /** Probability of a positive (i, j) in the fixed random mask. */
  readonly maskDensity: number;
  readonly learningRate: number;
  readonly momentum: number;
  readonly weightDecay: number;
  readonly ema: number;
}

export const W1_SHAPE: W1Shape = {
  batch: 16,
  imageSize: 64,
  imageChannels: 3,
  widths: [32, 64, 128, 256],
  headHidden: 512,
  dim: 128,
  heads: 4,
  temperature: 0.1,
  topk: 6,
  margin: 0.5,
  maskDensity: 0.1,
  learningRate: 0.05,
  momentum: 0.9,
  weightDecay: 1e-4,
  ema: 0.99,
};

export const STAGE_STRIDES = [1, 2, 2, 2] as const;
export const STEM = { kernel: 7, stride: 2, padding: 3 } as const;

/** One conv of the encoder, per image: the FLOP model's unit and the parameter count's. */
export interface ConvLayer {
  readonly name: string;
  readonly cIn: number;
  readonly cOut: number;
  readonly kernel: number;
  readonly stride: number;
  readonly padding: number;
  /** Input and output sides (square). */
  readonly inSize: number;
  readonly outSize: number;
}

const out = (size: number, k: number, stride: number, pad: number): number => Math.floor((size + 2 * pad - k) / stride) + 1;

/** Every conv of the W1 encoder in forward order (basic blocks: conv1, conv2, then the projection shortcut). */
export function w1EncoderLayers(s: W1Shape): ConvLayer[] {
  let size = out(s.imageSize, STEM.kernel, STEM.stride, STEM.padding);
  const layers: ConvLayer[] = [{ name: 'stem', cIn: s.imageChannels, cOut: s.widths[0], kernel: STEM.kernel, stride: STEM.stride, padding: STEM.padding, inSize: s.imageSize, outSize: size }];
  let cIn = s.widths[0];
  s.widths.forEach((w, stage) => {
    for (let b = 0; b < 2; b++) {
      const stride = b === 0 ? STAGE_STRIDES[stage] : 1;
      const o = out(size, 3, stride, 1);
      const p = `s${stage}b${b}`;
      layers.push({ name: `${p}.conv1`, cIn, cOut: w, kernel: 3, stride, padding: 1, inSize: size, outSize: o });
      layers.push({ name: `${p}.conv2`, cIn: w, cOut: w, kernel: 3, stride: 1, padding: 1, inSize: o, outSize: o });
      if (stride !== 1 || cIn !== w) layers.push({ name: `${p}.proj`, cIn, cOut: w, kernel: 1, stride, padding: 0, inSize: size, outSize: o });
      cIn = w;
      size = o;
    }
  });
  return layers;
}

/** Side of the encoder's output grid (4 for 64-px views): the number of cells is its square. */
export const w1GridSide = (s: W1Shape): number => {
  const layers = w1EncoderLayers(s);
  return layers[layers.length - 1].outSize;
};

export interface W1Flops {
  readonly perImage: { readonly encoder: number; readonly stem: number; readonly head: number; readonly predictor: number };
  readonly studentForward: number;
  readonly studentBackward: number;
  readonly teacherForward: number;
  readonly loss: number;
  readonly total: number;
}

/** flops.js's w1Flops, generalised to any W1Shape (identical numbers for the default). */
export function w1Flops(s: W1Shape): W1Flops {
  const layers = w1EncoderLayers(s);
  const encoder = layers.reduce((a, l) => a + convFlops(1, l.outSize, l.outSize, l.cOut, l.cIn, l.kernel), 0);
  const stemLayer = layers[0];
  const stem = convFlops(1, stemLayer.outSize, stemLayer.outSize, stemLayer.cOut, stemLayer.cIn, stemLayer.kernel);
  const cells = w1GridSide(s) ** 2;
  const last = s.widths[3];
  const head = 2 * cells * (last * s.headHidden + s.headHidden * s.dim);
  const dh = s.dim / s.heads;
  const predictor = 2 * cells * s.dim * 3 * s.dim + s.heads * 2 * cells * cells * dh * 2 + 2 * cells * s.dim * s.dim;
  const views = 2 * s.batch;
  const lossForward = 2 * s.batch * 2 * cells * cells * s.dim;
  const studentForward = views * (encoder + head + predictor);
  const teacherForward = views * (encoder + head);
  // Backward = input and weight gradients (2× forward), minus the stem's input gradient nobody needs.
  const studentBackward = 2 * studentForward - views * stem;
  const loss = 2 * lossForward;
  return {
    perImage: { encoder, stem, head, predictor },
    studentForward,
    studentBackward,
    teacherForward,
    loss,
    total: studentForward + studentBackward + teacherForward + loss,
  };
}

/** Trainable parameters of the student (encoder + projector + predictor), as PyTorch's `numel` sum counts them. */
export function w1StudentParams(s: W1Shape): { readonly encoder: number; readonly head: number; readonly predictor: number; readonly total: number } {
  const encoder = w1EncoderLayers(s).reduce((a, l) => a + l.cOut * l.cIn * l.kernel * l.kernel + 2 * l.cOut, 0);
  const head = s.widths[3] * s.headHidden + 2 * s.headHidden + s.headHidden * s.dim + s.dim;
  const predictor = 3 * s.dim * s.dim + s.dim * s.dim + s.dim;
  return { encoder, head, predictor, total: encoder + head + predictor };
}

/** The micro-benchmarks' FLOPs (flops.js `micro`, plus the residual block: two convs, each fwd + dX + dW). */
export interface MicroSizes {
  readonly matmul: number;
  readonly convBatch: number;
  readonly convChannels: number;
  readonly convSize: number;
}
export const MICRO_SIZES: MicroSizes = { matmul: 512, convBatch: 16, convChannels: 64, convSize: 32 };

export function microFlops(m: MicroSizes): Readonly<Record<'matmul' | 'convForward' | 'convForwardBackward' | 'blockForwardBackward', number>> {
  const conv = convFlops(m.convBatch, m.convSize, m.convSize, m.convChannels, m.convChannels, 3);
  return { matmul: 2 * m.matmul ** 3, convForward: conv, convForwardBackward: 3 * conv, blockForwardBackward: 6 * conv };
}

/**
 * Conv and matmul FLOPs of the nodes of a graph, counted as the FLOP model counts them (2 per multiply-add of
 * the op's definition, padding and dilation holes included). On a forward graph this equals the analytic
 * model; on a gradient graph it is what our lowering actually asks for.
 */
export const graphFlops = (graph: Graph): number => graph.nodes.reduce((total, n) => total + flopsOf(n), 0);

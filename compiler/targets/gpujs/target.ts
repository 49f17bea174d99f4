// The gpu.js target's schedule choices and limits (its kernels come from `render.ts`).
import { numel, type Node } from '../../ir.ts';
import type { PrimName } from '../../params.ts';
import type { TileRule } from '../../prim.ts';
import { expandConvWeightGrads, productsPerTap } from '../../passes/convWeightGrad.ts';
import { explicitConvPadding } from '../../passes/explicitConvPadding.ts';
import { registry } from '../../registry.ts';
import { bufferBytes } from '../../schedule.ts';
import type { Target } from '../../target.ts';
import { exactDispatch, FLOAT_EXACT, MAX_KERNEL_INPUTS, TILE, tileable } from './dispatch.ts';

/**
 * Index limits of gpu.js kernels: coordinates are floats (exact below 2^24 per axis), flat indices into large
 * tensors are 32-bit integers, and a kernel's threads need exact coordinates too.
 */
const MAX_TENSOR_ELEMENTS = 2 ** 31 - 1;
const MAX_AXIS = FLOAT_EXACT - 1;
const indexable = (shape: readonly number[]): boolean => numel(shape) <= MAX_TENSOR_ELEMENTS && shape.every((d) => d <= MAX_AXIS);

/** The axis along which gpu.js tiles a kernel computing `n` TILE wide (its rule's axis where `tileable`), or null. */
export function gpujsTileAxis(n: Node): number | null {
  const rule = registry[n.op as PrimName].tile as TileRule<PrimName> | undefined;
  const axis = rule === undefined ? null : rule.axis(n, TILE);
  return axis !== null && tileable(n.shape, axis) ? axis : null;
}

/** Windows of at most this many taps may get their weight gradient as one matrix product per tap... */
const TAP_GRAD_MAX_TAPS = 9;
/**
 * ...when each tap's product has at least this many multiply-adds. Measured on webasm (2 cores, 2026-11-28): for
 * a 3×3 64→64 conv on 16×32×32 (67 M per tap) the taps took 0.77 s against 1.28 s for the convolution form; for
 * cpu-small's convs (≤ 1 M per tap) the extra ~20 launches per layer made the step ~15% slower.
 */
const TAP_GRAD_MIN_PRODUCTS = 2 ** 22;
/**
 * Longest reduction loop of one gpu.js thread: a GPU thread that sums N·Ho·Wo products alone serializes the
 * weight gradient, so longer ones are split over the batch and summed in a second kernel.
 */
const WEIGHT_GRAD_MAX_LOOP = 4096;

export const gpujsTarget: Target = {
  name: 'gpujs',
  chooseAlgorithms: expandConvWeightGrads({
    algorithm: (n) => {
      if (n.params.kernel[0] * n.params.kernel[1] <= TAP_GRAD_MAX_TAPS && productsPerTap(n) >= TAP_GRAD_MIN_PRODUCTS) return 'taps';
      const [N, , Ho, Wo] = n.inputs[1].shape;
      return N * Ho * Wo <= WEIGHT_GRAD_MAX_LOOP ? 'direct' : 'conv';
    },
    maxLoop: WEIGHT_GRAD_MAX_LOOP,
    maxKernelInputs: MAX_KERNEL_INPUTS,
  }),
  maxKernelInputs: MAX_KERNEL_INPUTS,
  tileAxis: gpujsTileAxis,
  bufferOperands: () => false,
  foldsOperand: () => false,
  rewrite: explicitConvPadding,
  oversize: (graph, kernels, limits) => {
    const fits = (n: Node) => indexable(n.shape) && bufferBytes(n) <= limits.maxBufferBytes;
    const leaves = graph.nodes.filter((n) => n.op === 'param' || n.op === 'input');
    return [...leaves.filter((n) => !fits(n)), ...kernels.filter((k) => !fits(k.root) || !exactDispatch(k.root.shape, k.tile)).map((k) => k.root)];
  },
  limitsText: (limits) =>
    `exact indices: ${MAX_TENSOR_ELEMENTS} elements, ${MAX_AXIS} per axis, a 2-D dispatch with exact thread coordinates; ${limits.maxBufferBytes} bytes per buffer`,
};

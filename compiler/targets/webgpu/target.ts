// The webgpu target's schedule choices and limits: gpu.js's kernels for everything memory-bound, WGSL GEMM templates
// (render.ts) for the contractions: dot, conv2d (forward and input gradient) and conv2d's weight gradient.
import { numel, type Node } from '../../ir.ts';
import { bufferBytes } from '../../schedule.ts';
import type { Target } from '../../target.ts';
import { exactDispatch, FLOAT_EXACT } from '../gpujs/dispatch.ts';
import { fusesEpilogue } from './epilogue.ts';
import { foldablePad } from './render.ts';

/** Index limits of gpu.js kernels (float coordinates, exact below 2^24 per axis; 32-bit flat indices). */
const MAX_TENSOR_ELEMENTS = 2 ** 31 - 1;
const MAX_AXIS = FLOAT_EXACT - 1;
const indexable = (shape: readonly number[]): boolean => numel(shape) <= MAX_TENSOR_ELEMENTS && shape.every((d) => d <= MAX_AXIS);

const contraction = (n: Node): boolean => n.op === 'dot' || n.op === 'conv2d' || n.op === 'convWeightGrad';

/**
 * @param maxKernelInputs storage buffers per shader stage the device was granted, less the output (16 − 1 on
 *   lavapipe and NVIDIA once the adapter's limit is requested, instead of the default 8 − 1)
 */
export function webgpuTarget(maxKernelInputs: number): Target {
  return {
    name: 'webgpu',
    // conv2d's weight gradient stays one primitive: its template is an implicit GEMM whose reduction runs over
    // N·Ho·Wo in BK-deep slices, so there is no loop length to split and no per-tap window to copy.
    chooseAlgorithms: (g) => g,
    maxKernelInputs,
    // Register tiles live in the templates; gpu.js's Array(4) tiling would store buffers in a tiled layout that
    // the templates do not read.
    tileAxis: () => null,
    bufferOperands: contraction,
    // The input gradient of a conv reads the cotangent through a zero pad with interior zeros (the stride): the
    // template reads the cotangent in place.
    foldsOperand: (n: Node, k: number, operand: Node) => n.op === 'conv2d' && k === 0 && foldablePad(operand) !== null,
    // Elementwise consumers of a contraction (bias, scale and shift, ReLU, a ReLU mask) run in the template's store.
    epilogue: fusesEpilogue,
    // Template kernels handle convolution padding themselves.
    rewrite: (g) => g,
    oversize: (graph, kernels, limits) => {
      const fits = (n: Node) => indexable(n.shape) && bufferBytes(n) <= limits.maxBufferBytes;
      const leaves = graph.nodes.filter((n) => n.op === 'param' || n.op === 'input');
      return [...leaves.filter((n) => !fits(n)), ...kernels.filter((k) => !fits(k.root) || (!contraction(k.root) && !exactDispatch(k.root.shape, null))).map((k) => k.root)];
    },
    limitsText: (limits) =>
      `exact indices: ${MAX_TENSOR_ELEMENTS} elements, ${MAX_AXIS} per axis, a 2-D dispatch with exact thread coordinates for gpu.js kernels; ${limits.maxBufferBytes} bytes per buffer`,
  };
}

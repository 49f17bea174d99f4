// The wasm target's schedule choices and limits (its kernels come from `render.ts`).
import type { Node } from '../../ir.ts';
import { bufferBytes } from '../../schedule.ts';
import { expandConvWeightGrads, productsPerTap } from '../../passes/convWeightGrad.ts';
import type { Target } from '../../target.ts';
import { MAX_MEMORY_BYTES } from './device.ts';
import { foldablePad } from './render.ts';

/**
 * Weight gradients with at least this many multiply-adds per tap run as one GEMM per tap. Measured on 2 cores
 * (2026-12-07): the 3×3 64→64 conv on 16×32×32 (67 M per tap) takes 59 ms forward + dX + dW with taps, 146 ms with
 * the convolution form (its implicit GEMM has a 9-column output and a 16 K-long reduction), and W1 794 ms vs 1 234.
 */
const TAP_GRAD_MIN_PRODUCTS = 2 ** 22;
/** Kernel arguments are function parameters: no binding-slot limit worth fusing around. */
const MAX_KERNEL_INPUTS = 64;

export const wasmTarget: Target = {
  name: 'wasm',
  chooseAlgorithms: expandConvWeightGrads({
    algorithm: (n) => (productsPerTap(n) >= TAP_GRAD_MIN_PRODUCTS ? 'taps' : 'conv'),
    // Each tap's product sums at most 4096 products, the batch split in chunks summed after: measured on the same
    // conv, 59 ms against 105 ms for one 16 K-long reduction per tap (W1 796 ms against 891).
    maxLoop: 4096,
    maxKernelInputs: MAX_KERNEL_INPUTS,
  }),
  maxKernelInputs: MAX_KERNEL_INPUTS,
  // Register blocking lives in the contraction templates; IR kernels vectorize across outputs instead.
  tileAxis: () => null,
  // dot and conv2d run as GEMM templates over plain row-major operands.
  bufferOperands: (n: Node) => n.op === 'dot' || n.op === 'conv2d',
  // A conv reads a zero-padded (and zero-dilated) input through its im2col packing: the input gradient of a strided
  // conv needs no dilated copy of the cotangent.
  foldsOperand: (n: Node, k: number, operand: Node) => n.op === 'conv2d' && k === 0 && foldablePad(operand) !== null,
  rewrite: (g) => g,
  oversize: (graph, kernels, limits) => {
    const fits = (n: Node) => bufferBytes(n) <= limits.maxBufferBytes;
    const leaves = graph.nodes.filter((n) => n.op === 'param' || n.op === 'input');
    return [...leaves.filter((n) => !fits(n)), ...kernels.filter((k) => !fits(k.root)).map((k) => k.root)];
  },
  limitsText: (limits) => `one wasm32 memory of ${MAX_MEMORY_BYTES} bytes holds every tensor; ${limits.maxBufferBytes} bytes per tensor`,
};

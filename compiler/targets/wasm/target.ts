// The wasm target's schedule choices and limits (its kernels come from `render.ts`).
import type { Node } from '../../ir.ts';
import { bufferBytes } from '../../schedule.ts';
import type { Target } from '../../target.ts';
import { MAX_MEMORY_BYTES } from './device.ts';
import { foldablePad } from './render.ts';

export const wasmTarget: Target = {
  name: 'wasm',
  // Kernel arguments are function parameters: no binding-slot limit worth fusing around.
  maxKernelInputs: 64,
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

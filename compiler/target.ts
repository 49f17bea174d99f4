// The compiler's seam between target-neutral passes and what a target decides: which algorithm computes a
// conv's weight gradient, how many buffers a kernel may read, which kernels it register-tiles, which operands its contraction kernels need as plain buffers, and which
// tensors it cannot hold. `plan(graph, { target })` asks these instead of reading constants.
import type { Graph, Node } from './ir.ts';
import type { KernelPlan } from './schedule.ts';

export interface ScheduleTarget {
  /** Array inputs one kernel may read. */
  readonly maxKernelInputs: number;
  /** The axis along which a kernel computing `n` is register-tiled, or null. */
  tileAxis(n: Node): number | null;
  /** Whether a kernel computing `n` reads its operands as plain row-major buffers (template kernels). */
  bufferOperands(n: Node): boolean;
  /** Whether operand k of such a kernel may stay an inlined `operand` over a buffer (the template folds it in). */
  foldsOperand(n: Node, k: number, operand: Node): boolean;
  /**
   * Whether such a kernel may compute `consumer`, the only consumer of contraction `n`, in its store (a fused
   * epilogue); the consumer's kernel then computes the contraction. Absent: never.
   */
  epilogue?(n: Node, consumer: Node): boolean;
}

export interface Target extends ScheduleTarget {
  readonly name: 'gpujs' | 'wasm' | 'webgpu';
  /**
   * Expands the primitives whose algorithm is this target's choice (conv2d's weight gradient) into the kernels it
   * runs best, before the graph is optimized.
   */
  chooseAlgorithms(graph: Graph): Graph;
  /** Graph rewrites this target's kernels want before scheduling (e.g. explicit convolution padding). */
  rewrite(graph: Graph): Graph;
  /** Tensors this target cannot hold or index, given the device's largest buffer. */
  oversize(graph: Graph, kernels: readonly KernelPlan[], limits: { readonly maxBufferBytes: number }): Node[];
  /** What a tensor's limits are, for the message naming oversize tensors. */
  readonly limitsText: (limits: { readonly maxBufferBytes: number }) => string;
}

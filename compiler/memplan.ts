// The memory plan: liveness over the kernel schedule. Every kernel output is allocated at its launch and
// freed right after its last reader (graph outputs are handed to the caller instead). Peak bytes are known
// before anything runs, and tensors that no backend could hold fail here, naming the tensor.
import { numel, showShape, type Graph, type Node } from './ir.ts';
import { bufferBytes, type KernelPlan } from './schedule.ts';

export type Step = { readonly kind: 'launch'; readonly kernel: number } | { readonly kind: 'free'; readonly node: number };

export interface MemoryPlan {
  readonly steps: readonly Step[];
  /** Largest total of live buffers (caller-bound inputs included) at any point of the schedule. */
  readonly peakBytes: number;
  /** What the program would need if no buffer were ever freed. */
  readonly noReuseBytes: number;
  /** Bytes of the caller's inputs (params, state, data) that are live throughout. */
  readonly inputBytes: number;
}

export const describeTensor = (n: Node): string =>
  `${n.op === 'param' || n.op === 'input' ? `${n.op} '${(n.params as { name: string }).name}'` : `${n.layer === '' ? '<top>' : n.layer}: ${n.op}`} ${showShape(n.shape)}`;

/** One message naming the offending tensors (largest first, at most `show` of them) and the target's limits. */
export function describeOversize(tooBig: readonly Node[], limitsText: string, show = 8): string {
  const sorted = [...tooBig].sort((a, c) => bufferBytes(c) - bufferBytes(a));
  const lines = sorted.slice(0, show).map((n) => `  ${describeTensor(n)} = ${numel(n.shape)} elements, ${bufferBytes(n)} bytes`);
  const more = sorted.length > show ? [`  … and ${sorted.length - show} more`] : [];
  return (
    `${tooBig.length} tensor(s) exceed the device limits (${limitsText}):\n${[...lines, ...more].join('\n')}`
  );
}

/** Liveness over the schedule. Size limits are checked separately (`oversizeTensors`), so a plan is always available. */
export function planMemory(graph: Graph, kernels: readonly KernelPlan[]): MemoryPlan {
  const bufferInputs = graph.nodes.filter((n) => n.op === 'param' || n.op === 'input');
  const outputs = new Set(Object.values(graph.outputs).map((n) => n.id));
  const lastRead = new Map<number, number>();
  kernels.forEach((k, pos) => k.args.forEach((a) => lastRead.set(a.id, pos)));
  const produced = new Set(kernels.map((k) => k.root.id));
  const inputBytes = bufferInputs.reduce((s, n) => s + bufferBytes(n), 0);
  const steps: Step[] = [];
  let live = inputBytes;
  let peak = live;
  kernels.forEach((k, pos) => {
    steps.push({ kind: 'launch', kernel: pos });
    live += bufferBytes(k.root);
    peak = Math.max(peak, live);
    for (const a of k.args) {
      if (lastRead.get(a.id) === pos && produced.has(a.id) && !outputs.has(a.id)) {
        steps.push({ kind: 'free', node: a.id });
        live -= bufferBytes(a);
      }
    }
    // A kernel output nobody reads (and that is not an output) is freed at once.
    if (!lastRead.has(k.root.id) && !outputs.has(k.root.id)) {
      steps.push({ kind: 'free', node: k.root.id });
      live -= bufferBytes(k.root);
    }
  });
  const noReuseBytes = inputBytes + kernels.reduce((s, k) => s + bufferBytes(k.root), 0);
  return { steps, peakBytes: peak, noReuseBytes, inputBytes };
}

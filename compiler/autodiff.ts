// Reverse-mode automatic differentiation as a graph-to-graph transform: the gradients are ordinary nodes,
// so they can be inspected, simplified, interpreted and compiled like any other graph.
import { addCot, constant, zerosLike } from './build.ts';
import { atLayer, reachable, type Node } from './ir.ts';
import { registry } from './registry.ts';

type VjpRule = (node: Node, cotangent: Node) => readonly (Node | null)[];

/**
 * Cotangents of `output` with respect to each node of `wrt` (the gradient of sum(output) when it is not a
 * scalar). Cotangents are accumulated by addition; null means a symbolic zero and never becomes a node until
 * a gradient is requested for a node it does not reach, which then gets explicit zeros.
 */
export function vjp(output: Node, wrt: readonly Node[]): Node[] {
  const nodes = reachable([output]);
  const targets = new Set(wrt.map((w) => w.id));
  // Only nodes on a path from some `wrt` node need a cotangent.
  const relevant = new Set<number>();
  for (const n of nodes) if (targets.has(n.id) || n.inputs.some((i) => relevant.has(i.id))) relevant.add(n.id);
  const cot = new Map<number, Node | null>([[output.id, constant(1, output.shape)]]);
  for (let k = nodes.length - 1; k >= 0; k--) {
    const n = nodes[k];
    const g = cot.get(n.id) ?? null;
    if (g === null || !relevant.has(n.id) || n.inputs.length === 0) continue;
    const parts = atLayer(n.layer, () => (registry[n.op].vjp as VjpRule)(n, g));
    n.inputs.forEach((inp, i) => {
      if (!relevant.has(inp.id) || inp.dtype !== 'f32') return;
      cot.set(inp.id, addCot(cot.get(inp.id) ?? null, parts[i] ?? null));
    });
  }
  return wrt.map((w) => cot.get(w.id) ?? zerosLike(w));
}

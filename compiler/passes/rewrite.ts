// Bottom-up graph rewriting: every pass is a pure Graph → Graph function built on this.
import { mk } from '../build.ts';
import { atLayer, makeGraph, type Graph, type Node } from '../ir.ts';
import type { PrimName, PrimParams } from '../params.ts';

/** Rebuild a node with new inputs (re-interned, so unchanged inputs give back the same node). */
export const rebuild = (n: Node, inputs: readonly Node[]): Node =>
  mk(n.op as PrimName, n.params as PrimParams[PrimName], inputs);

/** Apply `rule` to every node after its inputs were rewritten; `rule` returns the replacement node. */
export function mapGraph(g: Graph, rule: (n: Node) => Node): Graph {
  const done = new Map<number, Node>();
  for (const n of g.nodes) {
    const inputs = n.inputs.map((i) => done.get(i.id) as Node);
    const same = inputs.every((x, k) => x === n.inputs[k]);
    done.set(n.id, atLayer(n.layer, () => rule(same ? n : rebuild(n, inputs))));
  }
  const outputs: Record<string, Node> = {};
  for (const [k, v] of Object.entries(g.outputs)) outputs[k] = done.get(v.id) as Node;
  return makeGraph(outputs);
}

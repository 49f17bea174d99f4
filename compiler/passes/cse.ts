// Common-subexpression elimination. Hash-consing already merges structurally equal nodes at construction;
// this pass also merges expressions that differ only in the operand order of commutative ops (a+b and b+a).
import { type Graph, type Node } from '../ir.ts';
import { primOf } from '../facts.ts';
import { mapGraph, rebuild } from './rewrite.ts';

export const cse = (g: Graph): Graph =>
  mapGraph(g, (n: Node) => {
    if (primOf(n).commutative !== true) return n;
    const [a, c] = n.inputs;
    return a.id > c.id ? rebuild(n, [c, a]) : n;
  });

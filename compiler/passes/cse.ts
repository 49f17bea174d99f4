// Common-subexpression elimination. Hash-consing already merges structurally equal nodes at construction;
// this pass also merges expressions that differ only in the operand order of commutative ops (a+b and b+a).
import { type Graph, type Node } from '../ir.ts';
import { mapGraph, rebuild } from './rewrite.ts';

const commutative = new Set(['add', 'mul', 'maximum', 'minimum', 'eq', 'ne']);

export const cse = (g: Graph): Graph =>
  mapGraph(g, (n: Node) => {
    if (!commutative.has(n.op)) return n;
    const [a, c] = n.inputs;
    return a.id > c.id ? rebuild(n, [c, a]) : n;
  });

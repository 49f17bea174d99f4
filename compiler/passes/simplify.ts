// Algebraic simplification and constant folding. Every rule preserves the interpreter's results exactly
// (no rule that could change NaN/Inf propagation, e.g. x·0 → 0, is applied).
import * as b from '../build.ts';
import { numel, sameShape, type Graph, type Node } from '../ir.ts';
import type { Buf, InterpContext } from '../prim.ts';
import { primOf } from '../facts.ts';
import { registry } from '../registry.ts';
import { mapGraph } from './rewrite.ts';

const isConst = (n: Node, value?: number): boolean =>
  n.op === 'const' && (value === undefined || (n.params as { value: number }).value === value);
const constValue = (n: Node): number => (n.params as { value: number }).value;


/** Evaluate an elementwise op on constant operands with the op's own interpreter (float64; the result is rounded wherever it is stored). */
function foldConstant(n: Node): Node | undefined {
  const ctx: InterpContext = { alloc: (k) => new Float64Array(k), lookup: () => new Float64Array(0) };
  const interp = registry[n.op].interp as (p: unknown, i: readonly { data: Buf; shape: readonly number[] }[], o: Node, c: InterpContext) => Buf;
  const v = interp(n.params, n.inputs.map((i) => ({ data: new Float64Array([constValue(i)]), shape: [1] })), n, ctx)[0];
  return Number.isFinite(v) ? b.constant(v, n.shape, n.dtype) : undefined;
}

function simplifyNode(n: Node): Node {
  const [x, y] = n.inputs;
  if (n.inputs.length > 0 && n.inputs.every((i) => isConst(i))) {
    const p = primOf(n);
    if (p.kind === 'elementwise') return foldConstant(n) ?? n;
    // moving a constant's elements around leaves the same constant (a pad's fill is another value)
    if (p.kind === 'movement' && p.introducesValues !== true) return b.constant(constValue(x), n.shape, n.dtype);
    if (n.op === 'sum') return b.constant(constValue(x) * (numel(x.shape) / numel(n.shape)), n.shape, n.dtype);
  }
  switch (n.op) {
    case 'add':
      return isConst(y, 0) ? x : isConst(x, 0) ? y : n;
    case 'sub':
      return isConst(y, 0) ? x : n;
    case 'mul':
      return isConst(y, 1) ? x : isConst(x, 1) ? y : n;
    case 'div':
      return isConst(y, 1) ? x : n;
    case 'neg':
      return x.op === 'neg' ? x.inputs[0] : n;
    case 'reshape':
      if (sameShape(x.shape, n.shape)) return x;
      return x.op === 'reshape' ? b.reshape(x.inputs[0], n.shape) : n;
    case 'expand':
      return sameShape(x.shape, n.shape) ? x : n;
    case 'permute': {
      const perm = (n.params as { perm: readonly number[] }).perm;
      if (perm.every((p, i) => p === i)) return x;
      if (x.op === 'permute') {
        const inner = (x.params as { perm: readonly number[] }).perm;
        return b.permute(x.inputs[0], perm.map((p) => inner[p]));
      }
      return n;
    }
    case 'flip':
      return x.op === 'flip' && JSON.stringify(x.params) === JSON.stringify(n.params) ? x.inputs[0] : n;
    case 'slice':
    case 'pad':
      return sameShape(x.shape, n.shape) && isIdentityWindow(n) ? x : n;
    case 'sum':
    case 'reduceMax':
      return (n.params as { axes: readonly number[] }).axes.length === 0 ? x : n;
    case 'stopGradient':
      return x.op === 'stopGradient' ? x : n;
    default:
      return n;
  }
}

function isIdentityWindow(n: Node): boolean {
  const p = n.params as { start?: readonly number[]; step?: readonly number[]; lo?: readonly number[]; interior?: readonly number[] };
  if (n.op === 'slice') return (p.start ?? []).every((s) => s === 0) && (p.step ?? []).every((s) => s === 1);
  return (p.lo ?? []).every((s) => s === 0) && (p.interior ?? []).every((s) => s === 0);
}

/** Rewrite to a fixed point (each sweep can expose new constant operands). */
export function simplify(g: Graph): Graph {
  let cur = g;
  for (let sweep = 0; sweep < 8; sweep++) {
    const next = mapGraph(cur, simplifyNode);
    if (next.nodes.length === cur.nodes.length && next.nodes.every((n, i) => n === cur.nodes[i])) return next;
    cur = next;
  }
  return cur;
}

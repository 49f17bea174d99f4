// Shared machinery for elementwise primitives. Each elementwise primitive still lives in its own file with
// all of its rules (semantics, derivative, linearity); this file only removes the loop boilerplate.
import * as b from '../build.ts';
import { fail, ok, sameShape, showShape, type DType, type Node, type ShapeInfo, type ShapeResult } from '../ir.ts';
import type { Prim } from '../prim.ts';
import type { LowerCtx } from '../lowering.ts';
import { fcmp, fconst, fselect, type CompareOp, type F } from '../kernel/ir.ts';
import type { PrimName } from '../params.ts';

type UnaryName = 'neg' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'reciprocal' | 'abs' | 'sign' | 'tanh';
type BinaryName = 'add' | 'sub' | 'mul' | 'div' | 'maximum' | 'minimum' | 'pow';
type CompareName = 'lt' | 'le' | 'eq' | 'ne';

const numeric = (d: DType): boolean => d === 'f32' || d === 'i32';

export function unaryShape(inputs: readonly ShapeInfo[]): ShapeResult {
  const [x] = inputs;
  return numeric(x.dtype) ? ok(x.shape, x.dtype) : fail(`expects a numeric operand, got ${x.dtype}`);
}

export function binaryShape(inputs: readonly ShapeInfo[], resultDtype?: DType): ShapeResult {
  const [a, c] = inputs;
  if (!sameShape(a.shape, c.shape)) return fail(`cannot broadcast ${showShape(a.shape)} with ${showShape(c.shape)}`);
  if (a.dtype !== c.dtype) return fail(`operand dtypes differ: ${a.dtype} and ${c.dtype}`);
  return ok(a.shape, resultDtype ?? a.dtype);
}

export function unaryPrim<Op extends UnaryName>(
  name: Op,
  f: (x: number) => number,
  /** d/dx given x, y = f(x) and the output cotangent g; null when the derivative is zero almost everywhere. */
  vjp: (x: Node, y: Node, g: Node) => Node | null,
  /** The same function in the kernel IR, given the (bound) operand. */
  expr: (x: F, ctx: LowerCtx) => F,
  linear = false,
): Prim<Op> {
  return {
    name,
    arity: 1,
    shape: (_p, inputs) => unaryShape(inputs),
    vjp: (node, g) => [vjp(node.inputs[0], node, g)],
    lower: (_n, idx, ctx) => expr(ctx.bind(ctx.input(0, idx)), ctx),
    interp: (_p, [x], _out, ctx) => {
      const out = ctx.alloc(x.data.length);
      for (let i = 0; i < out.length; i++) out[i] = f(x.data[i]);
      return out;
    },
    linearIn: linear ? [0] : [],
  };
}

export function binaryPrim<Op extends BinaryName>(
  name: Op,
  f: (a: number, c: number) => number,
  vjp: (a: Node, c: Node, y: Node, g: Node) => readonly [Node | null, Node | null],
  expr: (a: F, c: F) => F,
  linearIn: readonly number[],
): Prim<Op> {
  return {
    name,
    arity: 2,
    shape: (_p, inputs) => binaryShape(inputs),
    vjp: (node, g) => vjp(node.inputs[0], node.inputs[1], node, g),
    lower: (_n, idx, ctx) => expr(ctx.bind(ctx.input(0, idx)), ctx.bind(ctx.input(1, idx))),
    interp: (_p, [a, c], _out, ctx) => {
      const out = ctx.alloc(a.data.length);
      for (let i = 0; i < out.length; i++) out[i] = f(a.data[i], c.data[i]);
      return out;
    },
    linearIn,
  };
}

export function comparePrim<Op extends CompareName>(name: Op, f: (a: number, c: number) => boolean, operator: CompareOp): Prim<Op> {
  return {
    name,
    arity: 2,
    shape: (_p, inputs) => binaryShape(inputs, 'bool'),
    vjp: () => [null, null],
    lower: (_n, idx, ctx) => fselect(fcmp(operator, ctx.input(0, idx), ctx.input(1, idx)), fconst(1), fconst(0)),
    interp: (_p, [a, c], _out, ctx) => {
      const out = ctx.alloc(a.data.length);
      for (let i = 0; i < out.length; i++) out[i] = f(a.data[i], c.data[i]) ? 1 : 0;
      return out;
    },
    linearIn: [],
  };
}

/** Cotangent helpers shared by derivative rules. */
export const scaled = (g: Node, k: number): Node => b.mul(g, b.scalar(k, g));
export type { PrimName };

/**
 * maximum/minimum: the cotangent goes to the operand that wins, and is split evenly on ties (as JAX does), so the
 * rule stays symmetric in its operands. `wins(a, c)` builds the node "a strictly beats c".
 */
export function extremumPrim<Op extends 'maximum' | 'minimum'>(name: Op, f: (a: number, c: number) => number, wins: (a: Node, c: Node) => Node, fn: (a: F, c: F) => F): Prim<Op> {
  return binaryPrim(
    name,
    f,
    (a, c, _y, g) => {
      const wa = b.where(wins(a, c), b.scalar(1, g), b.where(b.eq(a, c), b.scalar(0.5, g), b.scalar(0, g)));
      return [b.mul(g, wa), b.mul(g, b.sub(b.scalar(1, g), wa))];
    },
    fn,
    [],
  );
}

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
    kind: 'elementwise',
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
  commutative = false,
): Prim<Op> {
  return {
    name,
    arity: 2,
    kind: 'elementwise',
    shape: (_p, inputs) => binaryShape(inputs),
    vjp: (node, g) => vjp(node.inputs[0], node.inputs[1], node, g),
    commutative,
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
    kind: 'elementwise',
    shape: (_p, inputs) => binaryShape(inputs, 'bool'),
    commutative: operator === '==' || operator === '!=',
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
 * maximum/minimum: the cotangent goes to the operand that strictly wins, and on a tie to the SECOND operand.
 * The operand order thus picks the tie's winner, which gives both of PyTorch's conventions at the kinks the
 * authors' code has, as one elementwise op whose rule only compares its operands:
 * - ReLU = maximum(x, 0): 0 for x at x = 0, as torch.relu (threshold_backward) gives;
 * - clamp_min(x, lo) = maximum(lo, x): the whole cotangent for x at x = lo, as torch.clamp_min (F.normalize's
 *   norm, MarginRankingLoss's hinge) gives; clamp_max(x, hi) = minimum(hi, x) likewise.
 * (dsl/nn.ts `relu` and `clampMin` write them so.) JAX and torch.maximum/minimum split a tie ½/½ instead.
 * That split is not kept because the method never differentiates a tie of a plain maximum/minimum, only ties
 * of ReLU and clamps. Keeping it and building ReLU as where(x ≤ 0, 0, x) would also cost a mask kernel and
 * buffer per ReLU, because forward and backward share the mask: 2103 kernels instead of 2037 in the cpu-small
 * step (`--plan`). (compiler/passes/cse.ts may swap the operands after differentiation: values do not
 * depend on the order.)
 * `wins(a, c)` builds "a strictly beats c".
 */
export function extremumPrim<Op extends 'maximum' | 'minimum'>(name: Op, f: (a: number, c: number) => number, wins: (a: Node, c: Node) => Node, fn: (a: F, c: F) => F): Prim<Op> {
  return binaryPrim(
    name,
    f,
    (a, c, _y, g) => {
      const zero = b.zerosLike(g);
      return [b.where(wins(a, c), g, zero), b.where(wins(a, c), zero, g)];
    },
    fn,
    [],
    true,
  );
}

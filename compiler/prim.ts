// What every primitive must provide. `registry.ts` maps every PrimName to a Prim, so forgetting a rule
// (or a primitive) is a type error rather than a runtime surprise.
import type { Node, ShapeInfo, ShapeResult } from './ir.ts';
import type { F, I } from './kernel/ir.ts';
import type { LowerCtx } from './lowering.ts';
import type { PrimName, PrimParams } from './params.ts';

/** Interpreter storage: float32 for the reference results, float64 for gradient checks. Ints/bools are stored as numbers. */
export type Buf = Float32Array | Float64Array;
export interface Value {
  readonly data: Buf;
  readonly shape: readonly number[];
}
export interface InterpContext {
  /** Fresh zeroed storage of the interpreter's precision. */
  readonly alloc: (length: number) => Buf;
  /** The host value bound to a param or input leaf (validated against `info` by the interpreter). */
  readonly lookup: (name: string, info: ShapeInfo) => Buf;
}

/**
 * What the scheduler and the passes need to know of an op: leaves are bound or constant; elementwise and movement
 * ops are inlined into their consumers (movement as index arithmetic); reductions, contractions, windows and
 * selections own loops and get kernels of their own; indexing ops (gather, concat) are inlined reads.
 */
export type PrimKind = 'leaf' | 'elementwise' | 'movement' | 'reduction' | 'contraction' | 'window' | 'selection' | 'indexing';

export interface Prim<Op extends PrimName> {
  readonly name: Op;
  /** Number of inputs, or 'variadic' (concat). Leaves have 0. */
  readonly arity: number | 'variadic';
  readonly kind: PrimKind;
  /**
   * Inputs whose elements each output reads many times, kept in buffers unless reading through them is cheap.
   * Default: every input of a contraction, window or selection, none otherwise.
   */
  readonly rereads?: readonly number[];
  /** movement: reading through it costs a few index operations, without branches or divisions. */
  readonly cheapReread?: boolean;
  /** movement: the output is the input's bytes as they are (a template kernel can read the input's buffer). */
  readonly keepsBytes?: boolean;
  /** movement: writes values that are not the input's (a pad's fill). */
  readonly introducesValues?: boolean;
  /** binary: f(a, c) = f(c, a) for every value. */
  readonly commutative?: boolean;
  /**
   * contraction: multiply-adds of one evaluation, as the op is defined (padding and dilation holes included), the
   * unit of the FLOP model the benchmarks and profiles divide by.
   */
  readonly multiplyAdds?: (node: Node<Op>) => number;
  /** Shape and dtype of the output, or a message saying what is wrong (the op name is added by the caller). */
  readonly shape: (params: PrimParams[Op], inputs: readonly ShapeInfo[]) => ShapeResult;
  /**
   * Reverse-mode rule: given the node and the cotangent of its output, the cotangent of each input
   * (null = symbolic zero: no gradient flows there). Built from primitives only (no scatter).
   */
  readonly vjp: (node: Node<Op>, cotangent: Node) => readonly (Node | null)[];
  /** Reference semantics on host arrays. */
  readonly interp: (params: PrimParams[Op], inputs: readonly Value[], out: ShapeInfo, ctx: InterpContext) => Buf;
  /**
   * Lowering to the kernel IR: statements built through `ctx` and the expression of the node's value at flat
   * output index `idx`. Leaves that are buffers (param, input) are never lowered: the scheduler binds them.
   */
  readonly lower: (node: Node<Op>, idx: I, ctx: LowerCtx) => F;
  /** Inputs in which the output is linear when the other inputs are held fixed (checked by the adjoint test). */
  readonly linearIn: readonly number[] | 'all';
  /** Register tiling, for ops whose neighbouring outputs along one axis share most of their reads. */
  readonly tile?: TileRule<Op>;
}

/** How one thread computes several consecutive outputs along an axis (a dot's rows, a conv's output channels); the target chooses how many. */
export interface TileRule<Op extends PrimName> {
  /** The output axis to tile `width` wide, or null where this node cannot be (e.g. groups narrower than a tile). */
  readonly axis: (node: Node<Op>, width: number) => number | null;
  /**
   * Like `lower`, for the flat output indices `idxs` (consecutive along `axis`) at once: one pass over
   * the reads, which the kernel writer shares wherever their index expressions coincide.
   */
  readonly lower: (node: Node<Op>, idxs: readonly I[], ctx: LowerCtx) => readonly F[];
}

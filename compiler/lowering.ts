// The lowering interface every primitive implements: given its node and a flat output index (a kernel-IR index
// expression), build the statements that compute it through `ctx` and return the expression of the node's value
// there. Rules are target-neutral: what a target does differently (how it indexes large tensors, how buffers are
// laid out) is behind `ctx`.
import type { Shape } from './ir.ts';
import type { F, I } from './kernel/ir.ts';

export interface LowerCtx {
  /** The node's k-th input at flat index `idx` (inlined, or read from a buffer); bound, so reuse is free. */
  input(k: number, idx: I): F;
  /** Bind a value to a fresh name in the current scope (memoized by structure) and return the reference. */
  bind(expr: F): F;
  /** Bind an index to a fresh name in the current scope (memoized; the range carries over). */
  bindIndex(expr: I): I;
  /** Declare a mutable f32 variable initialised to `init`; returns its name (read it with `fref`). */
  variable(init: F): string;
  /** `name = value` in the current scope. */
  set(name: string, value: F): void;
  /** `for v in [0, count)` with a literal bound; `body` emits into the loop scope. */
  loop(count: number, body: (v: I) => void): void;
  /**
   * A reduction loop: `accs[j] = combine(accs[j], term_j(v))` for v < count, where `body(v)` returns the terms.
   * The writer may fold several iterations' terms before they meet the accumulator (`combine` must be
   * associative), which shortens the dependency chain through it.
   */
  accumulate(count: number, accs: readonly string[], body: (v: I) => readonly F[], combine: (a: F, b: F) => F): void;
  /** Row-major coordinates of flat index `idx` in `shape`. */
  coords(shape: Shape, idx: I): I[];
  /** Row-major flat index of `coords` in `shape` (structural when the target indexes `shape` by coordinates). */
  flat(coords: readonly I[], shape: Shape): I;
  /**
   * Whether the target indexes `shape` by coordinates (gpu.js: tensors of 2^24 elements or more, past exact float
   * indices). A rule that builds an input index by arithmetic on flat indices (a base plus an offset, hoisted out
   * of its loops) must build it through `flat(coords, shape)` instead when the input is large.
   */
  large(shape: Shape): boolean;
}

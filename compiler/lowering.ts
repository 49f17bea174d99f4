// The lowering interface every primitive implements: given its node and a flat output index (a source
// expression), emit gpu.js-dialect statements and return the expression of the node's value there.
// Values and coordinates are floats in generated code, exact below 2^24. A flat index into a tensor of 2^24 or
// more elements is not: for such a *large* tensor, `flat` returns a symbolic index that stands for its
// coordinates, and the code generator reads buffers at an integer index built from those coordinates.
import type { Shape } from './ir.ts';

/** Float arithmetic represents every integer below this exactly (f32 has a 24-bit significand). */
export const FLOAT_EXACT = 2 ** 24;

export interface LowerCtx {
  /** Expression of the node's k-th input evaluated at flat index `idx` (inlined or read from a buffer). */
  input(k: number, idx: string): string;
  /** Bind `expr` to a fresh constant in the current scope and return its name. */
  bind(expr: string): string;
  /** Declare a mutable variable initialised to `init`; returns its name. */
  variable(init: string): string;
  /** Emit a raw statement in the current scope. */
  emit(stmt: string): void;
  /** `for (let v = 0; v < count; v++) { body }` with a literal bound; `body` emits into the loop scope. */
  loop(count: number, body: (v: string) => void): void;
  /**
   * A reduction loop: `accs[j] = combine(accs[j], term_j(v))` for v < count, where `body(v)` returns the terms.
   * The writer may fold several iterations' terms before they meet the accumulator (`combine` must be
   * associative), which shortens the dependency chain through it.
   */
  accumulate(count: number, accs: readonly string[], body: (v: string) => readonly string[], combine: (a: string, b: string) => string): void;
  /** Row-major coordinates of flat index `idx` in `shape` (one bound name per axis). */
  coords(shape: Shape, idx: string): string[];
  /** Row-major flat index of `coords` in `shape` (symbolic when `shape` is large: use it only as an index). */
  flat(coords: readonly string[], shape: Shape): string;
  /**
   * Whether flat indices into `shape` are symbolic (a tensor of 2^24 elements or more; see the header). A rule
   * that builds an input index by arithmetic on flat indices (a base plus an offset, hoisted out of its loops)
   * must build it through `flat(coords, shape)` instead when the input is large.
   */
  large(shape: Shape): boolean;
}

/** A float literal gpu.js types as a float on every backend (always has a '.' or an exponent). */
export function lit(v: number): string {
  if (!Number.isFinite(v)) throw new Error(`lit: non-finite literal ${v} (GPU paths use finite sentinels)`);
  const s = String(v);
  return /[.e]/.test(s) ? (v < 0 ? `(${s})` : s) : v < 0 ? `(${s}.0)` : `${s}.0`;
}

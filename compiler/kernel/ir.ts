// The kernel IR: what a primitive's lowering rule builds, and what every target renders (gpu.js source text,
// WebAssembly bytecode). Three expression sorts, kept apart by the type system:
// - `I`: integer index arithmetic (coordinates, flat indices, loop counters). Exact on every target: wasm
//   renders it as i32; the gpu.js target renders it as floats, exact below 2^24, and reaches larger tensors
//   through structural `flat` nodes (see `flat` below).
// - `F`: tensor values (every tensor element is stored as f32, bools and ints included).
// - `B`: conditions.
// Expressions are immutable trees with a structural `key` (equal keys = equal expressions), so writers can
// memoize and targets can share work; integer expressions carry a conservative value range [lo, hi], which lets
// builders fold clamps that cannot bind and lets targets skip floor corrections on non-negative operands.
// Statements: `let` (a named value), `var`/`set` (a mutable f32 accumulator), `loop` (a literal trip count).

export type I =
  | { readonly s: 'i'; readonly op: 'const'; readonly v: number; readonly key: string; readonly lo: number; readonly hi: number }
  /** A loop variable, thread coordinate or let-bound index. */
  | { readonly s: 'i'; readonly op: 'sym'; readonly name: string; readonly key: string; readonly lo: number; readonly hi: number }
  | { readonly s: 'i'; readonly op: 'add' | 'sub' | 'mul' | 'min' | 'max'; readonly a: I; readonly b: I; readonly key: string; readonly lo: number; readonly hi: number }
  /** Floor division / floor remainder by a positive constant. */
  | { readonly s: 'i'; readonly op: 'div' | 'mod'; readonly a: I; readonly d: number; readonly key: string; readonly lo: number; readonly hi: number }
  | { readonly s: 'i'; readonly op: 'select'; readonly c: B; readonly a: I; readonly b: I; readonly key: string; readonly lo: number; readonly hi: number }
  /** ⌊x⌋ of a value, as an index (gather's index operand). */
  | { readonly s: 'i'; readonly op: 'floor'; readonly x: F; readonly key: string; readonly lo: number; readonly hi: number }
  /**
   * The row-major flat index of `coords` in a tensor the target indexes by coordinates (gpu.js: 2^24 elements or
   * more). Only loads may consume it; targets that index such tensors by coordinates refuse arithmetic on it.
   */
  | { readonly s: 'i'; readonly op: 'flat'; readonly coords: readonly I[]; readonly shape: readonly number[]; readonly key: string; readonly lo: number; readonly hi: number };

export type UnaryOp = 'neg' | 'exp' | 'log' | 'sqrt' | 'abs' | 'floor' | 'trunc';
export type BinaryOp = 'add' | 'sub' | 'mul' | 'div' | 'min' | 'max' | 'pow';
export type CompareOp = '<' | '<=' | '==' | '!=' | '>' | '>=';

export type F =
  | { readonly s: 'f'; readonly op: 'const'; readonly v: number; readonly key: string }
  /** Element `index` of kernel argument `arg` (a buffer), in that buffer's physical layout. */
  | { readonly s: 'f'; readonly op: 'load'; readonly arg: number; readonly index: I; readonly key: string }
  /** A let-bound value or a mutable variable, by name. */
  | { readonly s: 'f'; readonly op: 'ref'; readonly name: string; readonly key: string }
  | { readonly s: 'f'; readonly op: 'itof'; readonly x: I; readonly key: string }
  | { readonly s: 'f'; readonly op: UnaryOp; readonly x: F; readonly key: string }
  | { readonly s: 'f'; readonly op: `f${BinaryOp}`; readonly a: F; readonly b: F; readonly key: string }
  | { readonly s: 'f'; readonly op: 'select'; readonly c: B; readonly a: F; readonly b: F; readonly key: string };

export type B =
  | { readonly s: 'b'; readonly op: 'fcmp'; readonly cmp: CompareOp; readonly a: F; readonly b: F; readonly key: string }
  | { readonly s: 'b'; readonly op: 'icmp'; readonly cmp: CompareOp; readonly a: I; readonly b: I; readonly key: string }
  | { readonly s: 'b'; readonly op: 'and' | 'or'; readonly a: B; readonly b: B; readonly key: string };

export type Stmt =
  | { readonly s: 'let'; readonly name: string; readonly value: I | F }
  | { readonly s: 'var'; readonly name: string; readonly init: F }
  | { readonly s: 'set'; readonly name: string; readonly value: F }
  | { readonly s: 'loop'; readonly v: string; readonly count: number; readonly body: readonly Stmt[] };

// ---- integer builders (fold constants and identities; track ranges) ----

export const iconst = (v: number): I => {
  if (!Number.isInteger(v)) throw new Error(`kernel IR: index constant ${v} is not an integer`);
  return { s: 'i', op: 'const', v, key: String(v), lo: v, hi: v };
};
export const isym = (name: string, lo: number, hi: number): I => ({ s: 'i', op: 'sym', name, key: name, lo, hi });
const isConst = (e: I, v?: number): boolean => e.op === 'const' && (v === undefined || e.v === v);
const cv = (e: I): number => (e.op === 'const' ? e.v : NaN);

export function iadd(a: I, b: I): I {
  if (isConst(a) && isConst(b)) return iconst(cv(a) + cv(b));
  if (isConst(a, 0)) return b;
  if (isConst(b, 0)) return a;
  return { s: 'i', op: 'add', a, b, key: `(${a.key}+${b.key})`, lo: a.lo + b.lo, hi: a.hi + b.hi };
}
export function isub(a: I, b: I): I {
  if (isConst(a) && isConst(b)) return iconst(cv(a) - cv(b));
  if (isConst(b, 0)) return a;
  return { s: 'i', op: 'sub', a, b, key: `(${a.key}-${b.key})`, lo: a.lo - b.hi, hi: a.hi - b.lo };
}
export function imul(a: I, b: I): I {
  if (isConst(a) && isConst(b)) return iconst(cv(a) * cv(b));
  if (isConst(a, 1)) return b;
  if (isConst(b, 1)) return a;
  if (isConst(a, 0) || isConst(b, 0)) return iconst(0);
  const ps = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi];
  return { s: 'i', op: 'mul', a, b, key: `(${a.key}*${b.key})`, lo: Math.min(...ps), hi: Math.max(...ps) };
}
export function idiv(a: I, d: number): I {
  if (!Number.isInteger(d) || d < 1) throw new Error(`kernel IR: division by ${d}`);
  if (d === 1) return a;
  if (isConst(a)) return iconst(Math.floor(cv(a) / d));
  if (a.lo >= 0 && a.hi < d) return iconst(0);
  return { s: 'i', op: 'div', a, d, key: `(${a.key}/${d})`, lo: Math.floor(a.lo / d), hi: Math.floor(a.hi / d) };
}
export function imod(a: I, d: number): I {
  if (!Number.isInteger(d) || d < 1) throw new Error(`kernel IR: remainder by ${d}`);
  if (d === 1) return iconst(0);
  if (isConst(a)) return iconst(((cv(a) % d) + d) % d);
  if (a.lo >= 0 && a.hi < d) return a;
  return { s: 'i', op: 'mod', a, d, key: `(${a.key}%${d})`, lo: 0, hi: d - 1 };
}
export function imin(a: I, b: I): I {
  if (a.hi <= b.lo) return a;
  if (b.hi <= a.lo) return b;
  return { s: 'i', op: 'min', a, b, key: `min(${a.key},${b.key})`, lo: Math.min(a.lo, b.lo), hi: Math.min(a.hi, b.hi) };
}
export function imax(a: I, b: I): I {
  if (a.lo >= b.hi) return a;
  if (b.lo >= a.hi) return b;
  return { s: 'i', op: 'max', a, b, key: `max(${a.key},${b.key})`, lo: Math.max(a.lo, b.lo), hi: Math.max(a.hi, b.hi) };
}
/** `x` clamped to [lo, hi] (a no-op where its range already lies inside). */
export const iclamp = (x: I, lo: number, hi: number): I => imin(imax(x, iconst(lo)), iconst(hi));
export const iselect = (c: B, a: I, b: I): I =>
  a.key === b.key ? a : { s: 'i', op: 'select', c, a, b, key: `(${c.key}?${a.key}:${b.key})`, lo: Math.min(a.lo, b.lo), hi: Math.max(a.hi, b.hi) };
/** ⌊x⌋ of a value; `lo`/`hi` bound the result where the caller knows them (e.g. it clamps next). */
export const ifloor = (x: F, lo = -(2 ** 31), hi = 2 ** 31 - 1): I => ({ s: 'i', op: 'floor', x, key: `floor(${x.key})`, lo, hi });
export const iflat = (coords: readonly I[], shape: readonly number[]): I => ({
  s: 'i',
  op: 'flat',
  coords,
  shape,
  key: `flat[${shape.join(',')}](${coords.map((c) => c.key).join(',')})`,
  lo: 0,
  hi: shape.reduce((p, d) => p * d, 1) - 1,
});

// ---- value builders ----

export const fconst = (v: number): F => {
  if (!Number.isFinite(v)) throw new Error(`kernel IR: non-finite constant ${v} (kernels use finite sentinels)`);
  return { s: 'f', op: 'const', v, key: `${Object.is(v, -0) ? '-0' : v}f` };
};
export const load = (arg: number, index: I): F => ({ s: 'f', op: 'load', arg, index, key: `a${arg}[${index.key}]` });
export const fref = (name: string): F => ({ s: 'f', op: 'ref', name, key: name });
export const itof = (x: I): F => (x.op === 'const' ? fconst(x.v) : { s: 'f', op: 'itof', x, key: `f(${x.key})` });
export const unary = (op: UnaryOp, x: F): F => ({ s: 'f', op, x, key: `${op}(${x.key})` });
export const binary = (op: BinaryOp, a: F, b: F): F => ({ s: 'f', op: `f${op}`, a, b, key: `${op}(${a.key},${b.key})` });
export const fadd = (a: F, b: F): F => binary('add', a, b);
export const fsub = (a: F, b: F): F => binary('sub', a, b);
export const fmul = (a: F, b: F): F => binary('mul', a, b);
export const fdiv = (a: F, b: F): F => binary('div', a, b);
export const fmin = (a: F, b: F): F => binary('min', a, b);
export const fmax = (a: F, b: F): F => binary('max', a, b);
export const fselect = (c: B, a: F, b: F): F => (a.key === b.key ? a : { s: 'f', op: 'select', c, a, b, key: `(${c.key}?${a.key}:${b.key})` });

// ---- conditions ----

export const fcmp = (cmp: CompareOp, a: F, b: F): B => ({ s: 'b', op: 'fcmp', cmp, a, b, key: `(${a.key}${cmp}${b.key})` });
export const icmp = (cmp: CompareOp, a: I, b: I): B => ({ s: 'b', op: 'icmp', cmp, a, b, key: `(${a.key}${cmp}${b.key})` });
export const and = (a: B, b: B): B => ({ s: 'b', op: 'and', a, b, key: `(${a.key}&&${b.key})` });
export const or = (a: B, b: B): B => ({ s: 'b', op: 'or', a, b, key: `(${a.key}||${b.key})` });
/** All of `cs` (null when there are none: the condition always holds). */
export const all = (cs: readonly B[]): B | null => (cs.length === 0 ? null : cs.slice(1).reduce(and, cs[0]));
/** `lo ≤ x < hi`, or null where x's range makes it always true. */
export const inRange = (x: I, lo: number, hi: number): B | null =>
  all([...(x.lo < lo ? [icmp('>=', x, iconst(lo))] : []), ...(x.hi >= hi ? [icmp('<', x, iconst(hi))] : [])]);
/** `c ? a : b`, or `a` where the condition is null (always true). */
export const guard = (c: B | null, a: F, b: F): F => (c === null ? a : fselect(c, a, b));

// Target-neutral lowering of one fused kernel to the kernel IR: the root node's value at the output indices a
// target asks for, with inlined nodes expanded through their primitives' `lower` rules and buffers read through
// the target's layout. Common subexpressions are shared per scope by structural key.
import { numel, stridesOf, type Node, type Shape } from '../ir.ts';
import type { LowerCtx } from '../lowering.ts';
import type { PrimName } from '../params.ts';
import type { TileRule } from '../prim.ts';
import { registry } from '../registry.ts';
import { fref, iadd, iconst, idiv, iflat, imod, imul, isym, load, type F, type I, type Stmt } from './ir.ts';

type LowerRule = (node: Node, idx: I, ctx: LowerCtx) => F;

/** Loops of at most this many iterations are unrolled: conv and pooling windows become straight-line code. */
export const UNROLL_MAX = 3;

export interface WriterOptions {
  /** Tensors the target indexes by coordinates (structural `flat` indices); see `LowerCtx.large`. */
  readonly large: (shape: Shape) => boolean;
  /** Index arithmetic is exact below this many elements (gpu.js: 2^24, floats); unlimited by default. */
  readonly exactBelow?: number;
  /**
   * Where an index's coordinates are known in one shape (the kernel's output, a reshape's operand), derive them in
   * another shape of as many elements group by group (`regroup`) instead of dividing the flat index again.
   */
  readonly regroupKnown?: boolean;
  /** Iterations a reduction loop folds per trip before they meet the accumulator (default 2). */
  readonly accumulateUnroll?: 1 | 2;
  /** Where element `idx` of argument `k` (node `n`) lives in its buffer; the plain row-major index by default. */
  readonly physical?: (k: number, n: Node, idx: I, w: KernelWriter) => I;
}

export interface LoweredKernel {
  readonly body: readonly Stmt[];
  readonly results: readonly F[];
}

/** Coordinates of an index in a shape, known by construction. */
interface Known {
  readonly shape: Shape;
  readonly coords: readonly I[];
}

const isSimple = (e: I | F): boolean => e.op === 'const' || e.op === 'sym' || e.op === 'ref';

export class KernelWriter {
  private readonly scopes: Stmt[][] = [[]];
  private readonly memos: Map<string, I | F | readonly I[] | Known>[] = [new Map()];
  private counter = 0;
  private readonly argOf: Map<number, number>;

  constructor(args: readonly Node[], private readonly options: WriterOptions) {
    this.argOf = new Map(args.map((a, k) => [a.id, k]));
  }

  large(shape: Shape): boolean {
    return this.options.large(shape);
  }
  fresh(prefix: string): string {
    return `${prefix}${this.counter++}`;
  }
  emit(stmt: Stmt): void {
    this.scopes[this.scopes.length - 1].push(stmt);
  }
  private memoGet(key: string): I | F | readonly I[] | Known | undefined {
    for (let s = this.memos.length - 1; s >= 0; s--) {
      const v = this.memos[s].get(key);
      if (v !== undefined) return v;
    }
    return undefined;
  }
  private memoSet(key: string, v: I | F | readonly I[] | Known): void {
    this.memos[this.memos.length - 1].set(key, v);
  }
  bind(expr: F): F {
    if (isSimple(expr)) return expr;
    const hit = this.memoGet(`=${expr.key}`);
    if (hit !== undefined) return hit as F;
    const name = this.fresh('t');
    this.emit({ s: 'let', name, value: expr });
    const ref = fref(name);
    this.memoSet(`=${expr.key}`, ref);
    return ref;
  }
  bindIndex(expr: I): I {
    // A structural flat index is never bound: targets resolve it through its coordinates at the load.
    if (isSimple(expr) || expr.op === 'flat') return expr;
    const hit = this.memoGet(`=${expr.key}`);
    if (hit !== undefined) return hit as I;
    const name = this.fresh('t');
    this.emit({ s: 'let', name, value: expr });
    const ref = isym(name, expr.lo, expr.hi);
    this.memoSet(`=${expr.key}`, ref);
    return ref;
  }
  variable(init: F): string {
    const name = this.fresh('v');
    this.emit({ s: 'var', name, init });
    return name;
  }
  set(name: string, value: F): void {
    this.emit({ s: 'set', name, value });
  }
  loop(count: number, body: (v: I) => void): void {
    if (count <= UNROLL_MAX) {
      for (let k = 0; k < count; k++) {
        this.memos.push(new Map());
        body(iconst(k));
        this.memos.pop();
      }
      return;
    }
    const v = this.fresh('r');
    this.scopes.push([]);
    this.memos.push(new Map());
    body(isym(v, 0, count - 1));
    const inner = this.scopes.pop() as Stmt[];
    this.memos.pop();
    this.emit({ s: 'loop', v, count, body: inner });
  }
  accumulate(count: number, accs: readonly string[], body: (v: I) => readonly F[], combine: (a: F, b: F) => F): void {
    const update = (iterations: readonly (readonly F[])[]): void =>
      accs.forEach((acc, j) => {
        const terms = iterations.map((t) => t[j]);
        this.set(acc, combine(fref(acc), terms.slice(1).reduce(combine, terms[0])));
      });
    if (count <= UNROLL_MAX || count % 2 !== 0 || this.options.accumulateUnroll === 1) {
      this.loop(count, (v) => update([body(v)]));
      return;
    }
    // Two iterations per trip: each accumulator takes one dependent update per two terms (on gpu.js webasm a
    // tiled 512³ matmul ran ~20% faster, bench/FINDINGS.md (f)).
    this.loop(count / 2, (v) => {
      const even = this.bindIndex(imul(v, iconst(2)));
      const first = body(even);
      update([first, body(this.bindIndex(iadd(even, iconst(1))))]);
    });
  }
  /** Seed the coordinates of `idx` in `shape` (known by construction, e.g. from the thread ids). */
  knowCoords(shape: Shape, idx: I, coords: readonly I[]): void {
    this.memoSet(`c${shape.join(',')}@${idx.key}`, coords);
    this.memoSet(`k@${idx.key}`, { shape, coords });
  }
  coords(shape: Shape, rawIdx: I): I[] {
    if (rawIdx.op === 'flat') {
      if (rawIdx.shape.join(',') === shape.join(',')) return [...rawIdx.coords];
      return this.regroup(shape, rawIdx.shape, rawIdx.coords);
    }
    const idx = this.bindIndex(rawIdx);
    const key = `c${shape.join(',')}@${idx.key}`;
    const hit = this.memoGet(key);
    if (hit !== undefined) return [...(hit as readonly I[])];
    if (numel(shape) >= (this.options.exactBelow ?? Infinity)) throw new Error(`kernel writer: index '${idx.key}' into the tensor [${shape.join(', ')}] is not structural (a rule built it by arithmetic, inexact at this size)`);
    const known = this.options.regroupKnown === true ? (this.memoGet(`k@${idx.key}`) as Known | undefined) : undefined;
    const cs = known !== undefined && numel(known.shape) === numel(shape) ? this.regroup(shape, known.shape, known.coords) : this.decompose(shape, idx);
    this.memoSet(key, cs);
    return cs;
  }
  /** Row-major coordinates of the bound index `idx` in `shape`. */
  decompose(shape: Shape, idx: I): I[] {
    const st = stridesOf(shape);
    return shape.map((d, k) => (d === 1 ? iconst(0) : this.bindIndex(k === 0 ? idiv(idx, st[k]) : imod(idiv(idx, st[k]), d))));
  }
  /**
   * Coordinates in `shape` of an index whose coordinates `fromCoords` in another shape of as many elements are known
   * (a reshape passes its index through): the two shapes' axes split into groups of equal size, and each group's
   * local index (below 2^24 where indices must stay exact in floats) is recomposed and decomposed.
   */
  private regroup(shape: Shape, fromShape: Shape, fromCoords: readonly I[]): I[] {
    const from = { shape: fromShape, coords: fromCoords };
    if (numel(from.shape) !== numel(shape)) throw new Error(`kernel writer: index of [${from.shape.join(', ')}] read as [${shape.join(', ')}]`);
    const out: I[] = new Array<I>(shape.length);
    let i = from.shape.length;
    let j = shape.length;
    while (i > 0 || j > 0) {
      // the shortest suffix groups [i0, i) of `from` and [j0, j) of `shape` with equal products
      let i0 = i - 1;
      let j0 = j - 1;
      let a = i0 >= 0 ? from.shape[i0] : 1;
      let b = j0 >= 0 ? shape[j0] : 1;
      while (a !== b) {
        if (a < b) a *= from.shape[--i0];
        else b *= shape[--j0];
      }
      while (i0 > 0 && from.shape[i0 - 1] === 1) i0--;
      if (a >= (this.options.exactBelow ?? Infinity)) throw new Error(`kernel writer: reshape [${from.shape.join(', ')}] → [${shape.join(', ')}] mixes axes into a group of ${a} elements, beyond exact float indices`);
      // i0 or j0 is −1 when a side has run out of axes (the other side's remaining axes are all 1)
      const [iLo, jLo] = [Math.max(i0, 0), Math.max(j0, 0)];
      const local = this.rowMajor(from.coords.slice(iLo, i), from.shape.slice(iLo, i));
      this.decompose(shape.slice(jLo, j), local).forEach((c, k) => (out[jLo + k] = c));
      [i, j] = [iLo, jLo];
    }
    return out;
  }
  private rowMajor(coords: readonly I[], shape: Shape): I {
    const st = stridesOf(shape);
    return this.bindIndex(coords.reduce<I>((acc, c, k) => (shape[k] === 1 ? acc : iadd(acc, imul(c, iconst(st[k])))), iconst(0)));
  }
  flat(coords: readonly I[], shape: Shape): I {
    if (this.large(shape)) return iflat(coords, shape);
    const idx = this.rowMajor(coords, shape);
    this.knowCoords(shape, idx, coords);
    return idx;
  }

  /** The value of `n` at flat index `idx`: a buffer read or the inlined computation (memoized per scope). */
  value(n: Node, idx: I): F {
    const arg = this.argOf.get(n.id);
    if (arg !== undefined) {
      const at = this.options.physical?.(arg, n, idx, this) ?? (idx.op === 'flat' || !this.large(n.shape) ? idx : iflat(this.coords(n.shape, idx), n.shape));
      return this.bind(load(arg, at));
    }
    const key = `${n.id}@${idx.key}`;
    const hit = this.memoGet(key);
    if (hit !== undefined) return hit as F;
    const v = this.bind(this.lowerNode(n, idx));
    this.memoSet(key, v);
    return v;
  }

  private contextOf(n: Node): LowerCtx {
    return {
      input: (k, i) => this.value(n.inputs[k], i),
      bind: (e) => this.bind(e),
      bindIndex: (e) => this.bindIndex(e),
      variable: (e) => this.variable(e),
      set: (name, e) => this.set(name, e),
      loop: (c, b) => this.loop(c, b),
      accumulate: (c, a, b, f) => this.accumulate(c, a, b, f),
      coords: (s, i) => this.coords(s, i),
      flat: (c, s) => this.flat(c, s),
      large: (s) => this.large(s),
    };
  }

  lowerNode(n: Node, idx: I): F {
    return (registry[n.op as PrimName].lower as LowerRule)(n, idx, this.contextOf(n));
  }

  /** The values of `n` at the flat indices `idxs` (consecutive along its tile axis), through its tile rule. */
  lowerTile(n: Node, idxs: readonly I[]): readonly F[] {
    const rule = registry[n.op as PrimName].tile as TileRule<PrimName> | undefined;
    if (rule === undefined) throw new Error(`kernel writer: ${n.op} has no tile rule but its kernel was tiled`);
    return rule.lower(n, idxs, this.contextOf(n));
  }

  body(): readonly Stmt[] {
    return this.scopes[0];
  }
}

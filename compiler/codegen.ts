// Kernel source emission in the gpu.js JavaScript dialect. One kernel per KernelPlan: each thread computes the
// root node at one flat index (see `dispatchOf` for how threads cover the output); inlined nodes are emitted
// through their primitive's `lower` rule; buffers are read as `aK[index]` (through the tiled layout for
// buffers a register-tiled kernel wrote). Loops have literal bounds; arithmetic is in floats (exact below
// 2^24), except the read index of a large buffer (≥ 2^24 elements): an integer expression of the element's
// coordinates (`(c | 0) * stride + …`, which gpu.js types as an integer on every backend).
import { kernelDispatch, quadShape, TILE } from './dispatch.ts';
import { numel, stridesOf, type Node, type Shape } from './ir.ts';
import { FLOAT_EXACT, type LowerCtx } from './lowering.ts';
import type { PrimName } from './params.ts';
import type { TileRule } from './prim.ts';
import { registry } from './registry.ts';
import type { KernelPlan } from './schedule.ts';

type LowerRule = (node: Node, idx: string, ctx: LowerCtx) => string;

const isSimple = (e: string): boolean => /^[A-Za-z_][\w]*$/.test(e) || /^\(?-?[\d.]+(e[+-]?\d+)?\)?$/.test(e);

/**
 * Bumped whenever generated sources change for an unchanged kernel structure, so on-disk caches keyed by
 * `kernelSignature` never serve a source written for another code generator.
 */
export const CODEGEN_VERSION = 2;

/** Loops of at most this many iterations are emitted unrolled. */
export const UNROLL_MAX = 3;

class KernelWriter {
  private readonly scopes: string[][] = [[]];
  private readonly memos: Map<string, string>[] = [new Map()];
  private counter = 0;
  private readonly argOf: Map<number, string>;
  private readonly argTile: Map<number, number>;

  constructor(args: readonly Node[], argTiles: readonly (number | null)[], private readonly symbolicFrom: number) {
    this.argOf = new Map(args.map((a, k) => [a.id, `a${k}`]));
    this.argTile = new Map(args.flatMap((a, k) => (argTiles[k] === null ? [] : [[a.id, argTiles[k] as number]])));
  }
  /** Whether flat indices into `shape` stay symbolic (see `LowerCtx.large`). */
  large(shape: Shape): boolean {
    return numel(shape) >= this.symbolicFrom;
  }

  private fresh(prefix: string): string {
    return `${prefix}${this.counter++}`;
  }
  emit(stmt: string): void {
    this.scopes[this.scopes.length - 1].push(stmt);
  }
  private memoGet(key: string): string | undefined {
    for (let s = this.memos.length - 1; s >= 0; s--) {
      const v = this.memos[s].get(key);
      if (v !== undefined) return v;
    }
    return undefined;
  }
  private memoSet(key: string, v: string): void {
    this.memos[this.memos.length - 1].set(key, v);
  }
  bind(expr: string): string {
    if (isSimple(expr)) return expr;
    const hit = this.memoGet(`=${expr}`);
    if (hit !== undefined) return hit;
    const name = this.fresh('t');
    this.emit(`const ${name} = ${expr};`);
    this.memoSet(`=${expr}`, name);
    return name;
  }
  variable(init: string): string {
    const name = this.fresh('v');
    this.emit(`let ${name} = ${init};`);
    return name;
  }
  loop(count: number, body: (v: string) => void): void {
    if (count <= UNROLL_MAX) {
      // Short loops (conv and pooling windows) are unrolled: the loop variable becomes a literal, so the index
      // arithmetic folds and the backends see straight-line code.
      for (let k = 0; k < count; k++) {
        this.memos.push(new Map());
        body(`${k}.0`);
        this.memos.pop();
      }
      return;
    }
    const v = this.fresh('r');
    this.scopes.push([]);
    this.memos.push(new Map());
    body(v);
    const lines = this.scopes.pop() as string[];
    this.memos.pop();
    this.emit(`for (let ${v} = 0; ${v} < ${count}; ${v}++) {\n${lines.map((l) => `  ${l}`).join('\n')}\n}`);
  }
  accumulate(count: number, accs: readonly string[], body: (v: string) => readonly string[], combine: (a: string, b: string) => string): void {
    const update = (iterations: readonly (readonly string[])[]): void =>
      accs.forEach((acc, j) => {
        const terms = iterations.map((t) => t[j]);
        const folded = terms.slice(1).reduce(combine, terms[0]);
        this.emit(`${acc} = ${combine(acc, terms.length === 1 ? folded : `(${folded})`)};`);
      });
    if (count <= UNROLL_MAX || count % 2 !== 0) {
      this.loop(count, (v) => update([body(v)]));
      return;
    }
    // Two iterations per trip: each accumulator takes one dependent update per two terms. On webasm this made
    // a tiled 512³ matmul ~20% faster (compiler/runtime/FINDINGS.md (f)).
    this.loop(count / 2, (v) => {
      const even = this.bind(`${v} * 2.0`);
      const first = body(even);
      update([first, body(this.bind(`${even} + 1.0`))]);
    });
  }
  /** Seed the coordinates of `idx` in `shape` (known by construction, e.g. from the thread ids). */
  knowCoords(shape: Shape, idx: string, coords: readonly string[]): void {
    this.memoSet(`c${JSON.stringify(shape)}@${idx}`, coords.join('|'));
    if (this.large(shape)) this.memoSet(`k@${idx}`, JSON.stringify({ shape, coords }));
  }
  coords(shape: Shape, rawIdx: string): string[] {
    // A symbolic index has known coordinates; any other is a float expression, bound first: callers pass compound
    // index expressions, and `/` and `%` bind tighter than `+`.
    const symbolic = this.memoGet(`k@${rawIdx}`) !== undefined;
    const idx = symbolic ? rawIdx : this.bind(rawIdx);
    const key = `c${JSON.stringify(shape)}@${idx}`;
    const hit = this.memoGet(key);
    if (hit !== undefined) return hit === '' ? [] : hit.split('|');
    if (!symbolic && numel(shape) >= FLOAT_EXACT) throw new Error(`codegen: index '${idx}' into a tensor of ${numel(shape)} elements [${shape.join(', ')}] is not symbolic (a rule built it by float arithmetic, inexact from 2^24 on)`);
    const cs = symbolic ? this.regroup(shape, idx) : this.decompose(shape, idx);
    this.memoSet(key, cs.join('|'));
    return cs;
  }
  /** Row-major coordinates of the bound index `idx` in `shape`. */
  decompose(shape: Shape, idx: string): string[] {
    const st = stridesOf(shape);
    return shape.map((d, k) => {
      if (d === 1) return '0.0';
      const q = st[k] === 1 ? idx : `Math.floor(${idx} / ${st[k]}.0)`;
      return this.bind(k === 0 ? q : `${q} % ${d}.0`);
    });
  }
  /**
   * Coordinates in the large `shape` of a symbolic index known in another shape of as many elements (a reshape
   * passes its index through): the two shapes' axes split into groups of equal size, and each group's local
   * index, below 2^24, is recomposed and decomposed exactly.
   */
  private regroup(shape: Shape, idx: string): string[] {
    const from = JSON.parse(this.memoGet(`k@${idx}`) as string) as { shape: number[]; coords: string[] };
    if (numel(from.shape) !== numel(shape)) throw new Error(`codegen: index '${idx}' of [${from.shape.join(', ')}] read as [${shape.join(', ')}]`);
    const out: string[] = new Array<string>(shape.length);
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
      if (a >= 2 ** 24) throw new Error(`codegen: reshape [${from.shape.join(', ')}] → [${shape.join(', ')}] mixes axes into a group of ${a} elements, beyond exact float indices`);
      // i0 or j0 is −1 when a side has run out of axes (the other side's remaining axes are all 1)
      const [iLo, jLo] = [Math.max(i0, 0), Math.max(j0, 0)];
      const local = this.flatFloat(from.coords.slice(iLo, i), from.shape.slice(iLo, i));
      this.decompose(shape.slice(jLo, j), local).forEach((c, k) => (out[jLo + k] = c));
      [i, j] = [iLo, jLo];
    }
    return out;
  }
  private flatFloat(coords: readonly string[], shape: Shape): string {
    const st = stridesOf(shape);
    const terms = coords.flatMap((c, k) => (c === '0.0' || shape[k] === 1 ? [] : [st[k] === 1 ? c : `${c} * ${st[k]}.0`]));
    return terms.length === 0 ? '0.0' : this.bind(terms.join(' + '));
  }
  flat(coords: readonly string[], shape: Shape): string {
    if (!this.large(shape)) return this.flatFloat(coords, shape);
    // A symbolic index: a name that is never declared, so any arithmetic on it fails to compile instead of
    // silently rounding; reads resolve it through its coordinates.
    const token = this.fresh('flat');
    this.knowCoords(shape, token, coords);
    return token;
  }
  /**
   * `Σ (c_k | 0) · stride_k`: an integer expression, exact below 2^31. Never bound to a name: gpu.js declares
   * locals as floats on webasm, which would round the index again.
   */
  private flatInteger(coords: readonly string[], shape: Shape): string {
    const st = stridesOf(shape);
    const terms = coords.flatMap((c, k) => (c === '0.0' || shape[k] === 1 ? [] : [st[k] === 1 ? `(${c} | 0)` : `(${c} | 0) * ${st[k]}`]));
    return terms.length === 0 ? '0' : terms.join(' + ');
  }

  /** The value of `n` at flat index `idx`: a buffer read or the inlined computation (memoized per scope). */
  value(n: Node, idx: string): string {
    const arg = this.argOf.get(n.id);
    if (arg !== undefined) return this.bind(`${arg}[${this.bufferIndex(n, idx)}]`);
    const key = `${n.id}@${idx}`;
    const hit = this.memoGet(key);
    if (hit !== undefined) return hit;
    const v = this.bind(this.lowerNode(n, idx));
    this.memoSet(key, v);
    return v;
  }

  /**
   * Where the element at flat index `idx` of buffer `n` lives: `idx` itself, or for a buffer written by a kernel
   * tiled along an axis, its place in that kernel's output (quadShape with the TILE values of a thread last).
   */
  private bufferIndex(n: Node, idx: string): string {
    const axis = this.argTile.get(n.id);
    const large = this.large(n.shape);
    if (axis === undefined) return large ? this.flatInteger(this.coords(n.shape, idx), n.shape) : idx;
    const c = this.coords(n.shape, idx);
    const quadCoords = c.map((v, k) => (k === axis ? this.bind(`Math.floor(${v} / ${TILE}.0)`) : v));
    if (large) return `(${this.flatInteger(quadCoords, quadShape(n.shape, axis))}) * ${TILE} + (${c[axis]} % ${TILE}.0 | 0)`;
    return this.bind(`${this.flatFloat(quadCoords, quadShape(n.shape, axis))} * ${TILE}.0 + ${c[axis]} % ${TILE}.0`);
  }

  private contextOf(n: Node): LowerCtx {
    return {
      input: (k, i) => this.value(n.inputs[k], i),
      bind: (e) => this.bind(e),
      variable: (e) => this.variable(e),
      emit: (s) => this.emit(s),
      loop: (c, b) => this.loop(c, b),
      accumulate: (c, a, b, f) => this.accumulate(c, a, b, f),
      coords: (s, i) => this.coords(s, i),
      flat: (c, s) => this.flat(c, s),
      large: (s) => this.large(s),
    };
  }

  lowerNode(n: Node, idx: string): string {
    return (registry[n.op as PrimName].lower as LowerRule)(n, idx, this.contextOf(n));
  }

  /** The values of `n` at the TILE flat indices `idxs`, through its tile rule. */
  lowerTile(n: Node, idxs: readonly string[]): readonly string[] {
    const rule = registry[n.op as PrimName].tile as TileRule<PrimName> | undefined;
    if (rule === undefined) throw new Error(`codegen: ${n.op} has no tile rule but its kernel was tiled`);
    return rule.lower(n, idxs, this.contextOf(n));
  }

  body(): string {
    return this.scopes[0].map((l) => `  ${l}`).join('\n');
  }
}

/**
 * The gpu.js source of one kernel, `function (a0, …) { … return value; }`, for its `kernelDispatch`. Tensors of
 * `symbolicFrom` elements or more are indexed symbolically (`LowerCtx.large`): 2^24 for exact indices; tests
 * lower it to run every lowering rule through that path on small tensors.
 */
export function kernelSource(plan: KernelPlan, symbolicFrom = FLOAT_EXACT): string {
  const w = new KernelWriter(plan.args, plan.argTiles, symbolicFrom);
  const shape = plan.root.shape;
  const threadShape = plan.tile === null ? shape : quadShape(shape, plan.tile);
  const { output, split } = kernelDispatch(shape, plan.tile);
  const params = plan.args.map((_a, k) => `a${k}`).join(', ');
  let threadCoords: string[];
  if (output.length === 1) {
    w.emit('const i = this.thread.x;');
    threadCoords = w.large(shape) ? w.decompose(threadShape, 'i') : [];
  } else {
    // Coordinates come from the thread ids directly, so those of the leading axes stay independent of
    // thread.x (gpu.js's SIMD analysis taints anything computed from it).
    w.emit('const tx = this.thread.x;');
    w.emit('const ty = this.thread.y;');
    threadCoords = [...w.decompose(threadShape.slice(0, split), 'ty'), ...w.decompose(threadShape.slice(split), 'tx')];
  }
  if (plan.tile === null) {
    let idx = 'i';
    if (w.large(shape)) idx = w.flat(threadCoords, shape);
    else if (output.length === 2) {
      w.emit(`const i = ty * ${output[0]}.0 + tx;`);
      w.knowCoords(shape, 'i', threadCoords);
    }
    const result = w.lowerNode(plan.root, idx);
    return `function (${params}) {\n${w.body()}\n  return ${result};\n}`;
  }
  const axis = plan.tile;
  const idxs = Array.from({ length: TILE }, (_v, t) => {
    const coords = threadCoords.map((v, k) => (k === axis ? w.bind(`${v} * ${TILE}.0 + ${t}.0`) : v));
    const idx = w.flat(coords, shape);
    w.knowCoords(shape, idx, coords);
    return idx;
  });
  const results = w.lowerTile(plan.root, idxs);
  return `function (${params}) {\n${w.body()}\n  return [${results.join(', ')}];\n}`;
}

/**
 * A kernel's structure independent of node ids: every node it computes (root and inlined), in topological order,
 * with op, params, shape, dtype and operands as local indices or buffer arguments. Equal signatures generate
 * equal sources, so this keys the on-disk source cache.
 */
export function kernelSignature(plan: KernelPlan, symbolicFrom = FLOAT_EXACT): string {
  const layout = (tile: number | null): string => (tile === null ? '' : `~tile${tile}`);
  const local = new Map<number, string>(plan.args.map((a, k) => [a.id, `a${k}:${JSON.stringify(a.shape)}${layout(plan.argTiles[k])}`]));
  const nodes = [...plan.inlined, plan.root].sort((x, y) => x.id - y.id);
  const parts = nodes.map((n, k) => {
    const ref = `n${k}`;
    const desc = `${ref}=${n.op}${JSON.stringify(n.params)}${JSON.stringify(n.shape)}${n.dtype}(${n.inputs.map((i) => local.get(i.id) ?? '?').join(',')})`;
    local.set(n.id, ref);
    return desc;
  });
  return `v${CODEGEN_VERSION}:${parts.join(';')}${layout(plan.tile)}${symbolicFrom === FLOAT_EXACT ? '' : `~symbolic${symbolicFrom}`}`;
}

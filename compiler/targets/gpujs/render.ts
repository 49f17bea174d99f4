// The gpu.js target's renderer: kernel IR → a gpu.js kernel function in its JavaScript dialect. Each thread
// computes the root node at one flat index (see `dispatchOf` for how threads cover the output), or TILE
// consecutive values along the tile axis, returned as `Array(4)` and stored in the tiled layout (`quadShape`
// with the TILE values of a thread last) that every consumer's reads follow. gpu.js computes in floats: index
// arithmetic is exact below 2^24, so tensors of 2^24 elements or more are indexed by coordinates (structural
// `flat` indices), read at the integer expression `(c | 0) * stride + …`, which gpu.js types as an integer.
import { numel, type Node, type Shape } from '../../ir.ts';
import { iadd, iconst, idiv, iflat, imod, imul, isym, type B, type F, type I, type Stmt } from '../../kernel/ir.ts';
import { KernelWriter } from '../../kernel/writer.ts';
import type { KernelPlan } from '../../schedule.ts';
import { FLOAT_EXACT, kernelDispatch, quadShape, TILE } from './dispatch.ts';

/**
 * Bumped whenever generated sources change for an unchanged kernel structure, so on-disk caches keyed by
 * `kernelSignature` never serve a source written for another code generator.
 */
export const CODEGEN_VERSION = 3;

/** A float literal gpu.js types as a float on every backend (always has a '.' or an exponent). */
export function lit(v: number): string {
  const s = String(v);
  return /[.e]/.test(s) ? (v < 0 ? `(${s})` : s) : v < 0 ? `(${s}.0)` : `${s}.0`;
}

function index(e: I): string {
  switch (e.op) {
    case 'const':
      return lit(e.v);
    case 'sym':
      return e.name;
    case 'add':
      return `(${index(e.a)} + ${index(e.b)})`;
    case 'sub':
      return `(${index(e.a)} - ${index(e.b)})`;
    case 'mul':
      return `(${index(e.a)} * ${index(e.b)})`;
    case 'div':
      return `Math.floor(${index(e.a)} / ${lit(e.d)})`;
    case 'mod':
      return e.a.lo >= 0 ? `(${index(e.a)} % ${lit(e.d)})` : `(((${index(e.a)} % ${lit(e.d)}) + ${lit(e.d)}) % ${lit(e.d)})`;
    case 'min':
      return `Math.min(${index(e.a)}, ${index(e.b)})`;
    case 'max':
      return `Math.max(${index(e.a)}, ${index(e.b)})`;
    case 'select':
      return `(${cond(e.c)} ? ${index(e.a)} : ${index(e.b)})`;
    case 'floor':
      return `Math.floor(${value(e.x)})`;
    case 'flat':
      throw new Error(`gpu.js renderer: arithmetic on the coordinate-indexed flat index of [${e.shape.join(', ')}] (inexact from 2^24 on)`);
  }
}

/**
 * The integer form of a buffer index: `Σ (c | 0) · stride` for a structural flat index, kept inline (gpu.js
 * declares locals as floats on webasm, which would round the index again).
 */
function integerIndex(e: I): string {
  switch (e.op) {
    case 'flat': {
      const st = e.shape.map((_d, k) => e.shape.slice(k + 1).reduce((p, d) => p * d, 1));
      const terms = e.coords.flatMap((c, k) => {
        if (e.shape[k] === 1 || (c.op === 'const' && c.v === 0)) return [];
        if (c.op === 'const') return [String(c.v * st[k])];
        return [st[k] === 1 ? `(${index(c)} | 0)` : `(${index(c)} | 0) * ${st[k]}`];
      });
      return terms.length === 0 ? '0' : terms.join(' + ');
    }
    case 'add':
      return `${integerIndex(e.a)} + ${integerIndex(e.b)}`;
    case 'mul':
      return `(${integerIndex(e.a)}) * ${integerIndex(e.b)}`;
    case 'const':
      return String(e.v);
    default:
      return `(${index(e)} | 0)`;
  }
}
const hasFlat = (e: I): boolean => e.op === 'flat' || ((e.op === 'add' || e.op === 'mul') && (hasFlat(e.a) || hasFlat(e.b)));

function value(e: F): string {
  switch (e.op) {
    case 'const':
      return lit(e.v);
    case 'load':
      return `a${e.arg}[${hasFlat(e.index) ? integerIndex(e.index) : index(e.index)}]`;
    case 'ref':
      return e.name;
    case 'itof':
      return index(e.x);
    case 'neg':
      return `(-${value(e.x)})`;
    case 'exp':
    case 'log':
    case 'sqrt':
    case 'abs':
    case 'floor':
      return `Math.${e.op}(${value(e.x)})`;
    case 'trunc': {
      const x = value(e.x);
      return `(${x} >= 0.0 ? Math.floor(${x}) : -Math.floor(-${x}))`;
    }
    case 'fadd':
      return `(${value(e.a)} + ${value(e.b)})`;
    case 'fsub':
      return `(${value(e.a)} - ${value(e.b)})`;
    case 'fmul':
      return `(${value(e.a)} * ${value(e.b)})`;
    case 'fdiv':
      return `(${value(e.a)} / ${value(e.b)})`;
    case 'fmin':
      return `Math.min(${value(e.a)}, ${value(e.b)})`;
    case 'fmax':
      return `Math.max(${value(e.a)}, ${value(e.b)})`;
    case 'fpow':
      return `Math.pow(${value(e.a)}, ${value(e.b)})`;
    case 'select':
      return `(${cond(e.c)} ? ${value(e.a)} : ${value(e.b)})`;
  }
}

function cond(e: B): string {
  switch (e.op) {
    case 'fcmp':
      return `(${value(e.a)} ${e.cmp} ${value(e.b)})`;
    case 'icmp':
      return `(${index(e.a)} ${e.cmp} ${index(e.b)})`;
    case 'and':
      return `(${cond(e.a)} && ${cond(e.b)})`;
    case 'or':
      return `(${cond(e.a)} || ${cond(e.b)})`;
  }
}

function statements(stmts: readonly Stmt[], indent: string): string[] {
  return stmts.flatMap((s) => {
    switch (s.s) {
      case 'let':
        return [`${indent}const ${s.name} = ${s.value.s === 'i' ? index(s.value) : value(s.value)};`];
      case 'var':
        return [`${indent}let ${s.name} = ${value(s.init)};`];
      case 'set':
        return [`${indent}${s.name} = ${value(s.value)};`];
      case 'loop':
        return [`${indent}for (let ${s.v} = 0; ${s.v} < ${s.count}; ${s.v}++) {`, ...statements(s.body, `${indent}  `), `${indent}}`];
    }
  });
}

/**
 * Where element `idx` of an argument lives: `idx` itself, through the tiled layout for a buffer a tiled kernel
 * wrote, or by coordinates for a large one.
 */
const physical =
  (argTiles: readonly (number | null)[], large: (s: Shape) => boolean) =>
  (k: number, n: Node, idx: I, w: KernelWriter): I => {
    const axis = argTiles[k];
    if (axis === null) return idx.op === 'flat' || !large(n.shape) ? idx : iflat(w.coords(n.shape, idx), n.shape);
    const c = w.coords(n.shape, idx);
    const quad = c.map((v, a) => (a === axis ? w.bindIndex(idiv(v, TILE)) : v));
    const within = imod(c[axis], TILE);
    if (large(n.shape)) return iadd(imul(iflat(quad, quadShape(n.shape, axis)), iconst(TILE)), within);
    return w.bindIndex(iadd(imul(w.flat(quad, quadShape(n.shape, axis)), iconst(TILE)), within));
  };

/**
 * The gpu.js source of one kernel, `function (a0, …) { … return value; }`, for its `kernelDispatch`. Tensors of
 * `symbolicFrom` elements or more are indexed by coordinates; tests lower it to run every lowering rule through
 * that path on small tensors.
 */
export function kernelSource(plan: KernelPlan, symbolicFrom = FLOAT_EXACT): string {
  const large = (shape: Shape) => numel(shape) >= symbolicFrom;
  const w = new KernelWriter(plan.args, { large, exactBelow: FLOAT_EXACT, physical: physical(plan.argTiles, large) });
  const shape = plan.root.shape;
  const threadShape = plan.tile === null ? shape : quadShape(shape, plan.tile);
  const { output, split } = kernelDispatch(shape, plan.tile);
  const params = plan.args.map((_a, k) => `a${k}`).join(', ');
  const prologue: string[] = [];
  let threadCoords: I[];
  let flatThread: I | null = null;
  const [X, Y] = [output[0], output.length === 2 ? output[1] : 1];
  if (output.length === 1) {
    prologue.push('  const i = this.thread.x;');
    flatThread = isym('i', 0, X - 1);
    threadCoords = large(shape) || plan.tile !== null ? w.decompose(threadShape, flatThread) : [];
  } else {
    // Coordinates come from the thread ids directly, so those of the leading axes stay independent of
    // thread.x (gpu.js's SIMD analysis taints anything computed from it).
    prologue.push('  const tx = this.thread.x;', '  const ty = this.thread.y;');
    threadCoords = [...w.decompose(threadShape.slice(0, split), isym('ty', 0, Y - 1)), ...w.decompose(threadShape.slice(split), isym('tx', 0, X - 1))];
  }
  let results: readonly F[];
  if (plan.tile === null) {
    let idx: I;
    if (large(shape)) idx = w.flat(threadCoords, shape);
    else if (flatThread !== null) idx = flatThread;
    else {
      idx = w.bindIndex(iadd(imul(isym('ty', 0, Y - 1), iconst(X)), isym('tx', 0, X - 1)));
      w.knowCoords(shape, idx, threadCoords);
    }
    results = [w.lowerNode(plan.root, idx)];
  } else {
    const axis = plan.tile;
    const idxs = Array.from({ length: TILE }, (_v, t) => {
      const coords = threadCoords.map((v, k) => (k === axis ? w.bindIndex(iadd(imul(v, iconst(TILE)), iconst(t))) : v));
      return w.flat(coords, shape);
    });
    results = w.lowerTile(plan.root, idxs);
  }
  const body = [...prologue, ...statements(w.body(), '  ')].join('\n');
  const ret = results.length === 1 ? value(results[0]) : `[${results.map(value).join(', ')}]`;
  return `function (${params}) {\n${body}\n  return ${ret};\n}`;
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

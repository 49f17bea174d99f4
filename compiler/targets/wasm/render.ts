// The wasm target's renderer: one WebAssembly function per kernel, SIMD128, integer index arithmetic.
//
// Generic kernels (elementwise, movement, reductions, windows, gather, top-k) come from the kernel IR. A kernel
// covers the flat output range [start, end): four consecutive outputs per trip as f32x4 lanes, then a scalar
// remainder. Every IR value is classified as it is rendered: a value equal in all lanes stays a scalar; an index
// that is affine in the lane (u + s·lane, with u a known multiple of m) stays a scalar `u` plus the constant s, so
// a load at stride 1 is one `v128.load`, at stride 0 a splat, and only other indices gather lane by lane. The
// alignment m lets floor division and remainder by a constant stay scalar where no lane can cross a multiple of
// the divisor (a coordinate decomposition of the thread index, for instance).
//
// Contractions (dot; conv2d as an implicit GEMM) are templates around one register-blocked microkernel: up to 4
// rows × 8 columns (8 f32x4 accumulators: V8 on x86-64 has 15 allocatable XMM registers, and 12–16-accumulator
// tiles measured slower). A conv packs the K × 8 column panel of its im2col matrix into a per-worker scratch
// first; a dot reads its right operand's rows in place.
import { kindOf } from '../../facts.ts';
import { numel, type Node } from '../../ir.ts';
import { iadd, iconst, imul, isym, type B, type F, type I, type Stmt } from '../../kernel/ir.ts';
import { KernelWriter } from '../../kernel/writer.ts';
import type { KernelPlan } from '../../schedule.ts';
import { Code, type ValType } from '../../wasm/encode.ts';

/** Host functions every kernel module imports, by function index (f32 → f32, and pow: (f32, f32) → f32). */
export const IMPORTS = ['exp', 'log', 'pow'] as const;
const FN = { exp: 0, log: 1, pow: 2 } as const;

/** Microkernel block: rows × (COLS = 2 f32x4) outputs. */
export const ROWS = 4;
export const COLS = 8;

export interface WasmKernel {
  /** Parameters after the output pointer: one byte address per argument, then [scratch], start, end. */
  readonly params: readonly ValType[];
  readonly locals: readonly ValType[];
  readonly code: Code;
  /** Work items of one launch (outputs, or microkernel column panels), split across workers. */
  readonly items: number;
  /** Items are handed out in multiples of this (4: a worker's range starts on a vector). */
  readonly itemAlign: number;
  /** Rough multiply-adds of one launch: whether waking the workers pays. */
  readonly work: number;
  /** Bytes of per-worker scratch the kernel needs (0: none, and no scratch parameter). */
  readonly scratchBytes: number;
  /** Which kernel argument each address parameter takes (templates read their operands in operand order). */
  readonly operands: readonly number[];
}

class Fn {
  readonly code = new Code();
  readonly locals: ValType[] = [];
  constructor(readonly params: readonly ValType[]) {}
  local(t: ValType): number {
    this.locals.push(t);
    return this.params.length + this.locals.length - 1;
  }
  /** Pop the stack top into a fresh local. */
  keep(t: ValType): number {
    const l = this.local(t);
    this.code.localSet(l);
    return l;
  }
}

const gcd = (a: number, b: number): number => (b === 0 ? Math.abs(a) : gcd(b, a % b));

/** An index value: a constant, affine in the lane (scalar local u + s·lane, u a multiple of m), or a vector. */
type IV = { readonly k: 'c'; readonly v: number } | { readonly k: 'a'; readonly u: number; readonly s: number; readonly m: number } | { readonly k: 'v'; readonly l: number };
/** A value or condition: the same in every lane (f32 / i32 0-1 local) or a vector (f32x4 / lane mask). */
type SV = { readonly k: 'u'; readonly l: number } | { readonly k: 'v'; readonly l: number };

/** Renders kernel-IR statements in one mode: vector (4 lanes) or scalar. */
class IrRenderer {
  private readonly env = new Map<string, IV | SV>();
  private readonly vars = new Map<string, number>();
  /** Accumulators held as f32x4 inside a loop vectorized along its own variable. */
  private readonly laneVars = new Map<string, number>();
  constructor(
    private readonly f: Fn,
    private readonly vector: boolean,
    /** The local holding argument k's byte address. */
    private readonly argPtr: (k: number) => number,
    /** Scalar mode: vectorize the top-level loops that reduce along a unit-stride axis (lanes = 4 iterations). */
    private readonly reductionLanes = false,
  ) {}
  private get c(): Code {
    return this.f.code;
  }
  bindIndex(name: string, v: IV): void {
    this.env.set(name, v);
  }

  // ---- helpers ----
  private pushI(v: IV): void {
    if (v.k === 'c') this.c.i32Const(v.v);
    else this.c.localGet(v.k === 'a' ? v.u : v.l);
  }
  /** An index as an i32x4 local. */
  private vecI(v: IV): number {
    if (v.k === 'v') return v.l;
    this.pushI(v);
    this.c.i32x4Splat();
    if (v.k === 'a' && v.s !== 0) this.c.v128ConstI32([0, v.s, 2 * v.s, 3 * v.s]).i32x4Add();
    return this.f.keep('v128');
  }
  private vecF(v: SV): number {
    if (v.k === 'v') return v.l;
    this.c.localGet(v.l).f32x4Splat();
    return this.f.keep('v128');
  }
  private vecB(v: SV): number {
    if (v.k === 'v') return v.l;
    this.c.i32Const(0).localGet(v.l).i32Sub().i32x4Splat();
    return this.f.keep('v128');
  }
  /** Scalar floor division / remainder of the i32 on the stack by d > 0 (`nonneg`: the dividend is ≥ 0). */
  private divmod(op: 'div' | 'mod', d: number, nonneg: boolean): void {
    const pow2 = (d & (d - 1)) === 0;
    if (pow2) {
      if (op === 'div') this.c.i32Const(Math.log2(d)).i32ShrS();
      else this.c.i32Const(d - 1).i32And();
      return;
    }
    if (nonneg) {
      this.c.i32Const(d);
      if (op === 'div') this.c.i32DivS();
      else this.c.i32RemS();
      return;
    }
    // A possibly negative dividend: the floor remainder is the truncated one, plus d where it is negative.
    const x = this.f.keep('i32');
    const r = this.f.local('i32');
    this.c.localGet(x).i32Const(d).i32RemS().localSet(r);
    this.c.localGet(r).i32Const(d).i32Add().localGet(r).localGet(r).i32Const(0).i32LtS().select();
    if (op === 'div') this.c.localSet(r).localGet(x).localGet(r).i32Sub().i32Const(d).i32DivS();
  }

  // ---- indices ----
  index(e: I): IV {
    switch (e.op) {
      case 'const':
        return { k: 'c', v: e.v };
      case 'sym': {
        const v = this.env.get(e.name);
        if (v === undefined) throw new Error(`wasm renderer: unbound index '${e.name}'`);
        return v as IV;
      }
      case 'add':
      case 'sub': {
        const [a, b] = [this.index(e.a), this.index(e.b)];
        const sign = e.op === 'add' ? 1 : -1;
        if (a.k === 'c' && b.k === 'c') return { k: 'c', v: a.v + sign * b.v };
        if (a.k !== 'v' && b.k !== 'v') {
          this.pushI(a);
          this.pushI(b);
          if (e.op === 'add') this.c.i32Add();
          else this.c.i32Sub();
          const [sa, ma] = a.k === 'c' ? [0, a.v] : [a.s, a.m];
          const [sb, mb] = b.k === 'c' ? [0, b.v] : [b.s, b.m];
          return { k: 'a', u: this.f.keep('i32'), s: sa + sign * sb, m: gcd(ma, mb) || 1 };
        }
        this.c.localGet(this.vecI(a)).localGet(this.vecI(b));
        if (e.op === 'add') this.c.i32x4Add();
        else this.c.i32x4Sub();
        return { k: 'v', l: this.f.keep('v128') };
      }
      case 'mul': {
        const [a, b] = [this.index(e.a), this.index(e.b)];
        if (a.k === 'c' && b.k === 'c') return { k: 'c', v: a.v * b.v };
        const [x, kc] = a.k === 'c' ? [b, a.v] : b.k === 'c' ? [a, b.v] : [null, 0];
        if (x !== null && x.k === 'a') {
          this.c.localGet(x.u).i32Const(kc).i32Mul();
          return { k: 'a', u: this.f.keep('i32'), s: x.s * kc, m: Math.abs(x.m * kc) || 1 };
        }
        if (a.k === 'a' && b.k === 'a' && a.s === 0 && b.s === 0) {
          this.c.localGet(a.u).localGet(b.u).i32Mul();
          return { k: 'a', u: this.f.keep('i32'), s: 0, m: a.m * b.m };
        }
        this.c.localGet(this.vecI(a)).localGet(this.vecI(b)).i32x4Mul();
        return { k: 'v', l: this.f.keep('v128') };
      }
      case 'div':
      case 'mod': {
        const a = this.index(e.a);
        const nonneg = e.a.lo >= 0;
        if (a.k === 'c') return { k: 'c', v: e.op === 'div' ? Math.floor(a.v / e.d) : ((a.v % e.d) + e.d) % e.d };
        if (a.k === 'a' && a.s % e.d === 0) {
          // Lanes a whole number of divisors apart: the quotient keeps stride s/d, the remainder is uniform.
          this.c.localGet(a.u);
          this.divmod(e.op, e.d, nonneg);
          const u = this.f.keep('i32');
          return e.op === 'div' ? { k: 'a', u, s: a.s / e.d, m: a.m % e.d === 0 ? a.m / e.d : 1 } : { k: 'a', u, s: 0, m: gcd(a.m, e.d) };
        }
        if (a.k === 'a' && a.s >= 0 && 3 * a.s < gcd(a.m, e.d)) {
          // No lane crosses a multiple of d: the quotient is the same in every lane, the remainder keeps stride s.
          this.c.localGet(a.u);
          this.divmod(e.op, e.d, nonneg);
          const u = this.f.keep('i32');
          return e.op === 'div' ? { k: 'a', u, s: 0, m: a.m % e.d === 0 ? a.m / e.d : 1 } : { k: 'a', u, s: a.s, m: gcd(a.m, e.d) };
        }
        const v = this.vecI(a);
        const out = this.f.local('v128');
        for (let lane = 0; lane < 4; lane++) {
          this.c.localGet(lane === 0 ? v : out);
          this.c.localGet(v).i32x4ExtractLane(lane);
          this.divmod(e.op, e.d, nonneg);
          this.c.i32x4ReplaceLane(lane).localSet(out);
        }
        return { k: 'v', l: out };
      }
      case 'min':
      case 'max': {
        const [a, b] = [this.index(e.a), this.index(e.b)];
        if ((a.k === 'c' || (a.k === 'a' && a.s === 0)) && (b.k === 'c' || (b.k === 'a' && b.s === 0))) {
          this.pushI(a);
          this.pushI(b);
          this.pushI(a);
          this.pushI(b);
          if (e.op === 'min') this.c.i32LtS();
          else this.c.i32GtS();
          this.c.select();
          return { k: 'a', u: this.f.keep('i32'), s: 0, m: 1 };
        }
        this.c.localGet(this.vecI(a)).localGet(this.vecI(b));
        if (e.op === 'min') this.c.i32x4MinS();
        else this.c.i32x4MaxS();
        return { k: 'v', l: this.f.keep('v128') };
      }
      case 'select': {
        const [c, a, b] = [this.cond(e.c), this.index(e.a), this.index(e.b)];
        if (c.k === 'u' && a.k !== 'v' && b.k !== 'v' && (a.k === 'c' || a.s === 0) && (b.k === 'c' || b.s === 0)) {
          this.pushI(a);
          this.pushI(b);
          this.c.localGet(c.l).select();
          return { k: 'a', u: this.f.keep('i32'), s: 0, m: 1 };
        }
        this.c.localGet(this.vecI(a)).localGet(this.vecI(b)).localGet(this.vecB(c)).v128Bitselect();
        return { k: 'v', l: this.f.keep('v128') };
      }
      case 'floor': {
        const x = this.value(e.x);
        if (x.k === 'u') {
          this.c.localGet(x.l).f32Floor().i32TruncSatF32S();
          return { k: 'a', u: this.f.keep('i32'), s: 0, m: 1 };
        }
        this.c.localGet(x.l).f32x4Floor().i32x4TruncSatF32x4S();
        return { k: 'v', l: this.f.keep('v128') };
      }
      case 'flat':
        throw new Error('wasm renderer: structural flat index (this target indexes every tensor with i32 arithmetic)');
    }
  }

  // ---- values ----
  private laneCall(fn: number, xs: readonly number[]): SV {
    const out = this.f.local('v128');
    for (let lane = 0; lane < 4; lane++) {
      this.c.localGet(lane === 0 ? xs[0] : out);
      for (const x of xs) this.c.localGet(x).f32x4ExtractLane(lane);
      this.c.call(fn).f32x4ReplaceLane(lane).localSet(out);
    }
    return { k: 'v', l: out };
  }
  value(e: F): SV {
    switch (e.op) {
      case 'const':
        this.c.f32Const(e.v);
        return { k: 'u', l: this.f.keep('f32') };
      case 'ref': {
        const v = this.env.get(e.name) ?? this.varValue(e.name);
        return v as SV;
      }
      case 'load':
        return this.load(e.arg, this.index(e.index));
      case 'itof': {
        const x = this.index(e.x);
        if (x.k === 'c' || (x.k === 'a' && x.s === 0)) {
          this.pushI(x);
          this.c.f32ConvertI32S();
          return { k: 'u', l: this.f.keep('f32') };
        }
        this.c.localGet(this.vecI(x)).f32x4ConvertI32x4S();
        return { k: 'v', l: this.f.keep('v128') };
      }
      case 'exp':
      case 'log': {
        const x = this.value(e.x);
        if (x.k === 'v') return this.laneCall(FN[e.op], [x.l]);
        this.c.localGet(x.l).call(FN[e.op]);
        return { k: 'u', l: this.f.keep('f32') };
      }
      case 'neg':
      case 'sqrt':
      case 'abs':
      case 'floor':
      case 'trunc': {
        const x = this.value(e.x);
        this.c.localGet(x.l);
        const scalar = { neg: () => this.c.f32Neg(), sqrt: () => this.c.f32Sqrt(), abs: () => this.c.f32Abs(), floor: () => this.c.f32Floor(), trunc: () => this.c.f32Trunc() };
        const vec = { neg: () => this.c.f32x4Neg(), sqrt: () => this.c.f32x4Sqrt(), abs: () => this.c.f32x4Abs(), floor: () => this.c.f32x4Floor(), trunc: () => this.c.f32x4Trunc() };
        (x.k === 'u' ? scalar : vec)[e.op]();
        return { k: x.k, l: this.f.keep(x.k === 'u' ? 'f32' : 'v128') };
      }
      case 'fpow': {
        const [a, b] = [this.value(e.a), this.value(e.b)];
        if (a.k === 'u' && b.k === 'u') {
          this.c.localGet(a.l).localGet(b.l).call(FN.pow);
          return { k: 'u', l: this.f.keep('f32') };
        }
        return this.laneCall(FN.pow, [this.vecF(a), this.vecF(b)]);
      }
      case 'fadd':
      case 'fsub':
      case 'fmul':
      case 'fdiv':
      case 'fmin':
      case 'fmax': {
        const [a, b] = [this.value(e.a), this.value(e.b)];
        const uniform = a.k === 'u' && b.k === 'u';
        this.c.localGet(uniform ? a.l : this.vecF(a)).localGet(uniform ? b.l : this.vecF(b));
        const ops = uniform
          ? { fadd: () => this.c.f32Add(), fsub: () => this.c.f32Sub(), fmul: () => this.c.f32Mul(), fdiv: () => this.c.f32Div(), fmin: () => this.c.f32Min(), fmax: () => this.c.f32Max() }
          : { fadd: () => this.c.f32x4Add(), fsub: () => this.c.f32x4Sub(), fmul: () => this.c.f32x4Mul(), fdiv: () => this.c.f32x4Div(), fmin: () => this.c.f32x4Min(), fmax: () => this.c.f32x4Max() };
        ops[e.op]();
        return uniform ? { k: 'u', l: this.f.keep('f32') } : { k: 'v', l: this.f.keep('v128') };
      }
      case 'select': {
        const [c, a, b] = [this.cond(e.c), this.value(e.a), this.value(e.b)];
        if (c.k === 'u' && a.k === 'u' && b.k === 'u') {
          this.c.localGet(a.l).localGet(b.l).localGet(c.l).select();
          return { k: 'u', l: this.f.keep('f32') };
        }
        this.c.localGet(this.vecF(a)).localGet(this.vecF(b)).localGet(this.vecB(c)).v128Bitselect();
        return { k: 'v', l: this.f.keep('v128') };
      }
    }
  }
  private varValue(name: string): SV {
    const lane = this.laneVars.get(name);
    if (lane !== undefined) return { k: 'v', l: lane };
    const l = this.vars.get(name);
    if (l === undefined) throw new Error(`wasm renderer: unbound value '${name}'`);
    return { k: this.vector ? 'v' : 'u', l };
  }
  /** Push the byte address of element `u` (an i32 local) of argument `arg`. */
  private address(arg: number, u: IV & { k: 'a' | 'c' }): { offset: number } {
    if (u.k === 'c') {
      this.c.localGet(this.argPtr(arg));
      return { offset: u.v * 4 };
    }
    this.c.localGet(u.u).i32Const(2).i32Shl().localGet(this.argPtr(arg)).i32Add();
    return { offset: 0 };
  }
  private load(arg: number, at: IV): SV {
    if (at.k === 'c' || (at.k === 'a' && at.s === 0)) {
      const { offset } = this.address(arg, at);
      this.c.f32Load(offset, 4);
      return { k: 'u', l: this.f.keep('f32') };
    }
    if (at.k === 'a' && at.s === 1) {
      this.address(arg, at);
      this.c.v128Load(0, 4);
      return { k: 'v', l: this.f.keep('v128') };
    }
    const v = this.vecI(at);
    const out = this.f.local('v128');
    for (let lane = 0; lane < 4; lane++) {
      this.c.localGet(lane === 0 ? v : out);
      this.c.localGet(v).i32x4ExtractLane(lane).i32Const(2).i32Shl().localGet(this.argPtr(arg)).i32Add().f32Load(0, 4);
      this.c.f32x4ReplaceLane(lane).localSet(out);
    }
    return { k: 'v', l: out };
  }

  // ---- conditions ----
  cond(e: B): SV {
    switch (e.op) {
      case 'fcmp': {
        const [a, b] = [this.value(e.a), this.value(e.b)];
        const uniform = a.k === 'u' && b.k === 'u';
        this.c.localGet(uniform ? a.l : this.vecF(a)).localGet(uniform ? b.l : this.vecF(b));
        const ops = uniform
          ? { '<': () => this.c.f32Lt(), '<=': () => this.c.f32Le(), '==': () => this.c.f32Eq(), '!=': () => this.c.f32Ne(), '>': () => this.c.f32Gt(), '>=': () => this.c.f32Ge() }
          : { '<': () => this.c.f32x4Lt(), '<=': () => this.c.f32x4Le(), '==': () => this.c.f32x4Eq(), '!=': () => this.c.f32x4Ne(), '>': () => this.c.f32x4Gt(), '>=': () => this.c.f32x4Ge() };
        ops[e.cmp]();
        return { k: uniform ? 'u' : 'v', l: this.f.keep(uniform ? 'i32' : 'v128') };
      }
      case 'icmp': {
        const [a, b] = [this.index(e.a), this.index(e.b)];
        const sOf = (v: IV): number | null => (v.k === 'c' ? 0 : v.k === 'a' ? v.s : null);
        const [sa, sb] = [sOf(a), sOf(b)];
        // Equal lane strides cancel: the comparison is the same in every lane.
        const uniform = sa !== null && sa === sb;
        if (uniform) {
          this.pushI(a);
          this.pushI(b);
        } else this.c.localGet(this.vecI(a)).localGet(this.vecI(b));
        const ops = uniform
          ? { '<': () => this.c.i32LtS(), '<=': () => this.c.i32LeS(), '==': () => this.c.i32Eq(), '!=': () => this.c.i32Ne(), '>': () => this.c.i32GtS(), '>=': () => this.c.i32GeS() }
          : { '<': () => this.c.i32x4LtS(), '<=': () => this.c.i32x4LeS(), '==': () => this.c.i32x4Eq(), '!=': () => this.c.i32x4Ne(), '>': () => this.c.i32x4GtS(), '>=': () => this.c.i32x4GeS() };
        ops[e.cmp]();
        return { k: uniform ? 'u' : 'v', l: this.f.keep(uniform ? 'i32' : 'v128') };
      }
      case 'and':
      case 'or': {
        const [a, b] = [this.cond(e.a), this.cond(e.b)];
        const uniform = a.k === 'u' && b.k === 'u';
        this.c.localGet(uniform ? a.l : this.vecB(a)).localGet(uniform ? b.l : this.vecB(b));
        if (uniform) {
          if (e.op === 'and') this.c.i32And();
          else this.c.i32Or();
        } else if (e.op === 'and') this.c.v128And();
        else this.c.v128Or();
        return { k: uniform ? 'u' : 'v', l: this.f.keep(uniform ? 'i32' : 'v128') };
      }
    }
  }

  // ---- statements ----
  statements(stmts: readonly Stmt[]): void {
    for (const s of stmts) {
      switch (s.s) {
        case 'let':
          this.env.set(s.name, s.value.s === 'i' ? this.index(s.value) : this.value(s.value));
          break;
        case 'var': {
          const init = this.value(s.init);
          const l = this.f.local(this.vector ? 'v128' : 'f32');
          this.c.localGet(this.vector ? this.vecF(init) : init.l).localSet(l);
          this.vars.set(s.name, l);
          break;
        }
        case 'set': {
          const v = this.value(s.value);
          const lane = this.laneVars.get(s.name);
          if (lane !== undefined) this.c.localGet(this.vecF(v)).localSet(lane);
          else this.c.localGet(this.vector ? this.vecF(v) : v.l).localSet(this.vars.get(s.name) as number);
          break;
        }
        case 'loop': {
          const folds = this.reductionLanes && s.count % 4 === 0 && this.laneVars.size === 0 ? reductionFolds(s) : null;
          if (folds !== null) {
            this.lanedLoop(s, folds);
            break;
          }
          const r = this.f.local('i32');
          this.c.i32Const(0).localSet(r).loop();
          this.env.set(s.v, { k: 'a', u: r, s: 0, m: 1 });
          this.statements(s.body);
          this.c.localGet(r).i32Const(1).i32Add().localTee(r).i32Const(s.count).i32LtS().brIf(0).end();
          break;
        }
      }
    }
  }
  /**
   * A reduction loop run 4 iterations at a time, one per lane: each accumulator becomes an f32x4 (the running
   * value in lane 0, the fold's identity elsewhere; max is idempotent, so all lanes start at the value), and the
   * lanes are folded pairwise after the loop. The sum is then taken in another (fixed) order.
   */
  private lanedLoop(s: Extract<Stmt, { s: 'loop' }>, folds: ReadonlyMap<string, 'fadd' | 'fmax'>): void {
    for (const [name, op] of folds) {
      const scalar = this.vars.get(name) as number;
      const lane = this.f.local('v128');
      if (op === 'fadd') this.c.f32Const(0).f32x4Splat().localGet(scalar).f32x4ReplaceLane(0).localSet(lane);
      else this.c.localGet(scalar).f32x4Splat().localSet(lane);
      this.laneVars.set(name, lane);
    }
    const r = this.f.local('i32');
    this.c.i32Const(0).localSet(r).loop();
    this.env.set(s.v, { k: 'a', u: r, s: 1, m: 4 });
    this.statements(s.body);
    this.c.localGet(r).i32Const(4).i32Add().localTee(r).i32Const(s.count).i32LtS().brIf(0).end();
    for (const [name, op] of folds) {
      const lane = this.laneVars.get(name) as number;
      const scalar = this.vars.get(name) as number;
      const fold = () => (op === 'fadd' ? this.c.f32Add() : this.c.f32Max());
      this.c.localGet(lane).f32x4ExtractLane(0).localGet(lane).f32x4ExtractLane(1);
      fold();
      this.c.localGet(lane).f32x4ExtractLane(2).localGet(lane).f32x4ExtractLane(3);
      fold();
      fold();
      this.c.localSet(scalar);
      this.laneVars.delete(name);
    }
  }
  result(v: F): SV {
    return this.value(v);
  }
  vecResult(v: SV): number {
    return this.vecF(v);
  }
}

/**
 * The accumulators of a reduction loop and their folds, when every assignment in it is `v = v + x` or
 * `v = max(v, x)` with `v` not read otherwise (so its iterations may be folded in any grouping); else null.
 */
function reductionFolds(loop: Extract<Stmt, { s: 'loop' }>): Map<string, 'fadd' | 'fmax'> | null {
  const folds = new Map<string, 'fadd' | 'fmax'>();
  let ok = true;
  const reads = (e: F | I | B, name: string): boolean => JSON.stringify(e).includes(`"name":"${name}"`);
  const visit = (stmts: readonly Stmt[]): void => {
    for (const st of stmts) {
      if (st.s === 'loop') ok = false;
      else if (st.s === 'set') {
        const v = st.value;
        const op = v.op === 'fadd' || v.op === 'fmax' ? v.op : null;
        if (op === null || v.op === 'select' || !('a' in v) || v.a.op !== 'ref' || v.a.name !== st.name || reads(v.b, st.name) || (folds.get(st.name) ?? op) !== op) ok = false;
        else folds.set(st.name, op);
      }
    }
  };
  visit(loop.body);
  // an accumulator must not feed anything else inside the loop
  for (const name of folds.keys()) for (const st of loop.body) if (st.s === 'let' && reads(st.value, name)) ok = false;
  return ok && folds.size > 0 ? folds : null;
}

/** Whether a kernel computing `root` reduces along its input's last (unit-stride) axis in multiples of 4. */
const reducesRows = (root: Node): boolean => {
  if (kindOf(root) !== 'reduction') return false;
  const x = root.inputs[0].shape;
  const { axes } = root.params as { axes: readonly number[] };
  return axes.includes(x.length - 1) && x[x.length - 1] % 4 === 0 && axes.reduce((p, a) => p * x[a], 1) >= 16;
};

/** Inner loops cover at least this many outputs (the trailing axes), so per-row index work is amortized. */
const INNER_MIN = 32;

/**
 * A generic kernel from the IR: params (out, a0…an−1, start, end), items = rows of the output (its leading axes).
 * A row's coordinates are computed once; its inner loop (the trailing axes, ≥ INNER_MIN outputs) runs four outputs
 * per trip as f32x4 lanes, then a scalar remainder, and every other index is derived from the known coordinates
 * group by group. Reductions along unit-stride rows vectorize their reduction loop instead (one output per trip).
 */
function irKernel(plan: KernelPlan): WasmKernel {
  const n = plan.args.length;
  const params: ValType[] = ['i32', ...plan.args.map((): ValType => 'i32'), 'i32', 'i32'];
  const f = new Fn(params);
  const [out, start, end] = [0, n + 1, n + 2];
  const argPtr = (k: number) => k + 1;
  const shape = plan.root.shape;
  const total = numel(shape);
  let split = shape.length;
  let inner = 1;
  while (split > 0 && inner < INNER_MIN) inner *= shape[--split];
  const [prefix, suffix] = [shape.slice(0, split), shape.slice(split)];
  const rowCount = numel(prefix);
  const [row, j] = [f.local('i32'), f.local('i32')];
  const c = f.code;
  const rows = reducesRows(plan.root);
  itemLoop(f, start, end, (item) => {
    c.localGet(item).localSet(row).i32Const(0).localSet(j);
    for (const vector of rows ? [false] : [true, false]) {
      const w = new KernelWriter(plan.args, { large: () => false, accumulateUnroll: rows ? 1 : 2, regroupKnown: true });
      const rowSym = isym('__row', 0, rowCount - 1);
      const jSym = isym('__j', 0, inner - 1);
      const rowCoords = w.decompose(prefix, rowSym);
      const pre = w.body().length;
      const idx = w.bindIndex(iadd(imul(rowSym, iconst(inner)), jSym));
      w.knowCoords(shape, idx, [...rowCoords, ...w.decompose(suffix, jSym)]);
      const result = w.lowerNode(plan.root, idx);
      const body = w.body();
      const r = new IrRenderer(f, vector, argPtr, rows);
      r.bindIndex('__row', { k: 'a', u: row, s: 0, m: 1 });
      r.bindIndex('__j', { k: 'a', u: j, s: vector ? 1 : 0, m: vector ? 4 : 1 });
      r.statements(body.slice(0, pre));
      c.block().loop();
      c.localGet(j).i32Const(vector ? 4 : 1).i32Add().i32Const(inner).i32GtS().brIf(1);
      r.statements(body.slice(pre));
      const v = r.result(result);
      c.localGet(row).i32Const(inner).i32Mul().localGet(j).i32Add().i32Const(2).i32Shl().localGet(out).i32Add();
      if (vector) c.localGet(r.vecResult(v)).v128Store(0, 4);
      else c.localGet(v.l).f32Store(0, 4);
      c.localGet(j).i32Const(vector ? 4 : 1).i32Add().localSet(j).br(0).end().end();
    }
  });
  const perOutput = rows ? numel(plan.root.inputs[0].shape) / total : 1;
  return { params: params.slice(1), locals: f.locals, code: c, items: rowCount, itemAlign: 1, work: total * perOutput, scratchBytes: 0, operands: plan.args.map((_a, k) => k) };
}

/**
 * The microkernel: C[rows × 8] = Σ_k A[row, k] · B[k, 0..8), A read as scalars (row stride aRow bytes, k stride 4),
 * B as two f32x4 per k (k stride bK bytes), stored at row stride cRow bytes (`cols` < 8: only those lanes).
 * Pointers are locals holding byte addresses of the block's first elements; they are not modified.
 */
function microkernel(f: Fn, rows: number, K: number, ptr: { a: number; b: number; c: number }, stride: { aRow: number; bK: number; cRow: number }, cols: number | null): void {
  const c = f.code;
  const acc = Array.from({ length: rows * 2 }, () => f.local('v128'));
  for (const l of acc) c.v128ConstI32([0, 0, 0, 0]).localSet(l);
  const [pa, pb, k] = [f.local('i32'), f.local('i32'), f.local('i32')];
  const [b0, b1, s] = [f.local('v128'), f.local('v128'), f.local('v128')];
  c.localGet(ptr.a).localSet(pa).localGet(ptr.b).localSet(pb).i32Const(K).localSet(k);
  c.loop();
  c.localGet(pb).v128Load(0, 4).localSet(b0).localGet(pb).v128Load(16, 4).localSet(b1);
  for (let q = 0; q < rows; q++) {
    c.localGet(pa).v128Load32Splat(q * stride.aRow, 4).localSet(s);
    c.localGet(acc[2 * q]).localGet(s).localGet(b0).f32x4Mul().f32x4Add().localSet(acc[2 * q]);
    c.localGet(acc[2 * q + 1]).localGet(s).localGet(b1).f32x4Mul().f32x4Add().localSet(acc[2 * q + 1]);
  }
  c.localGet(pa).i32Const(4).i32Add().localSet(pa).localGet(pb).i32Const(stride.bK).i32Add().localSet(pb);
  c.localGet(k).i32Const(1).i32Sub().localTee(k).brIf(0).end();
  for (let q = 0; q < rows; q++) {
    if (cols === null) {
      c.localGet(ptr.c).localGet(acc[2 * q]).v128Store(q * stride.cRow, 4);
      c.localGet(ptr.c).localGet(acc[2 * q + 1]).v128Store(q * stride.cRow + 16, 4);
    } else {
      for (let l = 0; l < cols; l++) c.localGet(ptr.c).localGet(acc[2 * q + (l >> 2)]).v128Store32Lane(l & 3, q * stride.cRow + 4 * (l & 3) + 16 * (l >> 2), 4);
    }
  }
}

/**
 * All row blocks of one column panel: full blocks of ROWS rows, then the remaining rows. `rowPtr(q0)` pushes
 * nothing; the caller's locals `a`, `c` point at row 0 and advance by whole blocks.
 */
function panel(f: Fn, M: number, K: number, ptr: { a: number; b: number; c: number }, stride: { aRow: number; bK: number; cRow: number }, cols: number | null): void {
  const c = f.code;
  const [pa, pc] = [f.local('i32'), f.local('i32')];
  c.localGet(ptr.a).localSet(pa).localGet(ptr.c).localSet(pc);
  const full = Math.floor(M / ROWS);
  const block = (rows: number) => microkernel(f, rows, K, { a: pa, b: ptr.b, c: pc }, stride, cols);
  if (full > 0) {
    const q = f.local('i32');
    c.i32Const(full).localSet(q).loop();
    block(ROWS);
    c.localGet(pa).i32Const(ROWS * stride.aRow).i32Add().localSet(pa).localGet(pc).i32Const(ROWS * stride.cRow).i32Add().localSet(pc);
    c.localGet(q).i32Const(1).i32Sub().localTee(q).brIf(0).end();
  }
  if (M % ROWS > 0) block(M % ROWS);
}

/**
 * The column panel starting at column local `j` of a `width`-wide output: full when `width` is a multiple of COLS;
 * otherwise the last panel stores only its `width mod COLS` valid columns (its loads read past the row: memory
 * keeps slack).
 */
function columnPanel(f: Fn, M: number, K: number, ptr: { a: number; b: number; c: number }, stride: { aRow: number; bK: number; cRow: number }, j: number, width: number): void {
  if (width % COLS === 0) {
    panel(f, M, K, ptr, stride, null);
    return;
  }
  const c = f.code;
  c.localGet(j).i32Const(width - (width % COLS)).i32LtS().if();
  panel(f, M, K, ptr, stride, null);
  c.else();
  panel(f, M, K, ptr, stride, width % COLS);
  c.end();
}

/** A loop over work items [start, end) with the item index in a local; `body` renders one item. */
function itemLoop(f: Fn, start: number, end: number, body: (item: number) => void): void {
  const c = f.code;
  const item = f.local('i32');
  c.localGet(start).localSet(item).block().loop();
  c.localGet(item).localGet(end).i32GeS().brIf(1);
  body(item);
  c.localGet(item).i32Const(1).i32Add().localSet(item).br(0).end().end();
}

/** dot [..B, M, K] · [..B, K, N]: items are (batch, 8-column panel); B's rows are read in place. */
function dotKernel(node: Node<'dot'>, operands: readonly number[]): WasmKernel {
  const [a, bm] = node.inputs;
  const r = a.shape.length;
  const [M, K, N] = [a.shape[r - 2], a.shape[r - 1], bm.shape[r - 1]];
  const batch = numel(a.shape.slice(0, r - 2));
  const panels = Math.ceil(N / COLS);
  const params: ValType[] = ['i32', 'i32', 'i32', 'i32', 'i32'];
  const f = new Fn(params);
  const [out, pA, pB, start, end] = [0, 1, 2, 3, 4];
  const c = f.code;
  const [ba, bb, bc, bi, j] = [f.local('i32'), f.local('i32'), f.local('i32'), f.local('i32'), f.local('i32')];
  itemLoop(f, start, end, (item) => {
    c.localGet(item).i32Const(panels).i32DivS().localSet(bi);
    c.localGet(item).i32Const(panels).i32RemS().i32Const(COLS).i32Mul().localSet(j);
    c.localGet(pA).localGet(bi).i32Const(M * K * 4).i32Mul().i32Add().localSet(ba);
    c.localGet(pB).localGet(bi).i32Const(K * N * 4).i32Mul().i32Add().localGet(j).i32Const(2).i32Shl().i32Add().localSet(bb);
    c.localGet(out).localGet(bi).i32Const(M * N * 4).i32Mul().i32Add().localGet(j).i32Const(2).i32Shl().i32Add().localSet(bc);
    columnPanel(f, M, K, { a: ba, b: bb, c: bc }, { aRow: K * 4, bK: N * 4, cRow: N * 4 }, j, N);
  });
  return { params: params.slice(1), locals: f.locals, code: c, items: batch * panels, itemAlign: 1, work: batch * M * N * K, scratchBytes: 0, operands };
}

/** A zero pad (with interior, i.e. zero dilation, by powers of two) of the spatial axes only, as a conv input. */
export function foldablePad(n: Node): { readonly lo: readonly number[]; readonly q: readonly number[] } | null {
  if (n.op !== 'pad') return null;
  const { lo, hi, interior, value } = (n as Node<'pad'>).params;
  if (value !== 0 || n.shape.length !== 4 || [lo, hi, interior].some((v) => v[0] !== 0 || v[1] !== 0)) return null;
  const q = [interior[2] + 1, interior[3] + 1];
  return q.every((v) => (v & (v - 1)) === 0) ? { lo: [lo[2], lo[3]], q } : null;
}

/**
 * conv2d as an implicit GEMM per image and group: rows = the group's output channels, columns = output pixels,
 * K = Cg·kh·kw. Items are (image, group, 8-pixel panel); each packs its K × 8 panel of the im2col matrix (zeros
 * outside the input) into the worker's scratch, then runs every row block over it. The input may be a zero pad
 * (with interior zeros) of the buffer actually read: positions between or outside its elements pack as zeros.
 */
function convKernel(node: Node<'conv2d'>, operands: readonly number[], pad: ReturnType<typeof foldablePad>): WasmKernel {
  const [xin, w] = node.inputs;
  const src = pad === null ? xin : xin.inputs[0];
  const [, C, Hs, Ws] = src.shape;
  const [, , Hp, Wp] = xin.shape;
  const [lo, q] = pad === null ? [[0, 0], [1, 1]] : [pad.lo, pad.q];
  const [N] = xin.shape;
  const [O, Cg, kh, kw] = w.shape;
  const { stride, padding, dilation, groups } = node.params;
  const [, , Ho, Wo] = node.shape;
  const Og = O / groups;
  const P = Ho * Wo;
  const K = Cg * kh * kw;
  const panels = Math.ceil(P / COLS);
  const plane = Hs * Ws * 4;
  const params: ValType[] = ['i32', 'i32', 'i32', 'i32', 'i32', 'i32'];
  const f = new Fn(params);
  const [out, pX, pW, scratch, start, end] = [0, 1, 2, 3, 4, 5];
  const c = f.code;
  const [img, grp, j, xg, wg, cg, sameRow] = Array.from({ length: 7 }, () => f.local('i32'));
  const rowOf = Array.from({ length: COLS }, () => f.local('i32'));
  const colOf = Array.from({ length: COLS }, () => f.local('i32'));
  const valid = Array.from({ length: COLS }, () => f.local('i32'));
  const offset = Array.from({ length: COLS }, () => f.local('i32'));
  const [yp, xp, t, ch, ps, pd] = Array.from({ length: 6 }, () => f.local('i32'));
  // Contiguous source columns: a panel inside one output row reads 8 consecutive elements of a source row.
  const contiguous = stride[1] === 1 && q[1] === 1;
  /** valid_l = coordinate `v` (padded) lands on a source element of an axis; leaves the source index in `t`. */
  const onSource = (v: number, axis: 0 | 1): void => {
    const [extent, size] = axis === 0 ? [Hp, Hs] : [Wp, Ws];
    const k = Math.log2(q[axis]);
    c.localGet(v).i32Const(lo[axis]).i32Sub().localTee(t);
    c.i32Const(0).i32GeS().localGet(v).i32Const(extent).i32LtU().i32And();
    if (k > 0) c.localGet(t).i32Const(q[axis] - 1).i32And().i32Eqz().i32And();
    if (k > 0) c.localGet(t).i32Const(k).i32ShrS().localSet(t);
    c.localGet(t).i32Const(size).i32LtS().i32And();
  };
  itemLoop(f, start, end, (item) => {
    c.localGet(item).i32Const(panels).i32RemS().i32Const(COLS).i32Mul().localSet(j);
    c.localGet(item).i32Const(panels).i32DivS().localTee(grp).i32Const(groups).i32DivS().localSet(img);
    c.localGet(grp).i32Const(groups).i32RemS().localSet(grp);
    c.localGet(pX).localGet(img).i32Const(C).i32Mul().localGet(grp).i32Const(Cg).i32Mul().i32Add().i32Const(plane).i32Mul().i32Add().localSet(xg);
    c.localGet(pW).localGet(grp).i32Const(Og * K * 4).i32Mul().i32Add().localSet(wg);
    c.localGet(out).localGet(img).i32Const(O).i32Mul().localGet(grp).i32Const(Og).i32Mul().i32Add().i32Const(P).i32Mul().localGet(j).i32Add().i32Const(2).i32Shl().i32Add().localSet(cg);
    // Top-left (padded) input position of each column's window; a pixel past P gets a row that is never inside.
    for (let l = 0; l < COLS; l++) {
      c.localGet(j).i32Const(l).i32Add().localTee(rowOf[l]).i32Const(Wo).i32RemS().i32Const(stride[1]).i32Mul().i32Const(padding[1]).i32Sub().localSet(colOf[l]);
      c.localGet(rowOf[l]).i32Const(Wo).i32DivS().i32Const(stride[0]).i32Mul().i32Const(padding[0]).i32Sub();
      c.i32Const(-(1 << 30)).localGet(rowOf[l]).i32Const(P).i32LtS().select().localSet(rowOf[l]);
    }
    if (contiguous) c.localGet(j).i32Const(Wo).i32RemS().i32Const(COLS - 1).i32Add().i32Const(Wo).i32LtS().localGet(j).i32Const(COLS - 1).i32Add().i32Const(P).i32LtS().i32And().localSet(sameRow);
    for (let a = 0; a < kh; a++)
      for (let e = 0; e < kw; e++) {
        // Per lane: whether tap (a, e) reads a source element, and that element's offset in a channel plane.
        for (let l = 0; l < COLS; l++) {
          c.localGet(rowOf[l]).i32Const(a * dilation[0]).i32Add().localSet(yp);
          c.localGet(colOf[l]).i32Const(e * dilation[1]).i32Add().localSet(xp);
          onSource(yp, 0);
          c.localSet(valid[l]).localGet(t).i32Const(Ws).i32Mul().localSet(offset[l]);
          onSource(xp, 1);
          c.localGet(valid[l]).i32And().localSet(valid[l]);
          c.localGet(offset[l]).localGet(t).i32Add().i32Const(2).i32Shl().i32Const(0).localGet(valid[l]).select().localSet(offset[l]);
        }
        // Then every channel: scratch[(ch·kh·kw + a·kw + e)·8 + l] = valid_l ? x[ch, offset_l] : 0.
        const channels = (body: () => void): void => {
          c.localGet(xg).localSet(ps).localGet(scratch).i32Const(((a * kw + e) * COLS) * 4).i32Add().localSet(pd).i32Const(Cg).localSet(ch).loop();
          body();
          c.localGet(ps).i32Const(plane).i32Add().localSet(ps).localGet(pd).i32Const(kh * kw * COLS * 4).i32Add().localSet(pd);
          c.localGet(ch).i32Const(1).i32Sub().localTee(ch).brIf(0).end();
        };
        const scalarLanes = (): void =>
          channels(() => {
            for (let l = 0; l < COLS; l++) c.localGet(pd).localGet(ps).localGet(offset[l]).i32Add().f32Load(0, 4).f32Const(0).localGet(valid[l]).select().f32Store(l * 4, 4);
          });
        if (contiguous) {
          c.localGet(sameRow).localGet(valid[0]).i32And().localGet(valid[COLS - 1]).i32And().if();
          channels(() => {
            c.localGet(ps).localGet(offset[0]).i32Add().localSet(t);
            c.localGet(pd).localGet(t).v128Load(0, 4).v128Store(0, 4).localGet(pd).localGet(t).v128Load(16, 4).v128Store(16, 4);
          });
          c.else();
          scalarLanes();
          c.end();
        } else scalarLanes();
      }
    columnPanel(f, Og, K, { a: wg, b: scratch, c: cg }, { aRow: K * 4, bK: COLS * 4, cRow: P * 4 }, j, P);
  });
  return { params: params.slice(1), locals: f.locals, code: c, items: N * groups * panels, itemAlign: 1, work: N * O * P * K, scratchBytes: K * COLS * 4, operands };
}

/** The wasm function of one kernel: a template for contractions whose operands are plain buffers, else the IR. */
export function renderKernel(plan: KernelPlan): WasmKernel {
  const root = plan.root;
  // Each operand's buffer: the operand itself or the buffer it reshapes (the same bytes).
  const bufferOf = (x: Node): number => {
    let cur = x;
    while (!plan.args.includes(cur) && (cur.op === 'reshape' || cur.op === 'stopGradient')) cur = cur.inputs[0];
    return plan.args.indexOf(cur);
  };
  const pad = root.op === 'conv2d' ? foldablePad(root.inputs[0]) : null;
  const operands = root.inputs.map((x, k) => bufferOf(k === 0 && pad !== null && !plan.args.includes(x) ? x.inputs[0] : x));
  const plain = operands.every((k) => k >= 0);
  if (root.op === 'dot' && plain) return dotKernel(root as Node<'dot'>, operands);
  if (root.op === 'conv2d' && plain) return convKernel(root as Node<'conv2d'>, operands, plan.args.includes(root.inputs[0]) ? null : pad);
  return irKernel(plan);
}

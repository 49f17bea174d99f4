// Fused epilogues of the webgpu target's GEMM templates: when a contraction's only consumer is an elementwise op
// (a bias add, BN's scale and shift in eval form, a ReLU, the ReLU mask of a backward pass, …), the scheduler computes
// the contraction inside that consumer's kernel (`ScheduleTarget.epilogue`), and the template applies the consumer
// to each accumulator before its store. The consumer's own inputs (the bias, the mask's activations) are read
// through the kernel IR, rendered here as WGSL.
import { kindOf } from '../../facts.ts';
import { numel, type Node } from '../../ir.ts';
import { isym, type B, type F, type I, type Stmt } from '../../kernel/ir.ts';
import { KernelWriter } from '../../kernel/writer.ts';
import type { KernelPlan } from '../../schedule.ts';

/** Elementwise consumers folded into a contraction's store, followed up a chain of at most this many. */
export const MAX_EPILOGUE_CHAIN = 4;

/**
 * Whether `consumer` may be computed in the store of contraction `c`: an elementwise op of c's shape (each output
 * reads c at its own index, so the accumulator is exactly the value it needs). `pow` stays out: WGSL's pow is
 * undefined for negative bases, where the interpreter's Math.pow is not.
 */
export const fusesEpilogue = (c: Node, consumer: Node): boolean =>
  kindOf(consumer) === 'elementwise' && consumer.op !== 'pow' && consumer.shape.length === c.shape.length && consumer.shape.every((d, k) => d === c.shape[k]);

/** A float literal WGSL types as f32 (finite; the IR refuses others). */
const lit = (v: number): string => {
  const s = Object.is(v, -0) ? '-0.0' : String(v);
  const f = /[.e]/.test(s) ? s : `${s}.0`;
  return v < 0 || Object.is(v, -0) ? `(${f})` : f;
};

/** Renders kernel IR as WGSL: indices as i32, values as f32; `load` of argument k through `loadOf`. */
class WgslIr {
  constructor(private readonly loadOf: (arg: number, index: I) => string) {}

  index(e: I): string {
    switch (e.op) {
      case 'const':
        return `${e.v}i`;
      case 'sym':
        return e.name;
      case 'add':
        return `(${this.index(e.a)} + ${this.index(e.b)})`;
      case 'sub':
        return `(${this.index(e.a)} - ${this.index(e.b)})`;
      case 'mul':
        return `(${this.index(e.a)} * ${this.index(e.b)})`;
      case 'div':
        // floor division: WGSL truncates, which differs for negative dividends
        return e.a.lo >= 0 ? `(${this.index(e.a)} / ${e.d}i)` : `i32(floor(f32(${this.index(e.a)}) / ${lit(e.d)}))`;
      case 'mod':
        return e.a.lo >= 0 ? `(${this.index(e.a)} % ${e.d}i)` : `(((${this.index(e.a)} % ${e.d}i) + ${e.d}i) % ${e.d}i)`;
      case 'min':
        return `min(${this.index(e.a)}, ${this.index(e.b)})`;
      case 'max':
        return `max(${this.index(e.a)}, ${this.index(e.b)})`;
      case 'select':
        return `select(${this.index(e.b)}, ${this.index(e.a)}, ${this.cond(e.c)})`;
      case 'floor':
        return `i32(floor(${this.value(e.x)}))`;
      case 'flat': {
        const st = e.shape.map((_d, k) => e.shape.slice(k + 1).reduce((p, d) => p * d, 1));
        return `(${e.coords.map((c, k) => `${this.index(c)} * ${st[k]}i`).join(' + ')})`;
      }
    }
  }

  value(e: F): string {
    switch (e.op) {
      case 'const':
        return lit(e.v);
      case 'load':
        return this.loadOf(e.arg, e.index);
      case 'ref':
        return e.name;
      case 'itof':
        return `f32(${this.index(e.x)})`;
      case 'neg':
        return `(-${this.value(e.x)})`;
      case 'exp':
      case 'log':
      case 'sqrt':
      case 'abs':
      case 'floor':
      case 'trunc':
        return `${e.op}(${this.value(e.x)})`;
      case 'fadd':
        return `(${this.value(e.a)} + ${this.value(e.b)})`;
      case 'fsub':
        return `(${this.value(e.a)} - ${this.value(e.b)})`;
      case 'fmul':
        return `(${this.value(e.a)} * ${this.value(e.b)})`;
      case 'fdiv':
        return `(${this.value(e.a)} / ${this.value(e.b)})`;
      case 'fmin':
        return `min(${this.value(e.a)}, ${this.value(e.b)})`;
      case 'fmax':
        return `max(${this.value(e.a)}, ${this.value(e.b)})`;
      case 'fpow':
        return `pow(${this.value(e.a)}, ${this.value(e.b)})`;
      case 'select':
        return `select(${this.value(e.b)}, ${this.value(e.a)}, ${this.cond(e.c)})`;
    }
  }

  cond(e: B): string {
    switch (e.op) {
      case 'fcmp':
        return `(${this.value(e.a)} ${e.cmp} ${this.value(e.b)})`;
      case 'icmp':
        return `(${this.index(e.a)} ${e.cmp} ${this.index(e.b)})`;
      case 'and':
        return `(${this.cond(e.a)} && ${this.cond(e.b)})`;
      case 'or':
        return `(${this.cond(e.a)} || ${this.cond(e.b)})`;
    }
  }

  statements(stmts: readonly Stmt[], indent: string): string[] {
    return stmts.flatMap((s): string[] => {
      switch (s.s) {
        case 'let':
          return [`${indent}let ${s.name} = ${s.value.s === 'i' ? this.index(s.value) : this.value(s.value)};`];
        case 'var':
          return [`${indent}var ${s.name}: f32 = ${this.value(s.init)};`];
        case 'set':
          return [`${indent}${s.name} = ${this.value(s.value)};`];
        case 'loop':
          return [`${indent}for (var ${s.v}: i32 = 0i; ${s.v} < ${s.count}i; ${s.v} = ${s.v} + 1i) {`, ...this.statements(s.body, `${indent}  `), `${indent}}`];
      }
    });
  }
}

export interface Epilogue {
  /** WGSL of `fn epilogue(o: u32, acc: f32) -> f32`: the kernel root's value at flat output index o. */
  readonly fn: string;
  /** The kernel arguments the epilogue reads, each bound as a scalar f32 array named `e<arg>`. */
  readonly args: readonly number[];
}

/**
 * The epilogue of a kernel whose root is an elementwise chain over the contraction `c` (inlined in `plan`): the
 * root lowered at the output index, with every read of `c` at that index replaced by the accumulator.
 */
export function renderEpilogue(plan: KernelPlan, c: Node): Epilogue {
  const accArg = plan.args.length;
  const w = new KernelWriter([...plan.args, c], { large: () => false });
  const o = isym('oi', 0, numel(plan.root.shape) - 1);
  const result = w.lowerNode(plan.root, o);
  const used = new Set<number>();
  const ir: WgslIr = new WgslIr((arg: number, index: I): string => {
    if (arg === accArg) {
      if (index.key !== o.key) throw new Error(`webgpu epilogue: ${plan.root.op} reads its contraction at ${index.key}, not at its own index`);
      return 'acc';
    }
    used.add(arg);
    return `e${arg}[${ir.index(index)}]`;
  });
  const body = ir.statements(w.body(), '  ');
  const value = ir.value(result);
  return { fn: ['fn epilogue(o: u32, acc: f32) -> f32 {', '  let oi = i32(o);', ...body, `  return ${value};`, '}'].join('\n'), args: [...used].sort((a, b) => a - b) };
}

// The wasm encoder (compiler/wasm/encode.ts) is checked by running what it emits: a wrong opcode number can
// still validate and silently compute another operation, so every instruction method is executed here against
// a JS reference (the last test fails if a method was never emitted by any test).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { property } from './prop.ts';
import { Code, ModuleBuilder, encodeS32, encodeS64, encodeU32, type ValType } from '../compiler/wasm/encode.ts';

// ------------------------------------------------------------------ WebAssembly access (no DOM typings here)

interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports?: object) => { readonly exports: Record<string, unknown> };
  Memory: new (desc: { initial: number; maximum?: number; shared?: boolean }) => WasmMemory;
  RuntimeError: new (...args: never[]) => Error;
}
const Wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

type Fn = (...args: (number | bigint)[]) => number;
type BigFn = (...args: (number | bigint)[]) => bigint;

interface Instance {
  fn(name: string): Fn;
  bigFn(name: string): BigFn;
  memory(): ArrayBuffer;
}

function instantiate(mb: ModuleBuilder, imports: object = {}): Instance {
  const bytes = mb.toBytes();
  assert.ok(Wasm.validate(bytes), 'module must validate');
  const { exports } = new Wasm.Instance(new Wasm.Module(bytes), imports);
  const get = (name: string): unknown => {
    const v = exports[name];
    assert.ok(v !== undefined, `missing export ${name}`);
    return v;
  };
  return {
    fn: (name) => get(name) as Fn,
    bigFn: (name) => get(name) as BigFn,
    memory: () => (get('mem') as WasmMemory).buffer,
  };
}

// ------------------------------------------------------------------ coverage: every instruction method is emitted

const used = new Set<string>();
const notInstructions = new Set(['constructor', 'bytes', 'op', 'u32', 'simd', 'atomic', 'misc', 'memarg', 'atomicMemarg', 'blockType']);
const instructionNames = Object.getOwnPropertyNames(Code.prototype).filter((name) => {
  const d = Object.getOwnPropertyDescriptor(Code.prototype, name);
  return d !== undefined && typeof d.value === 'function' && !notInstructions.has(name);
});
{
  const proto = Code.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const name of instructionNames) {
    const original = proto[name];
    proto[name] = function (this: unknown, ...args: unknown[]) {
      used.add(name);
      return original.apply(this, args);
    };
  }
}

// ------------------------------------------------------------------ f32 helpers

const f32 = Math.fround;
const sameF32 = (a: number, b: number): boolean => (Number.isNaN(a) && Number.isNaN(b)) || Object.is(a, b);
const showF = (x: number): string => (Object.is(x, -0) ? '-0' : String(x));
/** Round half to even, as f32.nearest; keeps the sign of zero like the spec. */
function roundEven(x: number): number {
  if (!Number.isFinite(x) || Math.abs(x - Math.trunc(x)) !== 0.5) return Math.round(x) === 0 && x < 0 ? -0 : Math.round(x);
  return 2 * Math.round(x / 2);
}
function truncSat(x: number): number {
  if (Number.isNaN(x)) return 0;
  if (x >= 2147483648) return 2147483647;
  if (x <= -2147483649) return -2147483648;
  return Math.trunc(x) | 0;
}
const bitsOf = (x: number): number => new Int32Array(Float32Array.of(x).buffer)[0];

const f32Samples = [0, -0, 1, -1, 0.5, -0.5, 1.5, 2.5, -2.5, 3.7, -3.7, 0.1, 1e-40, -1e-40, 3.4e38, -3.4e38, 16777217, Infinity, -Infinity, NaN].map(f32);
const i32Samples = [0, 1, -1, 2, 7, -7, 31, 32, 33, 255, 0x7fffffff, -0x80000000, 123456789, -987654321];

// ------------------------------------------------------------------ LEB128

test('LEB128 encoders produce the spec byte sequences at the edges', () => {
  assert.deepEqual(encodeU32(0), [0x00]);
  assert.deepEqual(encodeU32(63), [0x3f]);
  assert.deepEqual(encodeU32(64), [0x40]);
  assert.deepEqual(encodeU32(127), [0x7f]);
  assert.deepEqual(encodeU32(128), [0x80, 0x01]);
  assert.deepEqual(encodeU32(624485), [0xe5, 0x8e, 0x26]);
  assert.deepEqual(encodeU32(0xffffffff), [0xff, 0xff, 0xff, 0xff, 0x0f]);
  assert.throws(() => encodeU32(-1), RangeError);
  assert.throws(() => encodeU32(2 ** 32), RangeError);
  assert.throws(() => encodeU32(1.5), RangeError);

  assert.deepEqual(encodeS32(0), [0x00]);
  assert.deepEqual(encodeS32(63), [0x3f]);
  assert.deepEqual(encodeS32(64), [0xc0, 0x00]);
  assert.deepEqual(encodeS32(-1), [0x7f]);
  assert.deepEqual(encodeS32(-64), [0x40]);
  assert.deepEqual(encodeS32(-65), [0xbf, 0x7f]);
  assert.deepEqual(encodeS32(-123456), [0xc0, 0xbb, 0x78]);
  assert.deepEqual(encodeS32(2 ** 31 - 1), [0xff, 0xff, 0xff, 0xff, 0x07]);
  assert.deepEqual(encodeS32(-(2 ** 31)), [0x80, 0x80, 0x80, 0x80, 0x78]);
  assert.throws(() => encodeS32(2 ** 31), RangeError);

  assert.deepEqual(encodeS64(-1n), [0x7f]);
  assert.deepEqual(encodeS64(64n), [0xc0, 0x00]);
  assert.deepEqual(encodeS64((1n << 63n) - 1n), [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00]);
  assert.deepEqual(encodeS64(-(1n << 63n)), [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f]);
  assert.throws(() => encodeS64(1n << 63n), RangeError);
});

test('i32.const / i64.const round-trip LEB edge values through execution', () => {
  const i32Values = [0, 63, 64, -1, -64, -65, 127, 128, -128, -129, 2 ** 31 - 1, -(2 ** 31), 0xffffffff, 0x80000000, 0xdeadbeef];
  const i64Values = [0n, 63n, 64n, -1n, -64n, -65n, 2n ** 31n - 1n, -(2n ** 31n), 2n ** 32n, (1n << 63n) - 1n, -(1n << 63n)];
  const mb = new ModuleBuilder();
  i32Values.forEach((v, i) => mb.addFunction({ params: [], results: ['i32'], code: new Code().i32Const(v), export: `i${i}` }));
  i64Values.forEach((v, i) => mb.addFunction({ params: [], results: ['i64'], code: new Code().i64Const(v), export: `l${i}` }));
  const inst = instantiate(mb);
  i32Values.forEach((v, i) => assert.equal(inst.fn(`i${i}`)(), v | 0, `i32.const ${v}`));
  i64Values.forEach((v, i) => assert.equal(inst.bigFn(`l${i}`)(), v, `i64.const ${v}`));
  assert.throws(() => new Code().i32Const(2 ** 32), RangeError);
  assert.throws(() => new Code().i32Const(-(2 ** 31) - 1), RangeError);
});

test('multi-byte u32 immediates: a local index past 127 and a memarg offset near 2^32', () => {
  const mb = new ModuleBuilder();
  mb.addMemory({ min: 1 }, 'mem');
  const locals: ValType[] = Array.from({ length: 300 }, () => 'i32');
  mb.addFunction({ params: ['i32'], results: ['i32'], locals, code: new Code().localGet(0).localSet(200).localGet(200).localTee(299).localGet(299).i32Add(), export: 'far' });
  mb.addFunction({ params: [], results: ['i32'], code: new Code().i32Const(0).i32Load(0xfffffff0), export: 'oob' });
  const inst = instantiate(mb);
  assert.equal(inst.fn('far')(21), 42);
  assert.throws(() => inst.fn('oob')(), Wasm.RuntimeError);
});

test('f32.const and f64.const are bit-exact', () => {
  const values = [0, -0, 1, -1, 0.1, Math.PI, 1.401298464324817e-45, 1.1754942106924411e-38, 3.4028234663852886e38, 16777217, Infinity, -Infinity, NaN];
  const mb = new ModuleBuilder();
  values.forEach((v, i) => {
    mb.addFunction({ params: [], results: ['f32'], code: new Code().f32Const(v), export: `f${i}` });
    mb.addFunction({ params: [], results: ['f64'], code: new Code().f64Const(v), export: `d${i}` });
    mb.addFunction({ params: [], results: ['i32'], code: new Code().f32Const(v).i32ReinterpretF32(), export: `b${i}` });
  });
  const inst = instantiate(mb);
  values.forEach((v, i) => {
    assert.ok(sameF32(inst.fn(`f${i}`)(), f32(v)), `f32.const ${showF(v)}`);
    assert.ok(sameF32(inst.fn(`d${i}`)(), v), `f64.const ${showF(v)}`);
    if (!Number.isNaN(v)) assert.equal(inst.fn(`b${i}`)(), bitsOf(v), `f32.const ${showF(v)} bits`);
  });
});

// ------------------------------------------------------------------ scalar i32 / f32 / f64

type Emit = (c: Code) => Code;

test('every i32 op matches its JS reference; division traps where the spec says', () => {
  const u = (x: number) => x >>> 0;
  const b = (x: boolean) => (x ? 1 : 0);
  const binary: readonly [string, Emit, (a: number, b: number) => number | 'trap'][] = [
    ['eq', (c) => c.i32Eq(), (x, y) => b(x === y)],
    ['ne', (c) => c.i32Ne(), (x, y) => b(x !== y)],
    ['lt_s', (c) => c.i32LtS(), (x, y) => b(x < y)],
    ['lt_u', (c) => c.i32LtU(), (x, y) => b(u(x) < u(y))],
    ['gt_s', (c) => c.i32GtS(), (x, y) => b(x > y)],
    ['gt_u', (c) => c.i32GtU(), (x, y) => b(u(x) > u(y))],
    ['le_s', (c) => c.i32LeS(), (x, y) => b(x <= y)],
    ['le_u', (c) => c.i32LeU(), (x, y) => b(u(x) <= u(y))],
    ['ge_s', (c) => c.i32GeS(), (x, y) => b(x >= y)],
    ['ge_u', (c) => c.i32GeU(), (x, y) => b(u(x) >= u(y))],
    ['add', (c) => c.i32Add(), (x, y) => (x + y) | 0],
    ['sub', (c) => c.i32Sub(), (x, y) => (x - y) | 0],
    ['mul', (c) => c.i32Mul(), (x, y) => Math.imul(x, y)],
    ['div_s', (c) => c.i32DivS(), (x, y) => (y === 0 || (x === -0x80000000 && y === -1) ? 'trap' : Math.trunc(x / y) | 0)],
    ['div_u', (c) => c.i32DivU(), (x, y) => (y === 0 ? 'trap' : Math.trunc(u(x) / u(y)) | 0)],
    ['rem_s', (c) => c.i32RemS(), (x, y) => (y === 0 ? 'trap' : x % y | 0)],
    ['rem_u', (c) => c.i32RemU(), (x, y) => (y === 0 ? 'trap' : u(x) % u(y) | 0)],
    ['and', (c) => c.i32And(), (x, y) => x & y],
    ['or', (c) => c.i32Or(), (x, y) => x | y],
    ['xor', (c) => c.i32Xor(), (x, y) => x ^ y],
    ['shl', (c) => c.i32Shl(), (x, y) => x << y],
    ['shr_s', (c) => c.i32ShrS(), (x, y) => x >> y],
    ['shr_u', (c) => c.i32ShrU(), (x, y) => (x >>> y) | 0],
  ];
  const mb = new ModuleBuilder();
  for (const [name, emit] of binary) mb.addFunction({ params: ['i32', 'i32'], results: ['i32'], code: emit(new Code().localGet(0).localGet(1)), export: name });
  mb.addFunction({ params: ['i32'], results: ['i32'], code: new Code().localGet(0).i32Eqz(), export: 'eqz' });
  const inst = instantiate(mb);
  for (const [name, , ref] of binary) {
    const f = inst.fn(name);
    for (const x of i32Samples) {
      for (const y of i32Samples) {
        const want = ref(x, y);
        if (want === 'trap') assert.throws(() => f(x, y), Wasm.RuntimeError, `i32.${name}(${x}, ${y}) traps`);
        else assert.equal(f(x, y), want, `i32.${name}(${x}, ${y})`);
      }
    }
  }
  for (const x of i32Samples) assert.equal(inst.fn('eqz')(x), x === 0 ? 1 : 0);
});

test('every f32 op (and the f64 ones) matches its Math.fround reference, NaN and -0 included', () => {
  const unary: readonly [string, Emit, (x: number) => number][] = [
    ['abs', (c) => c.f32Abs(), Math.abs],
    ['neg', (c) => c.f32Neg(), (x) => -x],
    ['ceil', (c) => c.f32Ceil(), Math.ceil],
    ['floor', (c) => c.f32Floor(), Math.floor],
    ['trunc', (c) => c.f32Trunc(), Math.trunc],
    ['nearest', (c) => c.f32Nearest(), roundEven],
    ['sqrt', (c) => c.f32Sqrt(), (x) => f32(Math.sqrt(x))],
  ];
  const binary: readonly [string, Emit, (a: number, b: number) => number][] = [
    ['add', (c) => c.f32Add(), (x, y) => f32(x + y)],
    ['sub', (c) => c.f32Sub(), (x, y) => f32(x - y)],
    ['mul', (c) => c.f32Mul(), (x, y) => f32(x * y)],
    ['div', (c) => c.f32Div(), (x, y) => f32(x / y)],
    ['min', (c) => c.f32Min(), Math.min],
    ['max', (c) => c.f32Max(), Math.max],
    ['copysign', (c) => c.f32Copysign(), (x, y) => (y < 0 || Object.is(y, -0) ? -Math.abs(x) : Math.abs(x))],
  ];
  const compare: readonly [string, Emit, (a: number, b: number) => boolean][] = [
    ['eq', (c) => c.f32Eq(), (x, y) => x === y],
    ['ne', (c) => c.f32Ne(), (x, y) => x !== y],
    ['lt', (c) => c.f32Lt(), (x, y) => x < y],
    ['gt', (c) => c.f32Gt(), (x, y) => x > y],
    ['le', (c) => c.f32Le(), (x, y) => x <= y],
    ['ge', (c) => c.f32Ge(), (x, y) => x >= y],
  ];
  const f64Binary: readonly [string, Emit, (a: number, b: number) => number][] = [
    ['add', (c) => c.f64Add(), (x, y) => x + y],
    ['sub', (c) => c.f64Sub(), (x, y) => x - y],
    ['mul', (c) => c.f64Mul(), (x, y) => x * y],
    ['div', (c) => c.f64Div(), (x, y) => x / y],
    ['min', (c) => c.f64Min(), Math.min],
    ['max', (c) => c.f64Max(), Math.max],
  ];
  const mb = new ModuleBuilder();
  for (const [name, emit] of unary) mb.addFunction({ params: ['f32'], results: ['f32'], code: emit(new Code().localGet(0)), export: name });
  for (const [name, emit] of binary) mb.addFunction({ params: ['f32', 'f32'], results: ['f32'], code: emit(new Code().localGet(0).localGet(1)), export: name });
  for (const [name, emit] of compare) mb.addFunction({ params: ['f32', 'f32'], results: ['i32'], code: emit(new Code().localGet(0).localGet(1)), export: `c_${name}` });
  for (const [name, emit] of f64Binary) mb.addFunction({ params: ['f64', 'f64'], results: ['f64'], code: emit(new Code().localGet(0).localGet(1)), export: `d_${name}` });
  mb.addFunction({ params: ['f64'], results: ['f64'], code: new Code().localGet(0).f64Sqrt(), export: 'd_sqrt' });
  const inst = instantiate(mb);
  for (const [name, , ref] of unary) {
    for (const x of f32Samples) {
      const got = inst.fn(name)(x);
      assert.ok(sameF32(got, ref(x)), `f32.${name}(${showF(x)}) = ${showF(got)}, want ${showF(ref(x))}`);
    }
  }
  for (const [name, , ref] of binary) {
    for (const x of f32Samples) {
      for (const y of f32Samples) {
        if (name === 'copysign' && Number.isNaN(y)) continue; // a NaN's sign does not survive the JS boundary
        const got = inst.fn(name)(x, y);
        assert.ok(sameF32(got, ref(x, y)), `f32.${name}(${showF(x)}, ${showF(y)}) = ${showF(got)}, want ${showF(ref(x, y))}`);
      }
    }
  }
  for (const [name, , ref] of compare) {
    for (const x of f32Samples) for (const y of f32Samples) assert.equal(inst.fn(`c_${name}`)(x, y), ref(x, y) ? 1 : 0, `f32.${name}(${x}, ${y})`);
  }
  const f64Samples = [0, -0, 1, -1, 0.1, 1e300, -1e-300, 5e-324, Infinity, -Infinity, NaN];
  for (const [name, , ref] of f64Binary) {
    for (const x of f64Samples) for (const y of f64Samples) assert.ok(sameF32(inst.fn(`d_${name}`)(x, y), ref(x, y)), `f64.${name}(${x}, ${y})`);
  }
  for (const x of f64Samples) assert.ok(sameF32(inst.fn('d_sqrt')(x), Math.sqrt(x)));
});

test('conversions: trapping and saturating truncation, int→float, demote/promote, reinterpret', () => {
  const mb = new ModuleBuilder();
  const def = (name: string, params: ValType[], results: ValType[], emit: Emit) =>
    mb.addFunction({ params, results, code: emit(new Code().localGet(0)), export: name });
  def('trunc', ['f32'], ['i32'], (c) => c.i32TruncF32S());
  def('trunc_sat', ['f32'], ['i32'], (c) => c.i32TruncSatF32S());
  def('convert_s', ['i32'], ['f32'], (c) => c.f32ConvertI32S());
  def('convert_u', ['i32'], ['f32'], (c) => c.f32ConvertI32U());
  def('demote', ['f64'], ['f32'], (c) => c.f32DemoteF64());
  def('promote', ['f32'], ['f64'], (c) => c.f64PromoteF32());
  def('bits', ['f32'], ['i32'], (c) => c.i32ReinterpretF32());
  def('float', ['i32'], ['f32'], (c) => c.f32ReinterpretI32());
  const inst = instantiate(mb);

  for (const x of [1.9, -1.9, 0.5, -0, 2147483520, -2147483648, 123456.7].map(f32)) assert.equal(inst.fn('trunc')(x), Math.trunc(x) | 0, `trunc ${x}`);
  for (const x of [NaN, Infinity, -Infinity, 2147483648, -2147483904]) assert.throws(() => inst.fn('trunc')(x), Wasm.RuntimeError, `trunc ${x} traps`);
  for (const x of [...f32Samples, 3e9, -3e9, 2147483648, -2147483904]) assert.equal(inst.fn('trunc_sat')(x), truncSat(f32(x)), `trunc_sat ${x}`);
  for (const x of i32Samples.concat([16777217, -16777217, 0x7fffffc0])) {
    assert.equal(inst.fn('convert_s')(x), f32(x), `convert_s ${x}`);
    assert.equal(inst.fn('convert_u')(x), f32(x >>> 0), `convert_u ${x}`);
  }
  for (const x of [0.1, 1e300, -1e-300, 1 + 2 ** -24, 1 + 3 * 2 ** -25, Math.PI, -0, NaN]) assert.ok(sameF32(inst.fn('demote')(x), f32(x)), `demote ${x}`);
  for (const x of f32Samples) assert.ok(sameF32(inst.fn('promote')(x), x), `promote ${x}`);
  for (const x of f32Samples.filter((v) => !Number.isNaN(v))) {
    assert.equal(inst.fn('bits')(x), bitsOf(x), `reinterpret ${showF(x)}`);
    assert.ok(sameF32(inst.fn('float')(bitsOf(x)), x), `reinterpret back ${showF(x)}`);
  }
});

// ------------------------------------------------------------------ control flow and calls

test('control: block/loop/if/else/br/br_if/br_table/return/select/call/globals, and a br_if loop sum', () => {
  const mb = new ModuleBuilder();
  const logged: number[] = [];
  const log = mb.importFunction('env', 'log', ['i32'], ['i32']);
  assert.equal(log, 0);
  const counter = mb.addGlobal('i32', 10, { mutable: true, export: 'counter' });
  mb.addGlobal('f64', 2.5, { export: 'half5' });
  mb.addGlobal('i64', 1n << 40n);
  mb.addGlobal('f32', 0.25);

  // sum(n) = n + (n-1) + ... + 1, a do-while on br_if
  const sum = new Code()
    .block()
    .localGet(0).i32Eqz().brIf(0)
    .loop()
    .localGet(1).localGet(0).i32Add().localSet(1)
    .localGet(0).i32Const(1).i32Sub().localTee(0)
    .brIf(0)
    .end()
    .end()
    .localGet(1);
  const sumIndex = mb.addFunction({ params: ['i32'], results: ['i32'], locals: ['i32'], code: sum, export: 'sum' });
  assert.equal(sumIndex, 1);

  // sign(x) via if/else with a result and a nested block result
  const sign = new Code()
    .localGet(0).i32Const(0).i32LtS()
    .if('i32').i32Const(-1)
    .else().block('i32').i32Const(1).localGet(0).i32Eqz().brIf(0).drop().i32Const(1).end().localGet(0).i32Eqz().i32Const(1).i32Xor().i32Mul()
    .end();
  mb.addFunction({ params: ['i32'], results: ['i32'], code: sign, export: 'sign' });

  // switch(x) { 0: 100, 1: 200, 2: 300, default: -1 }, early return from inside the blocks
  const sw = new Code().block().block().block().block()
    .localGet(0).brTable([0, 1, 2], 3)
    .end().i32Const(100).return()
    .end().i32Const(200).return()
    .end().i32Const(300).return()
    .end().i32Const(-1);
  mb.addFunction({ params: ['i32'], results: ['i32'], code: sw, export: 'switch' });

  // select both forms; nop; unreachable in a dead-on-zero branch; br out of a value block
  mb.addFunction({ params: ['i32', 'i32', 'i32'], results: ['i32'], code: new Code().nop().localGet(0).localGet(1).localGet(2).select(), export: 'sel' });
  mb.addFunction({ params: ['f32', 'f32', 'i32'], results: ['f32'], code: new Code().localGet(0).localGet(1).localGet(2).select('f32'), export: 'self' });
  mb.addFunction({ params: ['i32'], results: ['i32'], code: new Code().localGet(0).if().unreachable().end().block('i32').i32Const(7).br(0).end(), export: 'trapIf' });

  // call: the import (index 0) and a defined function (index 1), and a global counter
  const callBoth = new Code()
    .localGet(0).call(sumIndex).call(log)
    .globalGet(counter).i32Const(1).i32Add().globalSet(counter)
    .globalGet(counter).i32Add();
  mb.addFunction({ params: ['i32'], results: ['i32'], code: callBoth, export: 'callBoth' });

  const inst = instantiate(mb, { env: { log: (x: number) => (logged.push(x), x * 2) } });
  for (const n of [0, 1, 2, 10, 1000]) assert.equal(inst.fn('sum')(n), (n * (n + 1)) / 2, `sum ${n}`);
  for (const x of [-5, -1, 0, 1, 9]) assert.equal(inst.fn('sign')(x), Math.sign(x), `sign ${x}`);
  for (const [x, want] of [[0, 100], [1, 200], [2, 300], [3, -1], [-1, -1]] as const) assert.equal(inst.fn('switch')(x), want);
  assert.equal(inst.fn('sel')(3, 4, 1), 3);
  assert.equal(inst.fn('sel')(3, 4, 0), 4);
  assert.equal(inst.fn('self')(1.5, 2.5, 0), 2.5);
  assert.equal(inst.fn('trapIf')(0), 7);
  assert.throws(() => inst.fn('trapIf')(1), Wasm.RuntimeError);
  assert.equal(inst.fn('callBoth')(4), 20 + 11);
  assert.equal(inst.fn('callBoth')(1), 2 + 12);
  assert.deepEqual(logged, [10, 1]);
});

// ------------------------------------------------------------------ scalar memory

test('scalar loads/stores with offsets and unaligned addresses; memory.size/grow/copy/fill', () => {
  const mb = new ModuleBuilder();
  mb.addMemory({ min: 1, max: 3 }, 'mem');
  const def = (name: string, params: ValType[], results: ValType[], code: Code) => mb.addFunction({ params, results, code, export: name });
  def('ld_i32', ['i32'], ['i32'], new Code().localGet(0).i32Load(3, 1));
  def('ld_f32', ['i32'], ['f32'], new Code().localGet(0).f32Load(5, 1));
  def('ld_f64', ['i32'], ['f64'], new Code().localGet(0).f64Load(8));
  def('st_i32', ['i32', 'i32'], [], new Code().localGet(0).localGet(1).i32Store(1, 1));
  def('st_f32', ['i32', 'f32'], [], new Code().localGet(0).localGet(1).f32Store(4));
  def('st_f64', ['i32', 'f64'], [], new Code().localGet(0).localGet(1).f64Store(7, 1));
  def('size', [], ['i32'], new Code().memorySize());
  def('grow', ['i32'], ['i32'], new Code().localGet(0).memoryGrow());
  def('copy', ['i32', 'i32', 'i32'], [], new Code().localGet(0).localGet(1).localGet(2).memoryCopy());
  def('fill', ['i32', 'i32', 'i32'], [], new Code().localGet(0).localGet(1).localGet(2).memoryFill());
  const inst = instantiate(mb);
  const dv = () => new DataView(inst.memory());

  inst.fn('st_i32')(100, -123456789);
  assert.equal(dv().getInt32(101, true), -123456789);
  assert.equal(inst.fn('ld_i32')(98), -123456789);
  inst.fn('st_f32')(201, 3.25);
  assert.equal(dv().getFloat32(205, true), 3.25);
  assert.equal(inst.fn('ld_f32')(200), 3.25);
  inst.fn('st_f64')(300, Math.PI);
  assert.equal(dv().getFloat64(307, true), Math.PI);
  assert.equal(inst.fn('ld_f64')(299), Math.PI);
  assert.throws(() => inst.fn('ld_i32')(65536 - 6), Wasm.RuntimeError);

  new Uint8Array(inst.memory()).set([1, 2, 3, 4, 5, 6, 7, 8], 1000);
  inst.fn('copy')(1002, 1000, 6); // overlapping copy behaves like memmove
  assert.deepEqual([...new Uint8Array(inst.memory(), 1000, 8)], [1, 2, 1, 2, 3, 4, 5, 6]);
  inst.fn('fill')(1001, 0x1ab, 3); // the fill value is truncated to a byte
  assert.deepEqual([...new Uint8Array(inst.memory(), 1000, 8)], [1, 0xab, 0xab, 0xab, 3, 4, 5, 6]);

  assert.equal(inst.fn('size')(), 1);
  assert.equal(inst.fn('grow')(1), 1);
  assert.equal(inst.fn('size')(), 2);
  assert.equal(inst.fn('grow')(5), -1, 'growing past max fails with -1');
  assert.equal(inst.fn('ld_i32')(65536 - 6), 0, 'the grown page is addressable');
});

// ------------------------------------------------------------------ SIMD128

// Fixed scratch addresses in the SIMD test module: three operands and an output vector.
const A = 0;
const B = 16;
const C = 32;
const OUT = 64;

const f32Vectors: readonly (readonly number[])[] = [
  [1.5, -2.5, 0.5, -0.5],
  [0, -0, NaN, Infinity],
  [-Infinity, 3.7, -3.7, 1e-40],
  [2147483648, -2147483904, 1e10, -1e10],
  [NaN, 0, -0, 2.5],
  [-0, 0, 1, -Infinity],
  [2, 3, -0, 0.5],
];
const i32Vectors: readonly (readonly number[])[] = [
  [0, 1, -1, 0x7fffffff],
  [-0x80000000, 5, -5, 123456],
  [7, 7, -7, 31],
  [-1, -1, -1, -1],
  [0, 0, 0, 0],
  [1, 0, 0, 0],
];

class SimdHarness {
  readonly mb = new ModuleBuilder();
  private inst: Instance | undefined;
  constructor() {
    this.mb.addMemory({ min: 1 }, 'mem');
  }
  def(name: string, params: ValType[], results: ValType[], code: Code): void {
    this.mb.addFunction({ params, results, code, export: name });
  }
  get instance(): Instance {
    this.inst ??= instantiate(this.mb);
    return this.inst;
  }
  f32(addr: number, n = 4): Float32Array {
    return new Float32Array(this.instance.memory(), addr, n);
  }
  i32(addr: number, n = 4): Int32Array {
    return new Int32Array(this.instance.memory(), addr, n);
  }
  u8(addr: number, n = 16): Uint8Array {
    return new Uint8Array(this.instance.memory(), addr, n);
  }
}

const lanewise = (f: (...xs: number[]) => number) => (...vs: (readonly number[])[]): number[] => [0, 1, 2, 3].map((i) => f(...vs.map((v) => v[i])));
const mask = (x: boolean) => (x ? -1 : 0);

function assertF32Lanes(got: ArrayLike<number>, want: readonly number[], what: string): void {
  for (let i = 0; i < 4; i++) {
    assert.ok(sameF32(got[i], f32(want[i])), `${what} lane ${i}: got ${showF(got[i])}, want ${showF(f32(want[i]))}`);
  }
}

test('SIMD f32x4 arithmetic, rounding, min/max/pmin/pmax, comparisons and conversions match per-lane references', () => {
  const h = new SimdHarness();
  const unary: readonly [string, Emit, (x: number) => number][] = [
    ['abs', (c) => c.f32x4Abs(), Math.abs],
    ['neg', (c) => c.f32x4Neg(), (x) => -x],
    ['sqrt', (c) => c.f32x4Sqrt(), (x) => f32(Math.sqrt(x))],
    ['ceil', (c) => c.f32x4Ceil(), Math.ceil],
    ['floor', (c) => c.f32x4Floor(), Math.floor],
    ['trunc', (c) => c.f32x4Trunc(), Math.trunc],
    ['nearest', (c) => c.f32x4Nearest(), roundEven],
  ];
  const binary: readonly [string, Emit, (a: number, b: number) => number][] = [
    ['add', (c) => c.f32x4Add(), (x, y) => f32(x + y)],
    ['sub', (c) => c.f32x4Sub(), (x, y) => f32(x - y)],
    ['mul', (c) => c.f32x4Mul(), (x, y) => f32(x * y)],
    ['div', (c) => c.f32x4Div(), (x, y) => f32(x / y)],
    ['min', (c) => c.f32x4Min(), Math.min], // NaN-propagating, -0 < +0, as Math.min
    ['max', (c) => c.f32x4Max(), Math.max],
    ['pmin', (c) => c.f32x4Pmin(), (x, y) => (y < x ? y : x)],
    ['pmax', (c) => c.f32x4Pmax(), (x, y) => (x < y ? y : x)],
  ];
  const compare: readonly [string, Emit, (a: number, b: number) => boolean][] = [
    ['eq', (c) => c.f32x4Eq(), (x, y) => x === y],
    ['ne', (c) => c.f32x4Ne(), (x, y) => x !== y],
    ['lt', (c) => c.f32x4Lt(), (x, y) => x < y],
    ['gt', (c) => c.f32x4Gt(), (x, y) => x > y],
    ['le', (c) => c.f32x4Le(), (x, y) => x <= y],
    ['ge', (c) => c.f32x4Ge(), (x, y) => x >= y],
  ];
  const un = (emit: Emit) => emit(new Code().i32Const(OUT).i32Const(A).v128Load()).v128Store();
  const bin = (emit: Emit) => emit(new Code().i32Const(OUT).i32Const(A).v128Load().i32Const(B).v128Load()).v128Store();
  for (const [name, emit] of unary) h.def(name, [], [], un(emit));
  for (const [name, emit] of binary) h.def(name, [], [], bin(emit));
  for (const [name, emit] of compare) h.def(`c_${name}`, [], [], bin(emit));
  h.def('trunc_sat', [], [], un((c) => c.i32x4TruncSatF32x4S()));
  h.def('convert', [], [], un((c) => c.f32x4ConvertI32x4S()));

  for (const a of f32Vectors) {
    h.f32(A).set(a);
    for (const [name, , ref] of unary) {
      h.instance.fn(name)();
      assertF32Lanes(h.f32(OUT), lanewise(ref)(a.map(f32)), `f32x4.${name}(${a.map(showF)})`);
    }
    h.instance.fn('trunc_sat')();
    assert.deepEqual([...h.i32(OUT)], a.map((x) => truncSat(f32(x))), `trunc_sat(${a})`);
    for (const b of f32Vectors) {
      h.f32(B).set(b);
      const [fa, fb] = [a.map(f32), b.map(f32)];
      for (const [name, , ref] of binary) {
        h.instance.fn(name)();
        assertF32Lanes(h.f32(OUT), lanewise(ref)(fa, fb), `f32x4.${name}(${fa.map(showF)}; ${fb.map(showF)})`);
      }
      for (const [name, , ref] of compare) {
        h.instance.fn(`c_${name}`)();
        assert.deepEqual([...h.i32(OUT)], lanewise((x, y) => mask(ref(x, y)))(fa, fb), `f32x4.${name}(${fa}; ${fb})`);
      }
    }
  }
  for (const a of [...i32Vectors, [16777217, -16777217, 0x7fffffc0, 3]]) {
    h.i32(A).set(a);
    h.instance.fn('convert')();
    assertF32Lanes(h.f32(OUT), a.map(f32), `convert(${a})`);
  }
});

test('SIMD i32x4 arithmetic, shifts, min/max, comparisons and v128 bitwise ops match per-lane references', () => {
  const h = new SimdHarness();
  const binary: readonly [string, Emit, (a: number, b: number) => number][] = [
    ['add', (c) => c.i32x4Add(), (x, y) => (x + y) | 0],
    ['sub', (c) => c.i32x4Sub(), (x, y) => (x - y) | 0],
    ['mul', (c) => c.i32x4Mul(), Math.imul],
    ['min_s', (c) => c.i32x4MinS(), Math.min],
    ['max_s', (c) => c.i32x4MaxS(), Math.max],
    ['eq', (c) => c.i32x4Eq(), (x, y) => mask(x === y)],
    ['ne', (c) => c.i32x4Ne(), (x, y) => mask(x !== y)],
    ['lt_s', (c) => c.i32x4LtS(), (x, y) => mask(x < y)],
    ['gt_s', (c) => c.i32x4GtS(), (x, y) => mask(x > y)],
    ['le_s', (c) => c.i32x4LeS(), (x, y) => mask(x <= y)],
    ['ge_s', (c) => c.i32x4GeS(), (x, y) => mask(x >= y)],
    ['and', (c) => c.v128And(), (x, y) => x & y],
    ['andnot', (c) => c.v128Andnot(), (x, y) => x & ~y],
    ['or', (c) => c.v128Or(), (x, y) => x | y],
    ['xor', (c) => c.v128Xor(), (x, y) => x ^ y],
  ];
  const shifts: readonly [string, Emit, (a: number, s: number) => number][] = [
    ['shl', (c) => c.i32x4Shl(), (x, s) => x << s],
    ['shr_s', (c) => c.i32x4ShrS(), (x, s) => x >> s],
    ['shr_u', (c) => c.i32x4ShrU(), (x, s) => (x >>> s) | 0],
  ];
  const load = (c: Code, addr: number) => c.i32Const(addr).v128Load();
  for (const [name, emit] of binary) h.def(name, [], [], emit(load(load(new Code().i32Const(OUT), A), B)).v128Store());
  for (const [name, emit] of shifts) h.def(name, ['i32'], [], emit(load(new Code().i32Const(OUT), A).localGet(0)).v128Store());
  h.def('neg', [], [], load(new Code().i32Const(OUT), A).i32x4Neg().v128Store());
  h.def('not', [], [], load(new Code().i32Const(OUT), A).v128Not().v128Store());
  h.def('bitselect', [], [], load(load(load(new Code().i32Const(OUT), A), B), C).v128Bitselect().v128Store());
  h.def('any_true', [], ['i32'], load(new Code(), A).v128AnyTrue());
  h.def('all_true', [], ['i32'], load(new Code(), A).i32x4AllTrue());
  h.def('bitmask', [], ['i32'], load(new Code(), A).i32x4Bitmask());

  for (const a of i32Vectors) {
    h.i32(A).set(a);
    h.instance.fn('neg')();
    assert.deepEqual([...h.i32(OUT)], a.map((x) => -x | 0), `neg(${a})`);
    h.instance.fn('not')();
    assert.deepEqual([...h.i32(OUT)], a.map((x) => ~x), `not(${a})`);
    assert.equal(h.instance.fn('any_true')(), a.some((x) => x !== 0) ? 1 : 0, `any_true(${a})`);
    assert.equal(h.instance.fn('all_true')(), a.every((x) => x !== 0) ? 1 : 0, `all_true(${a})`);
    assert.equal(h.instance.fn('bitmask')(), a.reduce((m, x, i) => m | ((x < 0 ? 1 : 0) << i), 0), `bitmask(${a})`);
    for (const s of [0, 1, 5, 31, 32, 33, -1]) {
      for (const [name, , ref] of shifts) {
        h.instance.fn(name)(s);
        assert.deepEqual([...h.i32(OUT)], a.map((x) => ref(x, s & 31)), `i32x4.${name}(${a}, ${s})`);
      }
    }
    for (const b of i32Vectors) {
      h.i32(B).set(b);
      for (const [name, , ref] of binary) {
        h.instance.fn(name)();
        assert.deepEqual([...h.i32(OUT)], lanewise(ref)(a, b), `${name}(${a}; ${b})`);
      }
      for (const m of [[-1, 0, 0x0f0f0f0f, 0x7fffffff], [0, -1, 0, -1]]) {
        h.i32(C).set(m);
        h.instance.fn('bitselect')();
        assert.deepEqual([...h.i32(OUT)], lanewise((x, y, k) => (x & k) | (y & ~k))(a, b, m), `bitselect(${a}; ${b}; ${m})`);
      }
    }
  }
  // any_true sees single bits anywhere in the 128, not just lane-wise truth.
  h.u8(A).fill(0);
  h.u8(A)[13] = 0x10;
  assert.equal(h.instance.fn('any_true')(), 1);
});

test('SIMD lanes: splat, extract/replace lane, shuffle, v128.const', () => {
  const h = new SimdHarness();
  h.def('f_splat', ['f32'], [], new Code().i32Const(OUT).localGet(0).f32x4Splat().v128Store());
  h.def('i_splat', ['i32'], [], new Code().i32Const(OUT).localGet(0).i32x4Splat().v128Store());
  for (let k = 0; k < 4; k++) {
    h.def(`f_ext${k}`, [], ['f32'], new Code().i32Const(A).v128Load().f32x4ExtractLane(k));
    h.def(`i_ext${k}`, [], ['i32'], new Code().i32Const(A).v128Load().i32x4ExtractLane(k));
    h.def(`f_rep${k}`, ['f32'], [], new Code().i32Const(OUT).i32Const(A).v128Load().localGet(0).f32x4ReplaceLane(k).v128Store());
    h.def(`i_rep${k}`, ['i32'], [], new Code().i32Const(OUT).i32Const(A).v128Load().localGet(0).i32x4ReplaceLane(k).v128Store());
  }
  const patterns = [
    Array.from({ length: 16 }, (_, i) => i),
    Array.from({ length: 16 }, (_, i) => 31 - i),
    [4, 5, 6, 7, 20, 21, 22, 23, 0, 1, 2, 3, 16, 17, 18, 19], // an f32 lane interleave
    [0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23],
  ];
  patterns.forEach((p, n) => h.def(`shuf${n}`, [], [], new Code().i32Const(OUT).i32Const(A).v128Load().i32Const(B).v128Load().i8x16Shuffle(p).v128Store()));
  const rawConst = [0, 1, 0x7f, 0x80, 0xff, 42, 0, 0, 9, 8, 7, 6, 5, 4, 3, 2];
  h.def('k_raw', [], [], new Code().i32Const(OUT).v128Const(rawConst).v128Store());
  h.def('k_f32', [], [], new Code().i32Const(OUT).v128ConstF32([0.1, -0, Infinity, -3.5]).v128Store());
  h.def('k_i32', [], [], new Code().i32Const(OUT).v128ConstI32([0xffffffff, -0x80000000, 0x7fffffff, 12]).v128Store());

  for (const x of [1.5, -0, NaN, 0.1]) {
    h.instance.fn('f_splat')(x);
    assertF32Lanes(h.f32(OUT), [x, x, x, x], `f32x4.splat ${x}`);
  }
  for (const x of [0, -1, 0x7fffffff, -0x80000000, 99]) {
    h.instance.fn('i_splat')(x);
    assert.deepEqual([...h.i32(OUT)], [x, x, x, x]);
  }
  const fa = [1.25, -0, 3.5, -7.75];
  const ia = [11, -22, 0x7fffffff, -0x80000000];
  for (let k = 0; k < 4; k++) {
    h.f32(A).set(fa);
    assert.ok(sameF32(h.instance.fn(`f_ext${k}`)(), fa[k]), `f32x4.extract_lane ${k}`);
    h.instance.fn(`f_rep${k}`)(9.5);
    assertF32Lanes(h.f32(OUT), fa.map((x, i) => (i === k ? 9.5 : x)), `f32x4.replace_lane ${k}`);
    h.i32(A).set(ia);
    assert.equal(h.instance.fn(`i_ext${k}`)(), ia[k], `i32x4.extract_lane ${k}`);
    h.instance.fn(`i_rep${k}`)(-5);
    assert.deepEqual([...h.i32(OUT)], ia.map((x, i) => (i === k ? -5 : x)), `i32x4.replace_lane ${k}`);
  }
  const bytesA = Array.from({ length: 16 }, (_, i) => 100 + i);
  const bytesB = Array.from({ length: 16 }, (_, i) => 200 + i);
  h.u8(A).set(bytesA);
  h.u8(B).set(bytesB);
  patterns.forEach((p, n) => {
    h.instance.fn(`shuf${n}`)();
    assert.deepEqual([...h.u8(OUT)], p.map((j) => (j < 16 ? bytesA[j] : bytesB[j - 16])), `shuffle ${p}`);
  });
  h.instance.fn('k_raw')();
  assert.deepEqual([...h.u8(OUT)], rawConst);
  h.instance.fn('k_f32')();
  assertF32Lanes(h.f32(OUT), [0.1, -0, Infinity, -3.5], 'v128ConstF32');
  h.instance.fn('k_i32')();
  assert.deepEqual([...h.i32(OUT)], [-1, -0x80000000, 0x7fffffff, 12]);
  assert.throws(() => new Code().i8x16Shuffle(Array.from({ length: 16 }, () => 32)), RangeError);
  assert.throws(() => new Code().f32x4ExtractLane(4), RangeError);
  assert.throws(() => new Code().v128Const([1, 2, 3]), RangeError);
});

test('SIMD memory: unaligned v128 load/store with offsets, load32_splat/zero, load32_lane/store32_lane', () => {
  const h = new SimdHarness();
  const BASE = 256; // scratch region for the unaligned accesses, clear of A/B/C/OUT
  h.def('load', ['i32'], [], new Code().i32Const(OUT).localGet(0).v128Load(3, 1).v128Store());
  h.def('load_aligned', ['i32'], [], new Code().i32Const(OUT).localGet(0).v128Load(16).v128Store());
  h.def('store', ['i32'], [], new Code().localGet(0).i32Const(A).v128Load().v128Store(5, 1));
  h.def('splat', ['i32'], [], new Code().i32Const(OUT).localGet(0).v128Load32Splat(1, 1).v128Store());
  h.def('zero', ['i32'], [], new Code().i32Const(OUT).localGet(0).v128Load32Zero(2, 1).v128Store());
  for (let k = 0; k < 4; k++) {
    h.def(`ld_lane${k}`, ['i32'], [], new Code().i32Const(OUT).localGet(0).i32Const(A).v128Load().v128Load32Lane(k, 2, 1).v128Store());
    h.def(`st_lane${k}`, ['i32'], [], new Code().localGet(0).i32Const(A).v128Load().v128Store32Lane(k, 6, 1));
  }
  const region = Array.from({ length: 64 }, (_, i) => (i * 37 + 11) & 0xff);
  const reset = () => {
    h.u8(BASE, 64).set(region);
    h.u8(OUT).fill(0xee);
  };
  const bytesAt = (addr: number, n: number) => region.slice(addr - BASE, addr - BASE + n);
  const wordAt = (addr: number) => bytesAt(addr, 4);

  for (const addr of [BASE, BASE + 1, BASE + 7, BASE + 13]) {
    reset();
    h.instance.fn('load')(addr);
    assert.deepEqual([...h.u8(OUT)], bytesAt(addr + 3, 16), `v128.load offset=3 @${addr}`);
    h.instance.fn('splat')(addr);
    assert.deepEqual([...h.u8(OUT)], [0, 1, 2, 3].flatMap(() => wordAt(addr + 1)), `load32_splat @${addr}`);
    h.instance.fn('zero')(addr);
    assert.deepEqual([...h.u8(OUT)], [...wordAt(addr + 2), ...new Array<number>(12).fill(0)], `load32_zero @${addr}`);
    const vecA = Array.from({ length: 16 }, (_, i) => 0xa0 + i);
    h.u8(A).set(vecA);
    for (let k = 0; k < 4; k++) {
      h.instance.fn(`ld_lane${k}`)(addr);
      const want = [...vecA];
      want.splice(4 * k, 4, ...wordAt(addr + 2));
      assert.deepEqual([...h.u8(OUT)], want, `load32_lane ${k} @${addr}`);
      reset();
      h.instance.fn(`st_lane${k}`)(addr);
      const region2 = [...region];
      region2.splice(addr + 6 - BASE, 4, ...vecA.slice(4 * k, 4 * k + 4));
      assert.deepEqual([...h.u8(BASE, 64)], region2, `store32_lane ${k} @${addr}`);
    }
    reset();
    h.instance.fn('store')(addr);
    const stored = [...region];
    stored.splice(addr + 5 - BASE, 16, ...vecA);
    assert.deepEqual([...h.u8(BASE, 64)], stored, `v128.store offset=5 @${addr}`);
  }
  reset();
  h.instance.fn('load_aligned')(BASE);
  assert.deepEqual([...h.u8(OUT)], bytesAt(BASE + 16, 16));
  assert.throws(() => h.instance.fn('load')(65536 - 18), Wasm.RuntimeError, 'the offset counts toward the bound');
  assert.throws(() => new Code().v128Load(0, 32), RangeError);
  assert.throws(() => new Code().v128Load(0, 3), RangeError);
});

// ------------------------------------------------------------------ atomics on an imported shared memory

test('shared memory import + atomics: notify, wait32, load/store, rmw.add, cmpxchg, fence', () => {
  const mb = new ModuleBuilder();
  mb.importMemory('env', 'mem', { min: 1, max: 2, shared: true });
  const def = (name: string, params: ValType[], results: ValType[], code: Code) => mb.addFunction({ params, results, code, export: name });
  def('notify', ['i32', 'i32'], ['i32'], new Code().localGet(0).localGet(1).memoryAtomicNotify());
  def('wait', ['i32', 'i32', 'i64'], ['i32'], new Code().localGet(0).localGet(1).localGet(2).memoryAtomicWait32());
  def('wait0', ['i32', 'i32'], ['i32'], new Code().localGet(0).localGet(1).i64Const(0).memoryAtomicWait32(4));
  def('load', ['i32'], ['i32'], new Code().localGet(0).i32AtomicLoad(8));
  def('store', ['i32', 'i32'], [], new Code().localGet(0).localGet(1).i32AtomicStore(8).atomicFence());
  def('add', ['i32', 'i32'], ['i32'], new Code().localGet(0).localGet(1).i32AtomicRmwAdd());
  def('cas', ['i32', 'i32', 'i32'], ['i32'], new Code().localGet(0).localGet(1).localGet(2).i32AtomicRmwCmpxchg());
  const mem = new Wasm.Memory({ initial: 1, maximum: 2, shared: true });
  const inst = instantiate(mb, { env: { mem } });
  const view = new Int32Array(mem.buffer);

  assert.equal(inst.fn('notify')(0, 1), 0, 'no waiters');
  view[10] = 5;
  assert.equal(inst.fn('wait')(40, 6, -1n), 1, 'not-equal returns at once even with an infinite timeout');
  assert.equal(inst.fn('wait')(40, 5, 0n), 2, 'timed-out');
  assert.equal(inst.fn('wait0')(36, 4), 1);
  assert.equal(inst.fn('add')(16, 7), 0, 'rmw.add returns the old value');
  assert.equal(inst.fn('add')(16, -2), 7);
  assert.equal(view[4], 5);
  assert.equal(Atomics.load(view, 4), 5);
  inst.fn('store')(12, 77);
  assert.equal(view[5], 77);
  assert.equal(inst.fn('load')(12), 77);
  assert.equal(inst.fn('cas')(20, 5, 1), 77, 'a mismatched cmpxchg returns the current value');
  assert.equal(view[5], 77, '... and leaves memory alone');
  assert.equal(inst.fn('cas')(20, 77, 1), 77, 'a matching cmpxchg returns the old value');
  assert.equal(view[5], 1, '... and swaps');
  assert.throws(() => inst.fn('add')(2, 1), Wasm.RuntimeError, 'unaligned atomics trap');
});

// ------------------------------------------------------------------ module structure

test('ModuleBuilder: type dedup, import ordering, memory and export checks, sections', () => {
  const mb = new ModuleBuilder();
  const t0 = mb.addType(['i32', 'f32'], ['v128']);
  assert.equal(mb.addType(['i32', 'f32'], ['v128']), t0);
  assert.notEqual(mb.addType(['i32'], ['v128']), t0);
  assert.equal(mb.importFunction('env', 'a', ['i32', 'f32'], ['v128']), 0);
  assert.equal(mb.importFunction('env', 'b', [], []), 1);
  assert.equal(mb.addFunction({ params: [], results: [], code: new Code() }), 2);
  assert.throws(() => mb.importFunction('env', 'c', [], []), /before addFunction/);
  mb.addMemory({ min: 1 });
  assert.throws(() => mb.addMemory({ min: 1 }), /at most one memory/);
  assert.throws(() => mb.importMemory('env', 'm', { min: 1 }), /at most one memory/);
  mb.addFunction({ params: [], results: [], code: new Code(), export: 'f' });
  assert.throws(() => mb.addFunction({ params: [], results: [], code: new Code(), export: 'f' }), /duplicate export/);
  assert.throws(() => mb.addFunction({ params: [], results: [], code: new Code().block() }), /unclosed/);
  assert.throws(() => new Code().end(), /without an open block/);
  assert.throws(() => new ModuleBuilder().addMemory({ min: 1, shared: true }), /needs a max/);
  assert.throws(() => new ModuleBuilder().addMemory({ min: 2, max: 1 }), RangeError);
  const bytes = mb.toBytes();
  assert.ok(Wasm.validate(bytes));
  // Section ids appear in ascending order after the 8-byte header: type, import, function, memory, export, code.
  const ids: number[] = [];
  for (let p = 8; p < bytes.length; ) {
    ids.push(bytes[p]);
    let size = 0;
    let shift = 0;
    let q = p + 1;
    for (;;) {
      const byte = bytes[q++];
      size |= (byte & 0x7f) << shift;
      shift += 7;
      if ((byte & 0x80) === 0) break;
    }
    p = q + size;
  }
  assert.deepEqual(ids, [1, 2, 3, 5, 7, 10]);
  assert.ok(Wasm.validate(new ModuleBuilder().toBytes()), 'an empty module is valid');

  const code = new Code();
  assert.equal(code.depth, 0);
  code.block().loop();
  assert.equal(code.depth, 2);
  code.end().end();
  assert.equal(code.depth, 0);
});

test('every instruction family validates together in one module with an imported shared memory', () => {
  const mb = new ModuleBuilder();
  mb.importMemory('env', 'mem', { min: 1, max: 4, shared: true });
  const body = new Code()
    .i32Const(0).i32Const(16).v128Load().i32Const(32).v128Load32Splat().f32x4Add().v128Store()
    .i32Const(0).i32Const(1).i32AtomicRmwAdd().drop()
    .i32Const(0).f32Load().f32Sqrt().i32TruncSatF32S().drop()
    .atomicFence();
  mb.addFunction({ params: [], results: [], code: body, export: 'k' });
  assert.ok(Wasm.validate(mb.toBytes()));
});

// ------------------------------------------------------------------ properties

test('property: i32 add/mul/div_s match JS |0, Math.imul and truncating division', () => {
  const mb = new ModuleBuilder();
  mb.addFunction({ params: ['i32', 'i32'], results: ['i32'], code: new Code().localGet(0).localGet(1).i32Add(), export: 'add' });
  mb.addFunction({ params: ['i32', 'i32'], results: ['i32'], code: new Code().localGet(0).localGet(1).i32Mul(), export: 'mul' });
  mb.addFunction({ params: ['i32', 'i32'], results: ['i32'], code: new Code().localGet(0).localGet(1).i32DivS(), export: 'div' });
  const inst = instantiate(mb);
  const int32 = fc.integer({ min: -0x80000000, max: 0x7fffffff });
  property(
    fc.property(int32, int32, (a, b) => {
      assert.equal(inst.fn('add')(a, b), (a + b) | 0);
      assert.equal(inst.fn('mul')(a, b), Math.imul(a, b));
      if (b !== 0 && !(a === -0x80000000 && b === -1)) assert.equal(inst.fn('div')(a, b), Math.trunc(a / b) | 0);
    }),
    300,
  );
});

test('property: f32x4 add/mul/min/max match Math.fround lane-wise', () => {
  const h = new SimdHarness();
  const ops: readonly [string, Emit, (a: number, b: number) => number][] = [
    ['add', (c) => c.f32x4Add(), (x, y) => f32(x + y)],
    ['mul', (c) => c.f32x4Mul(), (x, y) => f32(x * y)],
    ['min', (c) => c.f32x4Min(), Math.min],
    ['max', (c) => c.f32x4Max(), Math.max],
  ];
  for (const [name, emit] of ops) h.def(name, [], [], emit(new Code().i32Const(OUT).i32Const(A).v128Load().i32Const(B).v128Load()).v128Store());
  const vec = fc.array(fc.float(), { minLength: 4, maxLength: 4 });
  property(
    fc.property(vec, vec, (a, b) => {
      h.f32(A).set(a);
      h.f32(B).set(b);
      for (const [name, , ref] of ops) {
        h.instance.fn(name)();
        assertF32Lanes(h.f32(OUT), lanewise(ref)(a, b), `f32x4.${name}`);
      }
    }),
    300,
  );
});

test('coverage: every Code instruction method was emitted by some test above', () => {
  const missing = instructionNames.filter((n) => !used.has(n));
  assert.deepEqual(missing, [], `never emitted: ${missing.join(', ')}`);
});

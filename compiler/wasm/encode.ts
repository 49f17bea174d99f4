/**
 * A small WebAssembly binary encoder: `Code` writes a function body one instruction at a time and
 * `ModuleBuilder` wraps bodies, types, imports, memory, globals and exports into a module's bytes.
 *
 * The compiler emits its CPU kernels (SIMD128 loops, plus an atomics barrier for worker threads over shared
 * memory) straight to wasm bytes with it. We write our own rather than depend on an assembler (wabt,
 * binaryen) because we emit only a few hundred distinct opcodes, a dependency would weigh more than this file,
 * and we want exact control over which SIMD and atomic encodings come out (memargs, lane immediates, prefixes),
 * with no text format round-trip in between.
 *
 * Opcode numbers follow the WebAssembly core 2.0 binary format, the fixed-width SIMD proposal (0xFD prefix)
 * and the threads proposal (0xFE prefix). Every method here is executed by props/wasm-encode.test.ts, since a
 * wrong SIMD opcode may still validate and silently compute a different operation.
 */

/** Value types a kernel can traffic in (reference types are not needed by the compiler). */
export type ValType = 'i32' | 'i64' | 'f32' | 'f64' | 'v128';

const valTypeByte: Readonly<Record<ValType, number>> = { i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c, v128: 0x7b };

/** Memory limits in 64 KiB pages; a shared memory needs `max` (the threads proposal requires it). */
export interface MemoryLimits {
  readonly min: number;
  readonly max?: number;
  readonly shared?: boolean;
}

/** A function as handed to `ModuleBuilder.addFunction`; `code` must not end with the body's final `end`. */
export interface FunctionDef {
  readonly params: readonly ValType[];
  readonly results: readonly ValType[];
  readonly locals?: readonly ValType[];
  readonly code: Code;
  readonly export?: string;
}

const U32_MAX = 0xffffffff;

/** Appends `value` as unsigned LEB128 (u32); indices, counts, sizes and memarg offsets use this. */
export function encodeU32(value: number, out: number[] = []): number[] {
  if (!Number.isInteger(value) || value < 0 || value > U32_MAX) throw new RangeError(`u32 out of range: ${value}`);
  let v = value >>> 0;
  for (;;) {
    const byte = v & 0x7f;
    v >>>= 7;
    if (v === 0) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

/** Appends `value` as signed LEB128 (s32), the immediate of i32.const. */
export function encodeS32(value: number, out: number[] = []): number[] {
  if (!Number.isInteger(value) || value < -0x80000000 || value > 0x7fffffff) {
    throw new RangeError(`s32 out of range: ${value}`);
  }
  let v = value | 0;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    // Stop once the remaining bits are pure sign extension of the byte's bit 6.
    if ((v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

/** Appends `value` as signed LEB128 (s64), the immediate of i64.const. */
export function encodeS64(value: bigint, out: number[] = []): number[] {
  if (value < -(1n << 63n) || value >= 1n << 63n) throw new RangeError(`s64 out of range: ${value}`);
  let v = value;
  for (;;) {
    const byte = Number(v & 0x7fn);
    v >>= 7n;
    if ((v === 0n && (byte & 0x40) === 0) || (v === -1n && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

function encodeName(name: string, out: number[]): void {
  const bytes = new TextEncoder().encode(name);
  encodeU32(bytes.length, out);
  for (const b of bytes) out.push(b);
}

function checkIndex(what: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > U32_MAX) throw new RangeError(`${what} out of range: ${value}`);
}

function checkLane(value: number, lanes: number): void {
  if (!Number.isInteger(value) || value < 0 || value >= lanes) throw new RangeError(`lane ${value} not in [0, ${lanes})`);
}

/**
 * A function body under construction. Each method appends one instruction and returns `this`, so bodies read
 * in stack order: `code.localGet(0).localGet(1).i32Add()`.
 *
 * Memory instructions take `offset` (bytes, u32) and `align` (bytes, a power of two no larger than the access
 * size, defaulting to the access size). `align` is only a hint to the engine: an access at a smaller actual
 * alignment is still correct, and passing 1 for addresses we cannot prove aligned keeps the hint honest.
 */
export class Code {
  private readonly buf: number[] = [];
  private open = 0;

  /** Structured blocks (block/loop/if) opened and not yet ended: a branch to the enclosing block at depth `d`
   *  taken from here is `br(code.depth - 1 - d)` when `d` was read as `code.depth` just before opening it. */
  get depth(): number {
    return this.open;
  }

  /** Bytes written so far. */
  get length(): number {
    return this.buf.length;
  }

  /** A copy of the body bytes, without the function's final `end`. */
  bytes(): Uint8Array {
    return Uint8Array.from(this.buf);
  }

  // ---------------------------------------------------------------- encoding helpers

  private op(byte: number): this {
    this.buf.push(byte);
    return this;
  }

  private u32(value: number): this {
    encodeU32(value, this.buf);
    return this;
  }

  private simd(opcode: number): this {
    this.buf.push(0xfd);
    return this.u32(opcode);
  }

  private atomic(opcode: number): this {
    this.buf.push(0xfe);
    return this.u32(opcode);
  }

  private misc(opcode: number): this {
    this.buf.push(0xfc);
    return this.u32(opcode);
  }

  private memarg(natural: number, offset: number, align: number): this {
    if (!Number.isInteger(align) || align < 1 || align > natural || (align & (align - 1)) !== 0) {
      throw new RangeError(`align ${align} must be a power of two in [1, ${natural}]`);
    }
    checkIndex('memarg offset', offset);
    this.u32(31 - Math.clz32(align));
    return this.u32(offset);
  }

  /** Atomic accesses trap unless aligned, and validation requires the alignment hint to equal the size. */
  private atomicMemarg(natural: number, offset: number): this {
    return this.memarg(natural, offset, natural);
  }

  private blockType(type: ValType | undefined): this {
    return this.op(type === undefined ? 0x40 : valTypeByte[type]);
  }

  // ---------------------------------------------------------------- control

  unreachable(): this { return this.op(0x00); }
  nop(): this { return this.op(0x01); }
  block(result?: ValType): this { this.open++; return this.op(0x02).blockType(result); }
  loop(result?: ValType): this { this.open++; return this.op(0x03).blockType(result); }
  if(result?: ValType): this { this.open++; return this.op(0x04).blockType(result); }
  else(): this {
    if (this.open === 0) throw new Error('else outside if');
    return this.op(0x05);
  }
  end(): this {
    // The function's own closing `end` is added by ModuleBuilder, so an unmatched one here is a bug.
    if (this.open === 0) throw new Error('end without an open block (the function end is implicit)');
    this.open--;
    return this.op(0x0b);
  }
  br(label: number): this { checkIndex('label', label); return this.op(0x0c).u32(label); }
  brIf(label: number): this { checkIndex('label', label); return this.op(0x0d).u32(label); }
  brTable(labels: readonly number[], defaultLabel: number): this {
    this.op(0x0e).u32(labels.length);
    for (const l of labels) {
      checkIndex('label', l);
      this.u32(l);
    }
    checkIndex('label', defaultLabel);
    return this.u32(defaultLabel);
  }
  return(): this { return this.op(0x0f); }
  call(funcIndex: number): this { checkIndex('function index', funcIndex); return this.op(0x10).u32(funcIndex); }
  drop(): this { return this.op(0x1a); }
  /** Untyped `select` (0x1B) unless `type` is given, then the typed form (0x1C). */
  select(type?: ValType): this {
    if (type === undefined) return this.op(0x1b);
    return this.op(0x1c).u32(1).op(valTypeByte[type]);
  }

  // ---------------------------------------------------------------- variables

  localGet(index: number): this { checkIndex('local', index); return this.op(0x20).u32(index); }
  localSet(index: number): this { checkIndex('local', index); return this.op(0x21).u32(index); }
  localTee(index: number): this { checkIndex('local', index); return this.op(0x22).u32(index); }
  globalGet(index: number): this { checkIndex('global', index); return this.op(0x23).u32(index); }
  globalSet(index: number): this { checkIndex('global', index); return this.op(0x24).u32(index); }

  // ---------------------------------------------------------------- memory

  i32Load(offset = 0, align = 4): this { return this.op(0x28).memarg(4, offset, align); }
  f32Load(offset = 0, align = 4): this { return this.op(0x2a).memarg(4, offset, align); }
  f64Load(offset = 0, align = 8): this { return this.op(0x2b).memarg(8, offset, align); }
  i32Store(offset = 0, align = 4): this { return this.op(0x36).memarg(4, offset, align); }
  f32Store(offset = 0, align = 4): this { return this.op(0x38).memarg(4, offset, align); }
  f64Store(offset = 0, align = 8): this { return this.op(0x39).memarg(8, offset, align); }
  memorySize(): this { return this.op(0x3f).op(0x00); }
  memoryGrow(): this { return this.op(0x40).op(0x00); }
  /** [dest, src, n] → []; both memory immediates are 0 (single memory). */
  memoryCopy(): this { return this.misc(0x0a).op(0x00).op(0x00); }
  /** [dest, byte, n] → []. */
  memoryFill(): this { return this.misc(0x0b).op(0x00); }

  // ---------------------------------------------------------------- constants

  /** Accepts int32 or uint32 values (wrapped to the same 32 bits), so masks like 0xffffffff can be written as such. */
  i32Const(value: number): this {
    if (!Number.isInteger(value) || value < -0x80000000 || value > U32_MAX) {
      throw new RangeError(`i32.const out of range: ${value}`);
    }
    this.buf.push(0x41);
    encodeS32(value | 0, this.buf);
    return this;
  }
  i64Const(value: bigint | number): this {
    this.buf.push(0x42);
    encodeS64(BigInt.asIntN(64, BigInt(value)), this.buf);
    return this;
  }
  /** Rounds `value` to f32 first (as Math.fround does); the bytes are its IEEE-754 little-endian image. */
  f32Const(value: number): this {
    const dv = new DataView(new ArrayBuffer(4));
    dv.setFloat32(0, value, true);
    this.buf.push(0x43);
    for (let i = 0; i < 4; i++) this.buf.push(dv.getUint8(i));
    return this;
  }
  f64Const(value: number): this {
    const dv = new DataView(new ArrayBuffer(8));
    dv.setFloat64(0, value, true);
    this.buf.push(0x44);
    for (let i = 0; i < 8; i++) this.buf.push(dv.getUint8(i));
    return this;
  }

  // ---------------------------------------------------------------- i32

  i32Eqz(): this { return this.op(0x45); }
  i32Eq(): this { return this.op(0x46); }
  i32Ne(): this { return this.op(0x47); }
  i32LtS(): this { return this.op(0x48); }
  i32LtU(): this { return this.op(0x49); }
  i32GtS(): this { return this.op(0x4a); }
  i32GtU(): this { return this.op(0x4b); }
  i32LeS(): this { return this.op(0x4c); }
  i32LeU(): this { return this.op(0x4d); }
  i32GeS(): this { return this.op(0x4e); }
  i32GeU(): this { return this.op(0x4f); }
  i32Add(): this { return this.op(0x6a); }
  i32Sub(): this { return this.op(0x6b); }
  i32Mul(): this { return this.op(0x6c); }
  i32DivS(): this { return this.op(0x6d); }
  i32DivU(): this { return this.op(0x6e); }
  i32RemS(): this { return this.op(0x6f); }
  i32RemU(): this { return this.op(0x70); }
  i32And(): this { return this.op(0x71); }
  i32Or(): this { return this.op(0x72); }
  i32Xor(): this { return this.op(0x73); }
  i32Shl(): this { return this.op(0x74); }
  i32ShrS(): this { return this.op(0x75); }
  i32ShrU(): this { return this.op(0x76); }

  // ---------------------------------------------------------------- f32

  f32Eq(): this { return this.op(0x5b); }
  f32Ne(): this { return this.op(0x5c); }
  f32Lt(): this { return this.op(0x5d); }
  f32Gt(): this { return this.op(0x5e); }
  f32Le(): this { return this.op(0x5f); }
  f32Ge(): this { return this.op(0x60); }
  f32Abs(): this { return this.op(0x8b); }
  f32Neg(): this { return this.op(0x8c); }
  f32Ceil(): this { return this.op(0x8d); }
  f32Floor(): this { return this.op(0x8e); }
  f32Trunc(): this { return this.op(0x8f); }
  f32Nearest(): this { return this.op(0x90); }
  f32Sqrt(): this { return this.op(0x91); }
  f32Add(): this { return this.op(0x92); }
  f32Sub(): this { return this.op(0x93); }
  f32Mul(): this { return this.op(0x94); }
  f32Div(): this { return this.op(0x95); }
  f32Min(): this { return this.op(0x96); }
  f32Max(): this { return this.op(0x97); }
  f32Copysign(): this { return this.op(0x98); }

  // ---------------------------------------------------------------- f64 (reductions and host glue)

  f64Add(): this { return this.op(0xa0); }
  f64Sub(): this { return this.op(0xa1); }
  f64Mul(): this { return this.op(0xa2); }
  f64Div(): this { return this.op(0xa3); }
  f64Min(): this { return this.op(0xa4); }
  f64Max(): this { return this.op(0xa5); }
  f64Sqrt(): this { return this.op(0x9f); }

  // ---------------------------------------------------------------- conversions

  /** Traps on NaN and out-of-range inputs; `i32TruncSatF32S` is the non-trapping one. */
  i32TruncF32S(): this { return this.op(0xa8); }
  i32TruncSatF32S(): this { return this.misc(0x00); }
  f32ConvertI32S(): this { return this.op(0xb2); }
  f32ConvertI32U(): this { return this.op(0xb3); }
  f32DemoteF64(): this { return this.op(0xb6); }
  f64PromoteF32(): this { return this.op(0xbb); }
  i32ReinterpretF32(): this { return this.op(0xbc); }
  f32ReinterpretI32(): this { return this.op(0xbe); }

  // ---------------------------------------------------------------- SIMD128: memory and constants

  v128Load(offset = 0, align = 16): this { return this.simd(0x00).memarg(16, offset, align); }
  v128Load32Splat(offset = 0, align = 4): this { return this.simd(0x09).memarg(4, offset, align); }
  v128Store(offset = 0, align = 16): this { return this.simd(0x0b).memarg(16, offset, align); }
  /** [addr, v] → v with `lane` replaced by the f32/i32 at addr. */
  v128Load32Lane(lane: number, offset = 0, align = 4): this {
    checkLane(lane, 4);
    return this.simd(0x56).memarg(4, offset, align).op(lane);
  }
  /** [addr, v] → []: stores `lane` of v; the tail store of a loop whose length is not a multiple of 4. */
  v128Store32Lane(lane: number, offset = 0, align = 4): this {
    checkLane(lane, 4);
    return this.simd(0x5a).memarg(4, offset, align).op(lane);
  }
  /** Loads 32 bits into lane 0 and zeroes lanes 1..3. */
  v128Load32Zero(offset = 0, align = 4): this { return this.simd(0x5c).memarg(4, offset, align); }
  /** Sixteen raw bytes, lane 0 first (memory order). */
  v128Const(bytes: ArrayLike<number>): this {
    if (bytes.length !== 16) throw new RangeError(`v128.const needs 16 bytes, got ${bytes.length}`);
    this.simd(0x0c);
    for (let i = 0; i < 16; i++) {
      const b = bytes[i];
      if (!Number.isInteger(b) || b < 0 || b > 255) throw new RangeError(`v128.const byte ${i} out of range: ${b}`);
      this.buf.push(b);
    }
    return this;
  }
  v128ConstF32(lanes: ArrayLike<number>): this {
    if (lanes.length !== 4) throw new RangeError(`v128ConstF32 needs 4 lanes, got ${lanes.length}`);
    return this.v128Const(new Uint8Array(Float32Array.from(lanes).buffer));
  }
  /** Lanes may be given as int32 or uint32 values. */
  v128ConstI32(lanes: ArrayLike<number>): this {
    if (lanes.length !== 4) throw new RangeError(`v128ConstI32 needs 4 lanes, got ${lanes.length}`);
    const words = new Int32Array(4);
    for (let i = 0; i < 4; i++) {
      const v = lanes[i];
      if (!Number.isInteger(v) || v < -0x80000000 || v > U32_MAX) throw new RangeError(`i32 lane out of range: ${v}`);
      words[i] = v | 0;
    }
    return this.v128Const(new Uint8Array(words.buffer));
  }

  // ---------------------------------------------------------------- SIMD128: lanes

  /** Byte lanes 0..15 pick from the first operand, 16..31 from the second. */
  i8x16Shuffle(lanes: ArrayLike<number>): this {
    if (lanes.length !== 16) throw new RangeError(`i8x16.shuffle needs 16 lane indices, got ${lanes.length}`);
    this.simd(0x0d);
    for (let i = 0; i < 16; i++) {
      checkLane(lanes[i], 32);
      this.buf.push(lanes[i]);
    }
    return this;
  }
  i32x4Splat(): this { return this.simd(0x11); }
  f32x4Splat(): this { return this.simd(0x13); }
  i32x4ExtractLane(lane: number): this { checkLane(lane, 4); return this.simd(0x1b).op(lane); }
  i32x4ReplaceLane(lane: number): this { checkLane(lane, 4); return this.simd(0x1c).op(lane); }
  f32x4ExtractLane(lane: number): this { checkLane(lane, 4); return this.simd(0x1f).op(lane); }
  f32x4ReplaceLane(lane: number): this { checkLane(lane, 4); return this.simd(0x20).op(lane); }

  // ---------------------------------------------------------------- SIMD128: comparisons (lane masks)

  i32x4Eq(): this { return this.simd(0x37); }
  i32x4Ne(): this { return this.simd(0x38); }
  i32x4LtS(): this { return this.simd(0x39); }
  i32x4GtS(): this { return this.simd(0x3b); }
  i32x4LeS(): this { return this.simd(0x3d); }
  i32x4GeS(): this { return this.simd(0x3f); }
  f32x4Eq(): this { return this.simd(0x41); }
  f32x4Ne(): this { return this.simd(0x42); }
  f32x4Lt(): this { return this.simd(0x43); }
  f32x4Gt(): this { return this.simd(0x44); }
  f32x4Le(): this { return this.simd(0x45); }
  f32x4Ge(): this { return this.simd(0x46); }

  // ---------------------------------------------------------------- SIMD128: bitwise

  v128Not(): this { return this.simd(0x4d); }
  v128And(): this { return this.simd(0x4e); }
  /** a & ~b. */
  v128Andnot(): this { return this.simd(0x4f); }
  v128Or(): this { return this.simd(0x50); }
  v128Xor(): this { return this.simd(0x51); }
  /** [a, b, mask] → (a & mask) | (b & ~mask): the branch-free select behind masked kernels. */
  v128Bitselect(): this { return this.simd(0x52); }
  v128AnyTrue(): this { return this.simd(0x53); }

  // ---------------------------------------------------------------- SIMD128: i32x4

  i32x4AllTrue(): this { return this.simd(0xa3); }
  i32x4Bitmask(): this { return this.simd(0xa4); }
  i32x4Neg(): this { return this.simd(0xa1); }
  /** [v, count] → v; the count is taken modulo 32. */
  i32x4Shl(): this { return this.simd(0xab); }
  i32x4ShrS(): this { return this.simd(0xac); }
  i32x4ShrU(): this { return this.simd(0xad); }
  i32x4Add(): this { return this.simd(0xae); }
  i32x4Sub(): this { return this.simd(0xb1); }
  i32x4Mul(): this { return this.simd(0xb5); }
  i32x4MinS(): this { return this.simd(0xb6); }
  i32x4MaxS(): this { return this.simd(0xb8); }

  // ---------------------------------------------------------------- SIMD128: f32x4

  f32x4Ceil(): this { return this.simd(0x67); }
  f32x4Floor(): this { return this.simd(0x68); }
  f32x4Trunc(): this { return this.simd(0x69); }
  f32x4Nearest(): this { return this.simd(0x6a); }
  f32x4Abs(): this { return this.simd(0xe0); }
  f32x4Neg(): this { return this.simd(0xe1); }
  f32x4Sqrt(): this { return this.simd(0xe3); }
  f32x4Add(): this { return this.simd(0xe4); }
  f32x4Sub(): this { return this.simd(0xe5); }
  f32x4Mul(): this { return this.simd(0xe6); }
  f32x4Div(): this { return this.simd(0xe7); }
  /** IEEE-style: NaN if either lane is NaN, and -0 < +0. */
  f32x4Min(): this { return this.simd(0xe8); }
  f32x4Max(): this { return this.simd(0xe9); }
  /** Pseudo-min `b < a ? b : a`: one instruction on x86 (minps), the right choice for ReLU-like clamps. */
  f32x4Pmin(): this { return this.simd(0xea); }
  /** Pseudo-max `a < b ? b : a`. */
  f32x4Pmax(): this { return this.simd(0xeb); }

  // ---------------------------------------------------------------- SIMD128: conversions

  /** NaN → 0, out-of-range saturates to INT32_MIN/MAX. */
  i32x4TruncSatF32x4S(): this { return this.simd(0xf8); }
  f32x4ConvertI32x4S(): this { return this.simd(0xfa); }

  // ---------------------------------------------------------------- atomics (shared memory)

  /** [addr, count] → woken waiters. */
  memoryAtomicNotify(offset = 0): this { return this.atomic(0x00).atomicMemarg(4, offset); }
  /** [addr, expected i32, timeout i64 ns (<0: forever)] → 0 ok, 1 not-equal, 2 timed-out. */
  memoryAtomicWait32(offset = 0): this { return this.atomic(0x01).atomicMemarg(4, offset); }
  atomicFence(): this { return this.atomic(0x03).op(0x00); }
  i32AtomicLoad(offset = 0): this { return this.atomic(0x10).atomicMemarg(4, offset); }
  i32AtomicStore(offset = 0): this { return this.atomic(0x17).atomicMemarg(4, offset); }
  /** [addr, v] → old value. */
  i32AtomicRmwAdd(offset = 0): this { return this.atomic(0x1e).atomicMemarg(4, offset); }
  /** [addr, expected, replacement] → old value. */
  i32AtomicRmwCmpxchg(offset = 0): this { return this.atomic(0x48).atomicMemarg(4, offset); }
}

interface FuncType {
  readonly params: readonly ValType[];
  readonly results: readonly ValType[];
}

type Import =
  | { readonly kind: 'func'; readonly module: string; readonly name: string; readonly typeIndex: number }
  | { readonly kind: 'memory'; readonly module: string; readonly name: string; readonly limits: MemoryLimits };

interface Func {
  readonly typeIndex: number;
  readonly locals: readonly ValType[];
  readonly body: Uint8Array;
}

interface Global {
  readonly type: Exclude<ValType, 'v128'>;
  readonly mutable: boolean;
  readonly init: number | bigint;
}

const exportKind = { func: 0x00, memory: 0x02, global: 0x03 } as const;

function encodeLimits(limits: MemoryLimits, out: number[]): void {
  const { min, max, shared = false } = limits;
  checkIndex('memory min', min);
  if (min > 65536) throw new RangeError(`memory min ${min} pages exceeds 65536`);
  if (max !== undefined) {
    checkIndex('memory max', max);
    if (max > 65536 || max < min) throw new RangeError(`memory max ${max} must be in [min=${min}, 65536]`);
  }
  if (shared && max === undefined) throw new Error('a shared memory needs a max');
  out.push(max === undefined ? 0x00 : shared ? 0x03 : 0x01);
  encodeU32(min, out);
  if (max !== undefined) encodeU32(max, out);
}

function encodeSection(id: number, contents: number[], out: number[]): void {
  out.push(id);
  encodeU32(contents.length, out);
  for (const b of contents) out.push(b);
}

/**
 * Collects a module's parts and serializes them. Imported functions take the first function indices, so all
 * `importFunction` calls must come before the first `addFunction` (it throws otherwise): the indices handed
 * out earlier then stay valid and `call` immediates never need patching.
 */
export class ModuleBuilder {
  private readonly types: FuncType[] = [];
  private readonly typeIndex = new Map<string, number>();
  private readonly imports: Import[] = [];
  private readonly funcs: Func[] = [];
  private readonly globals: Global[] = [];
  private readonly exports: { name: string; kind: keyof typeof exportKind; index: number }[] = [];
  private importedFuncs = 0;
  private ownMemory: MemoryLimits | undefined;
  private hasMemory = false;

  /** The index of the function type params → results, shared by every function of that signature. */
  addType(params: readonly ValType[], results: readonly ValType[]): number {
    const key = `${params.join(',')}->${results.join(',')}`;
    const known = this.typeIndex.get(key);
    if (known !== undefined) return known;
    const index = this.types.length;
    this.types.push({ params: [...params], results: [...results] });
    this.typeIndex.set(key, index);
    return index;
  }

  importFunction(module: string, name: string, params: readonly ValType[], results: readonly ValType[]): number {
    if (this.funcs.length > 0) throw new Error('importFunction must come before addFunction (imports take the first indices)');
    const typeIndex = this.addType(params, results);
    this.imports.push({ kind: 'func', module, name, typeIndex });
    return this.importedFuncs++;
  }

  /** Imports the module's one memory, e.g. a shared memory that worker instances have in common. */
  importMemory(module: string, name: string, limits: MemoryLimits): void {
    this.claimMemory();
    encodeLimits(limits, []); // validate now, where the caller's stack points at the mistake
    this.imports.push({ kind: 'memory', module, name, limits });
  }

  /** Defines the module's own memory (index 0), optionally exported. */
  addMemory(limits: MemoryLimits, exportName?: string): void {
    this.claimMemory();
    encodeLimits(limits, []);
    this.ownMemory = limits;
    if (exportName !== undefined) this.addExport(exportName, 'memory', 0);
  }

  addFunction(def: FunctionDef): number {
    if (def.code.depth !== 0) throw new Error(`function body has ${def.code.depth} unclosed block(s)`);
    const index = this.importedFuncs + this.funcs.length;
    this.funcs.push({ typeIndex: this.addType(def.params, def.results), locals: [...(def.locals ?? [])], body: def.code.bytes() });
    if (def.export !== undefined) this.addExport(def.export, 'func', index);
    return index;
  }

  /** A global initialized to a constant; returns its index. */
  addGlobal(
    type: Exclude<ValType, 'v128'>,
    init: number | bigint,
    options: { readonly mutable?: boolean; readonly export?: string } = {},
  ): number {
    if (type === 'i64' ? typeof init !== 'bigint' && !Number.isInteger(init) : typeof init !== 'number') {
      throw new TypeError(`global of type ${type} cannot start as ${init}`);
    }
    const index = this.globals.length;
    this.globals.push({ type, mutable: options.mutable ?? false, init });
    if (options.export !== undefined) this.addExport(options.export, 'global', index);
    return index;
  }

  /** Exports an already defined function, memory or global under `name`. */
  addExport(name: string, kind: 'func' | 'memory' | 'global', index: number): void {
    if (this.exports.some((e) => e.name === name)) throw new Error(`duplicate export name ${JSON.stringify(name)}`);
    checkIndex('export index', index);
    this.exports.push({ name, kind, index });
  }

  toBytes(): Uint8Array {
    const out: number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

    if (this.types.length > 0) {
      const s: number[] = [];
      encodeU32(this.types.length, s);
      for (const t of this.types) {
        s.push(0x60);
        encodeU32(t.params.length, s);
        for (const p of t.params) s.push(valTypeByte[p]);
        encodeU32(t.results.length, s);
        for (const r of t.results) s.push(valTypeByte[r]);
      }
      encodeSection(1, s, out);
    }

    if (this.imports.length > 0) {
      const s: number[] = [];
      encodeU32(this.imports.length, s);
      for (const imp of this.imports) {
        encodeName(imp.module, s);
        encodeName(imp.name, s);
        if (imp.kind === 'func') {
          s.push(0x00);
          encodeU32(imp.typeIndex, s);
        } else {
          s.push(0x02);
          encodeLimits(imp.limits, s);
        }
      }
      encodeSection(2, s, out);
    }

    if (this.funcs.length > 0) {
      const s: number[] = [];
      encodeU32(this.funcs.length, s);
      for (const f of this.funcs) encodeU32(f.typeIndex, s);
      encodeSection(3, s, out);
    }

    if (this.ownMemory !== undefined) {
      const s: number[] = [0x01];
      encodeLimits(this.ownMemory, s);
      encodeSection(5, s, out);
    }

    if (this.globals.length > 0) {
      const s: number[] = [];
      encodeU32(this.globals.length, s);
      for (const g of this.globals) {
        s.push(valTypeByte[g.type], g.mutable ? 0x01 : 0x00);
        const init = new Code();
        if (g.type === 'i32') init.i32Const(Number(g.init));
        else if (g.type === 'i64') init.i64Const(g.init);
        else if (g.type === 'f32') init.f32Const(Number(g.init));
        else init.f64Const(Number(g.init));
        for (const b of init.bytes()) s.push(b);
        s.push(0x0b);
      }
      encodeSection(6, s, out);
    }

    if (this.exports.length > 0) {
      const s: number[] = [];
      encodeU32(this.exports.length, s);
      for (const e of this.exports) {
        encodeName(e.name, s);
        s.push(exportKind[e.kind]);
        encodeU32(e.index, s);
      }
      encodeSection(7, s, out);
    }

    if (this.funcs.length > 0) {
      const s: number[] = [];
      encodeU32(this.funcs.length, s);
      for (const f of this.funcs) {
        const entry: number[] = [];
        // Locals are declared as runs of one type; consecutive equal types share a run.
        const runs: { type: ValType; count: number }[] = [];
        for (const t of f.locals) {
          const last = runs[runs.length - 1];
          if (last !== undefined && last.type === t) last.count++;
          else runs.push({ type: t, count: 1 });
        }
        encodeU32(runs.length, entry);
        for (const r of runs) {
          encodeU32(r.count, entry);
          entry.push(valTypeByte[r.type]);
        }
        for (const b of f.body) entry.push(b);
        entry.push(0x0b);
        encodeU32(entry.length, s);
        for (const b of entry) s.push(b);
      }
      encodeSection(10, s, out);
    }

    return Uint8Array.from(out);
  }

  private claimMemory(): void {
    if (this.hasMemory) throw new Error('a module has at most one memory');
    this.hasMemory = true;
  }
}

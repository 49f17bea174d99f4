// The wasm target's device: one shared WebAssembly.Memory that holds every tensor, and a pool of worker threads
// that instantiate each program's module over that same memory. A launch writes its descriptor into a shared
// control block and wakes the workers with Atomics; every thread (the main one included) runs one contiguous
// range of the kernel's work items and the main thread waits until all are done. Each output element is computed
// by exactly one thread in a fixed order, so results are bit-identical whatever the worker count.
import * as E from 'fp-ts/lib/Either.js';
import { availableParallelism } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { Worker } from 'node:worker_threads';
import { deviceError, type DeviceError } from '../../runtime/errors.ts';
import { DeviceHandle, type LiveHandles } from '../../runtime/device.ts';
import { wasm, type WasmMemory, type WasmModule } from '../../wasm/api.ts';
import { Code, ModuleBuilder } from '../../wasm/encode.ts';

const PAGE = 65_536;
/** wasm32 addresses 4 GiB. */
export const MAX_MEMORY_BYTES = 65_536 * PAGE;
/** Every allocation is aligned to a cache line. */
const ALIGN = 64;
/** Bytes kept free past the highest allocation: a microkernel's edge panel may read up to 7 floats past a row. */
const SLACK = 64;

/** The control block of a launch. `pause` sends the workers back to their event loop (to load a program). */
const CTRL = { gen: 0, fn: 1, done: 2, pause: 3, items: 4, align: 5, scratch: 6, scratchStride: 7, nparams: 8, program: 9, params: 10 } as const;
const CTRL_INTS = 64;

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { ctrl: sab, index, workers } = workerData;
const ctrl = new Int32Array(sab);
const programs = new Map();
parentPort.on('message', (msg) => {
  if (msg.kind === 'load') {
    const inst = new WebAssembly.Instance(msg.module, { env: { memory: msg.memory }, math: { exp: Math.exp, log: Math.log, pow: Math.pow } });
    programs.set(msg.program, msg.names.map((n) => inst.exports[n]));
    parentPort.postMessage('loaded');
    return;
  }
  if (msg.kind === 'unload') {
    programs.delete(msg.program);
    return;
  }
  if (msg.kind !== 'start') return;
  let gen = msg.gen;
  parentPort.postMessage('started');
  for (;;) {
    Atomics.wait(ctrl, ${CTRL.gen}, gen);
    gen = Atomics.load(ctrl, ${CTRL.gen});
    if (Atomics.load(ctrl, ${CTRL.pause}) !== 0) {
      Atomics.add(ctrl, ${CTRL.done}, 1);
      Atomics.notify(ctrl, ${CTRL.done});
      break;
    }
    const items = ctrl[${CTRL.items}], align = ctrl[${CTRL.align}];
    const chunk = Math.ceil(items / workers / align) * align;
    const start = Math.min(items, index * chunk), end = Math.min(items, start + chunk);
    if (start < end) {
      const args = Array.from({ length: ctrl[${CTRL.nparams}] }, (_v, k) => ctrl[${CTRL.params} + k]);
      if (ctrl[${CTRL.scratchStride}] > 0) args.push(ctrl[${CTRL.scratch}] + index * ctrl[${CTRL.scratchStride}]);
      programs.get(ctrl[${CTRL.program}])[ctrl[${CTRL.fn}]](...args, start, end);
    }
    Atomics.add(ctrl, ${CTRL.done}, 1);
    Atomics.notify(ctrl, ${CTRL.done});
  }
});
`;

/** A compiled program: its functions on the main thread, and the same module instantiated on every worker. */
export interface WasmProgram {
  readonly id: number;
  readonly functions: readonly ((...args: number[]) => void)[];
}

export interface LaunchSpec {
  readonly fn: number;
  /** Output address, argument addresses. */
  readonly params: readonly number[];
  readonly items: number;
  readonly itemAlign: number;
  /** Rough multiply-adds: launches below WORKER_MIN_WORK stay on the calling thread. */
  readonly work: number;
  readonly scratchBytes: number;
}

/** Waking the workers costs tens of microseconds: below this much work a launch runs on one thread. */
const WORKER_MIN_WORK = 65_536;

const roundUp = (n: number, m: number): number => Math.ceil(n / m) * m;

export class WasmDevice {
  readonly backend = 'wasm' as const;
  readonly memory: WasmMemory;
  private readonly ctrl = new Int32Array(new SharedArrayBuffer(CTRL_INTS * 4));
  private readonly workers: Worker[] = [];
  /** Free byte ranges [offset, size], sorted by offset; everything from `top` on is free too. */
  private free_: [number, number][] = [];
  private top = ALIGN;
  private readonly handles = new Map<number, { readonly offset: number; readonly bytes: number }>();
  private nextId = 1;
  private liveBytes = 0;
  private scratch = { offset: 0, stride: 0 };
  private disposed = false;

  private constructor(
    readonly threads: number,
    private readonly splitFromWork: number,
  ) {
    this.memory = new wasm.Memory({ initial: 256, maximum: 65_536, shared: true });
  }

  /** A device with `threads` threads in all (the main one and threads − 1 workers); all cores by default. */
  static async open(threads = availableParallelism(), splitFromWork = WORKER_MIN_WORK): Promise<E.Either<DeviceError, WasmDevice>> {
    if (typeof SharedArrayBuffer === 'undefined' || !wasm.validate(simdProbe())) {
      return E.left(deviceError('unavailable', 'wasm', 'this JavaScript engine lacks WebAssembly SIMD128 or SharedArrayBuffer'));
    }
    // Kernels run thousands of times per step: compile all of them with the optimizing tier when the module is
    // compiled, rather than baseline (Liftoff) code first and each function again on its first hot calls
    // (process-wide; the workers share the compiled module).
    setFlagsFromString('--no-liftoff');
    setFlagsFromString('--no-wasm-lazy-compilation');
    const d = new WasmDevice(Math.max(1, threads), splitFromWork);
    for (let index = 1; index < d.threads; index++) {
      const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { ctrl: d.ctrl.buffer, index, workers: d.threads } });
      // A device the caller never disposes must not keep the process alive.
      w.unref();
      d.workers.push(w);
    }
    return E.right(d);
  }

  limits(): { readonly maxBufferBytes: number } {
    return { maxBufferBytes: MAX_MEMORY_BYTES - 2 * PAGE };
  }

  // ---- memory ----
  /** First-fit allocation of `bytes` (aligned); grows the memory when nothing fits. */
  alloc(bytes: number): number {
    const size = roundUp(Math.max(bytes, 4), ALIGN);
    for (let k = 0; k < this.free_.length; k++) {
      const [off, len] = this.free_[k];
      if (len < size) continue;
      if (len === size) this.free_.splice(k, 1);
      else this.free_[k] = [off + size, len - size];
      return off;
    }
    const off = this.top;
    this.top += size;
    const need = this.top + SLACK;
    if (need > this.memory.buffer.byteLength) {
      if (need > MAX_MEMORY_BYTES) throw new RangeError(`wasm memory: ${need} bytes needed, wasm32 addresses ${MAX_MEMORY_BYTES}`);
      const current = this.memory.buffer.byteLength;
      const target = Math.min(MAX_MEMORY_BYTES, Math.max(need, Math.floor(current * 1.5)));
      this.memory.grow(Math.ceil((target - current) / PAGE));
    }
    return off;
  }
  release(offset: number, bytes: number): void {
    const size = roundUp(Math.max(bytes, 4), ALIGN);
    let k = this.free_.findIndex(([o]) => o > offset);
    if (k < 0) k = this.free_.length;
    this.free_.splice(k, 0, [offset, size]);
    // coalesce with the neighbours, and give the tail back to `top`
    for (let i = Math.max(0, k - 1); i < this.free_.length - 1; ) {
      const [o, l] = this.free_[i];
      const [o2, l2] = this.free_[i + 1];
      if (o + l === o2) this.free_.splice(i, 2, [o, l + l2]);
      else if (i >= k) break;
      else i++;
    }
    const last = this.free_[this.free_.length - 1];
    if (last !== undefined && last[0] + last[1] === this.top) {
      this.top = last[0];
      this.free_.pop();
    }
  }
  /** The float32 view of `count` floats at byte `offset` (made anew: the buffer changes when memory grows). */
  view(offset: number, count: number): Float32Array {
    return new Float32Array(this.memory.buffer, offset, count);
  }

  // ---- handles ----
  private register(offset: number, bytes: number): DeviceHandle {
    const h = new DeviceHandle(this.nextId++, [bytes / 4], bytes, this);
    this.handles.set(h.id, { offset, bytes });
    this.liveBytes += bytes;
    return h;
  }
  /** A fresh handle of `floats` elements (contents unspecified until a kernel writes it). */
  allocate(floats: number): DeviceHandle {
    this.assertOpen();
    return this.register(this.alloc(floats * 4), floats * 4);
  }
  offsetOf(handle: DeviceHandle): number {
    const h = this.handles.get(handle.id);
    if (h === undefined || handle.device !== this) throw new Error(`wasm device: handle #${handle.id} is freed or belongs to another device`);
    return h.offset;
  }
  async upload(data: Float32Array): Promise<E.Either<DeviceError, DeviceHandle>> {
    this.assertOpen();
    let h: DeviceHandle;
    try {
      h = this.allocate(data.length);
    } catch (error) {
      return E.left(deviceError('limits', 'wasm', String(error)));
    }
    this.view(this.offsetOf(h), data.length).set(data);
    return E.right(h);
  }
  async read(handle: DeviceHandle): Promise<E.Either<DeviceError, Float32Array>> {
    this.assertOpen();
    return E.right(this.view(this.offsetOf(handle), handle.byteLength / 4).slice());
  }
  free(handle: DeviceHandle): void {
    this.assertOpen();
    const h = this.handles.get(handle.id);
    if (h === undefined) throw new Error(`wasm device: handle #${handle.id} freed twice`);
    this.handles.delete(handle.id);
    this.liveBytes -= h.bytes;
    this.release(h.offset, h.bytes);
  }
  liveHandles(): LiveHandles {
    return { count: this.handles.size, bytes: this.liveBytes };
  }

  // ---- programs ----
  /** Instantiate `module` on this thread and every worker; per-worker scratch of `scratchBytes` each. */
  async load(module: WasmModule, names: readonly string[], scratchBytes: number): Promise<WasmProgram> {
    this.assertOpen();
    if (this.running) this.signal(true);
    const id = this.nextProgram++;
    if (scratchBytes > this.scratch.stride) {
      if (this.scratch.stride > 0) this.release(this.scratch.offset, this.scratch.stride * this.threads);
      const stride = roundUp(scratchBytes, ALIGN);
      this.scratch = { offset: this.alloc(stride * this.threads), stride };
    }
    const instance = new wasm.Instance(module, { env: { memory: this.memory }, math: { exp: Math.exp, log: Math.log, pow: Math.pow } });
    const functions = names.map((n) => instance.exports[n] as (...args: number[]) => void);
    // Waiting for the workers' answers must keep the process alive (they are unref'd otherwise).
    for (const w of this.workers) w.ref();
    await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            w.once('message', () => resolve());
            w.postMessage({ kind: 'load', module, memory: this.memory, names, program: id });
          }),
      ),
    );
    await this.start();
    for (const w of this.workers) w.unref();
    return { id, functions };
  }
  private running = false;
  private nextProgram = 1;

  /** Send the workers into their launch loop (they wait on the generation counter). */
  private async start(): Promise<void> {
    if (this.workers.length === 0) return;
    Atomics.store(this.ctrl, CTRL.pause, 0);
    const gen = Atomics.load(this.ctrl, CTRL.gen);
    await Promise.all(this.workers.map((w) => new Promise<void>((resolve) => (w.once('message', () => resolve()), w.postMessage({ kind: 'start', gen })))));
    this.running = true;
  }

  /** Wake the workers for the launch in the control block (or to pause), and wait until all have answered. */
  private signal(pause: boolean): void {
    const c = this.ctrl;
    Atomics.store(c, CTRL.pause, pause ? 1 : 0);
    Atomics.store(c, CTRL.done, 0);
    Atomics.add(c, CTRL.gen, 1);
    Atomics.notify(c, CTRL.gen);
    if (pause) {
      this.waitDone();
      this.running = false;
    }
  }
  private waitDone(): void {
    for (;;) {
      const done = Atomics.load(this.ctrl, CTRL.done);
      if (done >= this.workers.length) break;
      Atomics.wait(this.ctrl, CTRL.done, done);
    }
  }
  /** Forget a program on every worker. */
  unload(program: WasmProgram): void {
    if (this.disposed) return;
    for (const w of this.workers) w.postMessage({ kind: 'unload', program: program.id });
  }

  /** Run one kernel over its items, split across every thread (small launches stay on this one). */
  launch(program: WasmProgram, spec: LaunchSpec): void {
    this.assertOpen();
    const fn = program.functions[spec.fn];
    const scratch = spec.scratchBytes > 0 ? [this.scratch.offset] : [];
    if (!this.running || spec.items < 2 * spec.itemAlign || spec.work < this.splitFromWork) {
      fn(...spec.params, ...scratch, 0, spec.items);
      return;
    }
    const c = this.ctrl;
    c[CTRL.program] = program.id;
    c[CTRL.fn] = spec.fn;
    c[CTRL.items] = spec.items;
    c[CTRL.align] = spec.itemAlign;
    c[CTRL.scratch] = this.scratch.offset;
    c[CTRL.scratchStride] = spec.scratchBytes > 0 ? this.scratch.stride : 0;
    c[CTRL.nparams] = spec.params.length;
    spec.params.forEach((p, k) => (c[CTRL.params + k] = p));
    this.signal(false);
    const chunk = Math.ceil(spec.items / this.threads / spec.itemAlign) * spec.itemAlign;
    fn(...spec.params, ...scratch, 0, Math.min(spec.items, chunk));
    this.waitDone();
  }

  private assertOpen(): void {
    if (this.disposed) throw new Error('wasm device: used after dispose');
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    if (this.running) this.signal(true);
    this.disposed = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.handles.clear();
    this.liveBytes = 0;
  }
}

/** A module using one SIMD instruction: validates only where SIMD128 is supported. */
function simdProbe(): Uint8Array {
  const m = new ModuleBuilder();
  m.addFunction({ params: [], results: ['i32'], code: new Code().i32Const(1).i32x4Splat().i32x4ExtractLane(0) });
  return m.toBytes();
}

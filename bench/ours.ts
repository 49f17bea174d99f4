// Our side of every benchmark: compile a graph once, upload its inputs once, then time runs whose outputs stay
// on the device. How a timed run ends (the synchronization), per backend:
//   cpu, webasm: gpu.js runs each kernel to completion before `launch` resolves, so a run is over when `run`
//                resolves; the 4-byte read below only closes the sample the same way on every backend.
//   webgpu:      `launch` resolves at submit. After the run, a 1-cell kernel reads the first element of one
//                output and its 4 bytes are read back (mapAsync): one queue executes submits in order, so the
//                readback completes only after every kernel of the run has.
// W1 synchronizes on the loss instead (a real training loop reads it anyway), and feeds each state output back
// as the next step's input by name, freeing the previous buffers, as a training loop does.
import * as E from 'fp-ts/lib/Either.js';
import { compile, type Executable } from '../compiler/compile.ts';
import { numel, type Graph } from '../compiler/ir.ts';
import { StepProfiler, type AfterLaunch, type StepProfile } from '../compiler/profile.ts';
import { Device, DeviceHandle, type KernelShape } from '../compiler/runtime/device.ts';
import type { MicroSizes } from './flops.ts';
import { formatDeviceError, type BackendName } from '../compiler/runtime/errors.ts';
import { timeAdaptive, type IterationPolicy, type Timing } from './timing.ts';

export interface CompiledFacts {
  readonly backend: BackendName;
  /** Wall time of `compile` (plan, kernel build, warm-up launch of every distinct kernel). */
  readonly compileMs: number;
  /** The first real run, synchronized: on webgpu it still pays for pipeline creation the warm-up only submitted. */
  readonly firstRunMs: number;
  /** Kernels launched per run, and distinct gpu.js kernels built (identical kernels are shared). */
  readonly kernels: number;
  readonly builtKernels: number;
  /** From the memory plan: the most bytes live at once (inputs and state included), and inputs alone. */
  readonly peakBytes: number;
  readonly inputBytes: number;
}

export type OursResult = CompiledFacts & { readonly timing: Timing };

const fail = (what: string, message: string): never => {
  throw new BenchFailure(`${what}: ${message}`);
};

/** A workload that could not be compiled or run: reported in the table and the JSON, never swallowed. */
export class BenchFailure extends Error {}

async function uploadAll(exe: Executable, data: Readonly<Record<string, Float32Array>>): Promise<Record<string, DeviceHandle>> {
  const handles: Record<string, DeviceHandle> = {};
  for (const [name, values] of Object.entries(data)) {
    const h = await exe.upload(name, values);
    handles[name] = E.isLeft(h) ? fail(`upload '${name}'`, h.left) : h.right;
  }
  return handles;
}

/** Waits for a device's queue (a failure ends the row). */
async function synchronize(waiting: Promise<E.Either<string, void>>): Promise<void> {
  const done = await waiting;
  if (E.isLeft(done)) fail('sync', done.left);
}

async function compileTimed(graph: Graph, backend: BackendName, log?: (line: string) => void): Promise<{ exe: Executable; compileMs: number }> {
  const t0 = performance.now();
  let lastReport = t0;
  const exe = await compile(graph, {
    backend,
    onProgress: (done, total) => {
      // a progress line at most every 10 s, so a long warm-up is visibly alive
      if (log !== undefined && (performance.now() - lastReport > 10_000 || done === total)) {
        lastReport = performance.now();
        log(`  ${backend}: built ${done}/${total} kernels (${((lastReport - t0) / 1000).toFixed(1)} s)`);
      }
    },
  });
  const compileMs = performance.now() - t0;
  return { exe: E.isLeft(exe) ? fail(`compile on ${backend}`, exe.left) : exe.right, compileMs };
}

const facts = (exe: Executable, compileMs: number, firstRunMs: number): CompiledFacts => ({
  backend: exe.backend,
  compileMs,
  firstRunMs,
  kernels: exe.plan.kernels.length,
  builtKernels: exe.builtKernels,
  peakBytes: exe.plan.memory.peakBytes,
  inputBytes: exe.plan.memory.inputBytes,
});

/** A stateless workload (micro-benchmarks): same inputs every run, every output freed after its run. */
export async function benchGraph(
  graph: Graph,
  inputs: Readonly<Record<string, Float32Array>>,
  backend: BackendName,
  policy: IterationPolicy,
  log?: (line: string) => void,
): Promise<OursResult & { readonly outputs: Readonly<Record<string, Float32Array>> }> {
  const { exe, compileMs } = await compileTimed(graph, backend, log);
  try {
    const bound = await uploadAll(exe, inputs);
    // Synchronize on the smallest output: the cheapest 1-cell probe to launch on every backend.
    const names = Object.keys(exe.plan.graph.outputs);
    const smallest = names.reduce((a, b) => (numel(exe.plan.graph.outputs[b].shape) < numel(exe.plan.graph.outputs[a].shape) ? b : a));
    let last: Record<string, DeviceHandle> | null = null;
    const once = async (): Promise<void> => {
      if (last !== null) for (const h of Object.values(last)) exe.device.free(h);
      const r = await exe.run(bound);
      last = E.isLeft(r) ? fail(`run on ${backend}`, r.left) : r.right;
      await synchronize(exe.synchronize(last[smallest]));
    };
    const { timing, firstRunMs } = await timeAdaptive(once, policy);
    const outputs: Record<string, Float32Array> = {};
    const final = last as Record<string, DeviceHandle> | null;
    if (final !== null) {
      for (const [name, h] of Object.entries(final)) {
        const r = await exe.read(h);
        outputs[name] = E.isLeft(r) ? fail(`read '${name}'`, r.left) : r.right;
      }
    }
    return { ...facts(exe, compileMs, firstRunMs), timing, outputs };
  } finally {
    await exe.dispose();
  }
}

/**
 * A training step: `state` names are graph params whose next values are the outputs of the same names;
 * `inputs` are bound once; `syncOn` names a scalar output read after every step (the loss). With `profile`, two
 * more steps run after the timed ones, synchronized kernel by kernel (compiler/profile.ts).
 */
export async function benchStep(
  graph: Graph,
  state: Readonly<Record<string, Float32Array>>,
  inputs: Readonly<Record<string, Float32Array>>,
  syncOn: string,
  backend: BackendName,
  policy: IterationPolicy,
  log?: (line: string) => void,
  profile = false,
): Promise<OursResult & { readonly losses: readonly number[]; readonly liveHandlesBefore: number; readonly liveHandlesAfter: number; readonly profile?: StepProfile }> {
  for (const name of Object.keys(state)) if (graph.outputs[name] === undefined) fail('benchStep', `state '${name}' has no output of the same name`);
  const { exe, compileMs } = await compileTimed(graph, backend, log);
  try {
    const stateHandles = await uploadAll(exe, state);
    const inputHandles = await uploadAll(exe, inputs);
    const liveHandlesBefore = exe.device.liveHandles().count;
    const losses: number[] = [];
    const once = async (afterLaunch?: AfterLaunch): Promise<void> => {
      const r = await exe.step(stateHandles, inputHandles, [syncOn], afterLaunch);
      const out = E.isLeft(r) ? fail(`step on ${backend}`, r.left) : r.right;
      Object.assign(stateHandles, out.state);
      losses.push(out.values[syncOn][0]);
    };
    const { timing, firstRunMs } = await timeAdaptive(() => once(), policy);
    const profiled = profile ? { profile: await profileStep(exe, once) } : {};
    return { ...facts(exe, compileMs, firstRunMs), timing, losses, liveHandlesBefore, liveHandlesAfter: exe.device.liveHandles().count, ...profiled };
  } finally {
    await exe.dispose();
  }
}

async function profileStep(exe: Executable, step: (afterLaunch: AfterLaunch) => Promise<void>): Promise<StepProfile> {
  const profiler = new StepProfiler(exe);
  await step(profiler.warm);
  await profiler.calibrate();
  await step(profiler.timed);
  const r = profiler.result();
  return E.isLeft(r) ? fail('profile', r.left) : r.right;
}

/** A kernel as a gpu.js user writes it: one output per thread, plain loops, row-major operands. */
export interface NaiveKernel {
  readonly name: string;
  readonly source: string;
  readonly output: KernelShape;
  readonly operands: readonly { readonly name: string; readonly shape: KernelShape }[];
}

/** `c[y][x] = Σ_k a[y][k]·b[k][x]`. */
export const naiveMatmul = (n: number): NaiveKernel => ({
  name: 'naive-matmul',
  source: `function(a, b) { let sum = 0.0; for (let k = 0; k < ${n}; k++) { sum += a[this.thread.y][k] * b[k][this.thread.x]; } return sum; }`,
  output: [n, n],
  operands: [
    { name: 'a', shape: [n, n] },
    { name: 'b', shape: [n, n] },
  ],
});

/** The micro conv (3×3, stride 1, padding 1, NCHW × OIHW): thread (x, y, z) = (column, row, n·C + output channel). */
export function naiveConv3x3(m: MicroSizes): NaiveKernel {
  const { convBatch: n, convChannels: c, convSize: s } = m;
  return {
    name: 'naive-conv3x3',
    source: `function(x, w) {
  const n = Math.floor(this.thread.z / ${c}.0);
  const co = this.thread.z - n * ${c}.0;
  let sum = 0.0;
  for (let ci = 0; ci < ${c}; ci++) {
    for (let ky = 0; ky < 3; ky++) {
      const iy = this.thread.y + ky - 1.0;
      for (let kx = 0; kx < 3; kx++) {
        const ix = this.thread.x + kx - 1.0;
        if (iy >= 0.0 && iy < ${s}.0 && ix >= 0.0 && ix < ${s}.0) {
          sum += x[((n * ${c}.0 + ci) * ${s}.0 + iy) * ${s}.0 + ix] * w[((co * ${c}.0 + ci) * 3.0 + ky) * 3.0 + kx];
        }
      }
    }
  }
  return sum;
}`,
    output: [s, s, n * c],
    operands: [
      { name: 'x', shape: [n * c * s * s] },
      { name: 'w', shape: [c * c * 9] },
    ],
  };
}

/**
 * The reference column: a naive kernel (`naiveMatmul`, `naiveConv3x3`) on the same backend and Device layer as
 * ours (same kernel settings, operands resident, same synchronization).
 */
export async function benchNaive(naive: NaiveKernel, data: Readonly<Record<string, Float32Array>>, backend: BackendName, policy: IterationPolicy): Promise<{ readonly timing: Timing; readonly firstRunMs: number; readonly output: Float32Array }> {
  const opened = await Device.open(backend);
  const device = E.isLeft(opened) ? fail(`open ${backend}`, formatDeviceError(opened.left)) : opened.right;
  try {
    const kernel = device.buildKernel({
      name: naive.name,
      source: naive.source,
      output: naive.output,
      argumentTypes: Object.fromEntries(naive.operands.map((o) => [o.name, 'Array' as const])),
      returnType: 'Number',
    });
    const k = E.isLeft(kernel) ? fail(`build ${naive.name}`, formatDeviceError(kernel.left)) : kernel.right;
    const handles: DeviceHandle[] = [];
    for (const o of naive.operands) {
      const v = data[o.name];
      if (v === undefined) return fail(naive.name, `no data for operand '${o.name}'`);
      const h = await device.upload(v, o.shape);
      handles.push(E.isLeft(h) ? fail('upload', formatDeviceError(h.left)) : h.right);
    }
    let last: DeviceHandle | null = null;
    const once = async (): Promise<void> => {
      if (last !== null) device.free(last);
      const r = await device.launch(k, handles);
      last = E.isLeft(r) ? fail(`${naive.name} launch`, formatDeviceError(r.left)) : r.right;
      await synchronize(device.synchronize(last).then(E.mapLeft(formatDeviceError)));
    };
    const { timing, firstRunMs } = await timeAdaptive(once, policy);
    const final = last as DeviceHandle | null;
    if (final === null) return fail(naive.name, 'no run happened');
    const read = await device.read(final);
    return { timing, firstRunMs, output: E.isLeft(read) ? fail(`${naive.name} readback`, formatDeviceError(read.left)) : read.right };
  } finally {
    await device.dispose();
  }
}

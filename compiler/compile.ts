// The public compiler API, in the JAX spirit: `plan` is the pure part (graph → kernels + memory plan),
// `compile` builds the kernels on a device and returns an Executable whose inputs and outputs stay on
// the device; only what the caller reads comes back.
import * as E from 'fp-ts/lib/Either.js';
import { kernelSignature, kernelSource } from './targets/gpujs/render.ts';
import { kernelDispatch } from './targets/gpujs/dispatch.ts';
import { gpujsTarget } from './targets/gpujs/target.ts';
import type { Target } from './target.ts';
import { SourceCache } from './runtime/cache.ts';
import { stopGradient } from './build.ts';
import { makeGraph, numel, showShape, type Graph, type Node } from './ir.ts';
import { describeOversize, planMemory, type MemoryPlan } from './memplan.ts';
import { optimize } from './passes/index.ts';
import { splitReductions } from './passes/splitReductions.ts';
import { chooseBackend } from './runtime/backend.ts';
import { Device, DeviceHandle, WgslKernel, type DeviceKernel, type LiveHandles } from './runtime/device.ts';
import { renderWgsl } from './targets/webgpu/render.ts';
import { webgpuTarget } from './targets/webgpu/target.ts';
import type { Tiling } from './targets/webgpu/tiles.ts';
import { compileWasm } from './targets/wasm/compile.ts';
import { formatDeviceError, type BackendName, type DeviceError } from './runtime/errors.ts';
import { schedule, type KernelPlan } from './schedule.ts';
import { formatShapeErrors, typecheck } from './typecheck.ts';

export interface ProgramPlan {
  readonly graph: Graph;
  readonly kernels: readonly KernelPlan[];
  readonly sources: readonly string[];
  readonly memory: MemoryPlan;
  /** Caller-bound leaves (params and inputs), by name. */
  readonly bindings: ReadonlyMap<string, Node>;
  /** Tensors over the limits (only with `allowOversize`; such a plan cannot run). */
  readonly oversize: readonly Node[];
}

export interface PlanOptions {
  /** Plan even when tensors exceed the limits (listed in `oversize`): to report what a config would need. */
  readonly allowOversize?: boolean;
  /** Generated sources on disk, keyed by kernel structure, so that a second process skips code generation. */
  readonly sourceCache?: SourceCache;
  /**
   * Index tensors of at least this many elements symbolically (integer reads from coordinates). The default,
   * 2^24, is where float indices stop being exact; tests lower it to put every lowering rule through that path.
   */
  readonly symbolicIndexFrom?: number;
  /** The target whose limits and schedule choices apply (gpu.js by default). */
  readonly target?: Target;
}

/** Typecheck, optimize, fuse, schedule, generate sources and plan memory. Pure apart from the optional source cache. */
export function plan(graph: Graph, limits: { maxBufferBytes: number } = { maxBufferBytes: 2 ** 31 }, options: PlanOptions = {}): E.Either<string, ProgramPlan> {
  const { sourceCache, symbolicIndexFrom } = options;
  const target = options.target ?? gpujsTarget;
  const checked = typecheck(graph);
  if (E.isLeft(checked)) return E.left(`the graph does not typecheck:\n${formatShapeErrors(checked.left)}`);
  // An output that is (or simplifies to) a bound leaf gets its own copy, so the caller never receives its own
  // buffer back; so does one whose kernel is worth register-tiling, so the caller reads the plain layout.
  // Outputs that are the same node share one handle.
  const optimized = splitReductions(target.rewrite(optimize(target.chooseAlgorithms(graph))));
  const copied = (n: Node): boolean => n.op === 'param' || n.op === 'input' || target.tileAxis(n) !== null;
  const g = makeGraph(Object.fromEntries(Object.entries(optimized.outputs).map(([k, n]) => [k, copied(n) ? stopGradient(n) : n])));
  const { kernels } = schedule(g, target);
  const memory = planMemory(g, kernels);
  const tooBig = target.oversize(g, kernels, limits);
  if (tooBig.length > 0 && options.allowOversize !== true) {
    return E.left(`memory plan (peak ${memory.peakBytes} bytes): ${describeOversize(tooBig, target.limitsText(limits))}`);
  }
  const bindings = new Map<string, Node>();
  for (const n of g.nodes) {
    if (n.op !== 'param' && n.op !== 'input') continue;
    const name = (n.params as { name: string }).name;
    const prev = bindings.get(name);
    if (prev !== undefined && prev !== n) return E.left(`two different leaves are named '${name}' (${showShape(prev.shape)} and ${showShape(n.shape)})`);
    bindings.set(name, n);
  }
  const sources: string[] = [];
  for (const k of kernels) {
    // wasm renders at compile time, from the plan itself, and so do the webgpu target's WGSL templates; their
    // structural signature stands for the source here
    const template = target.name === 'wasm' || [k.root, ...k.inlined].some((n) => target.bufferOperands(n));
    const generate = () => (template ? kernelSignature(k) : kernelSource(k, symbolicIndexFrom));
    const cached = sourceCache === undefined ? E.right({ source: generate() }) : sourceCache.getOrGenerate(kernelSignature(k, symbolicIndexFrom), generate);
    if (E.isLeft(cached)) return cached;
    sources.push(cached.right.source);
  }
  return E.right({ graph: g, kernels, sources, memory, bindings, oversize: tooBig });
}

export interface CompileOptions {
  readonly backend?: BackendName | 'auto';
  /** Progress of the warm-up (one call per kernel built), e.g. for a progress line. */
  readonly onProgress?: (done: number, total: number) => void;
  /** Directory of the on-disk kernel-source cache (e.g. `.cache/kernels`); none by default. */
  readonly sourceCacheDir?: string;
  /** Print the backend choice and why others were skipped (default: silent). */
  readonly log?: (line: string) => void;
  /** See `PlanOptions.symbolicIndexFrom` (a testing knob). */
  readonly symbolicIndexFrom?: number;
  /** wasm: threads that run each kernel (the main one included); all cores by default. */
  readonly threads?: number;
  /** wasm: launches with less work than this stay on one thread (a testing knob: 0 splits every launch). */
  readonly splitFromWork?: number;
  /** webgpu: every WGSL contraction uses this tiling instead of the target's choice (a testing knob). */
  readonly wgslTiling?: Tiling;
}

export type RunInputs = Readonly<Record<string, DeviceHandle | Float32Array>>;

/** What callers of an Executable may do with its device: free the outputs they keep, and count what is live. */
export interface ExecutableDevice {
  readonly backend: BackendName;
  free(handle: DeviceHandle): void;
  liveHandles(): LiveHandles;
}

export interface Executable {
  readonly backend: BackendName;
  readonly device: ExecutableDevice;
  readonly plan: ProgramPlan;
  /** Distinct gpu.js kernels built (structurally identical kernels share one). */
  readonly builtKernels: number;
  /**
   * Run once. Host arrays are uploaded (and freed after the run); device handles are used in place. Outputs stay
   * on the device. `afterLaunch`, when given, is awaited after every kernel launch with the kernel's index in
   * `plan.kernels` and its output (a profiler synchronizes there).
   */
  run(inputs: RunInputs, afterLaunch?: AfterLaunch): Promise<E.Either<string, Record<string, DeviceHandle>>>;
  upload(name: string, data: Float32Array): Promise<E.Either<string, DeviceHandle>>;
  read(handle: DeviceHandle): Promise<E.Either<string, Float32Array>>;
  /** Waits until `handle` and everything queued before it is computed (a no-op where launches are synchronous). */
  synchronize(handle: DeviceHandle): Promise<E.Either<string, void>>;
  /**
   * One step with donated state, as JAX's `donate_argnums`: runs on `state` (device handles by input name) and
   * `inputs`, reads the outputs named in `read` to the host, and returns the new state (each output named like a
   * state entry replaces it; the others pass through). The replaced state and every output not kept are freed, so a
   * training loop never frees a buffer by hand. On a failure the given state is left as it was.
   */
  step(state: Readonly<Record<string, DeviceHandle>>, inputs: RunInputs, read?: readonly string[], afterLaunch?: AfterLaunch): Promise<E.Either<string, StepResult>>;
  dispose(): Promise<void>;
}

export type AfterLaunch = (kernel: number, output: DeviceHandle) => Promise<void>;

export interface StepResult {
  readonly state: Record<string, DeviceHandle>;
  readonly values: Record<string, Float32Array>;
}

/** `Executable.step` for any target, from its run, read and free. */
export function donatingStep(exe: Pick<Executable, 'run' | 'read' | 'device'>): Executable['step'] {
  return async (state, inputs, read = [], afterLaunch) => {
    const out = await exe.run({ ...inputs, ...state }, afterLaunch);
    if (E.isLeft(out)) return out;
    const values: Record<string, Float32Array> = {};
    let failure: string | undefined;
    for (const name of read) {
      const h = out.right[name];
      const r = h === undefined ? E.left(`the program has no output '${name}'`) : await exe.read(h);
      if (E.isLeft(r)) {
        failure = `reading '${name}': ${r.left}`;
        break;
      }
      values[name] = r.right;
    }
    const next: Record<string, DeviceHandle> = {};
    for (const name of Object.keys(state)) if (out.right[name] !== undefined) next[name] = out.right[name];
    const kept = new Set(Object.values(next));
    // Outputs that are the same node share one handle: free each once, and none that becomes state.
    for (const h of new Set(Object.values(out.right))) if (!kept.has(h)) exe.device.free(h);
    if (failure !== undefined) {
      for (const h of kept) exe.device.free(h);
      return E.left(failure);
    }
    for (const name of Object.keys(next)) exe.device.free(state[name]);
    return E.right({ state: { ...state, ...next }, values });
  };
}

const devErr = (e: DeviceError): string => formatDeviceError(e);

/** Compile a graph for a backend ('auto' picks the best available). Kernels are built during a warm-up. */
export async function compile(graph: Graph, options: CompileOptions = {}): Promise<E.Either<string, Executable>> {
  const choice = await chooseBackend(options.backend ?? 'auto');
  if (E.isLeft(choice)) return E.left(devErr(choice.left));
  for (const line of choice.right.explanation) options.log?.(line);
  if (choice.right.backend === 'wasm') return compileWasm(graph, options);
  const opened = await Device.open(choice.right.backend);
  if (E.isLeft(opened)) return E.left(devErr(opened.left));
  const device = opened.right;
  const grant = device.webgpuGrant();
  if (grant !== null) {
    const l = grant.limits;
    options.log?.(
      `webgpu device granted: ${l.maxStorageBuffersPerShaderStage} storage buffers per stage, ${l.maxComputeWorkgroupStorageSize} B workgroup memory, ` +
        `${l.maxComputeInvocationsPerWorkgroup} invocations per workgroup, ${l.maxStorageBufferBindingSize} B per binding; features: ${grant.features.join(', ') || 'none'}`,
    );
  }
  // On webgpu the contractions are WGSL templates on gpu.js's device; every other kernel is gpu.js's.
  const target = grant === null ? gpujsTarget : webgpuTarget(device.limits().maxArrayInputs);
  const software = grant !== null && SOFTWARE_ADAPTER.test(grant.adapter);
  const cache = options.sourceCacheDir === undefined ? undefined : new SourceCache(options.sourceCacheDir);
  const planned = plan(graph, device.limits(), { target, sourceCache: cache, ...(options.symbolicIndexFrom === undefined ? {} : { symbolicIndexFrom: options.symbolicIndexFrom }) });
  if (cache !== undefined) {
    const st = cache.stats();
    options.log?.(`kernel sources: ${st.hits} from the cache in ${options.sourceCacheDir}, ${st.misses} generated`);
  }
  if (E.isLeft(planned)) {
    await device.dispose();
    return planned;
  }
  const p = planned.right;
  const kernels: (DeviceKernel | WgslKernel)[] = [];
  for (let k = 0; k < p.kernels.length; k++) {
    const kp = p.kernels[k];
    const name = `${kp.root.layer === '' ? '' : `${kp.root.layer}/`}${kp.root.op}#${k}`;
    const wgsl = target.name === 'webgpu' ? renderWgsl(kp, { software, subgroupSize: grant?.subgroupSize ?? null, ...(options.wgslTiling === undefined ? {} : { tiling: options.wgslTiling }) }) : null;
    if (wgsl !== null) {
      const built = await device.buildWgsl({ name, code: wgsl.code, workgroups: wgsl.workgroups, outputElements: wgsl.outputElements, operands: wgsl.operands });
      if (E.isLeft(built)) {
        await device.dispose();
        return E.left(devErr(built.left));
      }
      kernels.push(built.right);
      continue;
    }
    const built = device.buildKernel({
      name,
      source: p.sources[k],
      output: kernelDispatch(kp.root.shape, kp.tile).output,
      resultShape: [numel(kp.root.shape)],
      argumentTypes: Object.fromEntries(kp.args.map((_a, j) => [`a${j}`, 'Array' as const])),
      argumentSizes: Object.fromEntries(kp.args.map((a, j) => [`a${j}`, numel(a.shape)])),
      returnType: kp.tile === null ? 'Number' : 'Array(4)',
    });
    if (E.isLeft(built)) {
      await device.dispose();
      return E.left(devErr(built.left));
    }
    kernels.push(built.right);
  }
  const exe = makeExecutable(device, p, kernels);
  // Warm-up: gpu.js translates and compiles lazily, on a kernel's first launch; run each once on zeros.
  const warm = await warmUp(device, p, kernels, options.onProgress);
  if (E.isLeft(warm)) {
    await device.dispose();
    return warm;
  }
  return E.right(exe);
}

/** Adapters that emulate a GPU on the CPU (their WGSL tiles are chosen for SIMD lanes, not for SMs). */
const SOFTWARE_ADAPTER = /llvmpipe|lavapipe|swiftshader|software/i;

/** What a kernel's build is shared by: structurally identical kernels launch one gpu.js kernel or one pipeline. */
const buildOf = (k: DeviceKernel | WgslKernel): unknown => (k instanceof WgslKernel ? k.pipeline : k.compiled);

const launchOn = (device: Device, k: DeviceKernel | WgslKernel, args: readonly DeviceHandle[]) => (k instanceof WgslKernel ? device.launchWgsl(k, args) : device.launch(k, args));

async function warmUp(device: Device, p: ProgramPlan, kernels: readonly (DeviceKernel | WgslKernel)[], onProgress?: (done: number, total: number) => void): Promise<E.Either<string, void>> {
  const seen = new Set<unknown>();
  const todo = kernels.filter((k) => (seen.has(buildOf(k)) ? false : (seen.add(buildOf(k)), true)));
  let done = 0;
  for (const k of todo) {
    const plan = p.kernels[kernels.indexOf(k)];
    const args: DeviceHandle[] = [];
    for (const a of plan.args) {
      const h = await device.upload(new Float32Array(numel(a.shape)), [numel(a.shape)]);
      if (E.isLeft(h)) return E.left(devErr(h.left));
      args.push(h.right);
    }
    const out = k instanceof WgslKernel ? await device.launchWgsl(k, args, true) : await device.launch(k, args);
    for (const h of args) device.free(h);
    if (E.isLeft(out)) return E.left(`${devErr(out.left)}\n--- kernel source ---\n${k instanceof WgslKernel ? k.spec.code : k.spec.source}`);
    device.free(out.right);
    onProgress?.(++done, todo.length);
  }
  return E.right(undefined);
}

function makeExecutable(device: Device, p: ProgramPlan, kernels: readonly (DeviceKernel | WgslKernel)[]): Executable {
  const upload = async (name: string, data: Float32Array): Promise<E.Either<string, DeviceHandle>> => {
    const leaf = p.bindings.get(name);
    if (leaf !== undefined && data.length !== numel(leaf.shape))
      return E.left(`'${name}' has ${data.length} elements, the program expects ${showShape(leaf.shape)} = ${numel(leaf.shape)}`);
    const h = await device.upload(data, [data.length]);
    return E.isLeft(h) ? E.left(devErr(h.left)) : h;
  };
  const leafIds = new Set([...p.bindings.values()].map((l) => l.id));
  const exe: Omit<Executable, 'step'> = {
    backend: device.backend,
    device,
    plan: p,
    builtKernels: new Set(kernels.map(buildOf)).size,
    upload,
    read: async (h) => {
      const r = await device.read(h);
      return E.isLeft(r) ? E.left(devErr(r.left)) : r;
    },
    synchronize: async (h) => {
      const r = await device.synchronize(h);
      return E.isLeft(r) ? E.left(devErr(r.left)) : r;
    },
    dispose: () => device.dispose(),
    run: async (inputs, afterLaunch) => {
      const buffers = new Map<number, DeviceHandle>();
      const uploaded: DeviceHandle[] = [];
      const cleanup = () => {
        for (const h of uploaded) device.free(h);
      };
      for (const [name, leaf] of p.bindings) {
        const v = inputs[name];
        if (v === undefined) {
          cleanup();
          return E.left(`no value bound for '${name}' ${showShape(leaf.shape)}`);
        }
        if (v instanceof DeviceHandle) {
          if (v.byteLength !== numel(leaf.shape) * 4) {
            cleanup();
            return E.left(`'${name}' is bound to a device buffer of ${v.byteLength / 4} elements, the program expects ${showShape(leaf.shape)}`);
          }
          buffers.set(leaf.id, v);
        } else {
          const h = await upload(name, v);
          if (E.isLeft(h)) {
            cleanup();
            return h;
          }
          uploaded.push(h.right);
          buffers.set(leaf.id, h.right);
        }
      }
      for (const step of p.memory.steps) {
        if (step.kind === 'free') {
          const h = buffers.get(step.node);
          if (h !== undefined) device.free(h);
          buffers.delete(step.node);
          continue;
        }
        const kp = p.kernels[step.kernel];
        const out = await launchOn(device, kernels[step.kernel], kp.args.map((a) => buffers.get(a.id) as DeviceHandle));
        if (E.isLeft(out)) {
          // Free what this run produced so far; the caller's buffers stay untouched.
          for (const [id, h] of buffers) if (!leafIds.has(id)) device.free(h);
          cleanup();
          return E.left(devErr(out.left));
        }
        buffers.set(kp.root.id, out.right);
        await afterLaunch?.(step.kernel, out.right);
      }
      const result: Record<string, DeviceHandle> = {};
      for (const [name, node] of Object.entries(p.graph.outputs)) result[name] = buffers.get(node.id) as DeviceHandle;
      cleanup();
      return E.right(result);
    },
  };
  return { ...exe, step: donatingStep(exe) };
}

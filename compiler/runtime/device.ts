// A Device wraps one gpu.js `GPU` instance on one backend and owns every buffer made on it. Kernels take and
// return DeviceHandles that stay on the device between launches; only `read` brings data back, asynchronously
// (WebGPU has no synchronous readback). Every handle is counted until it is freed, so leaks show in
// `liveHandles()`. Failures of the device or of a kernel are DeviceError values; misuse (wrong arity, a freed
// handle, a handle from another device) is a programmer error and throws.
//
// Layout convention: shapes are gpu.js shapes, [x] | [x, y] | [x, y, z] with x fastest (the same order as a
// kernel's `output`), and a buffer is the row-major flattening `x + X * (y + Y * z)`. A kernel that returns
// `Array(4)` yields a handle of shape [4x, y, z]: component c of thread (x, y, z) sits at x' = 4x + c, so the next
// kernel reads it as an ordinary scalar tensor on every backend.
import { constants as bufferConstants } from 'node:buffer';
import * as E from 'fp-ts/lib/Either.js';
import { canonicalKernelSource, KernelCache, kernelCacheKey, type CacheStats } from './cache.ts';
import { deviceError, type BackendName, type DeviceError } from './errors.ts';
import {
  GPU_MAP_READ,
  GPU_USAGE,
  gpujs,
  installWebGpuNavigator,
  type GpuBindGroupLayout,
  type GpuComputePipeline,
  type GpuJsBufferResult,
  type GpuJsInput,
  type GpuJsInstance,
  type GpuJsKernelRun,
  type WebGpuContextRecord,
} from './gpujs.ts';

export type KernelShape = readonly [number] | readonly [number, number] | readonly [number, number, number];
export type KernelArgumentType = 'Array' | 'Float' | 'Integer';
export type KernelReturnType = 'Number' | 'Array(4)';

export interface KernelSpec {
  /** used in error messages; structurally identical kernels share one build whatever their names */
  readonly name?: string;
  /** a gpu.js kernel function source, `function (a, b) { ... return ...; }`, loops with literal bounds */
  readonly source: string;
  readonly output: KernelShape;
  /** one entry per parameter, in parameter order (gpu.js matches them by position) */
  readonly argumentTypes: Readonly<Record<string, KernelArgumentType>>;
  readonly returnType: KernelReturnType;
  /** scalar constants, read in the source as `this.constants.name` and baked in at build */
  readonly constants?: Readonly<Record<string, number>>;
  /**
   * Element count of each 'Array' argument. gpu.js specializes a built kernel to the sizes of its first launch,
   * so kernels that share a source but read arrays of other sizes must not share a build; with this set they
   * do not, and a launch with other sizes is refused with a clear message. Without it, one build per source.
   */
  readonly argumentSizes?: Readonly<Record<string, number>>;
  /**
   * The shape result handles carry, when it differs from `output` (x widened by the components): e.g. a flat
   * [X·Y] for a kernel dispatched as [X, Y], whose results consumers index with one flat index. Same bytes.
   */
  readonly resultShape?: KernelShape;
}

/**
 * The settings the design fixes for every kernel. `dynamicOutput`/`dynamicArguments` stay off because shapes are
 * static; `loopMaxIterations` is left unset because generated loops have literal bounds.
 */
export const FIXED_KERNEL_SETTINGS = Object.freeze({
  precision: 'single',
  tactic: 'precision',
  pipeline: true,
  immutable: true,
  dynamicOutput: false,
  dynamicArguments: false,
  asyncMode: true,
} as const);

export interface DeviceLimits {
  readonly backend: BackendName;
  /** largest single tensor in bytes (WebGPU: min(maxStorageBufferBindingSize, maxBufferSize)) */
  readonly maxBufferBytes: number;
  /** all arrays of one kernel together (webasm places inputs and output in one wasm32 memory) */
  readonly maxKernelBytes: number;
  /** array arguments per kernel (WebGPU: storage buffers per stage minus the output) */
  readonly maxArrayInputs: number;
  /** WebGPU: workgroups per dispatch dimension (gpu.js uses 8×8 groups for 2-D/3-D, 64 for 1-D outputs) */
  readonly maxWorkgroupsPerDimension: number;
}

type Payload =
  | { readonly kind: 'host'; readonly data: Float32Array }
  | { readonly kind: 'webgpu'; readonly result: GpuJsBufferResult };

/** A tensor resident on a Device. Opaque: its data is reachable only through `Device.read`. */
export class DeviceHandle {
  /** @param id unique per device, for messages */
  constructor(
    readonly id: number,
    readonly shape: KernelShape,
    readonly byteLength: number,
    private readonly owner: object,
  ) {}

  get device(): object {
    return this.owner;
  }
}

/** One gpu.js kernel as built; shared by every DeviceKernel with the same cache key. */
export class CompiledKernel {
  launches = 0;
  constructor(
    readonly key: string,
    readonly device: Device,
    readonly source: string,
    readonly run: GpuJsKernelRun,
  ) {}

  /** What gpu.js generated (WGSL on webgpu) once the kernel has run; null before the first launch or when not exposed. */
  compiledSource(): string | null {
    const compiled = this.run.kernel.compiledSource;
    return typeof compiled === 'string' ? compiled : null;
  }
}

export class DeviceKernel {
  constructor(
    readonly name: string,
    readonly spec: KernelSpec,
    readonly argumentNames: ReadonlyArray<string>,
    readonly compiled: CompiledKernel,
    readonly resultShape: KernelShape,
  ) {}
}

/**
 * A compute shader of our own (the webgpu target's WGSL contraction templates), run on gpu.js's GPUDevice: it binds
 * the argument buffers (read-only storage, bindings 0…n−1, in `operands` order) and a fresh output buffer (binding
 * n) of `outputElements` floats, which is handed back wrapped as a gpu.js buffer result, so gpu.js kernels read it.
 */
export interface WgslSpec {
  readonly name: string;
  readonly code: string;
  readonly workgroups: readonly [number, number, number];
  readonly outputElements: number;
  /** Per binding, the launch argument it takes. */
  readonly operands: readonly number[];
}

export class WgslKernel {
  launches = 0;
  constructor(
    readonly name: string,
    readonly spec: WgslSpec,
    readonly device: Device,
    readonly pipeline: GpuComputePipeline,
    readonly layout: GpuBindGroupLayout,
  ) {}
}

export interface LiveHandles {
  readonly count: number;
  readonly bytes: number;
}

const modeOf: Record<BackendName, string> = { webgpu: 'webgpu', headlessgl: 'headlessgl', webasm: 'webasm', cpu: 'cpu', wasm: 'wasm' };

const product = (shape: ReadonlyArray<number>): number => shape.reduce((a, b) => a * b, 1);

const isValidShape = (shape: ReadonlyArray<number>): boolean =>
  shape.length >= 1 && shape.length <= 3 && shape.every((n) => Number.isInteger(n) && n > 0);

const widen = (shape: KernelShape, factor: number): KernelShape =>
  (shape.length === 1 ? [shape[0] * factor] : shape.length === 2 ? [shape[0] * factor, shape[1]] : [shape[0] * factor, shape[1], shape[2]]);

/** gpu.js shapes its results as nested rows of Float32Array views; flatten them (without a copy when contiguous). */
function flattenKernelValue(value: unknown, length: number): Float32Array | null {
  const leaves: Float32Array[] = [];
  const collect = (node: unknown): boolean => {
    if (node instanceof Float32Array) {
      leaves.push(node);
      return true;
    }
    if (Array.isArray(node)) return node.every(collect);
    return false;
  };
  if (!collect(value)) return null;
  const total = leaves.reduce((sum, leaf) => sum + leaf.length, 0);
  if (total !== length || leaves.length === 0) return null;
  const first = leaves[0] as Float32Array;
  let contiguous = true;
  let expectedOffset = first.byteOffset;
  for (const leaf of leaves) {
    if (leaf.buffer !== first.buffer || leaf.byteOffset !== expectedOffset) {
      contiguous = false;
      break;
    }
    expectedOffset += leaf.byteLength;
  }
  if (contiguous) return new Float32Array(first.buffer, first.byteOffset, length);
  const flat = new Float32Array(length);
  let offset = 0;
  for (const leaf of leaves) {
    flat.set(leaf, offset);
    offset += leaf.length;
  }
  return flat;
}

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/** Sorts a gpu.js failure into the DeviceError kinds by the messages gpu.js 2.24.1 uses for each case. */
function classifyFailure(backend: BackendName, kernel: string, error: unknown): DeviceError {
  const message = messageOf(error);
  if (/device was lost|device lost/i.test(message)) return deviceError('lost', backend, message, kernel);
  if (/bytes but this device allows|over this device's limit|maxStorageBuffersPerShaderStage|Maximum call stack|out of memory/i.test(message)) {
    return deviceError('limits', backend, message, kernel);
  }
  return deviceError('kernel', backend, message.length > 4000 ? `${message.slice(0, 4000)}…` : message, kernel);
}

let openWebGpuDevices = 0;

export class Device {
  private readonly gpu: GpuJsInstance;
  private readonly cache = new KernelCache<CompiledKernel>();
  private readonly pipelines = new Map<string, Promise<E.Either<DeviceError, { pipeline: GpuComputePipeline; layout: GpuBindGroupLayout }>>>();
  private readonly payloads = new Map<number, { readonly handle: DeviceHandle; readonly payload: Payload }>();
  private readonly uploadKernels = new Map<string, DeviceKernel>();
  private nextHandleId = 1;
  private liveBytes = 0;
  private disposed = false;

  private constructor(
    readonly backend: BackendName,
    private readonly webgpuContext: WebGpuContextRecord | null,
  ) {
    this.gpu = new gpujs.GPU({ mode: modeOf[backend] });
  }

  /**
   * Opens a device on `backend`. WebGPU acquires gpu.js's shared GPUDevice here (so limits are known before any
   * kernel is built); an unusable backend is an 'unavailable' error value.
   */
  static async open(backend: BackendName): Promise<E.Either<DeviceError, Device>> {
    if (backend === 'headlessgl') {
      return E.left(deviceError('unavailable', backend, 'this runtime has no verified headless-gl path (see backend.ts probe); use webgpu, webasm or cpu'));
    }
    if (backend === 'webasm' && !gpujs.WebAssemblyKernel.isSupported) {
      return E.left(deviceError('unavailable', backend, 'WebAssembly is not available in this JavaScript engine'));
    }
    if (backend !== 'webgpu') return E.right(new Device(backend, null));
    const loadError = await installWebGpuNavigator();
    if (loadError !== null) return E.left(deviceError('unavailable', backend, `the \`webgpu\` (Dawn) package failed to load: ${loadError}`));
    try {
      const context = await gpujs.WebGPUContext.acquire();
      openWebGpuDevices += 1;
      return E.right(new Device(backend, context));
    } catch (error) {
      return E.left(deviceError('unavailable', backend, messageOf(error)));
    }
  }

  limits(): DeviceLimits {
    if (this.webgpuContext !== null) {
      const limits = this.webgpuContext.device.limits;
      const maxBufferBytes = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
      return {
        backend: this.backend,
        maxBufferBytes,
        maxKernelBytes: Number.POSITIVE_INFINITY,
        // gpu.js binds: uniform params, one read-only storage buffer per array argument, one output buffer
        maxArrayInputs: limits.maxStorageBuffersPerShaderStage - 1,
        maxWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
      };
    }
    const hostMax = Math.min(bufferConstants.MAX_LENGTH, Number.MAX_SAFE_INTEGER);
    return {
      backend: this.backend,
      maxBufferBytes: this.backend === 'webasm' ? 2 ** 32 - 17 * 65536 : hostMax,
      // gpu.js sizes one wasm32 memory for [args | constants | output] plus 16 spare pages; wasm32 caps it at 4 GiB
      maxKernelBytes: this.backend === 'webasm' ? 2 ** 32 - 17 * 65536 : Number.POSITIVE_INFINITY,
      maxArrayInputs: Number.POSITIVE_INFINITY,
      maxWorkgroupsPerDimension: Number.POSITIVE_INFINITY,
    };
  }

  /** WebGPU: what the device was granted (limits the templates use, optional features), for the backend line. */
  webgpuGrant(): {
    readonly limits: Readonly<Record<string, number>>;
    readonly features: readonly string[];
    readonly adapter: string;
    /** The subgroup size when the adapter has one fixed size (min = max) and the device has `subgroups`; else null. */
    readonly subgroupSize: number | null;
  } | null {
    if (this.webgpuContext === null) return null;
    const l = this.webgpuContext.device.limits;
    const info = this.webgpuContext.adapter.info ?? {};
    return {
      limits: {
        maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
        maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
        maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
        maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
        maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      },
      features: [...this.webgpuContext.device.features].sort(),
      subgroupSize: this.webgpuContext.device.features.has('subgroups') && info.subgroupMinSize !== undefined && info.subgroupMinSize === info.subgroupMaxSize ? info.subgroupMinSize : null,
      adapter: [info.vendor, info.architecture, info.device, info.description].filter((p) => p !== undefined && p !== '').join(' / '),
    };
  }

  liveHandles(): LiveHandles {
    return { count: this.payloads.size, bytes: this.liveBytes };
  }

  cacheStats(): CacheStats {
    return this.cache.stats();
  }

  private lostError(kernel?: string): DeviceError | null {
    if (this.webgpuContext !== null && this.webgpuContext.isLost) {
      return deviceError('lost', this.backend, 'the WebGPU device was lost; every handle on it is gone — open a new Device and restore from a checkpoint', kernel);
    }
    return null;
  }

  private assertOpen(): void {
    if (this.disposed) throw new Error(`Device(${this.backend}) was disposed; open a new one`);
  }

  /**
   * Validates `spec` and returns a kernel bound to this device. Structurally identical specs (same canonical
   * source, output, types, constants) share one gpu.js kernel. gpu.js translates and compiles lazily, so
   * translation/compilation errors surface as 'kernel' errors from the first `launch`.
   */
  buildKernel(spec: KernelSpec): E.Either<DeviceError, DeviceKernel> {
    this.assertOpen();
    const source = canonicalKernelSource(spec.source);
    const name = spec.name ?? `kernel_${kernelCacheKey({ backend: this.backend, source, settings: {} }).slice(0, 8)}`;
    const fail = (kind: DeviceError['kind'], message: string): E.Either<DeviceError, DeviceKernel> =>
      E.left(deviceError(kind, this.backend, message, name));
    if (!source.startsWith('function(')) {
      return fail('kernel', `source must be a \`function (...) { ... }\` string (gpu.js rejects arrows and bare bodies); got "${source.slice(0, 60)}"`);
    }
    if (!isValidShape(spec.output)) return fail('kernel', `output [${spec.output.join(', ')}] must be 1 to 3 positive integers`);
    const argumentNames = gpujs.utils.getArgumentNamesFromString(source);
    const declared = Object.keys(spec.argumentTypes);
    if (argumentNames.join(',') !== declared.join(',')) {
      return fail('kernel', `argumentTypes names [${declared.join(', ')}] must match the source's parameters [${argumentNames.join(', ')}] in order`);
    }
    const limits = this.limits();
    const arrayCount = declared.filter((argument) => spec.argumentTypes[argument] === 'Array').length;
    if (arrayCount > limits.maxArrayInputs) {
      return fail('limits', `${arrayCount} array inputs exceed this ${this.backend} device's ${limits.maxArrayInputs} per kernel; split the kernel`);
    }
    const components = spec.returnType === 'Array(4)' ? 4 : 1;
    const outputBytes = product(spec.output) * components * 4;
    if (outputBytes > limits.maxBufferBytes) {
      return fail('limits', `output [${spec.output.join(', ')}]${components === 4 ? '×4' : ''} needs ${outputBytes} bytes; this ${this.backend} device allows ${limits.maxBufferBytes} per buffer`);
    }
    const settings = {
      ...FIXED_KERNEL_SETTINGS,
      output: [...spec.output],
      // cpu/webasm receive arrays as gpu.js `Input` (flat data + size); webgpu binds its pipeline buffers
      // to any declared array type, so one declaration serves every backend
      argumentTypes: Object.fromEntries(declared.map((argument) => [argument, spec.argumentTypes[argument] === 'Array' ? 'Input' : spec.argumentTypes[argument]])),
      returnType: spec.returnType,
      ...(spec.constants === undefined ? {} : { constants: { ...spec.constants } }),
    };
    const key = kernelCacheKey({ backend: this.backend, source, settings, argumentSizes: spec.argumentSizes });
    const { value: compiled } = this.cache.getOrCreate(key, () => new CompiledKernel(key, this, source, this.gpu.createKernel(source, settings)));
    const resultShape = spec.resultShape ?? widen(spec.output, components);
    if (!isValidShape(resultShape) || product(resultShape) !== product(spec.output) * components) {
      return fail('kernel', `resultShape [${resultShape.join(', ')}] must hold the ${product(spec.output) * components} values of output [${spec.output.join(', ')}]${components === 4 ? '×4' : ''}`);
    }
    return E.right(new DeviceKernel(name, spec, argumentNames, compiled, resultShape));
  }

  private register(shape: KernelShape, payload: Payload): DeviceHandle {
    const handle = new DeviceHandle(this.nextHandleId++, shape, product(shape) * 4, this);
    this.payloads.set(handle.id, { handle, payload });
    this.liveBytes += handle.byteLength;
    return handle;
  }

  private payloadOf(handle: DeviceHandle, use: string): Payload {
    if (handle.device !== this) throw new Error(`${use}: handle #${handle.id} belongs to another device`);
    const entry = this.payloads.get(handle.id);
    if (entry === undefined) throw new Error(`${use}: handle #${handle.id} [${handle.shape.join(', ')}] was already freed`);
    return entry.payload;
  }

  /** Copies `data` onto the device as a tensor of `shape` (x fastest). */
  async upload(data: Float32Array, shape: KernelShape): Promise<E.Either<DeviceError, DeviceHandle>> {
    this.assertOpen();
    if (!isValidShape(shape) || product(shape) !== data.length) {
      throw new Error(`upload: shape [${shape.join(', ')}] does not describe ${data.length} values`);
    }
    const lost = this.lostError();
    if (lost !== null) return E.left(lost);
    const limits = this.limits();
    if (data.byteLength > limits.maxBufferBytes) {
      return E.left(deviceError('limits', this.backend, `upload of [${shape.join(', ')}] needs ${data.byteLength} bytes; this device allows ${limits.maxBufferBytes} per buffer`));
    }
    if (this.backend !== 'webgpu') return E.right(this.register(shape, { kind: 'host', data: data.slice() }));
    // WebGPU buffers are made only by kernels in gpu.js, so an upload is an identity kernel per shape; it keeps
    // one argument buffer of that size for reuse by the next upload of the same shape.
    const upload = this.uploadKernelFor(shape);
    if (E.isLeft(upload)) return upload;
    return this.launchWith(upload.right, [new gpujs.Input(data, [...shape])]);
  }

  private uploadKernelFor(shape: KernelShape): E.Either<DeviceError, DeviceKernel> {
    const key = shape.join('x');
    const existing = this.uploadKernels.get(key);
    if (existing !== undefined) return E.right(existing);
    const index = ['this.thread.z', 'this.thread.y', 'this.thread.x'].slice(3 - shape.length).map((i) => `[${i}]`).join('');
    const built = this.buildKernel({
      name: `upload[${shape.join(', ')}]`,
      source: `function(a) { return a${index}; }`,
      output: shape,
      argumentTypes: { a: 'Array' },
      returnType: 'Number',
    });
    if (E.isRight(built)) this.uploadKernels.set(key, built.right);
    return built;
  }

  /**
   * Runs `kernel` on device-resident arguments and returns its output as a new handle. Nothing is read back.
   * `args` follow the kernel's parameters: a DeviceHandle for 'Array', a number for 'Float'/'Integer'.
   */
  async launch(kernel: DeviceKernel, args: ReadonlyArray<DeviceHandle | number>): Promise<E.Either<DeviceError, DeviceHandle>> {
    this.assertOpen();
    if (kernel.compiled.device !== this) throw new Error(`launch: kernel "${kernel.name}" was built on another Device`);
    if (this.cache.get(kernel.compiled.key) !== kernel.compiled) {
      return E.left(deviceError('kernel', this.backend, 'this kernel failed before and was discarded; build it again to retry', kernel.name));
    }
    if (args.length !== kernel.argumentNames.length) {
      throw new Error(`launch: kernel "${kernel.name}" takes ${kernel.argumentNames.length} arguments (${kernel.argumentNames.join(', ')}), got ${args.length}`);
    }
    const lost = this.lostError(kernel.name);
    if (lost !== null) return E.left(lost);
    const gpuArgs = args.map((arg, index): GpuJsInput | GpuJsBufferResult | number => {
      const argumentName = kernel.argumentNames[index] as string;
      const type = kernel.spec.argumentTypes[argumentName];
      if (type === 'Array') {
        if (!(arg instanceof DeviceHandle)) throw new Error(`launch: kernel "${kernel.name}" argument "${argumentName}" must be a DeviceHandle, got ${typeof arg}`);
        const declared = kernel.spec.argumentSizes?.[argumentName];
        if (declared !== undefined && declared !== product(arg.shape)) {
          throw new Error(`launch: kernel "${kernel.name}" argument "${argumentName}" was built for ${declared} elements, got [${arg.shape.join(', ')}]`);
        }
        const payload = this.payloadOf(arg, `launch "${kernel.name}" argument "${argumentName}"`);
        return payload.kind === 'host' ? new gpujs.Input(payload.data, [...arg.shape]) : payload.result;
      }
      if (typeof arg !== 'number') throw new Error(`launch: kernel "${kernel.name}" argument "${argumentName}" must be a number (${type})`);
      return arg;
    });
    return this.launchWith(kernel, gpuArgs);
  }

  private async launchWith(kernel: DeviceKernel, gpuArgs: ReadonlyArray<GpuJsInput | GpuJsBufferResult | number>): Promise<E.Either<DeviceError, DeviceHandle>> {
    const compiled = kernel.compiled;
    let value: unknown;
    try {
      value = await compiled.run(...gpuArgs);
    } catch (error) {
      // a kernel that failed to build must not be served from the cache again
      this.evict(compiled);
      return E.left(classifyFailure(this.backend, kernel.name, error));
    }
    const mode = compiled.run.kernel.constructor.mode;
    if (mode !== modeOf[this.backend]) {
      // gpu.js degrades unsupported kernels to its cpu backend with only a console warning; the design forbids
      // a silent fallback, so the result is dropped and the reason reported
      this.evict(compiled);
      return E.left(deviceError('kernel', this.backend, `gpu.js fell back from ${this.backend} to ${mode}: ${compiled.run.kernel.fallbackReason ?? 'no reason given'}`, kernel.name));
    }
    compiled.launches += 1;
    const shape = kernel.resultShape;
    if (this.backend === 'webgpu') {
      if (!(value instanceof gpujs.WebGPUBufferResult)) {
        return E.left(deviceError('kernel', this.backend, 'gpu.js returned a host value instead of a pipeline buffer (is pipeline: true lost?)', kernel.name));
      }
      let result = value;
      if (result.componentCount !== 1 || result.output.join(',') !== shape.join(',')) {
        // gpu.js refuses Array(n) buffers as kernel arguments, and sizes its index arithmetic by `output`; the
        // storage is tightly packed x-major, so a scalar clone with the result shape is the same bytes under the
        // layout every backend uses
        const view = result.clone();
        view.output = [...shape];
        view.componentCount = 1;
        result.delete();
        result = view;
      }
      return E.right(this.register(shape, { kind: 'webgpu', result }));
    }
    const flat = flattenKernelValue(value, product(shape));
    if (flat === null) {
      return E.left(deviceError('kernel', this.backend, `gpu.js returned a value that is not ${product(shape)} floats in rows`, kernel.name));
    }
    return E.right(this.register(shape, { kind: 'host', data: flat }));
  }

  /**
   * Builds (once per distinct code) the compute pipeline of a WGSL kernel on gpu.js's GPUDevice; compilation and
   * validation errors are 'kernel' errors naming the kernel, with the shader's messages.
   */
  async buildWgsl(spec: WgslSpec): Promise<E.Either<DeviceError, WgslKernel>> {
    this.assertOpen();
    const context = this.webgpuContext;
    if (context === null) return E.left(deviceError('kernel', this.backend, 'WGSL kernels run on the webgpu backend only', spec.name));
    const limits = context.device.limits;
    if (spec.workgroups.some((n) => n > limits.maxComputeWorkgroupsPerDimension)) {
      return E.left(deviceError('limits', this.backend, `dispatch [${spec.workgroups.join(', ')}] exceeds ${limits.maxComputeWorkgroupsPerDimension} workgroups per dimension`, spec.name));
    }
    if (spec.outputElements * 4 > Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize)) {
      return E.left(deviceError('limits', this.backend, `output of ${spec.outputElements} floats exceeds this device's buffer limit`, spec.name));
    }
    let built = this.pipelines.get(spec.code);
    if (built === undefined) {
      built = (async () => {
        const device = context.device;
        device.pushErrorScope('validation');
        const module = device.createShaderModule({ code: spec.code });
        const info = await module.getCompilationInfo();
        const errors = info.messages.filter((m) => m.type === 'error');
        try {
          const pipeline = await device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'main' } });
          const scope = await device.popErrorScope();
          if (errors.length > 0 || scope !== null) throw new Error([...errors.map((m) => `line ${m.lineNum}: ${m.message}`), scope?.message ?? ''].join('\n'));
          return E.right({ pipeline, layout: pipeline.getBindGroupLayout(0) });
        } catch (error) {
          return E.left(deviceError('kernel', this.backend, `WGSL pipeline: ${messageOf(error)}\n--- WGSL ---\n${spec.code}`, spec.name));
        }
      })();
      this.pipelines.set(spec.code, built);
    }
    const r = await built;
    if (E.isLeft(r)) {
      this.pipelines.delete(spec.code);
      return E.left({ ...r.left, kernel: spec.name });
    }
    return E.right(new WgslKernel(spec.name, spec, this, r.right.pipeline, r.right.layout));
  }

  /**
   * Runs a WGSL kernel on device-resident arguments; its output is a new handle (a gpu.js buffer result). WebGPU
   * reports a bind group that does not fit the pipeline only asynchronously, as an uncaptured error, while the
   * launch "succeeds": `validate` (the warm-up launch) catches that in an error scope and returns it as an error.
   */
  async launchWgsl(kernel: WgslKernel, args: ReadonlyArray<DeviceHandle>, validate = false): Promise<E.Either<DeviceError, DeviceHandle>> {
    this.assertOpen();
    const context = this.webgpuContext;
    if (kernel.device !== this || context === null) throw new Error(`launch: WGSL kernel "${kernel.name}" was built on another Device`);
    const lost = this.lostError(kernel.name);
    if (lost !== null) return E.left(lost);
    const device = context.device;
    const inputs = kernel.spec.operands.map((k) => {
      const arg = args[k];
      if (arg === undefined) throw new Error(`launch: WGSL kernel "${kernel.name}" reads argument ${k}, got ${args.length}`);
      const payload = this.payloadOf(arg, `launch "${kernel.name}" argument ${k}`);
      if (payload.kind !== 'webgpu') throw new Error(`launch: WGSL kernel "${kernel.name}" argument ${k} is not a WebGPU buffer`);
      return payload.result.buffer;
    });
    if (validate) device.pushErrorScope('validation');
    try {
      const output = device.createBuffer({ size: Math.max(4, kernel.spec.outputElements * 4), usage: GPU_USAGE.STORAGE | GPU_USAGE.COPY_SRC | GPU_USAGE.COPY_DST });
      const group = device.createBindGroup({
        layout: kernel.layout,
        entries: [...inputs, output].map((buffer, binding) => ({ binding, resource: { buffer } })),
      });
      const encoder = device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      pass.setPipeline(kernel.pipeline);
      pass.setBindGroup(0, group);
      pass.dispatchWorkgroups(...kernel.spec.workgroups);
      pass.end();
      device.queue.submit([encoder.finish()]);
      if (validate) {
        const failed = await device.popErrorScope();
        if (failed !== null) {
          output.destroy();
          return E.left(deviceError('kernel', this.backend, `WGSL launch: ${failed.message}`, kernel.name));
        }
      }
      kernel.launches += 1;
      const result = new gpujs.WebGPUBufferResult({ buffer: output, output: [kernel.spec.outputElements], componentCount: 1, context, kernel: { readBufferResult: (h) => this.readBuffer(h) } });
      return E.right(this.register([kernel.spec.outputElements], { kind: 'webgpu', result }));
    } catch (error) {
      if (validate) await device.popErrorScope();
      return E.left(classifyFailure(this.backend, kernel.name, error));
    }
  }

  /** Readback of a buffer made by `launchWgsl`: copy to a staging buffer, map, copy out. */
  private async readBuffer(handle: GpuJsBufferResult): Promise<Float32Array> {
    const context = this.webgpuContext;
    if (context === null) throw new Error('readBuffer: not a webgpu device');
    const device = context.device;
    const bytes = handle.output.reduce((a, c) => a * c, 1) * 4 * handle.componentCount;
    const staging = device.createBuffer({ size: bytes, usage: GPU_USAGE.MAP_READ | GPU_USAGE.COPY_DST });
    try {
      const encoder = device.createCommandEncoder();
      encoder.copyBufferToBuffer(handle.buffer, 0, staging, 0, bytes);
      device.queue.submit([encoder.finish()]);
      await staging.mapAsync(GPU_MAP_READ, 0, bytes);
      const data = new Float32Array(staging.getMappedRange(0, bytes).slice(0));
      staging.unmap();
      return data;
    } finally {
      staging.destroy();
    }
  }

  private evict(compiled: CompiledKernel): void {
    if (this.cache.delete(compiled.key)) {
      try {
        compiled.run.destroy();
      } catch {
        // destroying a kernel that never built can throw inside gpu.js; the cache entry is gone either way
      }
    }
    for (const [key, upload] of this.uploadKernels) if (upload.compiled === compiled) this.uploadKernels.delete(key);
  }

  /** Copies a handle's values to the host (x fastest). The handle stays live. */
  async read(handle: DeviceHandle): Promise<E.Either<DeviceError, Float32Array>> {
    this.assertOpen();
    const payload = this.payloadOf(handle, 'read');
    if (payload.kind === 'host') return E.right(payload.data.slice());
    const lost = this.lostError();
    if (lost !== null) return E.left(lost);
    try {
      const value = await payload.result.toArray();
      const flat = flattenKernelValue(value, product(handle.shape));
      if (flat === null) return E.left(deviceError('kernel', this.backend, `readback of handle #${handle.id} [${handle.shape.join(', ')}] returned an unexpected shape`));
      return E.right(flat);
    } catch (error) {
      return E.left(classifyFailure(this.backend, `read #${handle.id}`, error));
    }
  }

  /**
   * Waits until `handle` (and all work queued before it) is computed: a 1-cell kernel reading its element 0, then
   * a 4-byte readback. gpu.js specializes a kernel to its first arguments' sizes, hence one probe per size.
   */
  async synchronize(handle: DeviceHandle): Promise<E.Either<DeviceError, void>> {
    const elements = handle.byteLength / 4;
    let probe = this.probes.get(elements);
    if (probe === undefined) {
      const built = this.buildKernel({ name: `probe[${elements}]`, source: 'function(a) { return a[0]; }', output: [1], argumentTypes: { a: 'Array' }, argumentSizes: { a: elements }, returnType: 'Number' });
      if (E.isLeft(built)) return built;
      probe = built.right;
      this.probes.set(elements, probe);
    }
    const h = await this.launch(probe, [handle]);
    if (E.isLeft(h)) return h;
    const r = await this.read(h.right);
    this.free(h.right);
    return E.isLeft(r) ? r : E.right(undefined);
  }
  private readonly probes = new Map<number, DeviceKernel>();

  /** Releases a handle. On WebGPU the buffer is destroyed once no kernel still holds it as its latest output. */
  free(handle: DeviceHandle): void {
    this.assertOpen();
    const payload = this.payloadOf(handle, 'free');
    if (payload.kind === 'webgpu') payload.result.delete();
    this.payloads.delete(handle.id);
    this.liveBytes -= handle.byteLength;
  }

  /** Frees every handle, destroys every kernel (and webasm worker pools); the last WebGPU device releases Dawn's. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    for (const { payload } of this.payloads.values()) if (payload.kind === 'webgpu') payload.result.delete();
    this.payloads.clear();
    this.liveBytes = 0;
    this.disposed = true;
    this.cache.clear();
    this.pipelines.clear();
    this.uploadKernels.clear();
    await this.gpu.destroy();
    if (this.webgpuContext !== null) {
      openWebGpuDevices -= 1;
      // the shared GPUDevice keeps Node's event loop alive; releasing it lets the process exit
      if (openWebGpuDevices === 0) await gpujs.WebGPUContext.destroy();
    }
  }
}

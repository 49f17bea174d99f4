// The one place that touches gpu.js and the `webgpu` (Dawn) package directly. gpu.js ships loose typings
// (`IPipelineHandle = any`, kernels typed as functions of anything), so the runtime describes the small surface
// it actually uses with narrow structural interfaces and loads the CommonJS module through `createRequire`.
// Everything here mirrors gpu.js 2.24.1 source (src/gpu.js, src/backend/web-gpu/*, src/backend/web-assembly/*).
import { createRequire } from 'node:module';

/** A host array with its gpu.js size ([x], [x, y] or [x, y, z], x fastest): the way cpu/webasm see a tensor. */
export interface GpuJsInput {
  readonly value: Float32Array;
  readonly size: ArrayLike<number>;
}

/** The GPUBuffer fields gpu.js relies on; `_refs` is gpu.js's own reference count on the raw buffer. */
export interface WebGpuRawBuffer {
  readonly size: number;
  _refs?: number;
}

/** gpu.js's WebGPU pipeline handle (src/backend/web-gpu/buffer-result.js): a refcounted view of a storage buffer. */
export interface GpuJsBufferResult {
  readonly type: 'WebGPUBuffer';
  readonly buffer: WebGpuRawBuffer;
  output: number[];
  componentCount: number;
  _deleted: boolean;
  toArray(): Promise<unknown>;
  delete(): void;
  clone(): GpuJsBufferResult;
}

export interface WebGpuLimits {
  readonly maxStorageBufferBindingSize: number;
  readonly maxBufferSize: number;
  readonly maxStorageBuffersPerShaderStage: number;
  readonly maxComputeWorkgroupsPerDimension: number;
  readonly maxComputeWorkgroupStorageSize: number;
  readonly maxComputeInvocationsPerWorkgroup: number;
  readonly maxComputeWorkgroupSizeX: number;
  readonly maxComputeWorkgroupSizeY: number;
}

export interface WebGpuAdapterInfo {
  readonly subgroupMinSize?: number;
  readonly subgroupMaxSize?: number;
  readonly vendor?: string;
  readonly architecture?: string;
  readonly device?: string;
  readonly description?: string;
}

export interface WebGpuAdapter {
  readonly limits: WebGpuLimits;
  readonly info?: WebGpuAdapterInfo;
  readonly features?: ReadonlySet<string>;
}

/** The WebGPU surface the WGSL templates use (compiler/runtime/wgsl.ts), as Dawn implements it. */
export interface GpuBuffer extends WebGpuRawBuffer {
  destroy(): void;
  mapAsync(mode: number, offset?: number, size?: number): Promise<void>;
  getMappedRange(offset?: number, size?: number): ArrayBuffer;
  unmap(): void;
}
export interface GpuBindGroupLayout {
  readonly label?: string;
}
export interface GpuComputePipeline {
  getBindGroupLayout(index: number): GpuBindGroupLayout;
}
export interface GpuBindGroup {
  readonly label?: string;
}
export interface GpuComputePass {
  setPipeline(pipeline: GpuComputePipeline): void;
  setBindGroup(index: number, group: GpuBindGroup): void;
  dispatchWorkgroups(x: number, y?: number, z?: number): void;
  end(): void;
}
export interface GpuCommandEncoder {
  beginComputePass(): GpuComputePass;
  copyBufferToBuffer(src: GpuBuffer | WebGpuRawBuffer, srcOffset: number, dst: GpuBuffer, dstOffset: number, size: number): void;
  finish(): unknown;
}
export interface GpuShaderModule {
  getCompilationInfo(): Promise<{ readonly messages: ReadonlyArray<{ readonly type: string; readonly message: string; readonly lineNum: number }> }>;
}
export interface GpuDevice {
  readonly limits: WebGpuLimits;
  readonly features: ReadonlySet<string>;
  readonly queue: { submit(buffers: unknown[]): void };
  createBuffer(descriptor: { readonly size: number; readonly usage: number }): GpuBuffer;
  createShaderModule(descriptor: { readonly code: string }): GpuShaderModule;
  createComputePipelineAsync(descriptor: { readonly layout: 'auto'; readonly compute: { readonly module: GpuShaderModule; readonly entryPoint: string } }): Promise<GpuComputePipeline>;
  createBindGroup(descriptor: { readonly layout: GpuBindGroupLayout; readonly entries: ReadonlyArray<{ readonly binding: number; readonly resource: { readonly buffer: GpuBuffer | WebGpuRawBuffer } }> }): GpuBindGroup;
  createCommandEncoder(): GpuCommandEncoder;
  pushErrorScope(filter: 'validation' | 'out-of-memory'): void;
  popErrorScope(): Promise<{ readonly message: string } | null>;
}

/** GPUBufferUsage and GPUMapMode bits (the WebGPU spec's constants). */
export const GPU_USAGE = { MAP_READ: 0x1, COPY_SRC: 0x4, COPY_DST: 0x8, STORAGE: 0x80 } as const;
export const GPU_MAP_READ = 0x1;

/** The shared `{adapter, device, isLost}` record of gpu.js's WebGPUContext singleton. */
export interface WebGpuContextRecord {
  readonly adapter: WebGpuAdapter;
  readonly device: GpuDevice;
  readonly isLost: boolean;
}

/** The kernel object behind a run shortcut (only the fields the runtime reads). */
export interface GpuJsKernelInternals {
  readonly constructor: { readonly mode: string };
  readonly fallbackReason: string | null;
  readonly compiledSource?: string | null;
  readonly _lastRunPath?: string | null;
  readonly context?: WebGpuContextRecord | null;
}

/** A gpu.js kernel run shortcut: calling it launches the kernel (a Promise under the async contract). */
export interface GpuJsKernelRun {
  (...args: ReadonlyArray<GpuJsInput | GpuJsBufferResult | number>): unknown;
  readonly kernel: GpuJsKernelInternals;
  destroy(removeCanvasReferences?: boolean): void;
}

export interface GpuJsInstance {
  createKernel(source: string, settings: Readonly<Record<string, unknown>>): GpuJsKernelRun;
  destroy(): Promise<void>;
}

export interface GpuJsModule {
  readonly GPU: new (settings: { readonly mode: string }) => GpuJsInstance;
  readonly Input: new (value: Float32Array, size: number[]) => GpuJsInput;
  readonly WebGPUBufferResult: new (settings: {
    readonly buffer: WebGpuRawBuffer;
    readonly output: number[];
    readonly componentCount: number;
    readonly context: WebGpuContextRecord;
    /** whatever reads the buffer back: `toArray()` calls `kernel.readBufferResult(this)` */
    readonly kernel: { readBufferResult(handle: GpuJsBufferResult): Promise<unknown> };
  }) => GpuJsBufferResult;
  readonly WebGPUContext: {
    acquire(): Promise<WebGpuContextRecord>;
    destroy(): Promise<void>;
  };
  readonly HeadlessGLKernel: { readonly isSupported: boolean };
  readonly WebAssemblyKernel: {
    readonly isSupported: boolean;
    readonly isThreadsSupported: boolean;
    readonly isSIMDSupported: boolean;
  };
  readonly utils: { getArgumentNamesFromString(source: string): string[] };
}

const requireFromHere = createRequire(import.meta.url);

/** gpu.js loaded once; the cast is the boundary between its untyped CommonJS exports and the interfaces above. */
export const gpujs: GpuJsModule = requireFromHere('gpu.js') as GpuJsModule;

/** True when `gl` (headless-gl, an optional dependency of gpu.js) can be required; its error message otherwise. */
export function headlessGlLoadError(): string | null {
  try {
    requireFromHere('gl');
    return null;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

interface DawnGpu {
  requestAdapter(): Promise<WebGpuAdapter | null>;
}

interface DeviceDescriptor {
  readonly requiredLimits?: Readonly<Record<string, number>>;
  readonly requiredFeatures?: readonly string[];
}

/**
 * Limits the WGSL contraction templates and the fusion limit use, asked for at the adapter's own value (the
 * spec's defaults are far lower: 8 storage buffers per stage, 16 KiB of workgroup memory), and the optional
 * features worth having. gpu.js's WebGPUContext asks only for the two buffer sizes.
 */
const WANTED_LIMITS = [
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupsPerDimension',
] as const;
const WANTED_FEATURES = ['subgroups', 'shader-f16'] as const;

/**
 * Wraps `adapter.requestDevice` so the device gpu.js requests also gets the adapter's real limits and features.
 * gpu.js's own required limits are kept; ours are added. (tfjs-webgpu, the bench's peer on the same navigator.gpu,
 * asks for its own and gets these too: the same device capabilities on both sides.)
 */
function widenDeviceRequests(adapter: WebGpuAdapter): void {
  const original = Reflect.get(adapter, 'requestDevice') as (d?: DeviceDescriptor) => Promise<GpuDevice>;
  const requestDevice = async (descriptor: DeviceDescriptor = {}): Promise<GpuDevice> => {
    const limits: Record<string, number> = { ...(descriptor.requiredLimits ?? {}) };
    for (const name of WANTED_LIMITS) limits[name] = adapter.limits[name];
    const features = [...new Set([...(descriptor.requiredFeatures ?? []), ...WANTED_FEATURES.filter((f) => adapter.features?.has(f) === true)])];
    return original.call(adapter, { ...descriptor, requiredLimits: limits, requiredFeatures: features });
  };
  Object.defineProperty(adapter, 'requestDevice', { value: requestDevice, configurable: true });
}

/**
 * Installs `globalThis.navigator.gpu` from the `webgpu` package exactly once (gpu.js's WebGPU backend reads the
 * global). Resolves to the error message when the package's native Dawn binary cannot be loaded (e.g. glibc too old).
 */
let navigatorSetup: Promise<string | null> | null = null;
export function installWebGpuNavigator(): Promise<string | null> {
  if (navigatorSetup !== null) return navigatorSetup;
  navigatorSetup = (async (): Promise<string | null> => {
    try {
      const dawn = (await import('webgpu')) as unknown as { create(options: string[]): DawnGpu };
      const gpu = dawn.create([]);
      const requestAdapter = gpu.requestAdapter.bind(gpu);
      Object.defineProperty(gpu, 'requestAdapter', {
        configurable: true,
        value: async (): Promise<WebGpuAdapter | null> => {
          const adapter = await requestAdapter();
          if (adapter !== null) widenDeviceRequests(adapter);
          return adapter;
        },
      });
      const existing: unknown = Reflect.get(globalThis, 'navigator');
      if (typeof existing === 'object' && existing !== null) {
        // Node ≥ 21 has a getter-only global `navigator` whose other getters need the real object as receiver:
        // add `gpu` to it instead of replacing it (gpu.js's worker pool reads navigator.hardwareConcurrency).
        Object.defineProperty(existing, 'gpu', { value: gpu, configurable: true });
      } else {
        Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
      }
      return null;
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
  })();
  return navigatorSetup;
}

/** navigator.gpu.requestAdapter() through the installed global; null when there is no adapter. */
export async function requestWebGpuAdapter(): Promise<WebGpuAdapter | null> {
  const nav: unknown = Reflect.get(globalThis, 'navigator');
  const gpu: unknown = typeof nav === 'object' && nav !== null ? Reflect.get(nav, 'gpu') : undefined;
  if (typeof gpu !== 'object' || gpu === null) return null;
  return (gpu as DawnGpu).requestAdapter();
}

// Typed failures of the device layer. Every value names the backend and, when one is involved, the kernel,
// so a message read in a training log says what failed where without a stack trace.
/**
 * Every backend, once, in `auto`'s preference order: a GPU through gpu.js first, then our own WebAssembly back end
 * (SIMD, all cores, one shared memory), then gpu.js's reference CPU backends (plain JS, then its webasm, which
 * copies every argument into a per-kernel memory on each launch).
 */
export const BACKEND_ORDER = ['webgpu', 'headlessgl', 'wasm', 'cpu', 'webasm'] as const;
export type BackendName = (typeof BACKEND_ORDER)[number];

export type DeviceErrorKind =
  /** the device (WebGPU adapter/device) is gone; handles on it hold no data any more */
  | 'lost'
  /** a kernel failed to translate, compile, validate or run, or gpu.js tried to degrade it to another backend */
  | 'kernel'
  /** a size or count exceeds what the backend allows (buffer bytes, inputs per kernel, workgroups) */
  | 'limits'
  /** the requested backend cannot be used in this process */
  | 'unavailable';

export interface DeviceError {
  readonly kind: DeviceErrorKind;
  readonly backend: BackendName;
  /** the kernel's name, absent for errors that concern no kernel (backend choice, upload) */
  readonly kernel?: string;
  readonly message: string;
}

export const deviceError = (
  kind: DeviceErrorKind,
  backend: BackendName,
  message: string,
  kernel?: string,
): DeviceError => (kernel === undefined ? { kind, backend, message } : { kind, backend, kernel, message });

/** One line for logs: `[webgpu kernel "matmul_0"] limits: ...`. */
export const formatDeviceError = (error: DeviceError): string =>
  `[${error.backend}${error.kernel === undefined ? '' : ` kernel "${error.kernel}"`}] ${error.kind}: ${error.message}`;

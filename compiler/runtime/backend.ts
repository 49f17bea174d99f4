// Which backends this process can use, and which one to run on. The probe is honest: WebGPU counts as
// available only when an adapter actually answers (gpu.js's own `isWebGPUSupported` only checks navigator.gpu),
// and an explicitly requested backend that is unavailable is an error value, never a silent fallback.
import * as E from 'fp-ts/lib/Either.js';
import { existsSync, readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { BACKEND_ORDER, deviceError, type BackendName, type DeviceError } from './errors.ts';
import { gpujs, headlessGlLoadError, installWebGpuNavigator, requestWebGpuAdapter } from './gpujs.ts';

export { BACKEND_ORDER, type BackendName } from './errors.ts';

export const isBackendName = (value: string): value is BackendName =>
  (BACKEND_ORDER as ReadonlyArray<string>).includes(value);

export type BackendProbe =
  | { readonly backend: BackendName; readonly available: true; readonly detail: string; readonly software?: boolean }
  | { readonly backend: BackendName; readonly available: false; readonly reason: string };

const firstLine = (text: string): string => text.split('\n')[0] ?? text;

async function probeWebGpu(): Promise<BackendProbe> {
  const loadError = await installWebGpuNavigator();
  if (loadError !== null) {
    return { backend: 'webgpu', available: false, reason: `webgpu: the \`webgpu\` (Dawn) package failed to load (${firstLine(loadError)})` };
  }
  let adapter;
  try {
    adapter = await requestWebGpuAdapter();
  } catch (error) {
    return { backend: 'webgpu', available: false, reason: `webgpu: navigator.gpu.requestAdapter threw (${firstLine(String(error))})` };
  }
  if (adapter === null) {
    return { backend: 'webgpu', available: false, reason: 'webgpu: no adapter (navigator.gpu.requestAdapter returned null)' };
  }
  const info = adapter.info ?? {};
  const name = [info.vendor, info.architecture, info.device, info.description].filter((part) => part !== undefined && part !== '').join(' / ');
  return {
    backend: 'webgpu',
    available: true,
    detail: `webgpu: adapter ${name === '' ? '(no adapter info)' : name}; maxStorageBufferBindingSize ${adapter.limits.maxStorageBufferBindingSize} B`,
    // A CPU-emulated adapter (Mesa lavapipe/llvmpipe, SwiftShader) is correct but slower than webasm.
    software: /llvmpipe|lavapipe|swiftshader|software/i.test(name),
  };
}

function probeHeadlessGl(): BackendProbe {
  const loadError = headlessGlLoadError();
  if (loadError !== null) {
    return { backend: 'headlessgl', available: false, reason: `headlessgl: the optional \`gl\` package is not installed (${firstLine(loadError)})` };
  }
  if (!gpujs.HeadlessGLKernel.isSupported) {
    return {
      backend: 'headlessgl',
      available: false,
      reason: 'headlessgl: `gl` is installed but could not create a WebGL context (it needs an X server: run under xvfb-run)',
    };
  }
  // The runtime keeps every backend on one verified path (device-resident buffers, Array(4) reinterpretation,
  // readback). headless-gl could not be installed where this runtime was built, so its texture path is untested:
  // refusing it is the honest answer, not a silent degradation.
  return {
    backend: 'headlessgl',
    available: false,
    reason: 'headlessgl: a WebGL context exists but this runtime has no verified headless-gl texture path; use webgpu, webasm or cpu',
  };
}

function probeWebAssembly(): BackendProbe {
  if (!gpujs.WebAssemblyKernel.isSupported) {
    return { backend: 'webasm', available: false, reason: 'webasm: WebAssembly is not available in this JavaScript engine' };
  }
  const simd = gpujs.WebAssemblyKernel.isSIMDSupported ? 'SIMD' : 'no SIMD';
  const threads = gpujs.WebAssemblyKernel.isThreadsSupported ? 'worker threads for outputs ≥ 4096 cells' : 'no threads (no SharedArrayBuffer)';
  return { backend: 'webasm', available: true, detail: `webasm: ${simd}, ${threads}` };
}

function probeWasm(): BackendProbe {
  if (typeof SharedArrayBuffer === 'undefined') return { backend: 'wasm', available: false, reason: 'wasm: no SharedArrayBuffer in this engine' };
  return { backend: 'wasm', available: true, detail: `wasm: compiled SIMD128 kernels, ${availableParallelism()} thread(s) over one shared memory` };
}

const probers: Readonly<Record<BackendName, () => Promise<BackendProbe> | BackendProbe>> = {
  webgpu: probeWebGpu,
  headlessgl: probeHeadlessGl,
  wasm: probeWasm,
  webasm: probeWebAssembly,
  cpu: () => ({ backend: 'cpu', available: true, detail: 'cpu: kernels transpiled to plain JavaScript' }),
};
const probed = new Map<BackendName, Promise<BackendProbe>>();

/** Probes one backend, once per process (the WebGPU adapter request loads Dawn: ~0.2 s and ~100 MB). */
export function probeBackend(backend: BackendName): Promise<BackendProbe> {
  let p = probed.get(backend);
  if (p === undefined) {
    p = Promise.resolve(probers[backend]());
    probed.set(backend, p);
  }
  return p;
}

/** Probes every backend. */
export async function probeBackends(): Promise<ReadonlyArray<BackendProbe>> {
  return Promise.all(BACKEND_ORDER.map(probeBackend));
}

/**
 * A hardware GPU shows as a device node on Linux (a DRM render node, or NVIDIA's own); without one, `auto` does not
 * load Dawn just to find a software adapter it would skip anyway. Elsewhere the adapter is asked.
 */
function gpuDeviceNode(): boolean {
  if (process.platform !== 'linux') return true;
  try {
    return readdirSync('/dev/dri').some((f) => f.startsWith('renderD')) || existsSync('/dev/nvidia0');
  } catch {
    return existsSync('/dev/nvidia0');
  }
}

export interface BackendChoice {
  readonly backend: BackendName;
  /** one line for the chosen backend, then one per backend that was skipped or not considered, with the reason */
  readonly explanation: ReadonlyArray<string>;
}

/** Pure decision over probe results (kept separate so it can be tested without the machine's backends). */
export function decideBackend(
  probes: ReadonlyArray<BackendProbe>,
  preferred: BackendName | 'auto',
): E.Either<DeviceError, BackendChoice> {
  const probeOf = (backend: BackendName): BackendProbe =>
    probes.find((probe) => probe.backend === backend) ?? { backend, available: false, reason: `${backend}: not probed` };
  if (preferred !== 'auto') {
    const probe = probeOf(preferred);
    if (!probe.available) {
      return E.left(deviceError('unavailable', preferred, `backend "${preferred}" was requested explicitly but is unavailable: ${probe.reason}`));
    }
    const others = BACKEND_ORDER.filter((backend) => backend !== preferred).map((backend) => `${backend}: not considered (--backend ${preferred} was requested)`);
    return E.right({ backend: preferred, explanation: [`using ${preferred} (requested explicitly): ${probe.detail}`, ...others] });
  }
  const skipped: string[] = [];
  for (const backend of BACKEND_ORDER) {
    const probe = probeOf(backend);
    if (probe.available && probe.software === true && backend !== 'cpu') {
      skipped.push(`${probe.detail} — a software (CPU-emulated) adapter, slower than the CPU backends; --backend ${backend} forces it`);
      continue;
    }
    if (probe.available) {
      const after = BACKEND_ORDER.slice(BACKEND_ORDER.indexOf(backend) + 1).map((rest) => `${rest}: not needed (${backend} ranks higher)`);
      return E.right({ backend, explanation: [`using ${backend} (best available): ${probe.detail}`, ...skipped.map((line) => `skipped ${line}`), ...after] });
    }
    skipped.push(probe.reason);
  }
  // unreachable in practice: cpu is always available; still a value, not a throw
  return E.left(deviceError('unavailable', 'cpu', `no backend is available: ${skipped.join('; ')}`));
}

/** The best available backend in BACKEND_ORDER, or the explicit one if usable (probing only that one). */
export async function chooseBackend(preferred: BackendName | 'auto'): Promise<E.Either<DeviceError, BackendChoice>> {
  if (preferred !== 'auto') return decideBackend([await probeBackend(preferred)], preferred);
  const probes = await Promise.all(
    BACKEND_ORDER.map((b): Promise<BackendProbe> | BackendProbe =>
      b === 'webgpu' && !gpuDeviceNode() ? { backend: b, available: false, reason: 'webgpu: no GPU device on this machine (/dev/dri/renderD*, /dev/nvidia0); --backend webgpu probes Dawn anyway' } : probeBackend(b),
    ),
  );
  return decideBackend(probes, preferred);
}

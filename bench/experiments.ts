// Measurements behind the runtime's kernel choices (results and reading in FINDINGS.md).
// Run: XDG_RUNTIME_DIR=/tmp node --import tsx bench/experiments.ts [a b c d e] [--backends cpu,webasm,webgpu]
// (a) 512³ matmul: one output per thread vs Array(4) (4 outputs per thread) vs inner loop unrolled by 4 over a
//     pre-transposed operand; (b) launch overhead; (c) freeing immutable pipeline outputs and whether memory comes
//     back; (d) array inputs per kernel; (e) webasm threads under the async contract.
import * as E from 'fp-ts/lib/Either.js';
import { probeBackends } from '../compiler/runtime/backend.ts';
import { Device, FIXED_KERNEL_SETTINGS, type DeviceHandle, type DeviceKernel, type KernelSpec } from '../compiler/runtime/device.ts';
import { formatDeviceError, type BackendName, type DeviceError } from '../compiler/runtime/errors.ts';
import { gpujs, installWebGpuNavigator, type GpuJsBufferResult } from '../compiler/runtime/gpujs.ts';

const args = process.argv.slice(2);
const backendFlag = args.indexOf('--backends');
const requestedBackends = (backendFlag >= 0 ? (args[backendFlag + 1] ?? '') : 'cpu,webasm,webgpu').split(',') as BackendName[];
const experiments = new Set(args.filter((arg, i) => /^[a-e]$/.test(arg) && args[i - 1] !== '--backends'));
const wanted = (name: string): boolean => experiments.size === 0 || experiments.has(name);

const must = <T>(result: E.Either<DeviceError, T>): T => {
  if (E.isLeft(result)) throw new Error(formatDeviceError(result.left));
  return result.right;
};
const now = (): number => performance.now();
const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
const rssMiB = (): number => Math.round(process.memoryUsage().rss / 2 ** 20);
const fmt = (ms: number): string => (ms >= 10 ? ms.toFixed(0) : ms >= 1 ? ms.toFixed(1) : ms.toFixed(3));

const N = 512;
const matrices = (() => {
  const a = new Float32Array(N * N).map((_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  const b = new Float32Array(N * N).map((_, i) => ((i * 104729) % 1000) / 1000 - 0.5);
  const bt = new Float32Array(N * N);
  for (let k = 0; k < N; k++) for (let x = 0; x < N; x++) bt[x * N + k] = b[k * N + x] as number;
  return { a, b, bt };
})();

const matmulSpecs: ReadonlyArray<{ readonly label: string; readonly transposed: boolean; readonly spec: KernelSpec }> = [
  {
    label: 'naive (1 output/thread)',
    transposed: false,
    spec: {
      name: 'matmul_naive',
      source: `function(a, b) { let sum = 0; for (let k = 0; k < ${N}; k++) { sum += a[this.thread.y][k] * b[k][this.thread.x]; } return sum; }`,
      output: [N, N],
      argumentTypes: { a: 'Array', b: 'Array' },
      returnType: 'Number',
    },
  },
  {
    label: 'Array(4) (4 outputs/thread)',
    transposed: false,
    spec: {
      name: 'matmul_quad',
      source: `function(a, b) {
        const x = this.thread.x * 4;
        let s0 = 0; let s1 = 0; let s2 = 0; let s3 = 0;
        for (let k = 0; k < ${N}; k++) {
          const av = a[this.thread.y][k];
          s0 += av * b[k][x]; s1 += av * b[k][x + 1]; s2 += av * b[k][x + 2]; s3 += av * b[k][x + 3];
        }
        return [s0, s1, s2, s3];
      }`,
      output: [N / 4, N],
      argumentTypes: { a: 'Array', b: 'Array' },
      returnType: 'Array(4)',
    },
  },
  {
    label: 'unrolled ×4, Bᵀ contiguous',
    transposed: true,
    spec: {
      name: 'matmul_unrolled_bt',
      source: `function(a, bt) {
        let sum = 0;
        for (let k = 0; k < ${N}; k += 4) {
          sum += a[this.thread.y][k] * bt[this.thread.x][k] + a[this.thread.y][k + 1] * bt[this.thread.x][k + 1]
               + a[this.thread.y][k + 2] * bt[this.thread.x][k + 2] + a[this.thread.y][k + 3] * bt[this.thread.x][k + 3];
        }
        return sum;
      }`,
      output: [N, N],
      argumentTypes: { a: 'Array', bt: 'Array' },
      returnType: 'Number',
    },
  },
];

/** Times `launch` by running it `repeats` times device-resident and reading only the last output. */
async function timeLaunches(device: Device, kernel: DeviceKernel, inputs: DeviceHandle[], repeats: number): Promise<{ ms: number; out: Float32Array }> {
  const samples: number[] = [];
  let last: Float32Array = new Float32Array(0);
  for (let r = 0; r < repeats; r++) {
    const start = now();
    const out = must(await device.launch(kernel, inputs));
    // reading back is the only completion signal WebGPU offers; it is included for every backend alike
    last = must(await device.read(out));
    samples.push(now() - start);
    device.free(out);
  }
  return { ms: median(samples), out: last };
}

async function experimentA(device: Device): Promise<void> {
  const ha = must(await device.upload(matrices.a, [N, N]));
  const hb = must(await device.upload(matrices.b, [N, N]));
  const hbt = must(await device.upload(matrices.bt, [N, N]));
  let reference: Float32Array | null = null;
  const flops = 2 * N * N * N;
  const repeats = device.backend === 'cpu' ? 2 : 3;
  for (const { label, transposed, spec } of matmulSpecs) {
    const kernel = must(device.buildKernel(spec));
    const firstStart = now();
    const first = must(await device.launch(kernel, [ha, transposed ? hbt : hb]));
    must(await device.read(first));
    const firstMs = now() - firstStart;
    device.free(first);
    const { ms, out } = await timeLaunches(device, kernel, [ha, transposed ? hbt : hb], repeats);
    let maxDiff = 0;
    if (reference === null) reference = out;
    else for (let i = 0; i < out.length; i++) maxDiff = Math.max(maxDiff, Math.abs((out[i] as number) - (reference[i] as number)));
    console.log(`(a) ${device.backend.padEnd(6)} ${label.padEnd(28)} first call ${fmt(firstMs).padStart(5)} ms, steady ${fmt(ms).padStart(5)} ms = ${(flops / ms / 1e6).toFixed(2)} GFLOP/s, max |Δ| vs naive ${maxDiff.toExponential(1)}`);
  }
  for (const handle of [ha, hb, hbt]) device.free(handle);
}

async function experimentB(device: Device): Promise<void> {
  const kernel = must(device.buildKernel({ name: 'tiny', source: 'function(a) { return a[this.thread.x] + 1; }', output: [64], argumentTypes: { a: 'Array' }, returnType: 'Number' }));
  let state = must(await device.upload(new Float32Array(64), [64]));
  for (let i = 0; i < 20; i++) {
    const next = must(await device.launch(kernel, [state]));
    device.free(state);
    state = next;
  }
  const launches = 500;
  const start = now();
  for (let i = 0; i < launches; i++) {
    const next = must(await device.launch(kernel, [state]));
    device.free(state);
    state = next;
  }
  const submitted = now();
  const values = must(await device.read(state));
  const done = now();
  const readStart = now();
  must(await device.read(state));
  const readMs = now() - readStart;
  device.free(state);
  console.log(`(b) ${device.backend.padEnd(6)} ${launches} chained launches (64 cells, Device layer): ${fmt(((submitted - start) / launches) * 1000)} µs/launch to issue, ${fmt(((done - start) / launches) * 1000)} µs/launch incl. completion; one 64-float readback ${fmt(readMs)} ms; value ${values[0]} (expect ${launches + 20})`);

  // the same with raw gpu.js calls: what the Device bookkeeping adds
  const gpu = new gpujs.GPU({ mode: device.backend });
  const raw = gpu.createKernel('function(a) { return a[this.thread.x] + 1; }', { ...FIXED_KERNEL_SETTINGS, output: [64], argumentTypes: { a: 'Input' } });
  let current: unknown = device.backend === 'webgpu' ? await raw(new gpujs.Input(new Float32Array(64), [64])) : new gpujs.Input(new Float32Array(64), [64]);
  const wrap = (value: unknown): unknown => (value instanceof Float32Array ? new gpujs.Input(value, [64]) : value);
  for (let i = 0; i < 20; i++) current = wrap(await raw(current as GpuJsBufferResult));
  const rawStart = now();
  for (let i = 0; i < launches; i++) {
    const next = wrap(await raw(current as GpuJsBufferResult));
    if (current instanceof gpujs.WebGPUBufferResult) current.delete();
    current = next;
  }
  const rawMs = now() - rawStart;
  console.log(`(b) ${device.backend.padEnd(6)} ${launches} chained launches (raw gpu.js): ${fmt((rawMs / launches) * 1000)} µs/launch to issue`);
  await gpu.destroy();
}

async function experimentC(device: Device): Promise<void> {
  // 4M floats = 16 MiB per output; lavapipe keeps "device" memory in host RAM, so RSS shows it
  const cells = 1 << 22;
  const kernel = must(device.buildKernel({ name: 'big', source: 'function(a) { return a[this.thread.x] * 2; }', output: [cells], argumentTypes: { a: 'Array' }, returnType: 'Number' }));
  const input = must(await device.upload(new Float32Array(cells).fill(1), [cells]));
  const warm = must(await device.launch(kernel, [input]));
  must(await device.read(warm));
  device.free(warm);
  const base = rssMiB();
  const held: DeviceHandle[] = [];
  for (let i = 0; i < 16; i++) held.push(must(await device.launch(kernel, [input])));
  must(await device.read(held[held.length - 1] as DeviceHandle));
  const withHeld = rssMiB();
  const allDistinct = (await Promise.all(held.slice(0, 2).map(async (h) => must(await device.read(h))[0]))).every((v) => v === 2);
  for (const handle of held) device.free(handle);
  // one more launch lets the kernel drop its reference to the last output (gpu.js keeps the latest one)
  const flush = must(await device.launch(kernel, [input]));
  must(await device.read(flush));
  device.free(flush);
  global.gc?.();
  await new Promise((resolve) => setTimeout(resolve, 200));
  const afterFree = rssMiB();
  console.log(`(c) ${device.backend.padEnd(6)} RSS: start ${base} MiB, 16 live 16-MiB outputs ${withHeld} MiB (+${withHeld - base}), after free ${afterFree} MiB (+${afterFree - base}); held outputs intact: ${allDistinct}; live handles ${JSON.stringify(device.liveHandles())}`);
  // 200 launches that free each output: steady state must not grow
  let state = must(await device.launch(kernel, [input]));
  const before = rssMiB();
  for (let i = 0; i < 200; i++) {
    const next = must(await device.launch(kernel, [input]));
    device.free(state);
    state = next;
  }
  must(await device.read(state));
  device.free(state);
  global.gc?.();
  console.log(`(c) ${device.backend.padEnd(6)} 200 launch+free cycles of 16 MiB outputs: RSS ${before} → ${rssMiB()} MiB`);
  device.free(input);
}

async function experimentD(backend: BackendName): Promise<void> {
  // raw gpu.js, bypassing Device.buildKernel's own limit check, to find the real limit
  const gpu = new gpujs.GPU({ mode: backend });
  const counts = backend === 'webgpu' ? [6, 7, 8, 9, 15] : [8, 16, 32, 64];
  const results: string[] = [];
  for (const count of counts) {
    const names = Array.from({ length: count }, (_, i) => `in${i}`);
    const kernel = gpu.createKernel(`function(${names.join(', ')}) { return ${names.map((n) => `${n}[this.thread.x]`).join(' + ')}; }`, {
      ...FIXED_KERNEL_SETTINGS,
      pipeline: false,
      output: [4],
      argumentTypes: Object.fromEntries(names.map((n) => [n, 'Input'])),
    });
    try {
      const value = (await kernel(...names.map(() => new gpujs.Input(new Float32Array([1, 2, 3, 4]), [4])))) as Float32Array;
      results.push(`${count}: ${value[3] === 4 * count ? 'ok' : `WRONG (${value[3]})`}`);
    } catch (error) {
      results.push(`${count}: fails (${(error instanceof Error ? error.message : String(error)).split('\n')[0]?.slice(0, 160)})`);
    }
  }
  console.log(`(d) ${backend.padEnd(6)} array inputs per kernel → ${results.join('; ')}`);
  await gpu.destroy();
}

async function experimentE(): Promise<void> {
  const gpu = new gpujs.GPU({ mode: 'webasm' });
  const source = matmulSpecs[0]?.spec.source as string;
  const a = new gpujs.Input(matrices.a, [N, N]);
  const b = new gpujs.Input(matrices.b, [N, N]);
  const lines: string[] = [];
  for (const asyncMode of [false, true]) {
    const kernel = gpu.createKernel(source, { ...FIXED_KERNEL_SETTINGS, pipeline: false, asyncMode, output: [N, N], argumentTypes: { a: 'Input', b: 'Input' } });
    const call = (): unknown => kernel(a, b);
    const first = call();
    const isPromise = first instanceof Promise;
    await first;
    const samples: number[] = [];
    for (let r = 0; r < 3; r++) {
      const start = now();
      await call();
      samples.push(now() - start);
    }
    lines.push(`asyncMode ${asyncMode}: returns ${isPromise ? 'a Promise' : 'the array'}, path "${kernel.kernel._lastRunPath}", ${fmt(median(samples))} ms`);
  }
  const small = gpu.createKernel('function(a) { return a[this.thread.x] * 2; }', { ...FIXED_KERNEL_SETTINGS, pipeline: false, output: [4095], argumentTypes: { a: 'Input' } });
  await small(new gpujs.Input(new Float32Array(4095), [4095]));
  lines.push(`4095 cells under asyncMode: path "${small.kernel._lastRunPath}"`);
  console.log(`(e) webasm  ${lines.join('; ')}`);
  await gpu.destroy();
}

async function main(): Promise<void> {
  const probes = await probeBackends();
  for (const probe of probes) console.log(probe.available ? `available   ${probe.detail}` : `unavailable ${probe.reason}`);
  for (const backend of requestedBackends) {
    const probe = probes.find((p) => p.backend === backend);
    if (probe === undefined || !probe.available) continue;
    if (backend === 'webgpu') await installWebGpuNavigator();
    const device = must(await Device.open(backend));
    if (wanted('a')) await experimentA(device);
    if (wanted('b')) await experimentB(device);
    if (wanted('c')) await experimentC(device);
    if (wanted('d')) await experimentD(backend);
    await device.dispose();
  }
  if (wanted('e') && requestedBackends.includes('webasm')) await experimentE();
}

await main();

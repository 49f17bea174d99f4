// Compiling a graph for the wasm target: plan with its choices, render every distinct kernel into one module,
// instantiate it on the device's threads, and lay the program's intermediate tensors out at static offsets of one
// arena (first fit over the memory plan's lifetimes). Leaves and outputs are device handles the caller owns.
import * as E from 'fp-ts/lib/Either.js';
import { donatingStep, plan, type CompileOptions, type Executable, type ProgramPlan } from '../../compile.ts';
import { numel, showShape } from '../../ir.ts';
import { describeTensor } from '../../memplan.ts';
import { DeviceHandle } from '../../runtime/device.ts';
import { formatDeviceError } from '../../runtime/errors.ts';
import { bufferBytes } from '../../schedule.ts';
import { wasm } from '../../wasm/api.ts';
import { ModuleBuilder } from '../../wasm/encode.ts';
import { kernelSignature } from '../gpujs/render.ts';
import { MAX_MEMORY_BYTES, WasmDevice, type LaunchSpec, type WasmProgram } from './device.ts';
import { IMPORTS, renderKernel, type WasmKernel } from './render.ts';
import { wasmTarget } from './target.ts';

const ALIGN = 64;

type KernelLaunch = Pick<WasmKernel, 'items' | 'itemAlign' | 'work' | 'scratchBytes' | 'operands'>;

/** Static byte offsets in one arena for every kernel output that is not a graph output (first fit by lifetime). */
export function layoutArena(p: ProgramPlan): { readonly offsets: ReadonlyMap<number, number>; readonly bytes: number } {
  const outputs = new Set(Object.values(p.graph.outputs).map((n) => n.id));
  const free: [number, number][] = [];
  const offsets = new Map<number, number>();
  const sizes = new Map<number, number>();
  let top = 0;
  const take = (size: number): number => {
    const k = free.findIndex(([, len]) => len >= size);
    if (k < 0) return (top += size) - size;
    const [off, len] = free[k];
    if (len === size) free.splice(k, 1);
    else free[k] = [off + size, len - size];
    return off;
  };
  const give = (off: number, size: number): void => {
    free.push([off, size]);
    free.sort((a, c) => a[0] - c[0]);
    for (let i = 0; i < free.length - 1; ) {
      if (free[i][0] + free[i][1] === free[i + 1][0]) free.splice(i, 2, [free[i][0], free[i][1] + free[i + 1][1]]);
      else i++;
    }
  };
  for (const step of p.memory.steps) {
    if (step.kind === 'launch') {
      const root = p.kernels[step.kernel].root;
      if (outputs.has(root.id)) continue;
      const size = Math.ceil(bufferBytes(root) / ALIGN) * ALIGN;
      sizes.set(root.id, size);
      offsets.set(root.id, take(size));
    } else {
      const off = offsets.get(step.node);
      if (off !== undefined) give(off, sizes.get(step.node) as number);
    }
  }
  return { offsets, bytes: top };
}

/** `compile` for the wasm backend (chosen by the caller). */
export async function compileWasm(graph: Parameters<typeof plan>[0], options: CompileOptions): Promise<E.Either<string, Executable>> {
  const opened = await WasmDevice.open(options.threads, options.splitFromWork);
  if (E.isLeft(opened)) return E.left(formatDeviceError(opened.left));
  const device = opened.right;
  const planned = plan(graph, device.limits(), { target: wasmTarget, ...(options.symbolicIndexFrom === undefined ? {} : { symbolicIndexFrom: options.symbolicIndexFrom }) });
  if (E.isLeft(planned)) {
    await device.dispose();
    return planned;
  }
  const p = planned.right;
  const arena = layoutArena(p);
  const outputBytes = [...new Set(Object.values(p.graph.outputs))].reduce((sum, n) => sum + bufferBytes(n), 0);
  const total = p.memory.inputBytes + arena.bytes + outputBytes;
  if (total > MAX_MEMORY_BYTES) {
    await device.dispose();
    const largest = [...p.kernels].sort((a, c) => bufferBytes(c.root) - bufferBytes(a.root)).slice(0, 5);
    return E.left(
      `memory plan: ${total} bytes (inputs ${p.memory.inputBytes}, intermediates ${arena.bytes}, outputs ${outputBytes}) exceed the ${MAX_MEMORY_BYTES} bytes wasm32 addresses; largest tensors:\n` +
        largest.map((k) => `  ${describeTensor(k.root)} = ${bufferBytes(k.root)} bytes`).join('\n'),
    );
  }
  // One function per distinct kernel structure.
  const builder = new ModuleBuilder();
  builder.importMemory('env', 'memory', { min: 1, max: 65_536, shared: true });
  for (const name of IMPORTS) builder.importFunction('math', name, name === 'pow' ? ['f32', 'f32'] : ['f32'], ['f32']);
  const bySignature = new Map<string, number>();
  const fnOf: number[] = [];
  // What a launch needs of each function (its code is dropped once in the module).
  const launches: KernelLaunch[] = [];
  const names: string[] = [];
  let scratch = 0;
  p.kernels.forEach((k, i) => {
    const sig = kernelSignature(k);
    let fn = bySignature.get(sig);
    if (fn === undefined) {
      const r = renderKernel(k);
      fn = names.length;
      names.push(`k${fn}`);
      builder.addFunction({ params: ['i32', ...r.params], results: [], locals: r.locals, code: r.code, export: `k${fn}` });
      bySignature.set(sig, fn);
      launches[fn] = { items: r.items, itemAlign: r.itemAlign, work: r.work, scratchBytes: r.scratchBytes, operands: r.operands };
      scratch = Math.max(scratch, r.scratchBytes);
    }
    fnOf[i] = fn;
    options.onProgress?.(i + 1, p.kernels.length);
  });
  let program: WasmProgram;
  let arenaBase: number;
  let moduleBytes = 0;
  try {
    const bytes = builder.toBytes();
    moduleBytes = bytes.length;
    const module = await wasm.compile(bytes);
    program = await device.load(module, names, scratch);
    arenaBase = device.alloc(Math.max(arena.bytes, 4));
  } catch (error) {
    await device.dispose();
    return E.left(`[wasm] kernel: ${String(error)}`);
  }
  options.log?.(`wasm: ${names.length} kernel functions (${(moduleBytes / 2 ** 10).toFixed(0)} KiB of code) for ${p.kernels.length} launches, ${device.threads} thread(s), arena ${(arena.bytes / 2 ** 20).toFixed(1)} MiB`);
  return E.right(makeExecutable(device, p, program, fnOf.map((fn) => launches[fn]), fnOf, arenaBase, arena.offsets));
}

function makeExecutable(
  device: WasmDevice,
  p: ProgramPlan,
  program: WasmProgram,
  kernels: readonly KernelLaunch[],
  fnOf: readonly number[],
  arenaBase: number,
  offsets: ReadonlyMap<number, number>,
): Executable {
  const upload = async (name: string, data: Float32Array): Promise<E.Either<string, DeviceHandle>> => {
    const leaf = p.bindings.get(name);
    if (leaf !== undefined && data.length !== numel(leaf.shape))
      return E.left(`'${name}' has ${data.length} elements, the program expects ${showShape(leaf.shape)} = ${numel(leaf.shape)}`);
    const h = await device.upload(data);
    return E.isLeft(h) ? E.left(formatDeviceError(h.left)) : h;
  };
  const outputs = new Set(Object.values(p.graph.outputs).map((n) => n.id));
  let disposed = false;
  const exe: Omit<Executable, 'step'> = {
    backend: 'wasm',
    device,
    plan: p,
    builtKernels: new Set(fnOf).size,
    upload,
    read: async (h) => {
      const r = await device.read(h);
      return E.isLeft(r) ? E.left(formatDeviceError(r.left)) : r;
    },
    synchronize: async () => E.right(undefined),
    dispose: async () => {
      if (disposed) return;
      disposed = true;
      device.unload(program);
      await device.dispose();
    },
    run: async (inputs, afterLaunch) => {
      const addr = new Map<number, number>();
      const uploaded: DeviceHandle[] = [];
      const produced = new Map<number, DeviceHandle>();
      const cleanup = (all: boolean) => {
        for (const h of uploaded) device.free(h);
        if (all) for (const h of produced.values()) device.free(h);
      };
      for (const [name, leaf] of p.bindings) {
        const v = inputs[name];
        if (v === undefined) {
          cleanup(true);
          return E.left(`no value bound for '${name}' ${showShape(leaf.shape)}`);
        }
        if (v instanceof DeviceHandle) {
          if (v.byteLength !== numel(leaf.shape) * 4) {
            cleanup(true);
            return E.left(`'${name}' is bound to a device buffer of ${v.byteLength / 4} elements, the program expects ${showShape(leaf.shape)}`);
          }
          addr.set(leaf.id, device.offsetOf(v));
        } else {
          const h = await upload(name, v);
          if (E.isLeft(h)) {
            cleanup(true);
            return h;
          }
          uploaded.push(h.right);
          addr.set(leaf.id, device.offsetOf(h.right));
        }
      }
      for (const step of p.memory.steps) {
        if (step.kind === 'free') continue;
        const kp = p.kernels[step.kernel];
        const k = kernels[step.kernel];
        let out: number;
        if (outputs.has(kp.root.id)) {
          const h = device.allocate(numel(kp.root.shape));
          produced.set(kp.root.id, h);
          out = device.offsetOf(h);
        } else out = arenaBase + (offsets.get(kp.root.id) as number);
        addr.set(kp.root.id, out);
        const spec: LaunchSpec = { fn: fnOf[step.kernel], params: [out, ...k.operands.map((a) => addr.get(kp.args[a].id) as number)], items: k.items, itemAlign: k.itemAlign, work: k.work, scratchBytes: k.scratchBytes };
        try {
          device.launch(program, spec);
        } catch (error) {
          cleanup(true);
          return E.left(`[wasm kernel "${kp.root.layer === '' ? '' : `${kp.root.layer}/`}${kp.root.op}#${step.kernel}"] kernel: ${String(error)}`);
        }
        if (afterLaunch !== undefined) {
          const h = produced.get(kp.root.id);
          if (h !== undefined) await afterLaunch(step.kernel, h);
          else {
            // The profiler needs a handle: a temporary one viewing nothing is not possible, so copy out.
            const tmp = device.allocate(1);
            await afterLaunch(step.kernel, tmp);
            device.free(tmp);
          }
        }
      }
      const result: Record<string, DeviceHandle> = {};
      for (const [name, node] of Object.entries(p.graph.outputs)) result[name] = produced.get(node.id) as DeviceHandle;
      cleanup(false);
      return E.right(result);
    },
  };
  return { ...exe, step: donatingStep(exe) };
}

// TensorFlow.js 4.22 peers (tfjs-backend-cpu, tfjs-backend-wasm, tfjs-backend-webgpu) on the same workloads, in the same process
// as our runs. The model and the wasm weight-gradient replacement follow ../shared/peers/tfjs_bench.js
// (NHWC, as tfjs prefers); this is a typed rewrite, not a copy.
//
// Loading: tfjs-core's CommonJS build (what Node resolves) registers no gradients; the union package's build
// does, into the same global engine, so it is imported for that side effect. tfjs prints a "use tfjs-node"
// banner through console.log when it loads, hence the dynamic import behind `loadTfjs` (main.ts routes
// console.log away from a JSON stdout first).
import { createRequire } from 'node:module';
import { dirname, join, sep } from 'node:path';
import type * as TfCore from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { installWebGpuNavigator } from '../compiler/runtime/gpujs.ts';
import { createRng, type Rng } from '../clove/data/rng.ts';
import { timeAdaptive, type IterationPolicy, type Timing } from './timing.ts';
import { STAGE_STRIDES, STEM, w1GridSide, type MicroSizes, type W1Shape } from './flops.ts';
import { STATE_PREFIX, W1_INPUT, w1Inputs, w1ParamShapes } from './w1.ts';

type Tf = typeof TfCore;
export type TfjsBackend = 'cpu' | 'wasm' | 'webgpu';
export const TFJS_BACKENDS: readonly TfjsBackend[] = ['wasm', 'cpu', 'webgpu'];
export const isTfjsBackend = (name: string): name is TfjsBackend => (TFJS_BACKENDS as readonly string[]).includes(name);

let core: Promise<Tf> | null = null;

/**
 * tfjs-core with the cpu backend and the union package's gradients, then what `backend` needs: the wasm backend
 * (whose .wasm files are next to it), or the WebGPU backend on Dawn's navigator.gpu (the one gpu.js uses). Each
 * backend's package is loaded only when asked for, so a bundle without the wasm files still runs the others.
 */
export async function loadTfjs(backend: TfjsBackend): Promise<Tf> {
  core ??= (async () => {
    const tf = await import('@tensorflow/tfjs-core');
    await import('@tensorflow/tfjs-backend-cpu');
    await import('@tensorflow/tfjs');
    return tf;
  })();
  const tf = await core;
  if (backend === 'wasm') {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    const require = createRequire(import.meta.url);
    wasm.setWasmPaths(join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm')), sep));
  } else if (backend === 'webgpu') {
    const failure = await installWebGpuNavigator();
    if (failure !== null) throw new Error(`the webgpu package (Dawn) did not load: ${failure}`);
    // tfjs-webgpu reads the WebGPU enums (GPUBufferUsage, GPUMapMode, ...) as globals, which Node lacks.
    const { globals } = (await import('webgpu')) as unknown as { globals: Record<string, unknown> };
    for (const [name, value] of Object.entries(globals)) if (!(name in globalThis)) Object.defineProperty(globalThis, name, { value, configurable: true, writable: true });
    await import('@tensorflow/tfjs-backend-webgpu');
  }
  return tf;
}

export interface TfjsSetup {
  readonly tf: Tf;
  readonly backend: TfjsBackend;
  /** What was configured (SIMD, threads, kernel replacements), for the report. */
  readonly notes: readonly string[];
}

/** Switches tfjs to `backend`; on wasm, registers the missing Conv2DBackpropFilter. Errors are values. */
export async function setupTfjs(backend: TfjsBackend): Promise<{ ok: true; setup: TfjsSetup } | { ok: false; reason: string }> {
  let tf: Tf;
  try {
    tf = await loadTfjs(backend);
  } catch (error) {
    return { ok: false, reason: `loading @tensorflow/tfjs* failed: ${String(error)}` };
  }
  const notes: string[] = [];
  let ready = false;
  try {
    ready = await tf.setBackend(backend);
    await tf.ready();
  } catch (error) {
    return { ok: false, reason: `tf.setBackend('${backend}') threw: ${String(error)}` };
  }
  if (!ready) return { ok: false, reason: `tf.setBackend('${backend}') returned false` };
  if (backend === 'webgpu') {
    // AdapterInfo keeps vendor and architecture private; they name the GPU tfjs got, for the report.
    const info: unknown = Reflect.get(tf.backend(), 'adapterInfo');
    const field = (k: string): string => String((typeof info === 'object' && info !== null ? Reflect.get(info, k) : undefined) ?? '?');
    notes.push(`WebGPU through Dawn (the package gpu.js uses), adapter vendor '${field('vendor')}', architecture '${field('architecture')}'`);
  }
  if (backend === 'wasm') {
    const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
    const threads = await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT');
    notes.push(`wasm SIMD ${String(simd)}, threads ${String(threads)} (tfjs turns wasm threads off in Node)`);
    notes.push(installWasmWeightGradient(tf));
  }
  return { ok: true, setup: { tf, backend, notes } };
}

/**
 * Ends the tfjs WebGPU backend and destroys its GPUDevice: a live Dawn device keeps Node's event loop busy, so a
 * process that used tfjs-webgpu (a test file) would never exit. The backend cannot be set again afterwards.
 */
export function closeTfjsWebGpu(setup: TfjsSetup): void {
  if (setup.backend !== 'webgpu') return;
  const device: unknown = Reflect.get(setup.tf.findBackend('webgpu'), 'device');
  setup.tf.removeBackend('webgpu');
  if (typeof device === 'object' && device !== null) (device as { destroy(): void }).destroy();
}

/**
 * tfjs-backend-wasm 4.22 has Conv2D and Conv2DBackpropInput but no Conv2DBackpropFilter, so any gradient through
 * conv2d fails there. tf.registerKernel lets us add one built from kernels wasm has (tfjs_bench.js's
 * 'composite'): dW[ky,kx,ci,co] = Σ_{n,y,x} Xpad[n, s·y+ky, s·x+kx, ci] · dY[n,y,x,co], which is one dilated
 * conv2d of Xpadᵀ [Cin, He, We, N] with dYᵀ [Ho, Wo, N, Cout], plus three transposes.
 */
function installWasmWeightGradient(tf: Tf): string {
  const name = 'Conv2DBackpropFilter';
  if (tf.getKernel(name, 'wasm') !== undefined) return `wasm has ${name}`;
  tf.registerKernel({
    kernelName: name,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as BackendWasm;
      const x = inputs.x;
      const dy = inputs.dy;
      if (x === undefined || dy === undefined || attrs === undefined) throw new Error(`${name} replacement: missing x, dy or attrs`);
      const a = attrs as unknown as TfCore.Conv2DBackpropFilterAttrs;
      const [n, hIn, wIn, cIn] = x.shape as [number, number, number, number];
      const info = tf.backend_util.computeConv2DInfo([n, hIn, wIn, cIn], a.filterShape, a.strides, 1, a.pad, a.dimRoundingMode, false, 'channelsLast');
      const result = tf.tidy(() => {
        // Kernel inputs are backend data, not engine tensors: wrap them, and bump the refcount the wrapper will drop.
        const X = tf.engine().makeTensorFromTensorInfo(x, wasm);
        wasm.incRef(x.dataId);
        const DY = tf.engine().makeTensorFromTensorInfo(dy, wasm);
        wasm.incRef(dy.dataId);
        const { top, left } = info.padInfo;
        const { outHeight, outWidth, strideHeight, strideWidth, filterHeight, filterWidth } = info;
        const hExt = (outHeight - 1) * strideHeight + filterHeight;
        const wExt = (outWidth - 1) * strideWidth + filterWidth;
        let padded = tf.pad(X as TfCore.Tensor4D, [
          [0, 0],
          [top, Math.max(0, hExt - hIn - top)],
          [left, Math.max(0, wExt - wIn - left)],
          [0, 0],
        ]);
        if (padded.shape[1] !== hExt || padded.shape[2] !== wExt) padded = tf.slice(padded, [0, 0, 0, 0], [n, hExt, wExt, cIn]);
        const r = tf.conv2d(tf.transpose(padded, [3, 1, 2, 0]), tf.transpose(DY as TfCore.Tensor4D, [1, 2, 0, 3]), 1, 'valid', 'NHWC', [strideHeight, strideWidth]);
        return tf.transpose(r, [1, 2, 0, 3]);
      });
      // A kernel must return backend-owned data, not an engine tensor: copy into a fresh output.
      const out = wasm.makeOutput([...result.shape], 'float32');
      wasm.typedArrayFromHeap(out).set(wasm.typedArrayFromHeap(result));
      result.dispose();
      return out;
    },
  });
  return `wasm lacks ${name}: registered a replacement (transposes + one dilated conv2d on wasm kernels, as tfjs_bench.js --bwd-filter composite)`;
}

const randn = (tf: Tf, shape: readonly number[], std: number, rng: Rng): TfCore.Tensor => {
  const n = shape.reduce((a, c) => a * c, 1);
  return tf.tensor(Float32Array.from({ length: n }, () => rng.normal() * std), [...shape]);
};

/** tfjs ops on cpu/wasm run to completion inside the call; on webgpu they are queued, and reading the smallest output waits for the queue. */
const settle = async (ts: readonly TfCore.Tensor[]): Promise<void> => {
  const smallest = ts.reduce((a, b) => (b.size < a.size ? b : a));
  await smallest.data();
  for (const t of ts) t.dispose();
};

export type TfjsMicroName = 'matmul' | 'convForward' | 'convForwardBackward' | 'blockForwardBackward';

/** One tfjs micro-benchmark; `policy` sets warm-up and iterations (the slow cpu backward gets fewer). */
export async function tfjsMicro(setup: TfjsSetup, m: MicroSizes, which: TfjsMicroName, policy: IterationPolicy): Promise<{ readonly timing: Timing; readonly firstRunMs: number }> {
  const { tf } = setup;
  const rng = createRng(7);
  const keep: TfCore.Tensor[] = [];
  const mk = (shape: readonly number[], std: number) => {
    const t = randn(tf, shape, std, rng);
    keep.push(t);
    return t;
  };
  try {
    const { convBatch: n, convChannels: c, convSize: s } = m;
    const wStd = Math.sqrt(2 / (9 * c));
    if (which === 'matmul') {
      const a = mk([m.matmul, m.matmul], 1) as TfCore.Tensor2D;
      const b = mk([m.matmul, m.matmul], 1) as TfCore.Tensor2D;
      return await timeAdaptive(() => settle([tf.matMul(a, b)]), policy);
    }
    const x = mk([n, s, s, c], 1) as TfCore.Tensor4D;
    const w = mk([3, 3, c, c], wStd) as TfCore.Tensor4D;
    const gy = mk([n, s, s, c], 1) as TfCore.Tensor4D;
    if (which === 'convForward') return await timeAdaptive(() => settle([tf.conv2d(x, w, 1, 1)]), policy);
    if (which === 'convForwardBackward') {
      const f = tf.valueAndGrads((xx: TfCore.Tensor, ww: TfCore.Tensor) => tf.conv2d(xx as TfCore.Tensor4D, ww as TfCore.Tensor4D, 1, 1));
      return await timeAdaptive(() => {
        const { value, grads } = f([x, w], gy);
        return settle([value, ...grads]);
      }, policy);
    }
    const w2 = mk([3, 3, c, c], wStd) as TfCore.Tensor4D;
    const ones = tf.ones([c]);
    const zeros = tf.zeros([c]);
    keep.push(ones, zeros);
    const bn = (y: TfCore.Tensor4D, g: TfCore.Tensor, b: TfCore.Tensor): TfCore.Tensor4D => {
      const { mean, variance } = tf.moments(y, [0, 1, 2]);
      return tf.batchNorm(y, mean, variance, b as TfCore.Tensor1D, g as TfCore.Tensor1D, 1e-5) as TfCore.Tensor4D;
    };
    const block = tf.valueAndGrads((...args: TfCore.Tensor[]) => {
      const [xx, wa, ga, ba, wb, gb, bb] = args;
      const h = tf.relu(bn(tf.conv2d(xx as TfCore.Tensor4D, wa as TfCore.Tensor4D, 1, 1), ga, ba));
      return tf.relu(tf.add(bn(tf.conv2d(h, wb as TfCore.Tensor4D, 1, 1), gb, bb), xx));
    });
    return await timeAdaptive(() => {
      const { value, grads } = block([x, w, ones, zeros, w2, ones, zeros], gy);
      return settle([value, ...grads]);
    }, policy);
  } finally {
    for (const t of keep) t.dispose();
  }
}

/** One conv of the contraction benchmark (bench/contractions.ts) in tfjs: NHWC, HWIO, explicit padding. */
export async function tfjsConv(
  setup: TfjsSetup,
  c: { readonly x: readonly [number, number, number, number]; readonly cOut: number; readonly kernel: number; readonly stride: number; readonly padding: number },
  backward: boolean,
  policy: IterationPolicy,
): Promise<{ readonly timing: Timing; readonly firstRunMs: number }> {
  const { tf } = setup;
  const rng = createRng(7);
  const [n, cIn, h, w] = c.x;
  const side = Math.floor((h + 2 * c.padding - c.kernel) / c.stride) + 1;
  const keep = [randn(tf, [n, h, w, cIn], 1, rng), randn(tf, [c.kernel, c.kernel, cIn, c.cOut], Math.sqrt(2 / (cIn * c.kernel ** 2)), rng), randn(tf, [n, side, side, c.cOut], 1, rng)];
  const [x, wt, gy] = keep as [TfCore.Tensor4D, TfCore.Tensor4D, TfCore.Tensor4D];
  const pad: [[number, number], [number, number], [number, number], [number, number]] = [[0, 0], [c.padding, c.padding], [c.padding, c.padding], [0, 0]];
  const conv = (xx: TfCore.Tensor4D, ww: TfCore.Tensor4D) => tf.conv2d(xx, ww, c.stride, pad);
  try {
    if (!backward) return await timeAdaptive(() => settle([conv(x, wt)]), policy);
    const f = tf.valueAndGrads((xx: TfCore.Tensor, ww: TfCore.Tensor) => conv(xx as TfCore.Tensor4D, ww as TfCore.Tensor4D));
    return await timeAdaptive(() => {
      const { value, grads } = f([x, wt], gy);
      return settle([value, ...grads]);
    }, policy);
  } finally {
    for (const t of keep) t.dispose();
  }
}

// ---- W1 in tfjs (NHWC) ------------------------------------------------------------------------------------------
// The tfjs step starts from OUR initial state and inputs (same names; layouts converted: OIHW → HWIO, NCHW → NHWC,
// the packed [3D, D] in-projection split into x·W matrices), so its losses can be compared with ours step by step.

type VarMap = Record<string, TfCore.Variable>;

/** Our state record → tfjs variables (student and teacher) and zero momentum, by our names. */
function variablesFrom(tf: Tf, s: W1Shape, state: Readonly<Record<string, Float32Array>>, prefix: string, trainable: boolean): VarMap {
  const shapes = w1ParamShapes(s);
  const entries = prefix === STATE_PREFIX.teacher ? shapes.encoderHead : [...shapes.encoderHead, ...shapes.predictor];
  const vars: VarMap = {};
  const value = (name: string): Float32Array => {
    const v = state[`${prefix}.${name}`];
    if (v === undefined) throw new Error(`tfjs W1: the state has no '${prefix}.${name}'`);
    return v;
  };
  for (const [name, shape] of entries) {
    const v = value(name);
    if (name === 'predictor.in_proj_weight') {
      // rows [part·D, (part+1)·D) of the packed weight give part = q, k, v; x·Wᵀ is x·(that block)ᵀ
      const packed = tf.tensor2d(v, [3 * s.dim, s.dim]);
      ['wq', 'wk', 'wv'].forEach((part, i) => {
        vars[`predictor.${part}`] = tf.variable(tf.transpose(tf.slice(packed, [i * s.dim, 0], [s.dim, s.dim])), trainable, `${prefix}.predictor.${part}`);
      });
      packed.dispose();
    } else if (name === 'predictor.out_proj.weight') {
      vars[name] = tf.variable(tf.transpose(tf.tensor2d(v, [s.dim, s.dim])), trainable, `${prefix}.${name}`);
    } else if (shape.length === 4) {
      vars[name] = tf.variable(tf.transpose(tf.tensor4d(v, [shape[0], shape[1], shape[2], shape[3]]), [2, 3, 1, 0]), trainable, `${prefix}.${name}`);
    } else {
      vars[name] = tf.variable(tf.tensor(v, [...shape]), trainable, `${prefix}.${name}`);
    }
  }
  return vars;
}

function encoderHeadForward(tf: Tf, s: W1Shape, p: VarMap, x: TfCore.Tensor4D): TfCore.Tensor3D {
  const v = (name: string): TfCore.Variable => {
    const t = p[name];
    if (t === undefined) throw new Error(`tfjs W1: no variable '${name}'`);
    return t;
  };
  const bn = (y: TfCore.Tensor4D, name: string): TfCore.Tensor4D => {
    const { mean, variance } = tf.moments(y, [0, 1, 2]);
    return tf.batchNorm(y, mean, variance, v(`${name}.bias`) as TfCore.Tensor1D, v(`${name}.weight`) as TfCore.Tensor1D, 1e-5) as TfCore.Tensor4D;
  };
  const conv = (h: TfCore.Tensor4D, name: string, stride: number, pad: number) => tf.conv2d(h, v(`${name}.weight`) as TfCore.Tensor4D, stride, pad);
  let h = tf.relu(bn(conv(x, 'encoder.stem', STEM.stride, STEM.padding), 'encoder.stem_bn'));
  let cIn = s.widths[0];
  s.widths.forEach((w, stage) => {
    for (let b = 0; b < 2; b++) {
      const stride = b === 0 ? STAGE_STRIDES[stage] : 1;
      const n = `encoder.s${stage}b${b}`;
      const y = bn(conv(tf.relu(bn(conv(h, `${n}.conv1`, stride, 1), `${n}.bn1`)), `${n}.conv2`, 1, 1), `${n}.bn2`);
      const shortcut = stride !== 1 || cIn !== w ? bn(conv(h, `${n}.proj`, stride, 0), `${n}.proj_bn`) : h;
      h = tf.relu(tf.add(y, shortcut)) as TfCore.Tensor4D;
      cIn = w;
    }
  });
  h = tf.relu(bn(conv(h, 'head.conv1', 1, 0), 'head.bn'));
  h = tf.add(conv(h, 'head.conv2', 1, 0), v('head.conv2.bias')) as TfCore.Tensor4D;
  const cells = w1GridSide(s) ** 2;
  return tf.reshape(h, [x.shape[0], cells, s.dim]);
}

const l2n = (tf: Tf, x: TfCore.Tensor): TfCore.Tensor => tf.mul(x, tf.rsqrt(tf.add(tf.sum(tf.square(x), -1, true), 1e-12)));

export interface TfjsW1Result {
  readonly timing: Timing;
  readonly firstRunMs: number;
  /** The loss of every step run (warm-up included), in order. */
  readonly losses: readonly number[];
  readonly studentParams: number;
}

export interface TfjsW1Session {
  /** One training step; resolves after the loss and two updated parameters have been read. */
  step(): Promise<void>;
  /** The loss of every step so far. */
  readonly losses: readonly number[];
  readonly studentParams: number;
  dispose(): void;
}

/** W1 on the current tfjs backend from `state` and `data` (our names and layouts, see above). */
export function makeTfjsW1(
  setup: TfjsSetup,
  s: W1Shape,
  state: Readonly<Record<string, Float32Array>>,
  data: Readonly<Record<string, Float32Array>>,
): TfjsW1Session {
  const { tf } = setup;
  const cells = w1GridSide(s) ** 2;
  const D = s.dim;
  const heads = s.heads;
  const dh = D / heads;
  const B = s.batch;
  const student = variablesFrom(tf, s, state, STATE_PREFIX.student, true);
  const teacher = variablesFrom(tf, s, state, STATE_PREFIX.teacher, false);
  const names = Object.keys(student);
  const varList = names.map((k) => student[k]);
  const momentum = names.map((k) => tf.variable(tf.zerosLike(student[k]), false, `momentum.${k}`));
  const viewShape = w1Inputs(s)[W1_INPUT.views];
  const input = (name: string): Float32Array => {
    const v = data[name];
    if (v === undefined) throw new Error(`tfjs W1: no input '${name}'`);
    return v;
  };
  const nchw = tf.tensor4d(input(W1_INPUT.views), [viewShape[0], viewShape[1], viewShape[2], viewShape[3]]);
  const views = tf.transpose(nchw, [0, 2, 3, 1]);
  nchw.dispose();
  const maskValues = input(W1_INPUT.mask);
  const mask = tf.tensor3d(maskValues, [B, cells, cells]);
  const maskT = tf.transpose(mask, [0, 2, 1]);
  const count = tf.scalar(Math.max(1, 2 * maskValues.reduce((a, b) => a + b, 0)));
  const lr = input(W1_INPUT.learningRate)[0];
  const ema = input(W1_INPUT.ema)[0];

  const v = (name: string): TfCore.Variable => {
    const t = student[name];
    if (t === undefined) throw new Error(`tfjs W1: no variable '${name}'`);
    return t;
  };
  const predictorForward = (x: TfCore.Tensor3D): TfCore.Tensor3D => {
    const n = x.shape[0];
    const flat = tf.reshape(x, [n * cells, D]) as TfCore.Tensor2D;
    const split = (w: TfCore.Variable) =>
      tf.reshape(tf.transpose(tf.reshape(tf.matMul(flat, w as TfCore.Tensor2D), [n, cells, heads, dh]), [0, 2, 1, 3]), [n * heads, cells, dh]) as TfCore.Tensor3D;
    const q = l2n(tf, split(v('predictor.wq'))) as TfCore.Tensor3D;
    const k = l2n(tf, split(v('predictor.wk'))) as TfCore.Tensor3D;
    const val = split(v('predictor.wv'));
    const attn = tf.softmax(tf.div(tf.matMul(q, k, false, true), s.temperature)) as TfCore.Tensor3D;
    const o = tf.reshape(tf.transpose(tf.reshape(tf.matMul(attn, val), [n, heads, cells, dh]), [0, 2, 1, 3]), [n * cells, D]) as TfCore.Tensor2D;
    const projected = tf.add(tf.matMul(o, v('predictor.out_proj.weight') as TfCore.Tensor2D), v('predictor.out_proj.bias'));
    return tf.add(x, tf.reshape(projected, [n, cells, D])) as TfCore.Tensor3D;
  };
  // tfjs has no stop-gradient and TopK has no gradient: the negative is a customGrad with a zero gradient.
  const negatives = tf.customGrad((...args: (TfCore.Tensor | TfCore.GradSaveFunc)[]) => {
    const [cn, fn] = args as [TfCore.Tensor, TfCore.Tensor];
    const sim = tf.matMul(cn as TfCore.Tensor3D, fn as TfCore.Tensor3D, false, true);
    const idx = tf.slice(tf.topk(sim, s.topk).indices, [0, 0, 1], [-1, -1, s.topk - 1]);
    // The one-hots are summed as float32, reached per backend around two tfjs 4.22 bugs: on webgpu, an int32
    // transpose (inside the axis-2 sum) emits WGSL that Dawn rejects and cast(int32 → float32) keeps int32 data;
    // tfjs-wasm ignores oneHot's dtype argument (int32 bits read as floats).
    const hot = setup.backend === 'webgpu' ? tf.oneHot(idx, cells, 1, 0, 'float32') : tf.cast(tf.oneHot(idx, cells), 'float32');
    const selection = tf.div(tf.sum(hot, 2), s.topk - 1) as TfCore.Tensor3D;
    return { value: l2n(tf, tf.matMul(selection, fn as TfCore.Tensor3D)), gradFunc: () => [tf.zerosLike(cn), tf.zerosLike(fn)] };
  });
  const denseLoss = (c: TfCore.Tensor, f: TfCore.Tensor, m: TfCore.Tensor): TfCore.Tensor => {
    const cn = l2n(tf, c);
    const fn = l2n(tf, f);
    const sim = tf.matMul(cn as TfCore.Tensor3D, fn as TfCore.Tensor3D, false, true);
    const sneg = tf.sum(tf.mul(cn, negatives(cn, fn)), -1, true);
    return tf.sum(tf.mul(tf.relu(tf.add(tf.sub(sneg, sim), s.margin)), m));
  };
  const losses: number[] = [];
  const step = async (): Promise<void> => {
    const ft = tf.tidy(() => encoderHeadForward(tf, s, teacher, views as TfCore.Tensor4D));
    const { value, grads } = tf.variableGrads(() => {
      const c = predictorForward(encoderHeadForward(tf, s, student, views as TfCore.Tensor4D));
      const l1 = denseLoss(tf.slice(c, [0, 0, 0], [B, cells, D]), tf.slice(ft, [B, 0, 0], [B, cells, D]), mask);
      const l2 = denseLoss(tf.slice(c, [B, 0, 0], [B, cells, D]), tf.slice(ft, [0, 0, 0], [B, cells, D]), maskT);
      return tf.div(tf.add(l1, l2), count) as TfCore.Scalar;
    }, varList);
    tf.tidy(() => {
      names.forEach((k, i) => {
        // PyTorch SGD, one parameter group: buf = m·buf + (g + wd·w); w -= lr·buf
        const w = student[k];
        const g = grads[w.name];
        if (g === undefined) throw new Error(`tfjs W1: no gradient for ${k}`);
        momentum[i].assign(tf.add(tf.mul(momentum[i], s.momentum), tf.add(g, tf.mul(w, s.weightDecay))));
        w.assign(tf.sub(w, tf.mul(momentum[i], lr)));
      });
      // EMA from the updated student
      for (const k of Object.keys(teacher)) teacher[k].assign(tf.add(tf.mul(teacher[k], ema), tf.mul(student[k], 1 - ema)));
    });
    losses.push((await value.data())[0]);
    await varList[varList.length - 1].data();
    await teacher[names[0]].data();
    value.dispose();
    ft.dispose();
    for (const g of Object.values(grads)) g.dispose();
  };
  return {
    step,
    losses,
    studentParams: varList.reduce((a, t) => a + t.size, 0),
    dispose: () => {
      for (const t of [...varList, ...Object.values(teacher), ...momentum, views, mask, maskT, count]) t.dispose();
    },
  };
}

/** One warm-up step, then as many timed steps as `policy` allows. */
export async function tfjsW1(
  setup: TfjsSetup,
  s: W1Shape,
  state: Readonly<Record<string, Float32Array>>,
  data: Readonly<Record<string, Float32Array>>,
  policy: IterationPolicy,
): Promise<TfjsW1Result> {
  const session = makeTfjsW1(setup, s, state, data);
  try {
    const { timing, firstRunMs } = await timeAdaptive(() => session.step(), policy);
    return { timing, firstRunMs, losses: [...session.losses], studentParams: session.studentParams };
  } finally {
    session.dispose();
  }
}


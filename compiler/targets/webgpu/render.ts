// The webgpu target's contraction kernels: WGSL compute shaders from one GEMM template, run on gpu.js's GPUDevice
// (compiler/runtime/device.ts `launchWgsl`). Every other kernel of the target is a gpu.js kernel.
//
// The template computes C[b, m, n] = Σ_k A(b, m, k) · B(b, k, n) for each batch b (the workgroup's z):
// - a workgroup owns a BM × BN tile of C and walks K in BK-deep slices; each slice of A (BM × BK) and of B
//   (BK × BN) is staged in workgroup memory by all threads together, then every thread accumulates its TM × TN
//   register tile from it (rows ty + i·TY, columns tx + j·TX: a warp's stores and its reads of B are contiguous,
//   its reads of A a broadcast);
// - the staging loads run along each operand's contiguous axis (consecutive threads, consecutive addresses), as
//   vec4 loads where the layout allows (a plain row-major operand whose contiguous extent is a multiple of 4);
// - A(b, m, k) and B(b, k, n) are WGSL functions per contraction that return 0 outside the operand (edges of
//   M, N, K that are not multiples of the tile, and a convolution's padding), and C is stored only inside M × N.
// The contractions, as this GEMM:
// - dot [..B, M, K] · [..B, K, N]: b = the batch, A and B the operands as they are.
// - conv2d (forward, and the input gradient: a conv over the cotangent zero-padded and zero-dilated by the stride,
//   which is folded in, never materialized): per group b, rows m = the group's output channels, columns n = every
//   output pixel of every image (N·Ho·Wo), k = (input channel, tap); A = the weights, B = the im2col matrix read in
//   place (an implicit GEMM).
// - convWeightGrad: per group b, rows m = the group's output channels, columns n = (input channel, tap), k = every
//   output pixel of every image; A = the cotangent, B = the input's windows (also an implicit GEMM).
import { numel, type Node } from '../../ir.ts';
import type { KernelPlan } from '../../schedule.ts';
import { renderEpilogue, type Epilogue } from './epilogue.ts';
import { chooseTiling, threadsOf, type Tiling } from './tiles.ts';

export interface WgslKernelSource {
  readonly code: string;
  readonly workgroups: readonly [number, number, number];
  readonly outputElements: number;
  /** The kernel argument (plan.args index) each binding 0…n−1 reads; binding n is the output. */
  readonly operands: readonly number[];
  readonly tiling: Tiling;
  /** Multiply-adds of one launch. */
  readonly work: number;
}

/** The contraction a kernel computes with a template: its root, or the contraction its root's epilogue reads. */
export function contractionOf(plan: KernelPlan): Node | null {
  const isTemplate = (n: Node) => n.op === 'dot' || n.op === 'conv2d' || n.op === 'convWeightGrad';
  if (isTemplate(plan.root)) return plan.root;
  return plan.inlined.find(isTemplate) ?? null;
}

/** How one GEMM operand is read: element loads, and vec4 loads along its contiguous axis where allowed. */
interface Side {
  /** The axis along which consecutive elements are contiguous in memory: k, or m (A) / n (B). */
  readonly fast: 'k' | 'mn';
  /** WGSL statements of `fn load(b: u32, mn: u32, k: u32) -> f32`, 0 outside the operand. */
  readonly scalar: string;
  /** WGSL statements of the vec4 at (mn, k..k+3) or (mn..mn+3, k), all inside or all 0; null when not aligned. */
  readonly vec4: string | null;
}

interface Gemm {
  readonly batch: number;
  readonly M: number;
  readonly N: number;
  readonly K: number;
  /** Binding declarations for the operands (bindings 0…n−1), with the vec4 or scalar element type each needs. */
  readonly bindings: readonly string[];
  /** WGSL constants and helpers the loads and the store use. */
  readonly prelude: string;
  readonly a: Side;
  readonly b: Side;
  /** WGSL statements of `fn outIndex(b: u32, m: u32, n: u32) -> u32`: where C[b, m, n] lives in the output. */
  readonly outIndex: string;
}

const u = (v: number): string => `${v}u`;
const i = (v: number): string => `${v}i`;
const binding = (k: number, vec4: boolean): string => `@group(0) @binding(${k}) var<storage, read> a${k}: array<${vec4 ? 'vec4<f32>' : 'f32'}>;`;

/**
 * Statements staging one BK-deep slice of an operand into the workgroup array `dst` of vec4s: A as [BM][BK/4] (each
 * row's k contiguous), B as [BK][BN/4] (each k's columns contiguous). Consecutive threads take consecutive elements
 * along the operand's contiguous axis (`side.fast`), by vec4 where the operand allows.
 */
function stage(dst: string, load: string, side: Side, which: 'A' | 'B', rows: number, BK: number, threads: number, mn0: string): string[] {
  // The vec4 of the workgroup array holding element (r, kk), and its component.
  const at = (r: string, kk: string): string => (which === 'A' ? `${dst}[${r} * ${u(BK / 4)} + ${kk} / 4u][${kk} % 4u]` : `${dst}[${kk} * ${u(rows / 4)} + ${r} / 4u][${r} % 4u]`);
  const out: string[] = [];
  if ((rows * BK) % (4 * threads) !== 0) throw new Error(`webgpu tiling: a ${rows}×${BK} slice does not split into vec4s over ${threads} threads`);
  const vectorized = side.vec4 !== null && (which === 'A') === (side.fast === 'k');
  if (vectorized) {
    // A along k into a row's vec4, or B along n into a k's vec4: whole vec4s.
    // A loop, not unrolled copies: lavapipe compiles each shader at its first dispatch, in seconds for big ones.
    const count = (rows * BK) / 4 / threads;
    out.push(
      `for (var q = 0u; q < ${u(count)}; q = q + 1u) {`,
      which === 'A'
        ? `  let e = li + q * ${u(threads)}; let kq = e % ${u(BK / 4)}; let r = e / ${u(BK / 4)}; ${dst}[r * ${u(BK / 4)} + kq] = ${load}4(b, ${mn0} + r, k0 + kq * 4u);`
        : `  let e = li + q * ${u(threads)}; let rq = e % ${u(rows / 4)}; let kk = e / ${u(rows / 4)}; ${dst}[kk * ${u(rows / 4)} + rq] = ${load}4(b, ${mn0} + rq * 4u, k0 + kk);`,
      '}',
    );
    return out;
  }
  const count = (rows * BK) / threads;
  out.push(
    `for (var q = 0u; q < ${u(count)}; q = q + 1u) {`,
    side.fast === 'k'
      ? `  let e = li + q * ${u(threads)}; let kk = e % ${u(BK)}; let r = e / ${u(BK)}; ${at('r', 'kk')} = ${load}(b, ${mn0} + r, k0 + kk);`
      : `  let e = li + q * ${u(threads)}; let r = e % ${u(rows)}; let kk = e / ${u(rows)}; ${at('r', 'kk')} = ${load}(b, ${mn0} + r, k0 + kk);`,
    '}',
  );
  return out;
}

/**
 * The WGSL of a GEMM under a tiling. Thread (tx, ty) owns rows m0 + (i·TY + ty)·4 + r and columns
 * n0 + (j·TX + tx)·4 + c (i < TM/4, j < TN/4, r, c < 4): its reads of B are vec4s at consecutive addresses across
 * tx (no bank conflicts), its reads of A vec4s along k shared by every thread of a row. Per 4 steps of k a thread
 * reads TM + TN vec4s from workgroup memory for 4·TM·TN multiply-adds.
 */
function gemmShader(g: Gemm, t: Tiling, grid: Grid, subgroupSize: number | null, epilogue: Epilogue | null): string {
  const { BM, BN, BK, TM, TN } = t;
  const { TX, TY } = threadsOf(t);
  // Where every subgroup lies inside one row of threads (TX a multiple of a fixed subgroup size), the row index is
  // said to be subgroup-uniform (subgroupBroadcastFirst returns the value every lane has anyway): a SIMD
  // implementation of the invocations (lavapipe: a subgroup is one CPU vector) then reads A once per subgroup and
  // broadcasts it instead of lane by lane (on lavapipe, matmul 512³ ~5–10% faster: within the noise of a shared
  // machine, but never slower in 3 paired runs).
  const uniformRows = subgroupSize !== null && TY > 1 && TX % subgroupSize === 0;
  const threads = TX * TY;
  const acc = (r: number, j: number) => `c${r}_${j}`;
  // With one row of threads (TY = 1) every thread reads the same rows of A: uniform loads, which a SIMD
  // implementation of the invocations (lavapipe) does once and broadcasts.
  const rowOf = (r: number) => (TY === 1 ? u(r) : `${u((Math.floor(r / 4) * TY) * 4 + (r % 4))} + ty4`);
  const vec4 = (side: Side, which: 'A' | 'B'): boolean => side.vec4 !== null && (which === 'A') === (side.fast === 'k');
  const lines: string[] = [
    ...(uniformRows ? ['enable subgroups;'] : []),
    ...g.bindings,
    ...(epilogue?.args ?? []).map((arg, k) => `@group(0) @binding(${g.bindings.length + k}) var<storage, read> e${arg}: array<f32>;`),
    `@group(0) @binding(${g.bindings.length + (epilogue?.args.length ?? 0)}) var<storage, read_write> out: array<f32>;`,
    `const M = ${u(g.M)}; const N = ${u(g.N)}; const K = ${u(g.K)};`,
    g.prelude,
    vec4(g.a, 'A') ? `fn loadA4(b: u32, m: u32, k: u32) -> vec4<f32> {\n${g.a.vec4}\n}` : `fn loadA(b: u32, m: u32, k: u32) -> f32 {\n${g.a.scalar}\n}`,
    vec4(g.b, 'B') ? `fn loadB4(b: u32, n: u32, k: u32) -> vec4<f32> {\n${g.b.vec4}\n}` : `fn loadB(b: u32, n: u32, k: u32) -> f32 {\n${g.b.scalar}\n}`,
    `fn outIndex(b: u32, m: u32, n: u32) -> u32 {\n${g.outIndex}\n}`,
    // The store, through the fused epilogue where the kernel has one.
    ...(epilogue === null ? ['fn store(b: u32, m: u32, n: u32, v: f32) { out[outIndex(b, m, n)] = v; }'] : [epilogue.fn, 'fn store(b: u32, m: u32, n: u32, v: f32) { let o = outIndex(b, m, n); out[o] = epilogue(o, v); }']),
    `var<workgroup> As: array<vec4<f32>, ${(BM * BK) / 4}>;`,
    `var<workgroup> Bs: array<vec4<f32>, ${(BK * BN) / 4}>;`,
    `@compute @workgroup_size(${TX}, ${TY}, 1)`,
    'fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {',
    // This workgroup's tile: (batch, row tile, column tile) from its linear index (uniform across the workgroup,
    // so returning early keeps the barriers in uniform control flow).
    `  let tile = wg.x + ${u(grid.dispatch[0])} * (wg.y + ${u(grid.dispatch[1])} * wg.z);`,
    ...(grid.dispatch[0] * grid.dispatch[1] * grid.dispatch[2] > grid.tiles ? [`  if (tile >= ${u(grid.tiles)}) { return; }`] : []),
    `  let b = tile / ${u(grid.mTiles * grid.nTiles)};`,
    `  let m0 = ((tile / ${u(grid.nTiles)}) % ${u(grid.mTiles)}) * ${u(BM)};`,
    `  let n0 = (tile % ${u(grid.nTiles)}) * ${u(BN)};`,
    uniformRows ? '  let ty4 = subgroupBroadcastFirst(lid.y) * 4u;' : '  let ty4 = lid.y * 4u;',
  ];
  for (let r = 0; r < TM; r++) for (let j = 0; j < TN / 4; j++) lines.push(`  var ${acc(r, j)} = vec4<f32>(0.0);`);
  lines.push(`  for (var k0 = 0u; k0 < K; k0 = k0 + ${u(BK)}) {`);
  lines.push(...stage('As', 'loadA', g.a, 'A', BM, BK, threads, 'm0').map((l) => `    ${l}`));
  lines.push(...stage('Bs', 'loadB', g.b, 'B', BN, BK, threads, 'n0').map((l) => `    ${l}`));
  lines.push('    workgroupBarrier();');
  // The slice's k steps, 4 at a time (one vec4 of A per row). (Unrolling this loop measured no faster on lavapipe.)
  const step = (kq: string, pad: string): void => {
    for (let r = 0; r < TM; r++) lines.push(`${pad}let ra${r} = As[(${rowOf(r)}) * ${u(BK / 4)} + ${kq}];`);
    for (let c = 0; c < 4; c++) {
      for (let j = 0; j < TN / 4; j++) lines.push(`${pad}let rb${c}_${j} = Bs[(${kq} * 4u + ${u(c)}) * ${u(BN / 4)} + ${u(j * TX)} + lid.x];`);
      for (let r = 0; r < TM; r++) for (let j = 0; j < TN / 4; j++) lines.push(`${pad}${acc(r, j)} = fma(vec4<f32>(ra${r}[${c}]), rb${c}_${j}, ${acc(r, j)});`);
    }
  };
  lines.push(`    for (var kq = 0u; kq < ${u(BK / 4)}; kq = kq + 1u) {`);
  step('kq', '      ');
  lines.push('    }');
  lines.push('    workgroupBarrier();', '  }');
  // The stores, as a loop over the register tile (the accumulators copied to an array once): one copy of the
  // store and its epilogue instead of TM·TN, which lavapipe took seconds to compile (8.5 s vs 1.6 s at 16×8).
  const chunks = (TM * TN) / 4;
  lines.push(`  var accs: array<vec4<f32>, ${chunks}>;`);
  for (let r = 0; r < TM; r++) for (let j = 0; j < TN / 4; j++) lines.push(`  accs[${r * (TN / 4) + j}] = ${acc(r, j)};`);
  lines.push(`  for (var q = 0u; q < ${u(chunks)}; q = q + 1u) {`);
  lines.push(`    let r = q / ${u(TN / 4)}; let j = q % ${u(TN / 4)};`);
  lines.push(TY === 1 ? '    let m = m0 + r;' : `    let m = m0 + (r / 4u) * ${u(TY * 4)} + r % 4u + ty4;`);
  lines.push(`    let n = n0 + j * ${u(TX * 4)} + lid.x * 4u;`);
  lines.push('    let v = accs[q];');
  lines.push('    if (m < M) {');
  for (let c = 0; c < 4; c++) lines.push(`      if (n + ${u(c)} < N) { store(b, m, n + ${u(c)}, v[${c}]); }`);
  lines.push('    }', '  }');
  lines.push('}');
  return lines.join('\n');
}

/** dot [..B, M, K] · [..B, K, N] over plain row-major buffers (bindings 0 and 1). */
function dotGemm(node: Node<'dot'>): Gemm {
  const [a, c] = node.inputs;
  const r = a.shape.length;
  const [M, K, N] = [a.shape[r - 2], a.shape[r - 1], c.shape[r - 1]];
  const [a4, b4] = [K % 4 === 0, N % 4 === 0];
  return {
    batch: numel(a.shape.slice(0, r - 2)),
    M,
    N,
    K,
    bindings: [binding(0, a4), binding(1, b4)],
    prelude: '',
    a: {
      fast: 'k',
      scalar: `  if (m < M && k < K) { return a0[b * ${u(M * K)} + m * K + k]; }\n  return 0.0;`,
      vec4: a4 ? `  if (m < M && k < K) { return a0[(b * ${u(M * K)} + m * K + k) / 4u]; }\n  return vec4<f32>(0.0);` : null,
    },
    b: {
      fast: 'mn',
      scalar: `  if (n < N && k < K) { return a1[b * ${u(K * N)} + k * N + n]; }\n  return 0.0;`,
      vec4: b4 ? `  if (n < N && k < K) { return a1[(b * ${u(K * N)} + k * N + n) / 4u]; }\n  return vec4<f32>(0.0);` : null,
    },
    outIndex: `  return b * ${u(M * N)} + m * N + n;`,
  };
}

/** A zero pad of the spatial axes only (any edges, any interior): a conv reads through it without a copy. */
export function foldablePad(n: Node): { readonly lo: readonly [number, number]; readonly q: readonly [number, number] } | null {
  if (n.op !== 'pad') return null;
  const { lo, hi, interior, value } = (n as Node<'pad'>).params;
  if (value !== 0 || n.shape.length !== 4 || [lo, hi, interior].some((v) => v[0] !== 0 || v[1] !== 0)) return null;
  return { lo: [lo[2], lo[3]], q: [interior[2] + 1, interior[3] + 1] };
}

/**
 * WGSL statements that test whether padded coordinate `v` (an i32, in the conv's input of extent `extent`) lands on
 * a source element (of `size`, under a folded pad with low edge `lo` and spacing `q`) and bind it as `name` (u32).
 */
function onSource(name: string, v: string, extent: number, size: number, lo: number, q: number): string {
  if (lo === 0 && q === 1 && extent === size) return `  if (${v} < 0i || ${v} >= ${i(extent)}) { return 0.0; }\n  let ${name} = u32(${v});`;
  const t = `${name}_t`;
  return [
    `  if (${v} < 0i || ${v} >= ${i(extent)}) { return 0.0; }`,
    `  let ${t} = ${v} - ${i(lo)};`,
    q === 1 ? `  if (${t} < 0i || ${t} >= ${i(size)}) { return 0.0; }` : `  if (${t} < 0i || ${t} % ${i(q)} != 0i || ${t} / ${i(q)} >= ${i(size)}) { return 0.0; }`,
    `  let ${name} = u32(${q === 1 ? t : `${t} / ${i(q)}`});`,
  ].join('\n');
}

/** conv2d as an implicit GEMM; the input may be a folded zero pad (with interior zeros) of binding 0. */
function convGemm(node: Node<'conv2d'>, pad: ReturnType<typeof foldablePad>): Gemm {
  const [xin, w] = node.inputs;
  const src = pad === null ? xin : xin.inputs[0];
  const [, C, Hs, Ws] = src.shape;
  const [Nimg, , Hin, Win] = xin.shape;
  const [lo, q] = pad === null ? [[0, 0], [1, 1]] : [pad.lo, pad.q];
  const [O, Cg, kh, kw] = w.shape;
  const { stride, padding, dilation, groups } = node.params;
  const [, , Ho, Wo] = node.shape;
  const Og = O / groups;
  const P = Ho * Wo;
  const K = Cg * kh * kw;
  const a4 = K % 4 === 0;
  return {
    batch: groups,
    M: Og,
    N: Nimg * P,
    K,
    bindings: [binding(0, false), binding(1, a4)],
    prelude: '',
    a: {
      fast: 'k',
      scalar: `  if (m < M && k < K) { return a1[(b * ${u(Og)} + m) * K + k]; }\n  return 0.0;`,
      vec4: a4 ? `  if (m < M && k < K) { return a1[((b * ${u(Og)} + m) * K + k) / 4u]; }\n  return vec4<f32>(0.0);` : null,
    },
    b: {
      fast: 'mn',
      scalar: [
        '  if (n >= N || k >= K) { return 0.0; }',
        `  let img = n / ${u(P)}; let p = n % ${u(P)}; let oy = p / ${u(Wo)}; let ox = p % ${u(Wo)};`,
        `  let c = k / ${u(kh * kw)}; let tap = k % ${u(kh * kw)}; let ta = tap / ${u(kw)}; let te = tap % ${u(kw)};`,
        `  let yv = i32(oy * ${u(stride[0])} + ta * ${u(dilation[0])}) - ${i(padding[0])};`,
        `  let xv = i32(ox * ${u(stride[1])} + te * ${u(dilation[1])}) - ${i(padding[1])};`,
        onSource('y', 'yv', Hin, Hs, lo[0], q[0]),
        onSource('x', 'xv', Win, Ws, lo[1], q[1]),
        `  return a0[((img * ${u(C)} + b * ${u(Cg)} + c) * ${u(Hs)} + y) * ${u(Ws)} + x];`,
      ].join('\n'),
      vec4: null,
    },
    outIndex: `  let img = n / ${u(P)}; let p = n % ${u(P)};\n  return (img * ${u(O)} + b * ${u(Og)} + m) * ${u(P)} + p;`,
  };
}

/** convWeightGrad as an implicit GEMM over every output pixel of every image (bindings: 0 the input, 1 the cotangent). */
function weightGradGemm(node: Node<'convWeightGrad'>): Gemm {
  const [x, g] = node.inputs;
  const [, C, H, W] = x.shape;
  const [Nimg, O, Ho, Wo] = g.shape;
  const { stride, padding, dilation, groups, kernel: [kh, kw] } = node.params;
  const Og = O / groups;
  const Cg = C / groups;
  const P = Ho * Wo;
  const a4 = P % 4 === 0;
  return {
    batch: groups,
    M: Og,
    N: Cg * kh * kw,
    K: Nimg * P,
    bindings: [binding(0, false), binding(1, a4)],
    prelude: '',
    a: {
      fast: 'k',
      scalar: `  if (m >= M || k >= K) { return 0.0; }\n  let img = k / ${u(P)}; let p = k % ${u(P)};\n  return a1[(img * ${u(O)} + b * ${u(Og)} + m) * ${u(P)} + p];`,
      vec4: a4 ? `  if (m >= M || k >= K) { return vec4<f32>(0.0); }\n  let img = k / ${u(P)}; let p = k % ${u(P)};\n  return a1[((img * ${u(O)} + b * ${u(Og)} + m) * ${u(P)} + p) / 4u];` : null,
    },
    b: {
      fast: 'k',
      scalar: [
        '  if (n >= N || k >= K) { return 0.0; }',
        `  let img = k / ${u(P)}; let p = k % ${u(P)}; let oy = p / ${u(Wo)}; let ox = p % ${u(Wo)};`,
        `  let c = n / ${u(kh * kw)}; let tap = n % ${u(kh * kw)}; let ta = tap / ${u(kw)}; let te = tap % ${u(kw)};`,
        `  let yv = i32(oy * ${u(stride[0])} + ta * ${u(dilation[0])}) - ${i(padding[0])};`,
        `  let xv = i32(ox * ${u(stride[1])} + te * ${u(dilation[1])}) - ${i(padding[1])};`,
        onSource('y', 'yv', H, H, 0, 1),
        onSource('x', 'xv', W, W, 0, 1),
        `  return a0[((img * ${u(C)} + b * ${u(Cg)} + c) * ${u(H)} + y) * ${u(W)} + x];`,
      ].join('\n'),
      vec4: null,
    },
    outIndex: `  return (b * ${u(Og)} + m) * N + n;`,
  };
}

/**
 * How a launch's workgroups cover its tiles: (batch, row tile, column tile) linearized, column tiles fastest, over a
 * dispatch of X × Y × Z workgroups (each at most the 65 535 every device allows; the last few may be spare).
 */
interface Grid {
  readonly mTiles: number;
  readonly nTiles: number;
  readonly tiles: number;
  readonly dispatch: readonly [number, number, number];
}

/** Workgroups per dispatch dimension every WebGPU device allows (the spec's minimum of the limit). */
const MAX_GROUPS = 65_535;

function gridOf(g: Gemm, t: Tiling): Grid {
  const [mTiles, nTiles] = [Math.ceil(g.M / t.BM), Math.ceil(g.N / t.BN)];
  const tiles = g.batch * mTiles * nTiles;
  const x = Math.min(tiles, MAX_GROUPS);
  const y = Math.min(Math.ceil(tiles / x), MAX_GROUPS);
  return { mTiles, nTiles, tiles, dispatch: [x, y, Math.ceil(tiles / (x * y))] };
}

/**
 * The WGSL kernel of a contraction whose operands are plain buffers (the target's `bufferOperands`), or null for
 * any other kernel (a gpu.js kernel).
 */
export interface WgslOptions {
  /** The adapter is a CPU emulation (tile choice). */
  readonly software: boolean;
  /** The device's fixed subgroup size with `subgroups` granted, or null. */
  readonly subgroupSize: number | null;
  /** Replaces the heuristic's tiling (tests put every tiling through every shape class). */
  readonly tiling?: Tiling;
}

export function renderWgsl(plan: KernelPlan, options: WgslOptions): WgslKernelSource | null {
  const root = contractionOf(plan);
  if (root === null) return null;
  // Each operand's buffer: the operand itself or the buffer it reshapes (the same bytes).
  const bufferOf = (x: Node): number => {
    let cur = x;
    while (!plan.args.includes(cur) && (cur.op === 'reshape' || cur.op === 'stopGradient')) cur = cur.inputs[0];
    return plan.args.indexOf(cur);
  };
  const pad = root.op === 'conv2d' && !plan.args.includes(root.inputs[0]) ? foldablePad(root.inputs[0]) : null;
  const operands = root.inputs.map((x, k) => bufferOf(k === 0 && pad !== null ? x.inputs[0] : x));
  if (operands.some((k) => k < 0)) throw new Error(`webgpu target: ${root.op} ${root.layer} has an operand that is not a buffer (the schedule should have materialized it)`);
  const gemm = root.op === 'dot' ? dotGemm(root as Node<'dot'>) : root.op === 'conv2d' ? convGemm(root as Node<'conv2d'>, pad) : weightGradGemm(root as Node<'convWeightGrad'>);
  const tiling = options.tiling ?? chooseTiling(gemm.batch, gemm.M, gemm.N, gemm.K, options.software);
  const grid = gridOf(gemm, tiling);
  const epilogue = root === plan.root ? null : renderEpilogue(plan, root);
  return {
    code: gemmShader(gemm, tiling, grid, options.subgroupSize, epilogue),
    workgroups: grid.dispatch,
    outputElements: numel(root.shape),
    operands: [...operands, ...(epilogue?.args ?? [])],
    tiling,
    work: gemm.batch * gemm.M * gemm.N * gemm.K,
  };
}

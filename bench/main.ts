// `npm run bench` — micro-benchmarks; `npm run bench -- step` — the W1 training step. Ours on every available
// gpu.js backend and the TensorFlow.js peers (tfjs-backend-wasm, -cpu, -webgpu) in the same run, printed as
// one table with our time ÷ peer time. See bench/README.md for the protocol and bench/RESULTS.md for results.
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import * as E from 'fp-ts/lib/Either.js';
import { probeBackend, isBackendName, type BackendName } from '../compiler/runtime/backend.ts';
import { MICRO_SIZES, W1_SHAPE, microFlops, w1Flops, graphFlops, type MicroSizes, type W1Shape } from './flops.ts';
import { BenchFailure, benchGraph, benchNaive, benchStep, naiveConv3x3, naiveMatmul } from './ours.ts';
import { markdown, naiveBackend, type BenchReport, type Row } from './report.ts';
import { loadAverage, type IterationPolicy } from './timing.ts';
import { TFJS_BACKENDS, isTfjsBackend, setupTfjs, tfjsMicro, tfjsW1, type TfjsBackend } from './tfjs.ts';
import { MICRO_NAMES, MICRO_TITLES, microWorkload, type MicroName } from './workloads.ts';
import { W1_LOSS, buildW1Step, initW1State, w1InputData } from './w1.ts';
import { runTorch, TORCH_MICRO } from './torch.ts';
import { contractionMarkdown, runContractions } from './contractions.ts';

export interface BenchOptions {
  readonly mode: 'micro' | 'step' | 'gemm';
  readonly backends: readonly BackendName[];
  readonly peers: readonly TfjsBackend[];
  /** Run the tfjs cpu W1 (about 14 min per step here) in step mode. */
  readonly withTfjsCpu: boolean;
  readonly only: readonly MicroName[];
  /** Most timed runs per row (micro) or steps (step). */
  readonly maxIterations: number;
  /** Seconds of timed runs a row may take at its first run's pace (fewer runs for slow rows, never below the minimum). */
  readonly budgetSeconds: number;
  readonly json: boolean;
  readonly out?: string;
  readonly markdownOut?: string;
  /** A tiny W1 / small micro sizes: checks the harness end to end in seconds, measures nothing of interest. */
  readonly tiny: boolean;
  /** step: one more step of ours synchronized after every kernel, reported per kernel kind. */
  readonly profile: boolean;
  /** PyTorch (the peers' torch_bench.py) in the same run, where python3-torch is installed. */
  readonly torch: boolean;
  /** gemm: the side of the square matmul (default 4096; --tiny 256). */
  readonly matmulSize?: number;
  /** gemm: the GPU's fp32 peak in TFLOP/s, where the adapter is not one bench/contractions.ts knows. */
  readonly peakTflops?: number;
}

const DEFAULT_BACKENDS: readonly BackendName[] = ['wasm', 'cpu', 'webasm', 'webgpu'];

export const USAGE = `usage: npm run bench -- [micro|step|gemm] [options]
  gemm                 webgpu only: matmul n³ and W1's convs (fwd, fwd+dX+dW), ours and tfjs-webgpu, TFLOP/s and % of fp32 peak
  --backend a,b        our backends (wasm, cpu, webasm, webgpu; default all four; unavailable ones are skipped with the reason)
  --peers a,b          tfjs peers: wasm, cpu, webgpu (default wasm,cpu); --no-peers for none (PyTorch too)
  --no-torch           leave out PyTorch (run by default where python3-torch is installed: apt-get install python3-torch)
  --with-tfjs-cpu      step: also run W1 on tfjs-backend-cpu (1 step, about 14 min here)
  --only a,b           micro: ${MICRO_NAMES.join(', ')}
  --iters N            most timed runs per row (default: micro 10, step 10)
  --budget-s S         seconds of timed runs per row at the first run's pace (default: micro 20, step 90)
  --json               machine-readable results (stdout, or --out FILE)
  --out FILE           write the JSON there
  --md FILE            write the Markdown tables there
  --tiny               tiny sizes, to check the harness (not a measurement)
  --profile            step: one more step of ours, synchronized after every kernel: where the time goes
  --matmul N           gemm: the matmul's side (default 4096; 256 with --tiny)
  --peak-tflops X      gemm: the GPU's fp32 peak, where the adapter is not a known one`;

const list = (v: string): string[] => v.split(',').map((x) => x.trim()).filter((x) => x !== '');

/** Parses the command line; every problem is reported at once. */
export function parseArgs(argv: readonly string[]): E.Either<string, BenchOptions> {
  const problems: string[] = [];
  let mode: 'micro' | 'step' | 'gemm' = 'micro';
  let matmulSize: number | undefined;
  let peakTflops: number | undefined;
  let backends: BackendName[] = [...DEFAULT_BACKENDS];
  let peers: TfjsBackend[] = ['wasm', 'cpu'];
  let withTfjsCpu = false;
  let only: MicroName[] = [...MICRO_NAMES];
  let maxIterations: number | undefined;
  let budgetSeconds: number | undefined;
  let json = false;
  let out: string | undefined;
  let markdownOut: string | undefined;
  let tiny = false;
  let profile = false;
  let torch = true;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): string => {
      const v = argv[i + 1];
      if (v === undefined || v.startsWith('--')) {
        problems.push(`${a} needs a value`);
        return '';
      }
      i++;
      return v;
    };
    const positive = (v: string, what: string): number | undefined => {
      const n = Number(v);
      if (!(Number.isFinite(n) && n > 0)) {
        problems.push(`${what} must be a positive number, got '${v}'`);
        return undefined;
      }
      return n;
    };
    if (a === 'micro' || a === 'step' || a === 'gemm') mode = a;
    else if (a === '--matmul') {
      const n = positive(value(), '--matmul');
      if (n !== undefined && !Number.isInteger(n)) problems.push(`--matmul must be an integer, got ${n}`);
      else matmulSize = n;
    } else if (a === '--peak-tflops') peakTflops = positive(value(), '--peak-tflops');
    else if (a === '--backend') {
      const names = list(value());
      const bad = names.filter((n) => !isBackendName(n));
      if (bad.length > 0) problems.push(`--backend: unknown ${bad.join(', ')} (known: webgpu, headlessgl, webasm, cpu)`);
      backends = names.filter(isBackendName);
    } else if (a === '--peers') {
      const names = list(value());
      const bad = names.filter((n) => !isTfjsBackend(n));
      if (bad.length > 0) problems.push(`--peers: unknown ${bad.join(', ')} (known: ${TFJS_BACKENDS.join(', ')})`);
      peers = names.filter(isTfjsBackend);
    } else if (a === '--no-peers') {
      peers = [];
      torch = false;
    } else if (a === '--no-torch') torch = false;
    else if (a === '--with-tfjs-cpu') withTfjsCpu = true;
    else if (a === '--only') {
      const names = list(value());
      const bad = names.filter((n) => !(MICRO_NAMES as readonly string[]).includes(n));
      if (bad.length > 0) problems.push(`--only: unknown ${bad.join(', ')} (known: ${MICRO_NAMES.join(', ')})`);
      only = MICRO_NAMES.filter((n) => names.includes(n));
    } else if (a === '--iters') {
      const n = positive(value(), '--iters');
      if (n !== undefined && !Number.isInteger(n)) problems.push(`--iters must be an integer, got ${n}`);
      else maxIterations = n;
    } else if (a === '--budget-s') budgetSeconds = positive(value(), '--budget-s');
    else if (a === '--json') json = true;
    else if (a === '--out') out = value();
    else if (a === '--md') markdownOut = value();
    else if (a === '--tiny') tiny = true;
    else if (a === '--profile') profile = true;
    else if (a === '--help' || a === '-h') problems.push('help requested');
    else problems.push(`unknown argument '${a}'`);
  }
  if (problems.length > 0) return E.left(`${problems.join('; ')}\n${USAGE}`);
  return E.right({
    mode,
    backends,
    peers,
    withTfjsCpu,
    only,
    maxIterations: maxIterations ?? 10,
    budgetSeconds: budgetSeconds ?? (mode === 'step' ? 90 : 20),
    json,
    ...(out === undefined ? {} : { out }),
    ...(markdownOut === undefined ? {} : { markdownOut }),
    tiny,
    profile,
    torch,
    ...(matmulSize === undefined ? {} : { matmulSize }),
    ...(peakTflops === undefined ? {} : { peakTflops }),
  });
}

/** Sizes used by --tiny (and the smoke test): every workload keeps its structure at a fraction of the work. */
export const TINY_MICRO: MicroSizes = { matmul: 32, convBatch: 2, convChannels: 8, convSize: 8 };
export const TINY_W1: W1Shape = { ...W1_SHAPE, batch: 2, imageSize: 64, widths: [4, 8, 8, 16], headHidden: 16, dim: 8, heads: 2 };

const message = (error: unknown): string => (error instanceof BenchFailure ? error.message : error instanceof Error ? `${error.message}` : String(error));

/** Our backends: the requested ones that probe as available; the others become report lines with the reason. */
async function usableBackends(requested: readonly BackendName[]): Promise<{ readonly use: BackendName[]; readonly lines: string[] }> {
  const probes = await Promise.all(requested.map(probeBackend));
  const use: BackendName[] = [];
  const lines: string[] = [];
  for (const b of requested) {
    const p = probes.find((x) => x.backend === b);
    if (p !== undefined && p.available) {
      use.push(b);
      lines.push(`ours on ${p.detail}`);
    } else {
      lines.push(`ours on ${b}: SKIPPED — ${p === undefined ? 'not probed' : p.reason}`);
    }
  }
  return { use, lines };
}

const TFJS_CPU_SLOW_NOTE = '1 run, no warm-up: tfjs-backend-cpu Conv2DBackpropFilter is a per-element loop (the slowest kernel by far: one run only)';

async function runMicro(o: BenchOptions, log: (line: string) => void): Promise<{ rows: Row[]; notes: string[]; backendLines: string[] }> {
  const m = o.tiny ? TINY_MICRO : MICRO_SIZES;
  const { use, lines } = await usableBackends(o.backends);
  const rows: Row[] = [];
  const notes: string[] = [
    `GFLOP/s = analytic FLOPs (flops.ts = ../shared/peers/flops.js: ${Object.entries(microFlops(m)).map(([k, v]) => `${k} ${(v / 1e9).toFixed(3)}`).join(', ')} GFLOP) ÷ median time`,
    'ours: inputs uploaded once, outputs left on the device; each timed run ends with a 1-cell kernel reading one output and a 4-byte readback (on webgpu this waits for the queue; on cpu/webasm kernels finish inside launch)',
    'tfjs: cpu/wasm kernels run to completion inside each op, webgpu ops are queued; each run ends with a read of its smallest output (on webgpu this waits for the queue)',
  ];
  const policy: IterationPolicy = { warmup: 1, min: 5, max: Math.max(5, o.maxIterations), budgetMs: o.budgetSeconds * 1000 };
  for (const name of o.only) {
    const w = microWorkload(name, m);
    const title = MICRO_TITLES[name](m);
    const base = { workload: name, title, flops: w.flops };
    for (const backend of use) {
      log(`${title}: ours on ${backend} …`);
      try {
        const r = await benchGraph(w.graph, w.inputs, backend, policy, log);
        rows.push({ ...base, system: 'ours', backend, status: 'ok', timing: r.timing, firstRunMs: r.firstRunMs, compileMs: r.compileMs, kernels: r.kernels, builtKernels: r.builtKernels, peakBytes: r.peakBytes, notes: [] });
        const reference = name === 'matmul' ? { kernel: naiveMatmul(m.matmul), ours: r.outputs.c } : name === 'convForward' ? { kernel: naiveConv3x3(m), ours: r.outputs.y } : null;
        // Our wasm back end has no gpu.js mode: its naive reference is gpu.js's webasm (run once if both are here).
        const naiveOn = naiveBackend(backend);
        if (reference !== null && !(backend === 'wasm' && use.includes('webasm'))) {
          log(`${title}: naive gpu.js kernel on ${naiveOn} …`);
          const naive = await benchNaive(reference.kernel, w.inputs, naiveOn, policy);
          let worst = 0;
          for (let i = 0; i < reference.ours.length; i++) worst = Math.max(worst, Math.abs(reference.ours[i] - naive.output[i]));
          rows.push({ ...base, system: 'gpu.js naive', backend: naiveOn, status: 'ok', timing: naive.timing, firstRunMs: naive.firstRunMs, notes: [`max |ours − naive| = ${worst.toExponential(1)}`] });
        }
      } catch (error) {
        rows.push({ ...base, system: 'ours', backend, status: 'failed', reason: message(error), notes: [] });
        log(`  FAILED: ${message(error)}`);
      }
    }
  }
  for (const peer of o.peers) {
    const setup = await setupTfjs(peer);
    if (!setup.ok) {
      for (const name of o.only) rows.push({ workload: name, title: MICRO_TITLES[name](m), flops: microFlops(m)[name], system: 'tfjs', backend: peer, status: 'failed', reason: setup.reason, notes: [] });
      continue;
    }
    notes.push(...setup.setup.notes.map((n) => `tfjs-${peer}: ${n}`));
    for (const name of o.only) {
      const title = MICRO_TITLES[name](m);
      const slow = peer === 'cpu' && (name === 'convForwardBackward' || name === 'blockForwardBackward') && !o.tiny;
      log(`${title}: tfjs-${peer}${slow ? ' (1 run, minutes)' : ''} …`);
      try {
        const r = await tfjsMicro(setup.setup, m, name, slow ? { warmup: 0, min: 1, max: 1, budgetMs: 0 } : policy);
        rows.push({ workload: name, title, flops: microFlops(m)[name], system: 'tfjs', backend: peer, status: 'ok', timing: r.timing, ...(Number.isNaN(r.firstRunMs) ? {} : { firstRunMs: r.firstRunMs }), notes: slow ? [TFJS_CPU_SLOW_NOTE] : [] });
      } catch (error) {
        rows.push({ workload: name, title, flops: microFlops(m)[name], system: 'tfjs', backend: peer, status: 'failed', reason: message(error), notes: [] });
        log(`  FAILED: ${message(error)}`);
      }
    }
  }
  if (o.torch && !o.tiny) {
    log('micro: PyTorch (the peers\' torch_bench.py) …');
    const t = runTorch('micro', 3, Math.max(5, o.maxIterations));
    for (const name of o.only) {
      if (!(name in TORCH_MICRO)) continue;
      const base = { workload: name, title: MICRO_TITLES[name](m), flops: microFlops(m)[name], system: 'pytorch' as const };
      if (t.ok) rows.push({ ...base, backend: t.run.label, status: 'ok', timing: t.run.results[TORCH_MICRO[name as keyof typeof TORCH_MICRO]], notes: [t.run.detail] });
      else rows.push({ ...base, backend: 'PyTorch', status: 'skipped', reason: t.reason, notes: [] });
    }
  }
  const order = (r: Row) =>
    o.only.indexOf(r.workload as MicroName) * 100 +
    (r.system === 'ours' ? 0 : r.system === 'gpu.js naive' ? 10 : r.system === 'tfjs' ? 20 : 30) +
    (r.system === 'tfjs' ? o.peers.indexOf(r.backend as TfjsBackend) : r.system === 'pytorch' ? 0 : use.indexOf(r.backend as BackendName));
  rows.sort((a, b) => order(a) - order(b));
  return { rows, notes, backendLines: lines };
}

async function runStep(o: BenchOptions, log: (line: string) => void): Promise<{ rows: Row[]; notes: string[]; backendLines: string[] }> {
  const s = o.tiny ? TINY_W1 : W1_SHAPE;
  const { use, lines } = await usableBackends(o.backends);
  const flops = w1Flops(s).total;
  const step = buildW1Step(s);
  const state = initW1State(s, 1);
  const data = w1InputData(s, 2);
  const title = `W1 (B = ${s.batch} × 2 views of ${s.imageChannels}×${s.imageSize}×${s.imageSize}, widths ${s.widths.join('/')})`;
  const base = { workload: 'W1', title, flops, imagesPerStep: s.batch };
  const rows: Row[] = [];
  const notes: string[] = [
    `${title}: analytic ${(flops / 1e9).toFixed(2)} GFLOP/step (flops.ts = peers' flops.js); our step graph asks for ${(graphFlops(step.graph) / 1e9).toFixed(2)} GFLOP (the input gradients of stride-2 convs run over zero-dilated cotangents)`,
    "loss: the peers' README reading (hinge max(0, −cos(C_i,F_j) + cos(C_i,Fneg_i) + 0.5) over the fixed random mask, both directions, mean over masked terms), not clove/loss.ts",
    'ours: all state (student, teacher, momentum) on the device, fed back by name; views and mask uploaded once; each step ends with the 4-byte loss readback (the sync on webgpu)',
    'images/s counts the B images of a step (each contributes two views)',
    `tfjs starts from the same initial state and inputs as ours (layouts converted), so the loss columns are comparable`,
  ];
  const policy: IterationPolicy = { warmup: 1, min: 1, max: o.maxIterations, budgetMs: o.budgetSeconds * 1000 };
  for (const backend of use) {
    log(`W1: ours on ${backend} …`);
    try {
      const r = await benchStep(step.graph, state, data, W1_LOSS, backend, policy, log, o.profile);
      const fewer = r.timing.iterations < o.maxIterations ? [`${r.timing.iterations} timed step(s) after 1 warm-up (slow backend: ${(r.firstRunMs / 1000).toFixed(0)} s per step)`] : [];
      const leak = r.liveHandlesAfter !== r.liveHandlesBefore ? [`live handles ${r.liveHandlesBefore} → ${r.liveHandlesAfter}`] : [];
      rows.push({ ...base, system: 'ours', backend, status: 'ok', timing: r.timing, firstRunMs: r.firstRunMs, compileMs: r.compileMs, kernels: r.kernels, builtKernels: r.builtKernels, peakBytes: r.peakBytes, losses: r.losses, ...(r.profile === undefined ? {} : { profile: r.profile }), notes: [...fewer, ...leak] });
    } catch (error) {
      rows.push({ ...base, system: 'ours', backend, status: 'failed', reason: message(error), notes: [] });
      log(`  FAILED: ${message(error)}`);
    }
  }
  for (const peer of o.peers) {
    if (peer === 'cpu' && !o.withTfjsCpu && !o.tiny) {
      rows.push({ ...base, system: 'tfjs', backend: peer, status: 'skipped', reason: 'about 14 min per step here: pass --with-tfjs-cpu to run it (1 step)', notes: [] });
      continue;
    }
    const setup = await setupTfjs(peer);
    if (!setup.ok) {
      rows.push({ ...base, system: 'tfjs', backend: peer, status: 'failed', reason: setup.reason, notes: [] });
      continue;
    }
    notes.push(...setup.setup.notes.map((n) => `tfjs-${peer}: ${n}`));
    log(`W1: tfjs-${peer} …`);
    const slow = peer === 'cpu' && !o.tiny;
    try {
      const r = await tfjsW1(setup.setup, s, state, data, slow ? { warmup: 0, min: 1, max: 1, budgetMs: 0 } : policy);
      rows.push({
        ...base,
        system: 'tfjs',
        backend: peer,
        status: 'ok',
        timing: r.timing,
        ...(Number.isNaN(r.firstRunMs) ? {} : { firstRunMs: r.firstRunMs }),
        losses: r.losses,
        notes: slow ? ['1 step, no warm-up (Conv2DBackpropFilter on tfjs-backend-cpu dominates)'] : r.timing.iterations < o.maxIterations ? [`${r.timing.iterations} timed steps after 1 warm-up (budget)`] : [],
      });
    } catch (error) {
      rows.push({ ...base, system: 'tfjs', backend: peer, status: 'failed', reason: message(error), notes: [] });
      log(`  FAILED: ${message(error)}`);
    }
  }
  if (o.torch && !o.tiny) {
    log('W1: PyTorch (the peers\' torch_bench.py) …');
    const t = runTorch('w1', 3, Math.max(3, o.maxIterations));
    if (t.ok) {
      const w1 = t.run.results.W1;
      const losses = w1.lossFirstLast === undefined ? {} : { losses: [...w1.lossFirstLast] };
      rows.push({ ...base, system: 'pytorch', backend: t.run.label, status: 'ok', timing: w1, ...losses, notes: [t.run.detail, 'its own random initial state and inputs (losses not comparable)'] });
    } else rows.push({ ...base, system: 'pytorch', backend: 'PyTorch', status: 'skipped', reason: t.reason, notes: [] });
  }
  const ours = rows.filter((r) => r.system === 'ours' && r.losses !== undefined);
  const peersRun = rows.filter((r) => r.system === 'tfjs' && r.losses !== undefined);
  for (const a of ours) {
    for (const b of peersRun) {
      const n = Math.min(a.losses?.length ?? 0, b.losses?.length ?? 0);
      if (n === 0) continue;
      const worst = Math.max(...Array.from({ length: n }, (_, i) => Math.abs((a.losses?.[i] ?? 0) - (b.losses?.[i] ?? 0))));
      notes.push(`loss agreement over the first ${n} steps, ours (${a.backend}) vs tfjs-${b.backend}: max |Δ| = ${worst.toExponential(2)}`);
    }
  }
  return { rows, notes, backendLines: lines };
}

async function main(): Promise<number> {
  // Dawn warns on stderr without a runtime dir; /tmp is what the runtime's own experiments use.
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  const parsed = parseArgs(process.argv.slice(2));
  if (E.isLeft(parsed)) {
    process.stderr.write(`${parsed.left}\n`);
    return 2;
  }
  const o = parsed.right;
  // With JSON on stdout, everything else (ours and tfjs's banner) goes to stderr.
  const jsonToStdout = o.json && o.out === undefined;
  if (jsonToStdout) console.log = console.error;
  const log = (line: string) => (jsonToStdout ? process.stderr : process.stdout).write(`${line}\n`);
  const loadStart = loadAverage();
  const t0 = performance.now();
  log(`load average at start: ${loadStart}`);
  if (o.mode === 'gemm') return runGemm(o, log, loadStart, t0, jsonToStdout);
  const run = o.mode === 'micro' ? await runMicro(o, log) : await runStep(o, log);
  const report: BenchReport = {
    kind: o.mode,
    date: new Date().toISOString(),
    command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
    node: process.version,
    cpus: os.cpus().length,
    loadStart,
    loadEnd: loadAverage(),
    backends: run.backendLines,
    rows: run.rows,
    notes: run.notes,
    totalSeconds: (performance.now() - t0) / 1000,
  };
  const md = markdown(report);
  log(`\n${md}`);
  if (o.markdownOut !== undefined) writeFileSync(o.markdownOut, md);
  if (o.json) {
    const text = `${JSON.stringify(report, null, 1)}\n`;
    if (o.out !== undefined) writeFileSync(o.out, text);
    else await new Promise<void>((resolve) => process.stdout.write(text, () => resolve()));
  }
  return report.rows.some((r) => r.status === 'failed') ? 1 : 0;
}

/** `gemm`: the contraction kernels alone (bench/contractions.ts), its own table. */
async function runGemm(o: BenchOptions, log: (line: string) => void, loadStart: string, t0: number, jsonToStdout: boolean): Promise<number> {
  const policy: IterationPolicy = { warmup: 1, min: o.tiny ? 2 : 3, max: Math.max(3, o.maxIterations), budgetMs: o.budgetSeconds * 1000 };
  const report = await runContractions(
    { matmul: o.matmulSize ?? (o.tiny ? 256 : 4096), w1: o.tiny ? TINY_W1 : W1_SHAPE, peers: o.peers.includes('webgpu'), policy, ...(o.peakTflops === undefined ? {} : { peakTflops: o.peakTflops }) },
    log,
  );
  const header = [
    `command: \`npm run bench -- ${process.argv.slice(2).join(' ')}\``,
    `${new Date().toISOString()}; node ${process.version}, ${os.cpus().length} CPUs; load average at start ${loadStart}, at end ${loadAverage()}; total ${((performance.now() - t0) / 1000).toFixed(0)} s`,
  ];
  const md = `### Contraction kernels on webgpu\n\n${contractionMarkdown(report, header)}\n`;
  log(`\n${md}`);
  if (o.markdownOut !== undefined) writeFileSync(o.markdownOut, md);
  if (o.json) {
    const text = `${JSON.stringify(report, null, 1)}\n`;
    if (o.out !== undefined) writeFileSync(o.out, text);
    else if (jsonToStdout) await new Promise<void>((resolve) => process.stdout.write(text, () => resolve()));
  }
  return report.rows.some((r) => typeof r.ours === 'string' && r.ours.startsWith('failed')) ? 1 : 0;
}

// Run only as the entry point (the smoke test imports parseArgs and the tiny sizes).
if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('bench/main.ts')) {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(1);
    },
  );
}

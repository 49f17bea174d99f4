// Smoke and model tests of the benchmarks (bench/): nothing here is timed. Every workload builds and runs at a
// tiny size on the cpu backend and agrees with the reference interpreter; W1 has the peers' FLOPs and parameter
// count, and one tiny W1 step agrees with the independent tfjs implementation started from the same state.
import { test } from 'node:test';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as E from 'fp-ts/lib/Either.js';
import { numel } from '../compiler/ir.ts';
import { interpret } from '../compiler/interp/interpret.ts';
import { resnetParamShapes } from '../clove/models/resnet.ts';
import { MICRO_SIZES, W1_SHAPE, graphFlops, microFlops, w1Flops, w1GridSide, w1StudentParams, type W1Shape } from '../bench/flops.ts';
import { TINY_MICRO, TINY_W1, parseArgs } from '../bench/main.ts';
import { markdown, ratio, type BenchReport, type Row } from '../bench/report.ts';
import { iterationsFor, median } from '../bench/timing.ts';
import { closeTfjsWebGpu, makeTfjsW1, setupTfjs, type TfjsBackend } from '../bench/tfjs.ts';
import { benchNaive, benchStep, naiveConv3x3, naiveMatmul } from '../bench/ours.ts';
import { probeBackends } from '../compiler/runtime/backend.ts';
import { MICRO_NAMES, microWorkload } from '../bench/workloads.ts';
import { STATE_PREFIX, W1_LOSS, buildW1Step, buildW1StudentForward, initW1State, w1InputData, w1ParamShapes } from '../bench/w1.ts';
import { property } from './prop.ts';
import { runCompiled } from './run-compiled.ts';

const sizeOf = (shape: readonly number[]) => shape.reduce((a, c) => a * c, 1);

/** Largest |a − b| relative to max(1, |b|) over two arrays of equal length. */
function worstRelative(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i])));
  return worst;
}

const arbW1Shape: fc.Arbitrary<W1Shape> = fc
  .record({
    batch: fc.integer({ min: 1, max: 3 }),
    side: fc.constantFrom(64, 96, 128),
    channels: fc.integer({ min: 1, max: 3 }),
    widths: fc.tuple(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 6 })),
    headHidden: fc.integer({ min: 1, max: 12 }),
    heads: fc.integer({ min: 1, max: 3 }),
    headDim: fc.integer({ min: 1, max: 4 }),
  })
  .map((r) => ({
    ...W1_SHAPE,
    batch: r.batch,
    imageSize: r.side,
    imageChannels: r.channels,
    widths: r.widths,
    headHidden: r.headHidden,
    heads: r.heads,
    dim: r.heads * r.headDim,
  }));

test('parseArgs: chosen backends and peers come back in order; every bad argument is reported at once', () => {
  property(
    fc.property(
      fc.subarray(['cpu', 'webasm', 'webgpu', 'headlessgl'] as const, { minLength: 1 }),
      fc.subarray(['wasm', 'cpu', 'webgpu'] as const, { minLength: 1 }),
      fc.constantFrom('micro', 'step'),
      (backends, peers, mode) => {
        const r = parseArgs([mode, '--backend', backends.join(','), '--peers', peers.join(','), ...(mode === 'step' ? ['--profile'] : [])]);
        assert.ok(E.isRight(r));
        assert.equal(r.right.profile, mode === 'step');
        assert.deepEqual(r.right.backends, backends);
        assert.deepEqual(r.right.peers, peers);
        assert.equal(r.right.mode, mode);
      },
    ),
    50,
  );
  const bad = parseArgs(['--backend', 'cuda', '--iters', '0', '--frobnicate', '--only', 'fft']);
  assert.ok(E.isLeft(bad));
  for (const part of ['cuda', '--iters', '--frobnicate', 'fft']) assert.ok(bad.left.includes(part), `message names ${part}: ${bad.left}`);
  const noPeers = parseArgs(['step', '--no-peers', '--with-tfjs-cpu']);
  assert.ok(E.isRight(noPeers) && noPeers.right.peers.length === 0 && noPeers.right.withTfjsCpu);
});

test('iterationsFor stays within [min, max] and never grows when the first run is slower', () => {
  property(
    fc.property(
      fc.integer({ min: 1, max: 20 }),
      fc.integer({ min: 0, max: 30 }),
      fc.double({ min: 0, max: 1e6, noNaN: true }),
      fc.double({ min: 0.001, max: 1e6, noNaN: true }),
      fc.double({ min: 0.001, max: 1e6, noNaN: true }),
      (min, extra, budgetMs, t1, t2) => {
        const p = { warmup: 1, min, max: min + extra, budgetMs };
        const [fast, slow] = t1 <= t2 ? [t1, t2] : [t2, t1];
        const a = iterationsFor(fast, p);
        const b = iterationsFor(slow, p);
        assert.ok(a >= min && a <= min + extra && b >= min && b <= min + extra);
        assert.ok(b <= a, `slower first run (${slow} ms) got more runs (${b}) than a faster one (${fast} ms: ${a})`);
      },
    ),
    200,
  );
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
});

test('W1 FLOP model: the student forward graph holds exactly the analytic conv + matmul FLOPs, for any W1 shape', () => {
  property(
    fc.property(arbW1Shape, (s) => {
      assert.equal(graphFlops(buildW1StudentForward(s)), w1Flops(s).studentForward);
    }),
    25,
  );
});

test('W1 parameters: the step binds the analytic student count; the encoder is ResNet-18 (clove/models) at the same width', () => {
  property(
    fc.property(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: 4 }), (w, hidden, dim) => {
      const s: W1Shape = { ...W1_SHAPE, widths: [w, 2 * w, 4 * w, 8 * w], headHidden: hidden, dim: 2 * dim, heads: 2 };
      const step = buildW1Step(s);
      const student = Object.entries(step.state).filter(([n]) => n.startsWith(`${STATE_PREFIX.student}.`));
      const count = student.reduce((a, [, shape]) => a + sizeOf(shape), 0);
      assert.equal(count, w1StudentParams(s).total);
      const resnet = resnetParamShapes({ depth: 18, width: w, stem: 'imagenet', inChannels: s.imageChannels });
      const leaves = (t: unknown): number =>
        Array.isArray(t) ? sizeOf(t as number[]) : Object.values(t as Record<string, unknown>).reduce((a: number, v) => a + leaves(v), 0);
      assert.equal(w1StudentParams(s).encoder, leaves(resnet));
      // teacher = encoder + head, momentum = student: every state tensor has its next value as an output
      for (const name of Object.keys(step.state)) assert.ok(step.graph.outputs[name] !== undefined, name);
    }),
    15,
  );
});

test('W1 at the README size: 9.439281 GFLOP student forward (torch.profiler), 37.38 GFLOP per step, 16 cells', () => {
  const f = w1Flops(W1_SHAPE);
  assert.equal(Math.round(f.studentForward / 1e3) / 1e6, 9.439281);
  assert.equal((f.total / 1e9).toFixed(2), '37.38');
  assert.equal(w1GridSide(W1_SHAPE), 4);
  assert.equal(graphFlops(buildW1StudentForward(W1_SHAPE)), f.studentForward);
  const m = microFlops(MICRO_SIZES);
  assert.deepEqual([m.matmul / 1e9, m.convForward / 1e9, m.convForwardBackward / 1e9].map((x) => x.toFixed(3)), ['0.268', '1.208', '3.624']);
  const names = new Set([...w1ParamShapes(W1_SHAPE).encoderHead, ...w1ParamShapes(W1_SHAPE).predictor].map(([n]) => n));
  assert.ok(names.has('encoder.s3b0.proj.weight') && names.has('head.conv2.bias') && names.has('predictor.in_proj_weight'));
  assert.ok(!names.has('encoder.s0b0.proj.weight'), 'the first stage keeps its width and stride: no projection shortcut');
});

test('every micro workload compiles and runs at a tiny size on cpu and agrees with the interpreter', async () => {
  for (const name of MICRO_NAMES) {
    const w = microWorkload(name, TINY_MICRO);
    const compiled = await runCompiled(w.graph, w.inputs);
    const reference = interpret(w.graph, w.inputs, 'f64');
    assert.ok(E.isRight(reference), name);
    for (const [out, node] of Object.entries(w.graph.outputs)) {
      assert.equal(compiled[out].length, numel(node.shape), `${name}.${out}`);
      assert.ok(worstRelative(compiled[out], reference.right[out].data) < 1e-4, `${name}.${out} differs from the interpreter`);
    }
    assert.ok(w.flops > 0);
  }
  // matmul is what it says: spot-check against a plain loop
  const mm = microWorkload('matmul', TINY_MICRO);
  const out = await runCompiled(mm.graph, mm.inputs);
  const n = TINY_MICRO.matmul;
  let c00 = 0;
  for (let k = 0; k < n; k++) c00 += mm.inputs.a[k] * mm.inputs.b[k * n + n - 1];
  assert.ok(Math.abs(out.c[n - 1] - c00) < 1e-4 * Math.max(1, Math.abs(c00)));
});

test('tiny W1: a compiled cpu step equals the interpreter; two steps match tfjs-backend-cpu (and tfjs-webgpu where an adapter exists) started from the same state', async () => {
  const s = TINY_W1;
  const step = buildW1Step(s);
  const state = initW1State(s, 3);
  const data = w1InputData(s, 4);
  const first = await runCompiled(step.graph, { ...state, ...data });
  const reference = interpret(step.graph, { ...state, ...data }, 'f64');
  assert.ok(E.isRight(reference));
  for (const name of Object.keys(step.graph.outputs)) {
    assert.ok(worstRelative(first[name], reference.right[name].data) < 1e-3, `${name} differs from the interpreter`);
  }
  for (const name of Object.keys(step.state)) assert.ok(first[name].every(Number.isFinite), `${name} is finite`);
  assert.ok(Object.keys(step.state).some((n) => n.startsWith(`${STATE_PREFIX.momentum}.`) && first[n].some((v) => v !== 0)), 'momentum moved');
  const nextState = Object.fromEntries(Object.keys(step.state).map((n) => [n, first[n]]));
  const second = await runCompiled(step.graph, { ...nextState, ...data });
  const ours = [first[W1_LOSS][0], second[W1_LOSS][0]];

  // tfjs-webgpu (the GPU peer) only where an adapter exists: it needs its own workaround (tfjs.ts, the one-hots)
  const webgpu = (await probeBackends()).find((p) => p.backend === 'webgpu')?.available === true;
  for (const backend of ['cpu', ...(webgpu ? ['webgpu'] : [])] as TfjsBackend[]) {
    const setup = await setupTfjs(backend);
    assert.ok(setup.ok, setup.ok ? '' : setup.reason);
    const peer = makeTfjsW1(setup.setup, s, state, data);
    try {
      await peer.step();
      await peer.step();
      assert.equal(peer.studentParams, w1StudentParams(s).total);
      assert.ok(Math.abs(ours[0] - peer.losses[0]) < 1e-4 * Math.max(1, Math.abs(peer.losses[0])), `first loss: ours ${ours[0]}, tfjs-${backend} ${peer.losses[0]}`);
      assert.ok(Math.abs(ours[1] - peer.losses[1]) < 1e-4, `second loss (after SGD + EMA): ours ${ours[1]}, tfjs-${backend} ${peer.losses[1]}`);
      assert.notEqual(ours[0], ours[1], 'the step changed the student');
    } finally {
      peer.dispose();
      closeTfjsWebGpu(setup.setup);
    }
  }
});

test('the naive gpu.js reference kernels (matmul, 3×3 conv with padding) compute what the workloads do', async () => {
  const once = { warmup: 0, min: 1, max: 1, budgetMs: 0 };
  for (const [name, kernel, output] of [
    ['matmul', naiveMatmul(TINY_MICRO.matmul), 'c'],
    ['convForward', naiveConv3x3(TINY_MICRO), 'y'],
  ] as const) {
    const w = microWorkload(name, TINY_MICRO);
    const reference = interpret(w.graph, w.inputs, 'f64');
    assert.ok(E.isRight(reference), name);
    const naive = await benchNaive(kernel, w.inputs, 'cpu', once);
    assert.ok(worstRelative(naive.output, reference.right[output].data) < 1e-4, `naive ${name} differs from the interpreter`);
  }
});

test('bench/gpu-check.sh parses and runs only bundles that npm run gpu:prepare builds', () => {
  execFileSync('bash', ['-n', 'bench/gpu-check.sh']);
  const prepare = (JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> }).scripts['gpu:prepare'] ?? '';
  const bundles = new Set([...prepare.matchAll(/(\S+)\.ts\b/g)].map((m) => `${(m[1] ?? '').split('/').pop() ?? ''}.mjs`));
  const used = [...readFileSync('bench/gpu-check.sh', 'utf8').matchAll(/\$run (\S+\.mjs)/g)].map((m) => m[1]);
  assert.ok(used.length >= 4, `stages found: ${used.join(', ')}`);
  for (const b of used) assert.ok(bundles.has(b as string), `gpu-check.sh runs ${b}, which gpu:prepare (${prepare}) does not build`);
});

test('report: ours ÷ peer is the ratio of medians; failed rows keep their reason in the table', () => {
  const timing = (ms: number) => ({ warmup: 1, iterations: 5, medianMs: ms, minMs: ms, maxMs: ms, samplesMs: [ms] });
  property(
    fc.property(fc.double({ min: 0.01, max: 1e5, noNaN: true }), fc.double({ min: 0.01, max: 1e5, noNaN: true }), (a, b) => {
      const base = { workload: 'matmul', title: 'matmul', flops: 1e9, notes: [] };
      const ours: Row = { ...base, system: 'ours', backend: 'cpu', status: 'ok', timing: timing(a) };
      const peer: Row = { ...base, system: 'tfjs', backend: 'wasm', status: 'ok', timing: timing(b) };
      const shown = Number(ratio(ours, peer).replace('×', ''));
      assert.ok(Math.abs(shown - a / b) <= 0.01 * (a / b) + 0.5, `${shown} vs ${a / b}`);
      assert.equal(ratio(ours, { ...peer, status: 'failed', reason: 'x' }), '–');
    }),
    100,
  );
  const failed: Row = { workload: 'W1', title: 'W1', flops: 1, system: 'ours', backend: 'webgpu', status: 'failed', reason: 'kernel s0b0/conv2d#12 failed: boom', notes: [] };
  const report: BenchReport = { kind: 'step', date: 'd', command: 'c', node: 'v', cpus: 2, loadStart: '1 1 1', loadEnd: '2 2 2', backends: [], rows: [failed], notes: [], totalSeconds: 1 };
  const md = markdown(report);
  assert.ok(md.includes('FAILED: kernel s0b0/conv2d#12 failed: boom') && md.includes('1 1 1'));
});

test('--profile: one synchronized tiny W1 step accounts for every kernel launch, and the report shows where the time went', async () => {
  const s = TINY_W1;
  const once = { warmup: 0, min: 1, max: 1, budgetMs: 0 };
  const r = await benchStep(buildW1Step(s).graph, initW1State(s, 1), w1InputData(s, 2), W1_LOSS, 'cpu', once, undefined, true);
  const p = r.profile;
  assert.ok(p !== undefined);
  assert.equal(p.rows.reduce((a, x) => a + x.launches, 0), r.kernels, 'every launch of the step is in one row');
  assert.ok(p.rows.every((x) => x.ms >= 0) && p.rows.some((x) => x.ms > 0) && p.syncMs >= 0);
  assert.ok(p.rows.some((x) => x.op === 'conv2d' && x.kernel.startsWith('conv2d [')));
  const step = buildW1Step(s).graph;
  assert.equal(p.rows.reduce((a, x) => a + x.flops, 0), graphFlops(step), 'every contraction FLOP of the step is in a row');
  assert.equal(r.liveHandlesAfter, r.liveHandlesBefore, 'profiling leaks no buffer');
  const row: Row = { workload: 'W1', title: 'W1', flops: 1, system: 'ours', backend: 'cpu', status: 'ok', timing: r.timing, losses: r.losses, profile: p, notes: [] };
  const md = markdown({ kind: 'step', date: 'd', command: 'c', node: 'v', cpus: 2, loadStart: '1 1 1', loadEnd: '1 1 1', backends: [], rows: [row], notes: [], totalSeconds: 1 });
  assert.match(md, /#### Profile: ours \(cpu\)/);
  assert.match(md, /\| conv2d \[/);
  assert.match(md, /- contractions: [\d.]+ ms \([\d.]+%\) at [\d.]+ GFLOP\/s; outside them/);
});

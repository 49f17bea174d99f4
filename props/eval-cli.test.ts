// `clove eval` end to end on a tiny checkpoint (the `tiny` preset's exact initial weights, saved under the names
// clove/train.ts writes), with the CI tier's pipeline at reduced sizes so the file stays well under a minute on
// 2 cores; plus the pieces it rests on: input normalisation, the pixel floors, BN recalibration against a direct
// computation, compiled features against the reference interpreter, flag parsing and every error path.
// Compiled runs use the `cpu` backend: available everywhere and the fastest here for this model size.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import * as E from 'fp-ts/lib/Either.js';
import { property } from './prop.ts';
import * as T from '../dsl/tensor.ts';
import { interpret, makeGraph } from '../dsl/index.ts';
import { loadCheckpoint, saveCheckpoint, STATE_FILE, checkpointName, type CheckpointTensor, type LoadedCheckpoint } from '../clove/checkpoint.ts';
import { presets, type Config } from '../clove/config.ts';
import { GREY_MEAN, GREY_STD, IMAGENET_MEAN, IMAGENET_STD } from '../clove/data/augment.ts';
import { generateDeadLeaves } from '../clove/data/deadleaves.ts';
import { FASHION_MNIST_DIR, fashionMnistAvailable } from '../clove/data/fmnist.ts';
import type { Image } from '../clove/data/image.ts';
import { createRng } from '../clove/data/rng.ts';
import { initTrainState, trainStateRecord } from '../clove/step.ts';
import { groupOfState } from '../clove/train.ts';
import {
  BN_MOMENTUM,
  cellColourFeatures,
  compileExtractor,
  extractFeatures,
  extractorGraph,
  FEATURES_OUTPUT,
  IMAGES_INPUT,
  meanPool,
  normalisedBatch,
  pixelWindowFeatures,
  recalibrateBn,
  weightBindings,
  type EncoderWeights,
  type ImageSet,
} from '../clove/eval/features.ts';
import { heldOutPatterns } from '../clove/data/gimp.ts';
import { generatedTextures } from './textures.ts';
import { evaluate, initialEncoderWeights, checkpointEncoderWeights, TIER_SIZES, type EvalReport, type TierSizes } from '../clove/eval/run.ts';
import { formatJson, formatReport, main, parseEvalArgs, TABLE_HEADER } from '../clove/eval/cli.ts';

const BACKEND = 'cpu' as const;
const SMALL: TierSizes = { mosaic: { train: 12, val: 8, test: 8 }, fmCls: { train: 40, val: 20, test: 20 }, dlPair: 8, texGroup: 6, recalibration: 8 };
const BATCH = 4;
const noFashionMnist = fashionMnistAvailable('train') && fashionMnistAvailable('t10k') ? false : 'Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist): P1–P3 parts skipped';

/** P4's textures when gimp-data is absent (and in every test, so results do not depend on it): gratings. */
const GRATINGS = generatedTextures();
const gimpAvailable = E.isRight(heldOutPatterns());

const quiet = { info: (): void => undefined, warn: (): void => undefined };
const tiny: Config = presets.tiny;
let root = '';

before(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'clove-eval-cli-'));
});
after(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

/** A run directory holding one checkpoint of `state` as clove/train.ts writes it (names `<group>/<state name>`). */
function writeRun(name: string, config: Config, state: Record<string, Float32Array>, step = 0): string {
  const dir = path.join(root, name);
  const tensors: Record<string, CheckpointTensor> = {};
  for (const [n, data] of Object.entries(state)) tensors[`${groupOfState(n)}/${n}`] = { shape: [data.length], data };
  const saved = saveCheckpoint(dir, { step, epoch: 0, rngState: [config.seed, step], config, backend: BACKEND, tensors });
  if (E.isLeft(saved)) throw new Error(saved.left);
  return dir;
}

function initialState(config: Config, seed = config.seed): Record<string, Float32Array> {
  const s = initTrainState(config, seed);
  if (E.isLeft(s)) throw new Error(s.left);
  return trainStateRecord(s.right);
}

function load(dir: string): LoadedCheckpoint {
  const ck = loadCheckpoint(dir);
  if (E.isLeft(ck)) throw new Error(ck.left);
  return ck.right;
}

const setOf = (images: readonly Image[]): ImageSet => ({ count: images.length, image: (k) => images[k] });
const deadLeaves = (seed: number, count: number): ImageSet => setOf(Array.from({ length: count }, (_, k) => generateDeadLeaves(seed, k).image));

/** BN layers of a ResNet: `bn1`, `layer1.0.bn2`, `layer2.0.downsample.1`. */
const isBnParam = (name: string): boolean => /(^|\.)bn\d\.|(^|\.)downsample\.1\./.test(name);

/** Weights with every BN affine parameter and statistic moved off its init, so eval-mode BN does real work. */
function perturbedWeights(seed: number): EncoderWeights {
  const w = initialEncoderWeights({ ...tiny, seed });
  if (E.isLeft(w)) throw new Error(w.left);
  const rng = createRng(seed).fork(77);
  const draw = (v: Float32Array, lo: number, hi: number): Float32Array => Float32Array.from(v, () => rng.uniformIn(lo, hi));
  const params = Object.fromEntries(
    Object.entries(w.right.params).map(([n, v]) => [n, !isBnParam(n) ? v : n.endsWith('.bias') ? draw(v, -0.1, 0.1) : draw(v, 0.5, 1.5)]),
  );
  const bn = Object.fromEntries(Object.entries(w.right.bn).map(([n, v]) => [n, n.endsWith('running_mean') ? draw(v, -0.2, 0.2) : draw(v, 0.5, 2)]));
  return { params, bn };
}

// ---------------------------------------------------------------------------------------------- pure parts

test('normalisedBatch: grey replicated to RGB, /255 and ImageNet constants as pretraining; padded rows are zero', () => {
  property(
    fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.constantFrom(1 as const, 3 as const), (grey, channels) => {
      const img: Image = { width: 4, height: 4, channels: 1, data: grey };
      const batch = normalisedBatch(setOf([img]), 0, 2, channels, 4);
      assert.equal(batch.length, 2 * channels * 16);
      for (let c = 0; c < channels; c++) {
        for (let p = 0; p < 16; p++) {
          const want = channels === 1 ? (grey[p] / 255 - GREY_MEAN) / GREY_STD : (grey[p] / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
          assert.ok(Math.abs(batch[c * 16 + p] - want) < 1e-5, `channel ${c} pixel ${p}`);
        }
      }
      assert.ok(batch.subarray(channels * 16).every((v) => v === 0), 'the padding row is zero');
    }),
    50,
  );
});

test('pixelWindowFeatures at stride 4 is the reference pixels20: window [4i−8, 4i+12) of the channel-mean grey, zero outside', () => {
  property(
    fc.property(fc.uint8Array({ minLength: 32 * 32 * 3, maxLength: 32 * 32 * 3 }), fc.nat(7), fc.nat(7), (data, i, j) => {
      const img: Image = { width: 32, height: 32, channels: 3, data };
      const f = pixelWindowFeatures(setOf([img]), 32, 8);
      assert.deepEqual([f.h, f.w, f.D], [8, 8, 400]);
      for (let dy = 0; dy < 20; dy++) {
        for (let dx = 0; dx < 20; dx++) {
          const y = 4 * i - 8 + dy;
          const x = 4 * j - 8 + dx;
          const p = y * 32 + x;
          const want = y < 0 || y >= 32 || x < 0 || x >= 32 ? 0 : (data[3 * p] + data[3 * p + 1] + data[3 * p + 2]) / 3 / 255;
          assert.ok(Math.abs(f.feats[(i * 8 + j) * 400 + dy * 20 + dx] - want) < 1e-6);
        }
      }
    }),
    30,
  );
});

test('cellColourFeatures reads the cell-centre pixel; meanPool averages the grid', () => {
  property(
    fc.property(fc.uint8Array({ minLength: 64 * 64 * 3, maxLength: 64 * 64 * 3 }), (data) => {
      const f = cellColourFeatures(setOf([{ width: 64, height: 64, channels: 3, data }]), 64, 8);
      assert.deepEqual([f.h, f.w, f.D], [8, 8, 3]);
      for (let i = 0; i < 8; i++) for (let j = 0; j < 8; j++) for (let c = 0; c < 3; c++) {
        assert.equal(f.feats[(i * 8 + j) * 3 + c], Math.fround(data[((8 * i + 4) * 64 + 8 * j + 4) * 3 + c] / 255));
      }
      const pooled = meanPool(f);
      for (let c = 0; c < 3; c++) {
        let s = 0;
        for (let k = 0; k < 64; k++) s += f.feats[k * 3 + c];
        assert.ok(Math.abs(pooled[c] - s / 64) < 1e-6);
      }
    }),
    20,
  );
});

test('parseEvalArgs: both flag forms, defaults, and a clear message for every bad flag', () => {
  property(
    fc.property(fc.constantFrom('ci', 'report'), fc.constantFrom('auto', 'cpu', 'webasm', 'webgpu'), fc.integer({ min: 1, max: 64 }), fc.integer({ min: 0, max: 5 }), fc.boolean(), fc.boolean(), (tier, backend, batch, otherInits, json, inline) => {
      const flag = (k: string, v: string): string[] => (inline ? [`--${k}=${v}`] : [`--${k}`, v]);
      const args = [...flag('checkpoint', 'runs/x'), ...flag('tier', tier), ...flag('backend', backend), ...flag('batch', String(batch)), ...flag('init-seeds', String(otherInits)), ...(json ? ['--json'] : []), ...flag('out', 'r.txt'), ...flag('variants', 'v.js')];
      const parsed = parseEvalArgs(args);
      assert.ok(E.isRight(parsed));
      assert.deepEqual(parsed.right, { checkpoint: 'runs/x', tier, backend, batch, otherInits, json, out: 'r.txt', fashionMnistDir: FASHION_MNIST_DIR, variantsModule: 'v.js' });
    }),
    30,
  );
  assert.deepEqual(parseEvalArgs(['--checkpoint', 'c']), E.right({ checkpoint: 'c', tier: 'ci', backend: 'auto', batch: 20, otherInits: 2, json: false, out: undefined, fashionMnistDir: FASHION_MNIST_DIR, variantsModule: undefined }));
  const bad: [string[], RegExp][] = [
    [[], /--checkpoint is required/],
    [['--checkpoint'], /--checkpoint needs a value/],
    [['--checkpoint', 'c', '--tier', 'full'], /--tier: 'full' is not one of ci, report/],
    [['--checkpoint', 'c', '--backend', 'cuda'], /--backend: 'cuda'/],
    [['--checkpoint', 'c', '--batch', '0'], /--batch: '0' is not a positive integer/],
    [['--checkpoint', 'c', '--init-seeds', '-1'], /--init-seeds: '-1' is not a non-negative integer/],
    [['--checkpoint', 'c', '--frobnicate'], /unknown argument '--frobnicate'/],
    [['--checkpoint', 'c', '--json=yes'], /--json takes no value/],
  ];
  for (const [args, message] of bad) {
    const r = parseEvalArgs(args);
    assert.ok(E.isLeft(r) && message.test(r.left), `${args.join(' ')} → ${JSON.stringify(r)}`);
  }
});

// ---------------------------------------------------------------------------------------------- errors

test('errors are Left values naming the problem: missing, corrupt and mismatched checkpoints, bad sizes', async () => {
  const missing = await main(['--checkpoint', path.join(root, 'no-such-run')], quiet);
  assert.ok(E.isLeft(missing) && missing.left.includes('no-such-run'), JSON.stringify(missing));

  const corruptDir = writeRun('corrupt', tiny, initialState(tiny));
  const stateFile = path.join(corruptDir, checkpointName(0), STATE_FILE);
  const bytes = fs.readFileSync(stateFile);
  bytes[bytes.length - 1] ^= 0xff;
  fs.writeFileSync(stateFile, bytes);
  const corrupt = await main(['--checkpoint', corruptDir], quiet);
  assert.ok(E.isLeft(corrupt) && corrupt.left.includes('cannot load the checkpoint'), JSON.stringify(corrupt));

  const partial = initialState(tiny);
  delete partial['student.encoder.layer2.0.conv1.weight'];
  const partialDir = writeRun('partial', tiny, partial);
  const mismatch = await main(['--checkpoint', partialDir], quiet);
  assert.ok(E.isLeft(mismatch) && mismatch.left.includes("'layer2.0.conv1.weight' is missing"), JSON.stringify(mismatch));
  const direct = checkpointEncoderWeights(load(partialDir));
  assert.ok(E.isLeft(direct));

  const sizes = { ...SMALL, recalibration: 2 };
  const tooFew = await evaluate(load(writeRun('ok', tiny, initialState(tiny))), 'ci', BACKEND, { sizes, batch: BATCH });
  assert.ok(E.isLeft(tooFew) && tooFew.left.includes('at least one batch'), JSON.stringify(tooFew));
  assert.ok(E.isLeft(await evaluate(load(path.join(root, 'ok')), 'ci', BACKEND, { sizes: { ...SMALL, dlPair: 0 }, batch: BATCH })));

  const badFlag = await main(['--checkpoint', path.join(root, 'ok'), '--tier', 'huge'], quiet);
  assert.ok(E.isLeft(badFlag) && badFlag.left.includes('--tier'));
});

test('tier sizes are those of EVAL_PROTOCOLS §3e', () => {
  assert.deepEqual(TIER_SIZES.ci.mosaic, { train: 400, val: 100, test: 200 });
  assert.deepEqual(TIER_SIZES.ci.fmCls, { train: 2000, val: 1000, test: 2000 });
  assert.equal(TIER_SIZES.ci.dlPair, 100);
  assert.deepEqual(TIER_SIZES.report.mosaic, { train: 2000, val: 500, test: 1000 });
  assert.deepEqual(TIER_SIZES.report.fmCls, { train: 10000, val: 2000, test: 10000 });
  assert.equal(TIER_SIZES.report.dlPair, 500);
  assert.equal(TIER_SIZES.report.recalibration, 500);
});

// ---------------------------------------------------------------------------------------------- compiled parts

test('BN recalibration: running statistics become the average of the batch statistics (checked directly on bn1)', async () => {
  const weights = perturbedWeights(5);
  const images = deadLeaves(3, 2 * BATCH);
  const ex = await compileExtractor(tiny, { mode: 'recalibrate', batch: BATCH, size: 64 }, { backend: BACKEND });
  if (E.isLeft(ex)) throw new Error(ex.left);
  try {
    const model = await ex.right.bind(weights);
    if (E.isLeft(model)) throw new Error(model.left);
    const r = await recalibrateBn(model.right, ex.right.graph, images);
    model.right.free();
    if (E.isLeft(r)) throw new Error(r.left);
    assert.equal(r.right.imagesUsed, 2 * BATCH);
    assert.deepEqual(Object.keys(r.right.bn).sort(), Object.keys(weights.bn).sort());
    for (const [name, v] of Object.entries(r.right.bn)) {
      assert.ok(v.every(Number.isFinite), `${name} is finite`);
      assert.notDeepEqual(v, weights.bn[name], `${name} changed`);
      if (name.endsWith('running_var')) assert.ok(v.every((x) => x >= 0), `${name} is a variance`);
    }
    // bn1 follows the stem conv directly (3×3, stride 1, pad 1 for the 'small' stem): its statistics are
    // those of conv1(x) over each batch, averaged over the batches.
    const x = T.input('x', [BATCH, 3, 64, 64]) as T.Tensor<4>;
    const w = T.input('w', [8, 3, 3, 3]) as T.Tensor<4>;
    const conv = makeGraph({ y: T.conv2d(x, w, { stride: 1, padding: 1 }) });
    const C = 8;
    const plane = 64 * 64;
    const mean = new Float64Array(C);
    const variance = new Float64Array(C);
    for (let b = 0; b < 2; b++) {
      const y = interpret(conv, { x: normalisedBatch(images, b * BATCH, BATCH, 3, 64), w: weights.params['conv1.weight'] });
      if (E.isLeft(y)) throw new Error(y.left);
      for (let c = 0; c < C; c++) {
        let s = 0;
        let s2 = 0;
        for (let n = 0; n < BATCH; n++) for (let p = 0; p < plane; p++) s += y.right.y.data[(n * C + c) * plane + p];
        const m = s / (BATCH * plane);
        for (let n = 0; n < BATCH; n++) for (let p = 0; p < plane; p++) s2 += (y.right.y.data[(n * C + c) * plane + p] - m) ** 2;
        mean[c] += m / 2;
        variance[c] += s2 / (BATCH * plane - 1) / 2;
      }
    }
    for (let c = 0; c < C; c++) {
      const gotMean = r.right.bn['bn1.running_mean'][c];
      const gotVar = r.right.bn['bn1.running_var'][c];
      assert.ok(Math.abs(gotMean - mean[c]) <= 1e-4 * (1 + Math.abs(mean[c])), `bn1 mean[${c}]: ${gotMean} vs ${mean[c]} (momentum ${BN_MOMENTUM})`);
      assert.ok(Math.abs(gotVar - variance[c]) <= 1e-4 * (1 + variance[c]), `bn1 var[${c}]: ${gotVar} vs ${variance[c]}`);
    }
  } finally {
    await ex.right.dispose();
  }
});

test('compiled eval-mode features equal the interpreter on the same graph (NHWC, padded last batch dropped)', async () => {
  const batch = 2;
  const spec = { mode: 'eval' as const, batch, size: 64 };
  const graph = extractorGraph(tiny, spec);
  if (E.isLeft(graph)) throw new Error(graph.left);
  const ex = await compileExtractor(tiny, spec, { backend: BACKEND });
  if (E.isLeft(ex)) throw new Error(ex.left);
  try {
    await property(
      fc.asyncProperty(fc.integer({ min: 1, max: 1000 }), async (seed) => {
        const weights = perturbedWeights(seed);
        const images = deadLeaves(seed, 3);
        const model = await ex.right.bind(weights);
        if (E.isLeft(model)) throw new Error(model.left);
        const compiled = await extractFeatures(model.right, ex.right.graph, images);
        model.right.free();
        if (E.isLeft(compiled)) throw new Error(compiled.left);
        const { h, w, D } = compiled.right;
        assert.deepEqual([h, w, D], [8, 8, 64]);
        assert.equal(compiled.right.feats.length, 3 * h * w * D);
        const cell = h * w * D;
        for (const first of [0, 2]) {
          const ref = interpret(makeGraph(graph.right.outputs), { ...weightBindings(graph.right, weights), [IMAGES_INPUT]: normalisedBatch(images, first, batch, 3, 64) });
          if (E.isLeft(ref)) throw new Error(ref.left);
          const want = ref.right[FEATURES_OUTPUT].data;
          const kept = Math.min(batch, 3 - first);
          let scale = 0;
          for (let k = 0; k < want.length; k++) scale = Math.max(scale, Math.abs(want[k]));
          for (let k = 0; k < kept * cell; k++) {
            const got = compiled.right.feats[first * cell + k];
            assert.ok(Math.abs(got - want[k]) <= 1e-4 * Math.max(1, scale), `feature ${first * cell + k}: compiled ${got} vs interpreter ${want[k]}`);
          }
        }
      }),
      2,
    );
  } finally {
    await ex.right.dispose();
  }
});

// ---------------------------------------------------------------------------------------------- end to end

function assertMetricRanges(report: EvalReport): void {
  for (const r of report.rows) {
    for (const [what, v] of [['floor', r.floor], ['random init', r.randomInit], ['pretrained', r.pretrained]] as const) {
      assert.ok(v >= 0 && v <= 1, `${r.protocol} ${r.metric} ${what} = ${v} outside [0, 1]`);
    }
    assert.ok(r.delta.lo <= r.delta.delta + 1e-12 && r.delta.delta <= r.delta.hi + 1e-12, `${r.protocol} ${r.metric}: Δ outside its CI`);
    assert.equal(r.verdict, r.delta.lo > 0 ? 'gain' : r.delta.hi < 0 ? 'loss' : 'none');
  }
}

test('end to end on the initial weights: one table, metrics in range, Δ = 0 with CI [0, 0] everywhere, another init seed scored', { skip: noFashionMnist }, async () => {
  const dir = writeRun('initial', tiny, initialState(tiny));
  const report = await evaluate(load(dir), 'ci', BACKEND, { sizes: SMALL, batch: BATCH, otherInits: 1, textures: GRATINGS });
  if (E.isLeft(report)) throw new Error(report.left);
  const r = report.right;
  assert.deepEqual(
    r.rows.map((row) => `${row.protocol} ${row.metric}`),
    ['P1 mIoU(11)', 'P1 fg-mIoU(10)', 'P1 bg IoU', 'P2 mAP50', 'P2 agnostic AP50', 'P2 centre-AP@4px', 'P3 top-1', 'P4 mIoU', 'P5 AUC'],
  );
  assert.deepEqual(r.skipped, []);
  assert.deepEqual(r.grid, { side: 8, dim: 64 });
  assert.equal(r.recalibration.images, SMALL.recalibration);
  assertMetricRanges(r);
  for (const row of r.rows) {
    assert.equal(row.randomInit, row.pretrained, `${row.protocol} ${row.metric}: same weights, same score`);
    assert.deepEqual([row.delta.delta, row.delta.lo, row.delta.hi], [0, 0, 0], `${row.protocol} ${row.metric}`);
    assert.equal(row.verdict, 'none');
    assert.equal(row.otherInits.length, 1);
  }
  assert.deepEqual(r.otherInitSeeds, [tiny.seed + 1]);
  assert.ok(r.rows.some((row) => row.otherInits[0] !== row.randomInit), 'another init seed scores differently somewhere');
  // The printed table: a header, a rule, one line per row, every line with the 6 numeric columns' text.
  const text = formatReport(r);
  const lines = text.split('\n');
  const header = lines.findIndex((l) => l.startsWith('protocol'));
  assert.ok(header > 0, text);
  for (const name of TABLE_HEADER) assert.ok(lines[header].includes(name), `header has '${name}'`);
  const body = lines.slice(header + 2, header + 2 + r.rows.length);
  body.forEach((line, k) => {
    assert.ok(line.startsWith(`${r.rows[k].protocol} ${r.rows[k].task}`), line);
    assert.match(line, /\+0\.000 \[\+0\.000, \+0\.000\]$/);
  });
  assert.equal(lines[header + 2 + r.rows.length], '', 'the table ends after its rows');
  const json = JSON.parse(formatJson(r)) as { rows: { delta: { delta: number } }[]; sizes: TierSizes };
  assert.equal(json.rows.length, 9);
  assert.deepEqual(json.sizes, SMALL);
});

test('different weights give a non-zero Δ; without Fashion-MNIST P1–P3 are skipped with the reason, without textures P4, and P5 still runs', async () => {
  // A "pretrained" student encoder from another init seed (teacher, optimizer and BN state as at init).
  const state = { ...initialState(tiny) };
  const other = initialState(tiny, tiny.seed + 1);
  for (const name of Object.keys(state)) if (name.startsWith('student.encoder.')) state[name] = other[name];
  const dir = writeRun('other-weights', tiny, state);
  const lines: string[] = [];
  const report = await evaluate(load(dir), 'ci', BACKEND, {
    sizes: SMALL,
    batch: BATCH,
    otherInits: 0,
    fashionMnistDir: path.join(root, 'no-fashion-mnist-here'),
    textures: [],
    log: { info: (l) => lines.push(l), warn: (l) => lines.push(`warning: ${l}`) },
  });
  if (E.isLeft(report)) throw new Error(report.left);
  const r = report.right;
  assert.deepEqual(r.skipped.map((s) => s.protocol), ['P1', 'P2', 'P3', 'P4']);
  for (const s of r.skipped.slice(0, 3)) assert.match(s.reason, /Fashion-MNIST is not available/);
  assert.match(r.skipped[3].reason, /install gimp-data.*at least 5 distinct textures/);
  assert.deepEqual(r.rows.map((row) => row.protocol), ['P5']);
  assertMetricRanges(r);
  assert.notEqual(r.rows[0].delta.delta, 0, 'different encoders give different P5 scores');
  assert.ok(lines.some((l) => l.includes('skipping P1, P2 and P3')), 'the skip is reported');
  assert.ok(lines.some((l) => /BN recalibration: \d+\/\d+/.test(l)), 'progress lines while extracting');
  assert.match(formatReport(r), /skipped P1: Fashion-MNIST is not available/);
});

test('main at the CI tier: JSON on the log, the same text in --out (a width-2 encoder, P4 where gimp-data is installed and P5, so it stays fast)', async () => {
  const micro: Config = { ...tiny, model: { ...tiny.model, encoder: { ...tiny.model.encoder, width: 2 } } };
  const dir = writeRun('micro', micro, initialState(micro));
  const out = path.join(root, 'report.json');
  const printed: string[] = [];
  const r = await main(
    ['--checkpoint', dir, '--backend', BACKEND, '--init-seeds', '1', '--fashion-mnist', path.join(root, 'no-fashion-mnist-here'), '--json', '--out', out],
    { info: (l) => printed.push(l), warn: (l) => printed.push(`warning: ${l}`) },
  );
  if (E.isLeft(r)) throw new Error(r.left);
  assert.equal(printed.length, 1, 'with --json the log carries only the JSON document');
  const report = JSON.parse(printed[0]) as EvalReport;
  assert.equal(report.tier, 'ci');
  assert.deepEqual(report.sizes, TIER_SIZES.ci);
  assert.equal(report.recalibration.images, TIER_SIZES.ci.recalibration);
  assert.deepEqual(report.rows.map((row) => `${row.protocol} ${row.metric}`), [...(gimpAvailable ? ['P4 mIoU'] : []), 'P5 AUC']);
  for (const row of report.rows) {
    assert.deepEqual([row.delta.delta, row.delta.lo, row.delta.hi], [0, 0, 0]);
    assert.equal(row.otherInits.length, 1);
  }
  const units = Object.fromEntries(report.rows.map((row) => [row.protocol, row.delta.units]));
  assert.equal(units.P5, TIER_SIZES.ci.dlPair * 256, 'P5 bootstraps over pairs');
  if (gimpAvailable) assert.equal(units.P4, TIER_SIZES.ci.texGroup, 'P4 bootstraps over canvases');
  assert.equal(fs.readFileSync(out, 'utf8'), `${printed[0]}\n`);
});

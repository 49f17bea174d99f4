// The frozen-feature evaluation of one pretraining checkpoint (EVAL_PROTOCOLS §3c–§3e): three feature sources
// (the raw-pixel floor, the random-init model with the run's exact initial weights, the pretrained student
// encoder) scored by P1–P5 on identical splits, with Δ(pretrained − random init) and its 95%
// paired-bootstrap CI. Both models go through the same compiled extractors after their own BN recalibration;
// only the bound weight buffers differ. Effects here are limited to reading Fashion-MNIST and the device.
import * as E from 'fp-ts/lib/Either.js';
import type { BackendName } from '../../compiler/runtime/errors.ts';
import type { LoadedCheckpoint } from '../checkpoint.ts';
import type { Config } from '../config.ts';
import { generateDeadLeaves } from '../data/deadleaves.ts';
import { GIMP_PATTERNS_DIR, heldOutPatterns, textureCanvases, type GreyTexture } from '../data/gimp.ts';
import { FASHION_MNIST_DIR, loadFashionMnist, type FashionMnist } from '../data/fmnist.ts';
import type { Image } from '../data/image.ts';
import { mosaicSplit, pretrainingMosaics, type Mosaics } from '../data/mosaic.ts';
import { builtinVariants, type Variants } from '../models/registry.ts';
import { initTrainState } from '../step.ts';
import { DEFAULT_BOOTSTRAP, type BootstrapOptions, type DeltaInterval } from './bootstrap.ts';
import {
  cellColourFeatures,
  checkEncoderWeights,
  compileExtractor,
  encoderOf,
  extractFeatures,
  meanPool,
  pixelWindowFeatures,
  recalibrateBn,
  weightsFromTrees,
  type CompiledExtractor,
  type EncoderWeights,
  type ImageSet,
  type Progress,
} from './features.ts';
import {
  CANVAS,
  compareModels,
  dlPair,
  fmCls,
  fmDet,
  fmSeg,
  texGroup,
  type ClsSplit,
  type DenseFeatures,
  type DetSplit,
  type ModelComparison,
  type ProbeSplits,
  type ProtocolResults,
  type SegSplit,
} from './protocols.ts';

export type Tier = 'ci' | 'report';
export const tierNames: readonly Tier[] = ['ci', 'report'];

export interface SplitSizes {
  readonly train: number;
  readonly val: number;
  readonly test: number;
}

export interface TierSizes {
  /** FMNIST-Mosaic canvases of P1 and P2 (shared). */
  readonly mosaic: SplitSizes;
  /** Fashion-MNIST images of P3: train [0, n), val [50 000, 50 000 + n), test t10k [0, n). */
  readonly fmCls: SplitSizes;
  /** DeadLeaves images of P5. */
  readonly dlPair: number;
  /** GIMP-texture canvases of P4. */
  readonly texGroup: number;
  /** Pretraining-domain images whose batch statistics recalibrate BN (§3d.2). */
  readonly recalibration: number;
}

/**
 * §3e: the report tier is the protocols' full size; the CI tier is about 1/5 of its cost. BN recalibration
 * uses 500 images in the report tier (§3d.2) and 100 in the CI tier.
 */
export const TIER_SIZES: Readonly<Record<Tier, TierSizes>> = {
  ci: { mosaic: { train: 400, val: 100, test: 200 }, fmCls: { train: 2000, val: 1000, test: 2000 }, dlPair: 100, texGroup: 100, recalibration: 100 },
  report: { mosaic: { train: 2000, val: 500, test: 1000 }, fmCls: { train: 10000, val: 2000, test: 10000 }, dlPair: 500, texGroup: 300, recalibration: 500 },
};

/** First index of P3's validation images in the Fashion-MNIST train file (never used in pretraining). */
export const FM_CLS_VAL_START = 50000;
/** P3 input: 28×28 items zero-padded to 32×32. */
export const FM_CLS_SIZE = 32;
/** P5 data: DeadLeaves seed 12, ρmin = 0.08; the pair sampler uses the same seed. */
export const DL_PAIR_SEED = 12;
export const DL_PAIR_RHO_MIN = 0.08;
/** P4 canvases: seed 3. */
export const TEX_GROUP_SEED = 3;
/** Images per extractor run at 64×64; P3's 32×32 runs take 4× as many (same memory). */
export const DEFAULT_BATCH = 20;

export type ProtocolId = 'P1' | 'P2' | 'P3' | 'P4' | 'P5';

/** What the floor column holds for each protocol. */
export const FLOOR_NAMES: Readonly<Record<ProtocolId, string>> = {
  P1: 'pixels20 (grey 20×20 window at each cell)',
  P2: 'pixels20 (grey 20×20 window at each cell)',
  P3: 'pixels20, mean-pooled',
  P4: 'pixels20 (grey 20×20 window at each cell)',
  P5: 'RGB at the cell centre',
};

export interface ResultRow {
  readonly protocol: ProtocolId;
  readonly task: 'fm_seg' | 'fm_det' | 'fm_cls' | 'tex_group' | 'dl_pair';
  readonly metric: string;
  readonly floor: number;
  readonly randomInit: number;
  /** The same metric for the extra init seeds config.seed + 1, + 2, … (§3d.1: the init variance). */
  readonly otherInits: readonly number[];
  readonly pretrained: number;
  /** pretrained − random init, with its paired-bootstrap CI. */
  readonly delta: DeltaInterval;
  /** 'gain' / 'loss' only when the CI excludes 0 (§3d.6). */
  readonly verdict: 'gain' | 'loss' | 'none';
}

export interface SkippedProtocol {
  readonly protocol: ProtocolId;
  readonly reason: string;
}

export interface EvalReport {
  readonly checkpoint: string;
  readonly step: number;
  readonly tier: Tier;
  readonly backend: string;
  readonly encoder: string;
  readonly grid: { readonly side: number; readonly dim: number };
  readonly sizes: TierSizes;
  readonly batch: number;
  /** Images whose statistics recalibrated BN, and where they came from. */
  readonly recalibration: { readonly images: number; readonly source: string };
  readonly floors: Readonly<Record<ProtocolId, string>>;
  /** The init seeds of each row's `otherInits`. */
  readonly otherInitSeeds: readonly number[];
  readonly rows: readonly ResultRow[];
  readonly skipped: readonly SkippedProtocol[];
  /** Wall-clock seconds per stage (features.* per protocol and model, probes.* per protocol and source). */
  readonly seconds: Readonly<Record<string, number>>;
}

export interface EvalLog {
  info(line: string): void;
  warn(line: string): void;
}

export interface EvaluateOptions {
  readonly log?: EvalLog;
  /** Override the tier's sizes (tests run the whole pipeline on a few images). */
  readonly sizes?: TierSizes;
  readonly batch?: number;
  readonly fashionMnistDir?: string;
  readonly bootstrap?: BootstrapOptions;
  /** P4's textures (default: the held-out GIMP patterns of `gimp-data`; tests pass generated ones). */
  readonly textures?: readonly GreyTexture[];
  /** How many extra init seeds to score besides the run's own (default DEFAULT_OTHER_INITS). */
  readonly otherInits?: number;
  /** Where the checkpoint config's variant names are looked up: the run's own `variants` (built-in by default). */
  readonly variants?: Variants;
}

/** §3d.1: "Also report 2 more init seeds, to show init variance." */
export const DEFAULT_OTHER_INITS = 2;

// ---------------------------------------------------------------------------------------------- weights

/** The student encoder of a checkpoint, with the tensor names `clove/train.ts` writes. */
export function checkpointEncoderWeights(checkpoint: LoadedCheckpoint, variants: Variants = builtinVariants): E.Either<string, EncoderWeights> {
  const encoder = encoderOf(checkpoint.config, variants);
  if (E.isLeft(encoder)) return E.left(`${checkpoint.path}: its config does not build an encoder: ${encoder.left}`);
  const params: Record<string, Float32Array> = {};
  const bn: Record<string, Float32Array> = {};
  const paramPrefix = 'params/student.encoder.';
  const bnPrefix = 'bn/bn.student.encoder.';
  for (const [name, tensor] of Object.entries(checkpoint.tensors)) {
    if (name.startsWith(paramPrefix)) params[name.slice(paramPrefix.length)] = tensor.data;
    else if (name.startsWith(bnPrefix)) bn[name.slice(bnPrefix.length)] = tensor.data;
  }
  const checked = checkEncoderWeights(encoder.right, { params, bn });
  return E.mapLeft((m: string) => `${checkpoint.path}: the student encoder does not match its config (${m})`)(checked);
}

/** The exact initial student encoder of the run (§3d.1): initTrainState(config, config.seed); or of another seed. */
export function initialEncoderWeights(config: Config, seed: number = config.seed, variants: Variants = builtinVariants): E.Either<string, EncoderWeights> {
  const state = initTrainState(config, seed, variants);
  if (E.isLeft(state)) return state;
  const params = state.right.student.encoder;
  const bn = state.right.bnStudent.encoder;
  if (params instanceof Float32Array || bn instanceof Float32Array || params === undefined || bn === undefined) {
    return E.left('initTrainState returned no student encoder subtree');
  }
  return E.right(weightsFromTrees(params, bn));
}

// ---------------------------------------------------------------------------------------------- data

const setOf = (images: readonly Image[]): ImageSet => ({ count: images.length, image: (k) => images[k] });

function mosaicImages(m: Mosaics): ImageSet {
  const pixels = CANVAS * CANVAS;
  return { count: m.count, image: (k) => ({ width: CANVAS, height: CANVAS, channels: 1, data: m.canvases.subarray(k * pixels, (k + 1) * pixels) }) };
}

/** Fashion-MNIST items [first, first + count) zero-padded (centred) to 32×32, and their labels. */
function paddedItems(fm: FashionMnist, first: number, count: number): { readonly images: ImageSet; readonly labels: Uint8Array } {
  if (first + count > fm.count) throw new Error(`paddedItems: items [${first}, ${first + count}) exceed the ${fm.count} of the file`);
  const offset = (FM_CLS_SIZE - fm.rows) / 2;
  const item = fm.rows * fm.cols;
  return {
    labels: fm.labels.slice(first, first + count),
    images: {
      count,
      image: (k) => {
        const data = new Uint8Array(FM_CLS_SIZE * FM_CLS_SIZE);
        const src = fm.images.subarray((first + k) * item, (first + k + 1) * item);
        for (let y = 0; y < fm.rows; y++) data.set(src.subarray(y * fm.cols, (y + 1) * fm.cols), (y + offset) * FM_CLS_SIZE + offset);
        return { width: FM_CLS_SIZE, height: FM_CLS_SIZE, channels: 1, data };
      },
    },
  };
}

interface FmData {
  readonly mosaics: ProbeSplits<Mosaics>;
  readonly cls: ProbeSplits<{ readonly images: ImageSet; readonly labels: Uint8Array }>;
}

function fmData(dir: string, train: E.Either<string, FashionMnist>, sizes: TierSizes): E.Either<string, FmData> {
  if (E.isLeft(train)) return train;
  const test = loadFashionMnist('t10k', dir);
  if (E.isLeft(test)) return test;
  const mTrain = mosaicSplit('train', train.right, sizes.mosaic.train);
  const mVal = mosaicSplit('val', train.right, sizes.mosaic.val);
  const mTest = mosaicSplit('test', test.right, sizes.mosaic.test);
  if (E.isLeft(mTrain)) return mTrain;
  if (E.isLeft(mVal)) return mVal;
  if (E.isLeft(mTest)) return mTest;
  const { fmCls: c } = sizes;
  if (c.train > FM_CLS_VAL_START || FM_CLS_VAL_START + c.val > train.right.count || c.test > test.right.count) {
    return E.left(`P3 sizes ${c.train}/${c.val}/${c.test} do not fit train [0, ${FM_CLS_VAL_START}), val [${FM_CLS_VAL_START}, ${train.right.count}) and t10k (${test.right.count})`);
  }
  return E.right({
    mosaics: { train: mTrain.right, val: mVal.right, test: mTest.right },
    cls: { train: paddedItems(train.right, 0, c.train), val: paddedItems(train.right, FM_CLS_VAL_START, c.val), test: paddedItems(test.right, 0, c.test) },
  });
}

interface DlData {
  readonly images: ImageSet;
  readonly leafId: Int32Array;
}

function dlData(count: number): DlData {
  const images: Image[] = [];
  const leafId = new Int32Array(count * CANVAS * CANVAS);
  for (let k = 0; k < count; k++) {
    const sample = generateDeadLeaves(DL_PAIR_SEED, k, { rhoMin: DL_PAIR_RHO_MIN });
    images.push(sample.image);
    leafId.set(sample.leafId, k * CANVAS * CANVAS);
  }
  return { images: setOf(images), leafId };
}

interface TexData {
  readonly images: ImageSet;
  readonly regions: Int32Array;
  readonly regionCounts: Int32Array;
}

function texData(textures: E.Either<string, readonly GreyTexture[]>, count: number): E.Either<string, TexData> {
  if (E.isLeft(textures)) return textures;
  const c = textureCanvases(textures.right, count, TEX_GROUP_SEED);
  return E.isLeft(c) ? c : E.right({ images: setOf(c.right.images), regions: c.right.regions, regionCounts: c.right.regionCounts });
}

/**
 * Pretraining-domain images for BN recalibration: the run's own DeadLeaves pool images (seed = config.seed,
 * index 0..n−1; a folder run also recalibrates on DeadLeaves) or its unlabelled FMNIST-Mosaic canvases.
 */
function recalibrationImages(config: Config, count: number, fmTrain: E.Either<string, FashionMnist>): E.Either<string, { readonly images: ImageSet; readonly source: string }> {
  if (config.data.source === 'fmnist-mosaic') {
    if (E.isLeft(fmTrain)) return E.left(`the checkpoint was pretrained on fmnist-mosaic; recalibrating its BN statistics needs Fashion-MNIST: ${fmTrain.left}`);
    const seed = 100 + Math.abs(config.seed);
    const m = pretrainingMosaics(fmTrain.right, count, seed);
    if (E.isLeft(m)) return m;
    return E.right({ images: mosaicImages(m.right), source: `${count} unlabelled FMNIST-Mosaic canvases (seed ${seed})` });
  }
  const images = Array.from({ length: count }, (_, k) => generateDeadLeaves(config.seed, k).image);
  return E.right({ images: setOf(images), source: `${count} DeadLeaves-64 pretraining-pool images (seed ${config.seed})` });
}

// ---------------------------------------------------------------------------------------------- evaluation

const now = (): number => performance.now() / 1000;

function checkSizes(s: TierSizes, batch: number): E.Either<string, void> {
  const all: [string, number][] = [
    ['mosaic.train', s.mosaic.train], ['mosaic.val', s.mosaic.val], ['mosaic.test', s.mosaic.test],
    ['fmCls.train', s.fmCls.train], ['fmCls.val', s.fmCls.val], ['fmCls.test', s.fmCls.test],
    ['dlPair', s.dlPair], ['texGroup', s.texGroup], ['recalibration', s.recalibration],
  ];
  const bad = all.filter(([, n]) => !(Number.isInteger(n) && n >= 1));
  if (bad.length > 0) return E.left(`evaluation sizes must be positive integers: ${bad.map(([k, n]) => `${k} = ${n}`).join(', ')}`);
  if (!(Number.isInteger(batch) && batch >= 1)) return E.left(`batch must be a positive integer, got ${batch}`);
  if (s.recalibration < batch) return E.left(`BN recalibration needs at least one batch: ${s.recalibration} images < batch ${batch}`);
  return E.right(undefined);
}

interface Extractors {
  readonly dense: CompiledExtractor;
  readonly recalibrate: CompiledExtractor;
  readonly global?: CompiledExtractor;
}

/** Logs "label done/total (seconds)" each time another quarter is done. */
function progressLine(log: EvalLog, label: string): Progress {
  let shown = 0;
  const start = now();
  return (done, total) => {
    const quarter = Math.floor((4 * done) / total);
    if (quarter > shown) {
      shown = quarter;
      log.info(`  ${label}: ${done}/${total} (${(now() - start).toFixed(1)} s)`);
    }
  };
}

const segSplit = (f: DenseFeatures, m: Mosaics): SegSplit => ({ ...f, sem: m.sem });
const detSplit = (f: DenseFeatures, m: Mosaics): DetSplit => ({
  ...f,
  items: m.items.map((items) => items.map((it) => ({ box: [it.x0, it.y0, it.x1, it.y1] as const, cls: it.classId, visible: it.visibleFraction }))),
});

/** Runs P1/P2 (shared splits), P3, P4 and P5 on given features; each protocol's probe time goes to `seconds`. */
function scoreProtocols(
  label: string,
  dense: ProbeSplits<DenseFeatures> | undefined,
  pooled: ProbeSplits<Float32Array> | undefined,
  pairFeatures: DenseFeatures,
  texFeatures: DenseFeatures | undefined,
  fm: FmData | undefined,
  dl: DlData,
  tex: TexData | undefined,
  seconds: Record<string, number>,
): E.Either<string, ProtocolResults> {
  const out: { -readonly [K in keyof ProtocolResults]: ProtocolResults[K] } = {};
  if (fm !== undefined && dense !== undefined) {
    let t = now();
    const seg = fmSeg({ train: segSplit(dense.train, fm.mosaics.train), val: segSplit(dense.val, fm.mosaics.val), test: segSplit(dense.test, fm.mosaics.test) });
    if (E.isLeft(seg)) return E.left(`P1 on ${label}: ${seg.left}`);
    out.fmSeg = seg.right;
    seconds[`probe.P1.${label}`] = now() - t;
    t = now();
    const det = fmDet({ train: detSplit(dense.train, fm.mosaics.train), val: detSplit(dense.val, fm.mosaics.val), test: detSplit(dense.test, fm.mosaics.test) });
    if (E.isLeft(det)) return E.left(`P2 on ${label}: ${det.left}`);
    out.fmDet = det.right;
    seconds[`probe.P2.${label}`] = now() - t;
  }
  if (fm !== undefined && pooled !== undefined) {
    const t = now();
    const split = (feats: Float32Array, labels: Uint8Array): ClsSplit => ({ feats, labels });
    const cls = fmCls({ train: split(pooled.train, fm.cls.train.labels), val: split(pooled.val, fm.cls.val.labels), test: split(pooled.test, fm.cls.test.labels) });
    if (E.isLeft(cls)) return E.left(`P3 on ${label}: ${cls.left}`);
    out.fmCls = cls.right;
    seconds[`probe.P3.${label}`] = now() - t;
  }
  if (tex !== undefined && texFeatures !== undefined) {
    const t = now();
    const grouped = texGroup({ ...texFeatures, regions: tex.regions, regionCounts: tex.regionCounts });
    if (E.isLeft(grouped)) return E.left(`P4 on ${label}: ${grouped.left}`);
    out.texGroup = grouped.right;
    seconds[`probe.P4.${label}`] = now() - t;
  }
  const t = now();
  const pairs = dlPair({ ...pairFeatures, leafId: dl.leafId, seed: DL_PAIR_SEED });
  if (E.isLeft(pairs)) return E.left(`P5 on ${label}: ${pairs.left}`);
  out.dlPair = pairs.right;
  seconds[`probe.P5.${label}`] = now() - t;
  return E.right(out);
}

/** Recalibrate BN, extract every set's features and score them, for one model. */
async function evaluateModel(
  label: string,
  weights: EncoderWeights,
  ex: Extractors,
  recal: ImageSet,
  fm: FmData | undefined,
  dl: DlData,
  tex: TexData | undefined,
  log: EvalLog,
  seconds: Record<string, number>,
): Promise<E.Either<string, ProtocolResults>> {
  let t = now();
  const recalModel = await ex.recalibrate.bind(weights);
  if (E.isLeft(recalModel)) return recalModel;
  const recalibrated = await recalibrateBn(recalModel.right, ex.recalibrate.graph, recal, progressLine(log, `${label}: BN recalibration`));
  recalModel.right.free();
  if (E.isLeft(recalibrated)) return E.left(`${label}: ${recalibrated.left}`);
  seconds[`recalibration.${label}`] = now() - t;
  const model: EncoderWeights = { params: weights.params, bn: recalibrated.right.bn };

  const dense = await ex.dense.bind(model);
  if (E.isLeft(dense)) return dense;
  try {
    const run = async (set: ImageSet, what: string): Promise<E.Either<string, DenseFeatures>> =>
      E.mapLeft((m: string) => `${label}, ${what}: ${m}`)(await extractFeatures(dense.right, ex.dense.graph, set, progressLine(log, `${label}: features of ${what}`)));
    let denseSplits: ProbeSplits<DenseFeatures> | undefined;
    if (fm !== undefined) {
      t = now();
      const tr = await run(mosaicImages(fm.mosaics.train), 'FMNIST-Mosaic train');
      if (E.isLeft(tr)) return tr;
      const va = await run(mosaicImages(fm.mosaics.val), 'FMNIST-Mosaic val');
      if (E.isLeft(va)) return va;
      const te = await run(mosaicImages(fm.mosaics.test), 'FMNIST-Mosaic test');
      if (E.isLeft(te)) return te;
      denseSplits = { train: tr.right, val: va.right, test: te.right };
      seconds[`features.P1P2.${label}`] = now() - t;
    }
    t = now();
    const pairFeatures = await run(dl.images, 'DeadLeaves P5 images');
    if (E.isLeft(pairFeatures)) return pairFeatures;
    seconds[`features.P5.${label}`] = now() - t;
    let texFeatures: DenseFeatures | undefined;
    if (tex !== undefined) {
      t = now();
      const f = await run(tex.images, 'P4 texture canvases');
      if (E.isLeft(f)) return f;
      texFeatures = f.right;
      seconds[`features.P4.${label}`] = now() - t;
    }

    let pooled: ProbeSplits<Float32Array> | undefined;
    if (fm !== undefined && ex.global !== undefined) {
      t = now();
      const global = await ex.global.bind(model);
      if (E.isLeft(global)) return global;
      try {
        const pool = async (set: ImageSet, what: string): Promise<E.Either<string, Float32Array>> => {
          const f = await extractFeatures(global.right, (ex.global as CompiledExtractor).graph, set, progressLine(log, `${label}: features of ${what}`));
          return E.isLeft(f) ? E.left(`${label}, ${what}: ${f.left}`) : E.right(meanPool(f.right));
        };
        const tr = await pool(fm.cls.train.images, 'Fashion-MNIST train (P3)');
        if (E.isLeft(tr)) return tr;
        const va = await pool(fm.cls.val.images, 'Fashion-MNIST val (P3)');
        if (E.isLeft(va)) return va;
        const te = await pool(fm.cls.test.images, 'Fashion-MNIST t10k (P3)');
        if (E.isLeft(te)) return te;
        pooled = { train: tr.right, val: va.right, test: te.right };
      } finally {
        global.right.free();
      }
      seconds[`features.P3.${label}`] = now() - t;
    }
    return scoreProtocols(label, denseSplits, pooled, pairFeatures.right, texFeatures, fm, dl, tex, seconds);
  } finally {
    dense.right.free();
  }
}

/** The raw-pixel floors, on the same grids as the models. */
function evaluateFloor(fm: FmData | undefined, dl: DlData, tex: TexData | undefined, side: number, side32: number, seconds: Record<string, number>): E.Either<string, ProtocolResults> {
  const t = now();
  let dense: ProbeSplits<DenseFeatures> | undefined;
  let pooled: ProbeSplits<Float32Array> | undefined;
  if (fm !== undefined) {
    const windows = (m: Mosaics): DenseFeatures => pixelWindowFeatures(mosaicImages(m), CANVAS, side);
    dense = { train: windows(fm.mosaics.train), val: windows(fm.mosaics.val), test: windows(fm.mosaics.test) };
    const pooledWindows = (set: ImageSet): Float32Array => pooledPixelWindows(set, side32);
    pooled = { train: pooledWindows(fm.cls.train.images), val: pooledWindows(fm.cls.val.images), test: pooledWindows(fm.cls.test.images) };
  }
  const colour = cellColourFeatures(dl.images, CANVAS, side);
  const texWindows = tex === undefined ? undefined : pixelWindowFeatures(tex.images, CANVAS, side);
  seconds['features.floor'] = now() - t;
  return scoreProtocols('floor', dense, pooled, colour, texWindows, fm, dl, tex, seconds);
}

/** Mean-pooled pixels20 of 32×32 images, computed in chunks so the full [N, h, w, 400] array never exists. */
function pooledPixelWindows(set: ImageSet, side: number): Float32Array {
  const chunk = 500;
  const D = 400;
  const out = new Float32Array(set.count * D);
  for (let first = 0; first < set.count; first += chunk) {
    const count = Math.min(chunk, set.count - first);
    const part: ImageSet = { count, image: (k) => set.image(first + k) };
    out.set(meanPool(pixelWindowFeatures(part, FM_CLS_SIZE, side)), first * D);
  }
  return out;
}

/** The rows of the report: each metric of each protocol that every model was scored on. */
const METRICS: readonly {
  readonly protocol: ProtocolId;
  readonly task: ResultRow['task'];
  readonly metric: string;
  readonly value: (r: ProtocolResults) => number | undefined;
  readonly delta: (c: ModelComparison) => DeltaInterval | undefined;
}[] = [
  { protocol: 'P1', task: 'fm_seg', metric: 'mIoU(11)', value: (r) => r.fmSeg?.miou, delta: (c) => c.fmSeg?.miou },
  { protocol: 'P1', task: 'fm_seg', metric: 'fg-mIoU(10)', value: (r) => r.fmSeg?.fgMiou, delta: (c) => c.fmSeg?.fgMiou },
  { protocol: 'P1', task: 'fm_seg', metric: 'bg IoU', value: (r) => r.fmSeg?.bgIou, delta: (c) => c.fmSeg?.bgIou },
  { protocol: 'P2', task: 'fm_det', metric: 'mAP50', value: (r) => r.fmDet?.mAP50, delta: (c) => c.fmDet?.mAP50 },
  { protocol: 'P2', task: 'fm_det', metric: 'agnostic AP50', value: (r) => r.fmDet?.agnosticAP50, delta: (c) => c.fmDet?.agnosticAP50 },
  { protocol: 'P2', task: 'fm_det', metric: 'centre-AP@4px', value: (r) => r.fmDet?.centreAP4, delta: (c) => c.fmDet?.centreAP4 },
  { protocol: 'P3', task: 'fm_cls', metric: 'top-1', value: (r) => r.fmCls?.top1, delta: (c) => c.fmCls?.top1 },
  { protocol: 'P4', task: 'tex_group', metric: 'mIoU', value: (r) => r.texGroup?.miou, delta: (c) => c.texGroup?.miou },
  { protocol: 'P5', task: 'dl_pair', metric: 'AUC', value: (r) => r.dlPair?.auc, delta: (c) => c.dlPair?.auc },
];

function rowsOf(floor: ProtocolResults, random: ProtocolResults, others: readonly ProtocolResults[], pretrained: ProtocolResults, cmp: ModelComparison): ResultRow[] {
  const verdict = (d: DeltaInterval): ResultRow['verdict'] => (d.lo > 0 ? 'gain' : d.hi < 0 ? 'loss' : 'none');
  return METRICS.flatMap(({ protocol, task, metric, value, delta }) => {
    const values = [floor, random, pretrained, ...others].map(value);
    const d = delta(cmp);
    if (d === undefined || values.some((v) => v === undefined)) return [];
    const [f, r, p, ...o] = values as number[];
    return [{ protocol, task, metric, floor: f, randomInit: r, otherInits: o, pretrained: p, delta: d, verdict: verdict(d) }];
  });
}

/**
 * Evaluate a checkpoint's student encoder against the run's initial weights and the raw-pixel floor. P1–P3
 * are skipped (with the reason) when Fashion-MNIST cannot be read, P4 when no textures are given and gimp-data's
 * patterns cannot be read; P5 always runs.
 */
export async function evaluate(
  checkpoint: LoadedCheckpoint,
  tier: Tier,
  backend: BackendName | 'auto',
  options: EvaluateOptions = {},
): Promise<E.Either<string, EvalReport>> {
  const log: EvalLog = options.log ?? { info: () => undefined, warn: () => undefined };
  const sizes = options.sizes ?? TIER_SIZES[tier];
  const batch = options.batch ?? DEFAULT_BATCH;
  const okSizes = checkSizes(sizes, batch);
  if (E.isLeft(okSizes)) return okSizes;
  const config = checkpoint.config;
  const seconds: Record<string, number> = {};
  const started = now();

  const variants = options.variants ?? builtinVariants;
  const pretrainedWeights = checkpointEncoderWeights(checkpoint, variants);
  if (E.isLeft(pretrainedWeights)) return pretrainedWeights;
  const randomWeights = initialEncoderWeights(config, config.seed, variants);
  if (E.isLeft(randomWeights)) return E.left(`cannot rebuild the run's initial weights: ${randomWeights.left}`);
  const otherInits = options.otherInits ?? DEFAULT_OTHER_INITS;
  if (!(Number.isInteger(otherInits) && otherInits >= 0)) return E.left(`otherInits ${otherInits} must be a non-negative integer`);
  const otherSeeds = Array.from({ length: otherInits }, (_v, k) => config.seed + 1 + k);
  const encoder = encoderOf(config, variants);
  if (E.isLeft(encoder)) return encoder;

  let t = now();
  const dir = options.fashionMnistDir ?? FASHION_MNIST_DIR;
  const fmTrain = loadFashionMnist('train', dir);
  const fm = fmData(dir, fmTrain, sizes);
  const skipped: SkippedProtocol[] = [];
  if (E.isLeft(fm)) {
    const reason = `Fashion-MNIST is not available: ${fm.left}`;
    for (const protocol of ['P1', 'P2', 'P3'] as const) skipped.push({ protocol, reason });
    log.warn(`skipping P1, P2 and P3: ${reason}`);
  }
  const fmOk = E.isRight(fm) ? fm.right : undefined;
  const tex = texData(options.textures === undefined ? heldOutPatterns(GIMP_PATTERNS_DIR) : E.right(options.textures), sizes.texGroup);
  if (E.isLeft(tex)) {
    const reason = `the GIMP textures are not available (install gimp-data): ${tex.left}`;
    skipped.push({ protocol: 'P4', reason });
    log.warn(`skipping P4: ${reason}`);
  }
  const texOk = E.isRight(tex) ? tex.right : undefined;
  const dl = dlData(sizes.dlPair);
  const recal = recalibrationImages(config, sizes.recalibration, fmTrain);
  if (E.isLeft(recal)) return recal;
  seconds.data = now() - t;
  log.info(`data ready in ${seconds.data.toFixed(1)} s: ${fmOk === undefined ? 'no Fashion-MNIST' : `mosaics ${sizes.mosaic.train}/${sizes.mosaic.val}/${sizes.mosaic.test}, P3 ${sizes.fmCls.train}/${sizes.fmCls.val}/${sizes.fmCls.test}`}, ${texOk === undefined ? 'no P4' : `P4 ${sizes.texGroup} canvases`}, P5 ${sizes.dlPair} images; BN recalibration on ${recal.right.source}`);

  t = now();
  const compiled: CompiledExtractor[] = [];
  try {
    const build = async (mode: 'eval' | 'recalibrate', b: number, size: number): Promise<E.Either<string, CompiledExtractor>> => {
      const ex = await compileExtractor(config, { mode, batch: b, size }, { backend, variants, log: compiled.length === 0 ? (line) => line.startsWith('using') && log.info(line) : undefined });
      if (E.isRight(ex)) compiled.push(ex.right);
      return ex;
    };
    log.info('compiling the feature extractors (eval 64×64, BN recalibration 64×64' + (fmOk === undefined ? ')' : `, eval ${FM_CLS_SIZE}×${FM_CLS_SIZE})`));
    const dense = await build('eval', batch, CANVAS);
    if (E.isLeft(dense)) return dense;
    const recalibrate = await build('recalibrate', batch, CANVAS);
    if (E.isLeft(recalibrate)) return recalibrate;
    let global: CompiledExtractor | undefined;
    if (fmOk !== undefined) {
      const g = await build('eval', 4 * batch, FM_CLS_SIZE);
      if (E.isLeft(g)) return g;
      global = g.right;
    }
    seconds.compile = now() - t;
    const ex: Extractors = { dense: dense.right, recalibrate: recalibrate.right, global };
    const side = dense.right.graph.side;
    log.info(`compiled on ${dense.right.backend} in ${seconds.compile.toFixed(1)} s; features ${side}×${side}×${dense.right.graph.dim} at 64×64`);

    log.info('raw-pixel floor');
    const floor = evaluateFloor(fmOk, dl, texOk, side, global?.graph.side ?? 1, seconds);
    if (E.isLeft(floor)) return floor;
    log.info('random init (the run\'s initial weights)');
    const random = await evaluateModel('random', randomWeights.right, ex, recal.right.images, fmOk, dl, texOk, log, seconds);
    if (E.isLeft(random)) return random;
    const others: ProtocolResults[] = [];
    for (const seed of otherSeeds) {
      log.info(`random init, seed ${seed} (init variance)`);
      const weights = initialEncoderWeights(config, seed, variants);
      if (E.isLeft(weights)) return weights;
      const other = await evaluateModel(`init-seed-${seed}`, weights.right, ex, recal.right.images, fmOk, dl, texOk, log, seconds);
      if (E.isLeft(other)) return other;
      others.push(other.right);
    }
    log.info(`pretrained (step ${checkpoint.step})`);
    const pretrained = await evaluateModel('pretrained', pretrainedWeights.right, ex, recal.right.images, fmOk, dl, texOk, log, seconds);
    if (E.isLeft(pretrained)) return pretrained;

    t = now();
    const cmp = compareModels(pretrained.right, random.right, options.bootstrap ?? DEFAULT_BOOTSTRAP);
    if (E.isLeft(cmp)) return cmp;
    seconds.bootstrap = now() - t;
    seconds.total = now() - started;
    const { depth, width, stem, name } = config.model.encoder;
    return E.right({
      checkpoint: checkpoint.path,
      step: checkpoint.step,
      tier,
      backend: dense.right.backend,
      // Depth and stem are the built-in ResNet's; a user's encoder is named by its variant and width.
      encoder: `${name === 'resnet' ? `${name}-${depth} width ${width}, '${stem}' stem` : `'${name}' width ${width}`}, ${config.views.channels}-channel input`,
      grid: { side, dim: dense.right.graph.dim },
      sizes,
      batch,
      recalibration: { images: Math.floor(sizes.recalibration / batch) * batch, source: recal.right.source },
      floors: FLOOR_NAMES,
      otherInitSeeds: otherSeeds,
      rows: rowsOf(floor.right, random.right, others, pretrained.right, cmp.right),
      skipped,
      seconds,
    });
  } finally {
    for (const c of compiled) await c.dispose();
  }
}

// The evaluation protocols P1, P2, P3 and P5 of EVAL_PROTOCOLS.md §3c as pure functions of prepared features
// and labels: no I/O and no models, so the same code scores every model and every tier. Inputs come from
// feature caches and dataset generators (user-controlled sizes), so shape problems are returned as Left values
// naming the split, the field and the sizes.
import * as E from 'fp-ts/lib/Either.js';
import { DEFAULT_BOOTSTRAP, pairedBootstrapDelta, randomIndex, splitmix32, type BootstrapOptions, type DeltaInterval } from './bootstrap.ts';
import {
  accumulateConfusion,
  aucFromRanked,
  argmaxChannels,
  decodeCentreDetections,
  detectionScores,
  detectionStatistics,
  IGNORE_LABEL,
  P2_DECODING,
  kMeans,
  matchedMeanIou,
  rankPairs,
  rowDot,
  segmentationScores,
  standardisedUnitRows,
  sumConfusions,
  upsampleBilinear,
  type Detection,
  type DetectionStatistics,
  type GroundTruthItem,
} from './metrics.ts';
import { buildRidgeProblem, predictRidge, RIDGE_LAMBDAS, selectLambda, solveRidge, type FeatureRows, type RidgeProbe } from './ridge.ts';

/** Canvas side of every dense protocol. */
export const CANVAS = 64;
/** Fashion-MNIST classes; segmentation adds background as class 0. */
export const FM_CLASSES = 10;
export const FM_SEG_CLASSES = FM_CLASSES + 1;

/** Dense features of N canvases on an h×w grid: row-major [N, h, w, D]. */
export interface DenseFeatures {
  readonly feats: Float32Array;
  readonly h: number;
  readonly w: number;
  readonly D: number;
}

export interface SegSplit extends DenseFeatures {
  /** Semantic labels [N, 64, 64]: 0 = background, 1..10 = class + 1, 255 = ignore. */
  readonly sem: Uint8Array;
}

export interface DetSplit extends DenseFeatures {
  /** Ground-truth items per canvas, boxes in canvas pixels with exclusive x1, y1. */
  readonly items: readonly (readonly GroundTruthItem[])[];
}

export interface ProbeSplits<S> {
  readonly train: S;
  readonly val: S;
  readonly test: S;
}

interface Grid {
  readonly count: number;
  readonly h: number;
  readonly w: number;
  readonly D: number;
  /** Pixels per cell: derived as 64 / h so a stride-8 backbone (8×8 grid) works unchanged. */
  readonly stride: number;
}

function checkGrid(name: string, f: DenseFeatures): E.Either<string, Grid> {
  const { h, w, D } = f;
  if (!(Number.isInteger(h) && Number.isInteger(w) && Number.isInteger(D) && h > 0 && w > 0 && D > 0)) {
    return E.left(`${name}: grid h=${h}, w=${w}, D=${D} must be positive integers`);
  }
  if (h !== w || CANVAS % h !== 0) {
    return E.left(`${name}: grid ${h}×${w} must be square and divide the ${CANVAS}-pixel canvas (stride = ${CANVAS}/h)`);
  }
  const cellValues = h * w * D;
  if (f.feats.length % cellValues !== 0 || f.feats.length === 0) {
    return E.left(`${name}: feats hold ${f.feats.length} values, not a positive multiple of h·w·D = ${h}·${w}·${D}`);
  }
  return E.right({ count: f.feats.length / cellValues, h, w, D, stride: CANVAS / h });
}

function checkSameWidth(grids: Record<string, Grid>): E.Either<string, Grid> {
  const entries = Object.entries(grids);
  const [firstName, first] = entries[0];
  for (const [name, g] of entries) {
    if (g.h !== first.h || g.D !== first.D) {
      return E.left(`splits disagree on features: ${firstName} has ${first.h}×${first.w}×${first.D}, ${name} has ${g.h}×${g.w}×${g.D}`);
    }
  }
  return E.right(first);
}

const rowsOf = (f: DenseFeatures, grid: Grid, firstCanvas = 0, canvases = grid.count): FeatureRows => {
  const cells = grid.h * grid.w;
  return {
    data: f.feats.subarray(firstCanvas * cells * grid.D, (firstCanvas + canvases) * cells * grid.D),
    rows: canvases * cells,
    dim: grid.D,
  };
};

/** Pixel offset in a 64×64 canvas of the centre of cell (i, j). */
const cellCentrePixel = (grid: Grid, i: number, j: number): number =>
  (grid.stride * i + grid.stride / 2) * CANVAS + grid.stride * j + grid.stride / 2;

// ------------------------------------------------------------------------------------------- P1 fm_seg

export interface FmSegResult {
  readonly miou: number;
  readonly fgMiou: number;
  readonly bgIou: number;
  readonly lambda: number;
  /** Validation mIoU per λ of RIDGE_LAMBDAS. */
  readonly validationScores: readonly number[];
  readonly numClasses: number;
  /** Test confusion matrix of each canvas, [N, classes, classes] (row = truth): the bootstrap unit. */
  readonly perCanvasConfusions: Float64Array;
}

/** Canvases predicted per ridge call: bounds the float64 logits held at once. */
const PREDICT_CHUNK = 64;

function segmentationConfusions(probe: RidgeProbe, split: SegSplit, grid: Grid): Float64Array {
  const classes = probe.targets;
  const cells = grid.h * grid.w;
  const pixels = CANVAS * CANVAS;
  const perCanvas = new Float64Array(grid.count * classes * classes);
  for (let first = 0; first < grid.count; first += PREDICT_CHUNK) {
    const canvases = Math.min(PREDICT_CHUNK, grid.count - first);
    const logits = predictRidge(probe, rowsOf(split, grid, first, canvases));
    for (let k = 0; k < canvases; k++) {
      const n = first + k;
      const up = upsampleBilinear(logits.subarray(k * cells * classes, (k + 1) * cells * classes), grid.h, grid.w, classes, grid.stride);
      const predicted = argmaxChannels(up, classes);
      accumulateConfusion(
        perCanvas.subarray(n * classes * classes, (n + 1) * classes * classes),
        predicted,
        split.sem.subarray(n * pixels, (n + 1) * pixels),
        classes,
      );
    }
  }
  return perCanvas;
}

function checkSem(name: string, split: SegSplit, grid: Grid): E.Either<string, SegSplit> {
  if (split.sem.length !== grid.count * CANVAS * CANVAS) {
    return E.left(`${name}: sem holds ${split.sem.length} labels, expected ${grid.count} canvases × ${CANVAS}×${CANVAS}`);
  }
  for (let p = 0; p < split.sem.length; p++) {
    const v = split.sem[p];
    if (v >= FM_SEG_CLASSES && v !== IGNORE_LABEL) {
      return E.left(`${name}: sem label ${v} at canvas ${Math.floor(p / (CANVAS * CANVAS))} is outside 0..${FM_SEG_CLASSES - 1} and not ${IGNORE_LABEL}`);
    }
  }
  return E.right(split);
}

/**
 * P1: a per-cell ridge probe on one-hot labels read at the cell centres, λ chosen on validation mIoU;
 * test logits are upsampled bilinearly (×stride, align_corners = False) to 64×64 and argmaxed.
 */
export function fmSeg(splits: ProbeSplits<SegSplit>): E.Either<string, FmSegResult> {
  const grids: Record<string, Grid> = {};
  for (const name of ['train', 'val', 'test'] as const) {
    const g = checkGrid(`fmSeg ${name}`, splits[name]);
    if (E.isLeft(g)) return g;
    const s = checkSem(`fmSeg ${name}`, splits[name], g.right);
    if (E.isLeft(s)) return s;
    grids[name] = g.right;
  }
  const same = checkSameWidth(grids);
  if (E.isLeft(same)) return same;
  const classes = FM_SEG_CLASSES;
  const train = grids.train;
  const cells = train.h * train.w;
  const targets = new Float32Array(train.count * cells * classes);
  const keep = new Uint8Array(train.count * cells);
  for (let n = 0; n < train.count; n++) {
    for (let i = 0; i < train.h; i++) {
      for (let j = 0; j < train.w; j++) {
        const label = splits.train.sem[n * CANVAS * CANVAS + cellCentrePixel(train, i, j)];
        const row = n * cells + i * train.w + j;
        if (label === IGNORE_LABEL) continue;
        keep[row] = 1;
        targets[row * classes + label] = 1;
      }
    }
  }
  const problem = buildRidgeProblem(rowsOf(splits.train, train), { data: targets, targets: classes }, keep);
  const selection = selectLambda(
    RIDGE_LAMBDAS,
    (lambda) => solveRidge(problem, lambda),
    (probe) => segmentationScores(sumConfusions(segmentationConfusions(probe, splits.val, grids.val), classes), classes).miou,
  );
  const perCanvasConfusions = segmentationConfusions(selection.model, splits.test, grids.test);
  const scores = segmentationScores(sumConfusions(perCanvasConfusions, classes), classes);
  return E.right({
    miou: scores.miou,
    fgMiou: scores.fgMiou,
    bgIou: scores.bgIou,
    lambda: selection.lambda,
    validationScores: selection.scores,
    numClasses: classes,
    perCanvasConfusions,
  });
}

// ------------------------------------------------------------------------------------------- P2 fm_det

export interface FmDetResult {
  readonly mAP50: number;
  readonly agnosticAP50: number;
  readonly centreAP4: number;
  readonly lambda: number;
  /** Validation mAP50 per λ of RIDGE_LAMBDAS. */
  readonly validationScores: readonly number[];
  /** Matched test detections per canvas: the bootstrap unit. */
  readonly statistics: DetectionStatistics;
}

/** Round half to even, as Python's round(): the reference picks the "nearest cell" of a centre this way. */
export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function checkItems(name: string, split: DetSplit, grid: Grid): E.Either<string, DetSplit> {
  if (split.items.length !== grid.count) {
    return E.left(`${name}: items for ${split.items.length} canvases, features for ${grid.count}`);
  }
  for (let n = 0; n < split.items.length; n++) {
    for (const item of split.items[n]) {
      const [x0, y0, x1, y1] = item.box;
      if (!(Number.isInteger(item.cls) && item.cls >= 0 && item.cls < FM_CLASSES)) {
        return E.left(`${name}: canvas ${n} has an item of class ${item.cls}, outside 0..${FM_CLASSES - 1}`);
      }
      if (!(x0 >= 0 && y0 >= 0 && x1 > x0 && y1 > y0 && x1 <= CANVAS && y1 <= CANVAS)) {
        return E.left(`${name}: canvas ${n} has box [${item.box.join(', ')}), not a non-empty box inside ${CANVAS}×${CANVAS}`);
      }
      if (!(item.visible >= 0 && item.visible <= 1)) {
        return E.left(`${name}: canvas ${n} has visible fraction ${item.visible}, outside [0, 1]`);
      }
    }
  }
  return E.right(split);
}

interface DetectionHeads {
  readonly heat: RidgeProbe;
  readonly size: RidgeProbe;
}

function detect(heads: DetectionHeads, split: DetSplit, grid: Grid): Detection[] {
  const cells = grid.h * grid.w;
  const detections: Detection[] = [];
  const decoding = { ...P2_DECODING, stride: grid.stride };
  for (let first = 0; first < grid.count; first += PREDICT_CHUNK) {
    const canvases = Math.min(PREDICT_CHUNK, grid.count - first);
    const rows = rowsOf(split, grid, first, canvases);
    const heat = predictRidge(heads.heat, rows);
    const size = predictRidge(heads.size, rows);
    for (let k = 0; k < canvases; k++) {
      detections.push(
        ...decodeCentreDetections(
          heat.subarray(k * cells * FM_CLASSES, (k + 1) * cells * FM_CLASSES),
          size.subarray(k * cells * 2, (k + 1) * cells * 2),
          grid.h,
          grid.w,
          FM_CLASSES,
          first + k,
          decoding,
        ),
      );
    }
  }
  return detections;
}

/**
 * P2: CenterNet-style linear heads on frozen features: 10 class heat-maps (Gaussian, σ = 1 cell, at each box
 * centre in grid units, max over objects) fit on every cell, and (w/64, h/64) fit only on the cell nearest each
 * centre; one λ for both heads, chosen on validation mAP50.
 */
export function fmDet(splits: ProbeSplits<DetSplit>): E.Either<string, FmDetResult> {
  const grids: Record<string, Grid> = {};
  for (const name of ['train', 'val', 'test'] as const) {
    const g = checkGrid(`fmDet ${name}`, splits[name]);
    if (E.isLeft(g)) return g;
    const s = checkItems(`fmDet ${name}`, splits[name], g.right);
    if (E.isLeft(s)) return s;
    grids[name] = g.right;
  }
  const same = checkSameWidth(grids);
  if (E.isLeft(same)) return same;
  const train = grids.train;
  const cells = train.h * train.w;
  const heatTargets = new Float32Array(train.count * cells * FM_CLASSES);
  const centreRows: number[] = [];
  const sizeTargets: number[] = [];
  for (let n = 0; n < train.count; n++) {
    for (const { box, cls } of splits.train.items[n]) {
      const [x0, y0, x1, y1] = box;
      const cx = (x0 + x1) / 2 / train.stride - 0.5;
      const cy = (y0 + y1) / 2 / train.stride - 0.5;
      for (let i = 0; i < train.h; i++) {
        for (let j = 0; j < train.w; j++) {
          const g = Math.exp(-((i - cy) ** 2 + (j - cx) ** 2) / 2);
          const t = ((n * cells + i * train.w + j) * FM_CLASSES) + cls;
          if (g > heatTargets[t]) heatTargets[t] = g;
        }
      }
      const ci = Math.min(Math.max(roundHalfEven(cy), 0), train.h - 1);
      const cj = Math.min(Math.max(roundHalfEven(cx), 0), train.w - 1);
      centreRows.push(n * cells + ci * train.w + cj);
      sizeTargets.push((x1 - x0) / CANVAS, (y1 - y0) / CANVAS);
    }
  }
  if (centreRows.length === 0) return E.left('fmDet train: no ground-truth items to fit the size head on');
  const centreFeatures = new Float32Array(centreRows.length * train.D);
  centreRows.forEach((row, k) => centreFeatures.set(splits.train.feats.subarray(row * train.D, (row + 1) * train.D), k * train.D));
  const heatProblem = buildRidgeProblem(rowsOf(splits.train, train), { data: heatTargets, targets: FM_CLASSES });
  const sizeProblem = buildRidgeProblem(
    { data: centreFeatures, rows: centreRows.length, dim: train.D },
    { data: Float64Array.from(sizeTargets), targets: 2 },
  );
  const evaluate = (heads: DetectionHeads, name: 'val' | 'test'): DetectionStatistics =>
    detectionStatistics(detect(heads, splits[name], grids[name]), splits[name].items, FM_CLASSES);
  const selection = selectLambda(
    RIDGE_LAMBDAS,
    (lambda): DetectionHeads => ({ heat: solveRidge(heatProblem, lambda), size: solveRidge(sizeProblem, lambda) }),
    (heads) => detectionScores(evaluate(heads, 'val')).mAP50,
  );
  const statistics = evaluate(selection.model, 'test');
  const scores = detectionScores(statistics);
  return E.right({ ...scores, lambda: selection.lambda, validationScores: selection.scores, statistics });
}

// ------------------------------------------------------------------------------------------- P3 fm_cls

export interface ClsSplit {
  /** Mean-pooled features [N, D]. */
  readonly feats: Float32Array;
  /** Class per image, 0..9. */
  readonly labels: Uint8Array;
}

export interface FmClsResult {
  readonly top1: number;
  readonly lambda: number;
  readonly validationScores: readonly number[];
  /** 1 where the test image was classified correctly: the bootstrap unit. */
  readonly perImageCorrect: Uint8Array;
}

function classify(probe: RidgeProbe, split: ClsSplit): Uint8Array {
  const rows = split.labels.length;
  const logits = predictRidge(probe, { data: split.feats, rows, dim: probe.featureDim });
  const predicted = argmaxChannels(logits, probe.targets);
  return predicted.map((p, n) => (p === split.labels[n] ? 1 : 0));
}

const meanOf = (values: Uint8Array): number => values.reduce((s, v) => s + v, 0) / values.length;

/** P3: global linear probe on mean-pooled features, λ chosen on validation top-1. */
export function fmCls(splits: ProbeSplits<ClsSplit>): E.Either<string, FmClsResult> {
  let dim = -1;
  for (const name of ['train', 'val', 'test'] as const) {
    const { feats, labels } = splits[name];
    if (labels.length === 0 || feats.length % labels.length !== 0) {
      return E.left(`fmCls ${name}: feats hold ${feats.length} values for ${labels.length} labels, not [N, D]`);
    }
    const d = feats.length / labels.length;
    if (dim >= 0 && d !== dim) return E.left(`fmCls ${name}: ${d} features per image, train has ${dim}`);
    dim = d;
    const bad = labels.findIndex((l) => l >= FM_CLASSES);
    if (bad >= 0) return E.left(`fmCls ${name}: label ${labels[bad]} of image ${bad} is outside 0..${FM_CLASSES - 1}`);
  }
  const n = splits.train.labels.length;
  const targets = new Float32Array(n * FM_CLASSES);
  splits.train.labels.forEach((label, k) => {
    targets[k * FM_CLASSES + label] = 1;
  });
  const problem = buildRidgeProblem({ data: splits.train.feats, rows: n, dim }, { data: targets, targets: FM_CLASSES });
  const selection = selectLambda(
    RIDGE_LAMBDAS,
    (lambda) => solveRidge(problem, lambda),
    (probe) => meanOf(classify(probe, splits.val)),
  );
  const perImageCorrect = classify(selection.model, splits.test);
  return E.right({ top1: meanOf(perImageCorrect), lambda: selection.lambda, validationScores: selection.scores, perImageCorrect });
}

// ------------------------------------------------------------------------------------------- P5 dl_pair

export interface DlPairInput extends DenseFeatures {
  /** Leaf instance id per pixel [N, 64, 64]. */
  readonly leafId: Int32Array;
  readonly seed: number;
}

export interface ScoredPairs {
  /** 1 when both cell centres lie on the same leaf. */
  readonly labels: Uint8Array;
  /** Cosine of the per-image standardised features of the two cells. */
  readonly scores: Float64Array;
  /** Image of each pair. */
  readonly images: Int32Array;
}

export interface DlPairResult {
  readonly auc: number;
  readonly sameLeafFraction: number;
  /** The bootstrap unit (§3d.6 resamples pairs for P5). */
  readonly pairs: ScoredPairs;
}

export const PAIRS_PER_IMAGE = 256;
export const PAIR_MIN_CELLS = 1;
export const PAIR_MAX_CELLS = 4;

/** A pair of cells (row-major cell indices) of one image. */
export interface CellPair {
  readonly a: number;
  readonly b: number;
}

/**
 * The pairs of one image: the first half axis-aligned, the second half diagonal, each at Chebyshev distance
 * d ~ U{1..4} cells in a random direction, with the first cell uniform over the grid. A pair whose second
 * cell falls off the grid is redrawn (rather than clipped) so every pair has exactly its drawn distance
 * and direction. Depends only on the generator state, never on features, so every model sees the same pairs.
 */
export function samplePairs(random: () => number, h: number, w: number, count: number): CellPair[] {
  if (h < 2 || w < 2) throw new Error(`samplePairs: a ${h}×${w} grid has no axis-aligned and diagonal neighbours`);
  const pairs: CellPair[] = [];
  for (let p = 0; p < count; p++) {
    const diagonal = p >= count / 2;
    for (;;) {
      const i = randomIndex(random, h);
      const j = randomIndex(random, w);
      const d = PAIR_MIN_CELLS + randomIndex(random, PAIR_MAX_CELLS - PAIR_MIN_CELLS + 1);
      const si = random() < 0.5 ? -1 : 1;
      const sj = random() < 0.5 ? -1 : 1;
      let di = si * d;
      let dj = sj * d;
      if (!diagonal) {
        if (random() < 0.5) di = 0;
        else dj = 0;
      }
      const bi = i + di;
      const bj = j + dj;
      if (bi < 0 || bi >= h || bj < 0 || bj >= w) continue;
      pairs.push({ a: i * w + j, b: bi * w + bj });
      break;
    }
  }
  return pairs;
}

/** P5: same-leaf pair ROC-AUC of feature cosines (no training). */
export function dlPair(input: DlPairInput): E.Either<string, DlPairResult> {
  const g = checkGrid('dlPair', input);
  if (E.isLeft(g)) return g;
  const grid = g.right;
  if (input.leafId.length !== grid.count * CANVAS * CANVAS) {
    return E.left(`dlPair: leafId holds ${input.leafId.length} values, expected ${grid.count} images × ${CANVAS}×${CANVAS}`);
  }
  if (grid.h < 2) return E.left(`dlPair: a ${grid.h}×${grid.w} grid has no neighbouring cells to pair`);
  const cells = grid.h * grid.w;
  const total = grid.count * PAIRS_PER_IMAGE;
  const labels = new Uint8Array(total);
  const scores = new Float64Array(total);
  const images = new Int32Array(total);
  const random = splitmix32(input.seed);
  const centres = Int32Array.from({ length: cells }, (_, c) => cellCentrePixel(grid, Math.floor(c / grid.w), c % grid.w));
  let k = 0;
  for (let n = 0; n < grid.count; n++) {
    const unit = standardisedUnitRows(input.feats.subarray(n * cells * grid.D, (n + 1) * cells * grid.D), cells, grid.D);
    const leaves = input.leafId.subarray(n * CANVAS * CANVAS, (n + 1) * CANVAS * CANVAS);
    for (const { a, b } of samplePairs(random, grid.h, grid.w, PAIRS_PER_IMAGE)) {
      labels[k] = leaves[centres[a]] === leaves[centres[b]] ? 1 : 0;
      scores[k] = rowDot(unit, grid.D, a, b);
      images[k] = n;
      k++;
    }
  }
  return E.right({
    auc: aucFromRanked(rankPairs(scores, labels)),
    sameLeafFraction: meanOf(labels),
    pairs: { labels, scores, images },
  });
}

// ------------------------------------------------------------------------------------------- P4 tex_group

export interface TexGroupInput extends DenseFeatures {
  /** Region index per pixel [N, 64, 64] and each canvas's region count R. */
  readonly regions: Int32Array;
  readonly regionCounts: Int32Array;
}

export interface TexGroupResult {
  readonly miou: number;
  /** The bootstrap unit (§3d.6 resamples images for P4). */
  readonly perImage: Float64Array;
}

export const TEX_GROUP_ITERATIONS = 30;
export const TEX_GROUP_RESTARTS = 3;

/**
 * P4, zero-shot: per canvas, k-means with k = R on the per-image standardised, L2-normalised features (30
 * iterations, initialised from random cells; one stream seeded 0 per canvas), each cell's cluster painted over its
 * stride×stride pixels, and the Hungarian-matched mIoU against the regions, averaged over 3 restarts (not the best
 * of 3, which would peek at the labels) and then over canvases.
 */
export function texGroup(input: TexGroupInput): E.Either<string, TexGroupResult> {
  const g = checkGrid('texGroup', input);
  if (E.isLeft(g)) return g;
  const grid = g.right;
  const pixels = CANVAS * CANVAS;
  if (input.regions.length !== grid.count * pixels || input.regionCounts.length !== grid.count) {
    return E.left(`texGroup: ${input.regions.length} region labels and ${input.regionCounts.length} counts for ${grid.count} canvases of ${CANVAS}×${CANVAS}`);
  }
  const cells = grid.h * grid.w;
  const perImage = new Float64Array(grid.count);
  const painted = new Int32Array(pixels);
  for (let n = 0; n < grid.count; n++) {
    const R = input.regionCounts[n];
    if (!(R >= 1 && R <= cells)) return E.left(`texGroup: canvas ${n} has ${R} regions for ${cells} cells`);
    const rows = standardisedUnitRows(input.feats.subarray(n * cells * grid.D, (n + 1) * cells * grid.D), cells, grid.D);
    const truth = input.regions.subarray(n * pixels, (n + 1) * pixels);
    const random = splitmix32(0);
    let sum = 0;
    for (let restart = 0; restart < TEX_GROUP_RESTARTS; restart++) {
      const clusters = kMeans(rows, cells, grid.D, R, TEX_GROUP_ITERATIONS, random);
      for (let p = 0; p < pixels; p++) painted[p] = clusters[Math.floor(Math.floor(p / CANVAS) / grid.stride) * grid.w + Math.floor((p % CANVAS) / grid.stride)];
      sum += matchedMeanIou(truth, painted, R);
    }
    perImage[n] = sum / TEX_GROUP_RESTARTS;
  }
  return E.right({ miou: perImage.reduce((s, v) => s + v, 0) / grid.count, perImage });
}

// ------------------------------------------------------------------------------------------- comparison

export interface ProtocolResults {
  readonly fmSeg?: FmSegResult;
  readonly fmDet?: FmDetResult;
  readonly fmCls?: FmClsResult;
  readonly dlPair?: DlPairResult;
  readonly texGroup?: TexGroupResult;
}

export interface ModelComparison {
  readonly fmSeg?: { readonly miou: DeltaInterval; readonly fgMiou: DeltaInterval; readonly bgIou: DeltaInterval };
  readonly fmDet?: { readonly mAP50: DeltaInterval; readonly agnosticAP50: DeltaInterval; readonly centreAP4: DeltaInterval };
  readonly fmCls?: { readonly top1: DeltaInterval };
  readonly dlPair?: { readonly auc: DeltaInterval };
  readonly texGroup?: { readonly miou: DeltaInterval };
}

const sameArray = (a: ArrayLike<number>, b: ArrayLike<number>): boolean => {
  if (a.length !== b.length) return false;
  for (let k = 0; k < a.length; k++) if (a[k] !== b[k]) return false;
  return true;
};

/**
 * Δ = A − B with a paired-bootstrap CI for every protocol present in both results: over test canvases for
 * P1 and P2, test images for P3, pairs for P5 and canvases for P4. Results are only comparable when they were computed on the
 * same units (same canvases, same ground truth, same pairs); otherwise this is a Left naming the mismatch.
 */
export function compareModels(
  a: ProtocolResults,
  b: ProtocolResults,
  options: BootstrapOptions = DEFAULT_BOOTSTRAP,
): E.Either<string, ModelComparison> {
  for (const key of ['fmSeg', 'fmDet', 'fmCls', 'dlPair', 'texGroup'] as const) {
    if ((a[key] === undefined) !== (b[key] === undefined)) {
      return E.left(`compareModels: ${key} is present in ${a[key] === undefined ? 'B' : 'A'} only`);
    }
  }
  const comparison: {
    fmSeg?: ModelComparison['fmSeg'];
    fmDet?: ModelComparison['fmDet'];
    fmCls?: ModelComparison['fmCls'];
    dlPair?: ModelComparison['dlPair'];
    texGroup?: ModelComparison['texGroup'];
  } = {};
  if (a.fmSeg !== undefined && b.fmSeg !== undefined) {
    const sa = a.fmSeg;
    const sb = b.fmSeg;
    if (sa.numClasses !== sb.numClasses || sa.perCanvasConfusions.length !== sb.perCanvasConfusions.length) {
      return E.left(
        `compareModels fmSeg: A has ${sa.perCanvasConfusions.length / sa.numClasses ** 2} canvases × ${sa.numClasses} classes, ` +
          `B has ${sb.perCanvasConfusions.length / sb.numClasses ** 2} × ${sb.numClasses}`,
      );
    }
    const classes = sa.numClasses;
    const units = sa.perCanvasConfusions.length / (classes * classes);
    const scorer = (r: FmSegResult) => (weights: Float64Array) =>
      segmentationScores(sumConfusions(r.perCanvasConfusions, classes, weights), classes);
    const [fa, fb] = [scorer(sa), scorer(sb)];
    comparison.fmSeg = {
      miou: pairedBootstrapDelta(units, (w) => fa(w).miou, (w) => fb(w).miou, options),
      fgMiou: pairedBootstrapDelta(units, (w) => fa(w).fgMiou, (w) => fb(w).fgMiou, options),
      bgIou: pairedBootstrapDelta(units, (w) => fa(w).bgIou, (w) => fb(w).bgIou, options),
    };
  }
  if (a.fmDet !== undefined && b.fmDet !== undefined) {
    const da = a.fmDet.statistics;
    const db = b.fmDet.statistics;
    if (!sameArray(da.agnosticIou50.positivesPerUnit, db.agnosticIou50.positivesPerUnit)) {
      return E.left(
        `compareModels fmDet: ground truth differs (A has ${da.agnosticIou50.positivesPerUnit.length} canvases, ` +
          `B ${db.agnosticIou50.positivesPerUnit.length}, or different non-difficult items per canvas)`,
      );
    }
    const units = da.agnosticIou50.positivesPerUnit.length;
    comparison.fmDet = {
      mAP50: pairedBootstrapDelta(units, (w) => detectionScores(da, w).mAP50, (w) => detectionScores(db, w).mAP50, options),
      agnosticAP50: pairedBootstrapDelta(units, (w) => detectionScores(da, w).agnosticAP50, (w) => detectionScores(db, w).agnosticAP50, options),
      centreAP4: pairedBootstrapDelta(units, (w) => detectionScores(da, w).centreAP4, (w) => detectionScores(db, w).centreAP4, options),
    };
  }
  if (a.fmCls !== undefined && b.fmCls !== undefined) {
    const ca = a.fmCls.perImageCorrect;
    const cb = b.fmCls.perImageCorrect;
    if (ca.length !== cb.length) return E.left(`compareModels fmCls: A has ${ca.length} test images, B has ${cb.length}`);
    comparison.fmCls = { top1: pairedBootstrapDelta(ca.length, weightedMean(ca), weightedMean(cb), options) };
  }
  if (a.dlPair !== undefined && b.dlPair !== undefined) {
    const pa = a.dlPair.pairs;
    const pb = b.dlPair.pairs;
    if (!sameArray(pa.labels, pb.labels) || !sameArray(pa.images, pb.images)) {
      return E.left(`compareModels dlPair: the pairs differ (A has ${pa.labels.length}, B ${pb.labels.length}; same seed and images are required)`);
    }
    const [ra, rb] = [rankPairs(pa.scores, pa.labels), rankPairs(pb.scores, pb.labels)];
    comparison.dlPair = {
      auc: pairedBootstrapDelta(pa.labels.length, (w) => aucFromRanked(ra, w), (w) => aucFromRanked(rb, w), options),
    };
  }
  if (a.texGroup !== undefined && b.texGroup !== undefined) {
    const [ia, ib] = [a.texGroup.perImage, b.texGroup.perImage];
    if (ia.length !== ib.length) return E.left(`compareModels texGroup: A has ${ia.length} canvases, B has ${ib.length}`);
    comparison.texGroup = { miou: pairedBootstrapDelta(ia.length, weightedMean(ia), weightedMean(ib), options) };
  }
  return E.right(comparison);
}

/** The bootstrap-weighted mean of per-unit values (a resample's accuracy or mean IoU). */
const weightedMean = (values: ArrayLike<number>) => (weights: Float64Array): number => {
  let sum = 0;
  let total = 0;
  for (let k = 0; k < values.length; k++) {
    sum += weights[k] * values[k];
    total += weights[k];
  }
  return sum / total;
};

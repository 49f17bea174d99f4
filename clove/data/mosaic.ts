// FMNIST-Mosaic-64 (EVAL_PROTOCOLS §3c P1): 2–4 Fashion-MNIST items pasted on a black 64×64 canvas with
// bounded box overlap; per-pixel semantic (class+1) and instance (paste order) labels, and boxes for P2.
// Each canvas draws from its own forked stream, so canvas k of a split never depends on canvases before it.
import * as E from 'fp-ts/lib/Either.js';
import type { FashionMnist, FashionMnistSplit } from './fmnist.ts';
import { createRng, type Rng } from './rng.ts';

export const MOSAIC_SIZE = 64;
const MIN_ITEMS = 2;
const MAX_ITEMS = 4;
const TRIES_PER_ITEM = 20;
const SCALE_RANGE: readonly [number, number] = [0.75, 1.25];
const MAX_IOU = 0.3;
const FOREGROUND_THRESHOLD = 10;

export interface MosaicItem {
  /** Tight box of the item's mask in canvas pixels; x1 and y1 are exclusive. */
  readonly x0: number;
  readonly y0: number;
  readonly x1: number;
  readonly y1: number;
  readonly classId: number;
  /** Pixels of this item still visible after later items were pasted, over its mask area. */
  readonly visibleFraction: number;
  /** Index into the Fashion-MNIST split the item came from. */
  readonly sourceIndex: number;
}

export interface Mosaics {
  readonly count: number;
  /** count × 64 × 64, one channel. */
  readonly canvases: Uint8Array;
  /** count × 64 × 64: 0 background, class + 1 under each item. */
  readonly sem: Uint8Array;
  /** count × 64 × 64: 0 background, k for the k-th pasted item (1-based); later items occlude earlier ones. */
  readonly inst: Uint8Array;
  readonly items: ReadonlyArray<ReadonlyArray<MosaicItem>>;
}

export type Box = readonly [x0: number, y0: number, x1: number, y1: number];

export function boxIou(a: Box, b: Box): number {
  const iw = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const ih = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = iw * ih;
  return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter);
}

/**
 * Bilinear resize to size×size with corners aligned (scipy.ndimage.zoom order 1): output pixel k samples
 * input coordinate k·(n−1)/(size−1); the result is rounded and clipped to bytes.
 */
export function resizeCornersAligned(src: Uint8Array, rows: number, cols: number, size: number): Uint8Array {
  const out = new Uint8Array(size * size);
  const axis = (n: number): { lo: Int32Array; t: Float64Array } => {
    const lo = new Int32Array(size);
    const t = new Float64Array(size);
    for (let k = 0; k < size; k++) {
      const pos = size === 1 ? 0 : (k * (n - 1)) / (size - 1);
      lo[k] = Math.min(Math.floor(pos), n - 2 < 0 ? 0 : n - 2);
      t[k] = pos - lo[k];
    }
    return { lo, t };
  };
  const ys = axis(rows);
  const xs = axis(cols);
  for (let y = 0; y < size; y++) {
    const r0 = ys.lo[y];
    const r1 = Math.min(r0 + 1, rows - 1);
    const ty = ys.t[y];
    for (let x = 0; x < size; x++) {
      const c0 = xs.lo[x];
      const c1 = Math.min(c0 + 1, cols - 1);
      const tx = xs.t[x];
      const top = src[r0 * cols + c0] * (1 - tx) + src[r0 * cols + c1] * tx;
      const bottom = src[r1 * cols + c0] * (1 - tx) + src[r1 * cols + c1] * tx;
      out[y * size + x] = Math.min(255, Math.max(0, Math.round(top * (1 - ty) + bottom * ty)));
    }
  }
  return out;
}

/** scipy binary_fill_holes: background = pixels 4-connected to the border through unset pixels. */
export function fillHoles(mask: Uint8Array, size: number): Uint8Array {
  const outside = new Uint8Array(size * size);
  const stack: number[] = [];
  const visit = (p: number): void => {
    if (!mask[p] && !outside[p]) {
      outside[p] = 1;
      stack.push(p);
    }
  };
  for (let k = 0; k < size; k++) {
    visit(k);
    visit((size - 1) * size + k);
    visit(k * size);
    visit(k * size + size - 1);
  }
  while (stack.length > 0) {
    const p = stack.pop() as number;
    const y = Math.floor(p / size);
    const x = p % size;
    if (x > 0) visit(p - 1);
    if (x < size - 1) visit(p + 1);
    if (y > 0) visit(p - size);
    if (y < size - 1) visit(p + size);
  }
  const filled = new Uint8Array(size * size);
  for (let p = 0; p < filled.length; p++) filled[p] = outside[p] ? 0 : 1;
  return filled;
}

interface Placement {
  readonly sourceIndex: number;
  readonly size: number;
  readonly pixels: Uint8Array;
  readonly mask: Uint8Array;
  readonly top: number;
  readonly left: number;
  readonly box: Box;
}

function tryPlacement(fm: FashionMnist, pool: readonly [number, number], rng: Rng): Placement | undefined {
  const sourceIndex = rng.int(pool[0], pool[1]);
  const size = Math.round(fm.rows * rng.uniformIn(SCALE_RANGE[0], SCALE_RANGE[1]));
  const itemBytes = fm.rows * fm.cols;
  const src = fm.images.subarray(sourceIndex * itemBytes, (sourceIndex + 1) * itemBytes);
  const pixels = resizeCornersAligned(src, fm.rows, fm.cols, size);
  const mask = fillHoles(pixels.map((v) => (v > FOREGROUND_THRESHOLD ? 1 : 0)), size);
  const top = rng.int(0, MOSAIC_SIZE - size + 1);
  const left = rng.int(0, MOSAIC_SIZE - size + 1);
  let minX = size;
  let minY = size;
  let maxX = -1;
  let maxY = -1;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      if (!mask[y * size + x]) continue;
      minX = Math.min(minX, x);
      maxX = Math.max(maxX, x);
      minY = Math.min(minY, y);
      maxY = Math.max(maxY, y);
    }
  }
  // An item with no pixel above the threshold has no box; it counts as a failed try.
  if (maxX < 0) return undefined;
  return { sourceIndex, size, pixels, mask, top, left, box: [left + minX, top + minY, left + maxX + 1, top + maxY + 1] };
}

/** One canvas into the given output slices; returns its items. */
function paintMosaic(fm: FashionMnist, pool: readonly [number, number], rng: Rng, canvas: Uint8Array, sem: Uint8Array, inst: Uint8Array): MosaicItem[] {
  const placed: Array<{ placement: Placement; classId: number; area: number }> = [];
  const itemCount = rng.int(MIN_ITEMS, MAX_ITEMS + 1);
  for (let item = 0; item < itemCount; item++) {
    let accepted: Placement | undefined;
    for (let attempt = 0; attempt < TRIES_PER_ITEM && accepted === undefined; attempt++) {
      const candidate = tryPlacement(fm, pool, rng);
      if (candidate !== undefined && placed.every((p) => boxIou(candidate.box, p.placement.box) <= MAX_IOU)) accepted = candidate;
    }
    if (accepted === undefined) continue;
    const order = placed.length + 1;
    const classId = fm.labels[accepted.sourceIndex];
    let area = 0;
    for (let y = 0; y < accepted.size; y++) {
      for (let x = 0; x < accepted.size; x++) {
        if (!accepted.mask[y * accepted.size + x]) continue;
        const p = (accepted.top + y) * MOSAIC_SIZE + accepted.left + x;
        canvas[p] = accepted.pixels[y * accepted.size + x];
        sem[p] = classId + 1;
        inst[p] = order;
        area++;
      }
    }
    placed.push({ placement: accepted, classId, area });
  }
  const visible = new Array<number>(placed.length + 1).fill(0);
  for (const v of inst) visible[v]++;
  return placed.map(({ placement, classId, area }, k) => ({
    x0: placement.box[0], y0: placement.box[1], x1: placement.box[2], y1: placement.box[3],
    classId, visibleFraction: visible[k + 1] / area, sourceIndex: placement.sourceIndex,
  }));
}

function checkInputs(fm: FashionMnist, pool: readonly [number, number], count: number, seed: number): E.Either<string, void> {
  const [lo, hi] = pool;
  if (!(Number.isInteger(lo) && Number.isInteger(hi) && lo >= 0 && hi > lo && hi <= fm.count)) {
    return E.left(`mosaic pool [${lo}, ${hi}) is not a non-empty range inside the ${fm.count} source images`);
  }
  if (fm.rows < 2 || fm.cols < 2 || fm.rows !== fm.cols || Math.round(fm.rows * SCALE_RANGE[1]) > MOSAIC_SIZE) {
    return E.left(`mosaic items must be square, at least 2 px and at most ${Math.floor(MOSAIC_SIZE / SCALE_RANGE[1])} px, got ${fm.rows}×${fm.cols}`);
  }
  if (!(Number.isInteger(count) && count >= 0)) return E.left(`mosaic count must be a non-negative integer, got ${count}`);
  if (!Number.isSafeInteger(seed)) return E.left(`mosaic seed must be an integer, got ${seed}`);
  return E.right(undefined);
}

/** `count` canvases, canvas k drawn from createRng(seed).fork(k), items from fm indices [lo, hi). */
export function generateMosaics(fm: FashionMnist, poolRange: readonly [number, number], count: number, seed: number): E.Either<string, Mosaics> {
  const ok = checkInputs(fm, poolRange, count, seed);
  if (E.isLeft(ok)) return ok;
  const pixels = MOSAIC_SIZE * MOSAIC_SIZE;
  const canvases = new Uint8Array(count * pixels);
  const sem = new Uint8Array(count * pixels);
  const inst = new Uint8Array(count * pixels);
  const root = createRng(seed);
  const items: MosaicItem[][] = [];
  for (let k = 0; k < count; k++) {
    const slice = (a: Uint8Array): Uint8Array => a.subarray(k * pixels, (k + 1) * pixels);
    items.push(paintMosaic(fm, poolRange, root.fork(k), slice(canvases), slice(sem), slice(inst)));
  }
  return E.right({ count, canvases, sem, inst, items });
}

export type MosaicSplitName = 'train' | 'val' | 'test';

export interface MosaicSplitSpec {
  readonly count: number;
  readonly pool: readonly [number, number];
  readonly seed: number;
  /** Which Fashion-MNIST file the pool indexes. */
  readonly source: FashionMnistSplit;
}

/** The P1/P2 evaluation splits (EVAL_PROTOCOLS §3c). */
export const MOSAIC_SPLITS: Readonly<Record<MosaicSplitName, MosaicSplitSpec>> = {
  train: { count: 2000, pool: [0, 50000], seed: 0, source: 'train' },
  val: { count: 500, pool: [50000, 60000], seed: 1, source: 'train' },
  test: { count: 1000, pool: [0, 10000], seed: 2, source: 't10k' },
};

/** An evaluation split; `fm` must be the split's source file; `count` overrides the size (CI tier). */
export function mosaicSplit(split: MosaicSplitName, fm: FashionMnist, count?: number): E.Either<string, Mosaics> {
  const spec = MOSAIC_SPLITS[split];
  return generateMosaics(fm, spec.pool, count ?? spec.count, spec.seed);
}

/** Pretraining canvases: train pool [0, 50 000) only and seeds ≥ 100, so they never meet the evaluation splits. */
export function pretrainingMosaics(fmTrain: FashionMnist, count: number, seed: number): E.Either<string, Mosaics> {
  if (seed < 100) return E.left(`pretraining mosaic seeds must be >= 100 (0..2 are evaluation splits), got ${seed}`);
  if (fmTrain.count < 50000) return E.left(`pretraining mosaics need the Fashion-MNIST train file (60 000 images), got ${fmTrain.count}`);
  return generateMosaics(fmTrain, [0, 50000], count, seed);
}

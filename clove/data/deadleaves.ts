// DeadLeaves-64 (EVAL_PROTOCOLS §3a): front-to-back dead leaves with power-law radii, five shape classes and
// three fills. Deterministic per (seed, index): each image has its own forked stream, so any image of a pool
// can be regenerated alone (e.g. to recover its labels) without generating the ones before it.
import * as E from 'fp-ts/lib/Either.js';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Image } from './image.ts';
import { createRng, type Rng } from './rng.ts';

export const DEADLEAVES_RES = 64;
/** Bump when the generator's output changes; it names the cache files (and the pinned-hash test catches drift). */
export const DEADLEAVES_VERSION = 1;
export const SHAPE_CLASSES = ['disk', 'square', 'rotatedSquare', 'triangle', 'quadrilateral'] as const;

const SIGMA = 3;
const RHO_MAX = 1;
const RHO_GRID_POINTS = 200;
const MAX_LEAVES = 3000;
const NOISE_GAIN = 0.15;

export interface DeadLeavesOptions {
  /** Smallest radius as a fraction of the resolution; 0.05 by default (P5 uses 0.08). */
  readonly rhoMin?: number;
}

export interface DeadLeavesSample {
  /** 64×64 RGB. */
  readonly image: Image;
  /** Per pixel shape class 0..4 (index into SHAPE_CLASSES); the final flat fill counts as a square. */
  readonly shapeClass: Uint8Array;
  /** Per pixel leaf id: the leaf's draw number (0..2999), or 3000 for the final flat fill. */
  readonly leafId: Int32Array;
}

/** Inverse-CDF table of ρ ∝ ρ^−σ − ρmax^−σ on a 200-point grid over [rhoMin, 1]. */
function radiusTable(rhoMin: number): { rho: Float64Array; cdf: Float64Array } {
  const rho = new Float64Array(RHO_GRID_POINTS);
  const cdf = new Float64Array(RHO_GRID_POINTS);
  let total = 0;
  for (let k = 0; k < RHO_GRID_POINTS; k++) {
    rho[k] = rhoMin + ((RHO_MAX - rhoMin) * k) / (RHO_GRID_POINTS - 1);
    total += rho[k] ** -SIGMA - RHO_MAX ** -SIGMA;
    cdf[k] = total;
  }
  for (let k = 0; k < RHO_GRID_POINTS; k++) cdf[k] /= total;
  return { rho, cdf };
}

/** First grid index whose CDF reaches u (numpy searchsorted, side 'left'). */
function sampleRho(table: { rho: Float64Array; cdf: Float64Array }, u: number): number {
  let lo = 0;
  let hi = RHO_GRID_POINTS - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (table.cdf[mid] < u) lo = mid + 1;
    else hi = mid;
  }
  return table.rho[lo];
}

/**
 * Unit-variance 1/f^α-like noise on an h×w patch: value noise summed over octaves with lattice spacings
 * 2^k, each octave weighted by spacing^(α−1) (the amplitude a 2-D 1/f^α spectrum puts in one octave band).
 * Stands in for the FFT noise of the reference, as §3a allows.
 */
function valueNoise(rng: Rng, h: number, w: number, alpha: number): Float64Array {
  const out = new Float64Array(h * w);
  for (let spacing = 1; spacing < 2 * Math.max(h, w); spacing *= 2) {
    const latticeW = Math.floor(w / spacing) + 2;
    const latticeH = Math.floor(h / spacing) + 2;
    const lattice = new Float64Array(latticeW * latticeH);
    for (let k = 0; k < lattice.length; k++) lattice[k] = rng.normal();
    const amplitude = spacing ** (alpha - 1);
    for (let y = 0; y < h; y++) {
      const fy = y / spacing;
      const y0 = Math.floor(fy);
      const ty = fy - y0;
      const sy = ty * ty * (3 - 2 * ty); // smoothstep: no creases along lattice lines
      for (let x = 0; x < w; x++) {
        const fx = x / spacing;
        const x0 = Math.floor(fx);
        const tx = fx - x0;
        const sx = tx * tx * (3 - 2 * tx);
        const top = lattice[y0 * latticeW + x0] * (1 - sx) + lattice[y0 * latticeW + x0 + 1] * sx;
        const bottom = lattice[(y0 + 1) * latticeW + x0] * (1 - sx) + lattice[(y0 + 1) * latticeW + x0 + 1] * sx;
        out[y * w + x] += amplitude * (top * (1 - sy) + bottom * sy);
      }
    }
  }
  let mean = 0;
  for (const v of out) mean += v;
  mean /= out.length;
  let variance = 0;
  for (const v of out) variance += (v - mean) ** 2;
  const std = Math.sqrt(variance / out.length) + 1e-8;
  for (let k = 0; k < out.length; k++) out[k] = (out[k] - mean) / std;
  return out;
}

/** RGB fill in [0,1] for an h×w patch: flat colour, tinted noise or a two-colour grating, drawn uniformly. */
function leafFill(rng: Rng, h: number, w: number): Float64Array {
  const base = [rng.uniform(), rng.uniform(), rng.uniform()];
  const kind = rng.int(0, 3);
  const fill = new Float64Array(h * w * 3);
  if (kind === 0) {
    for (let p = 0; p < h * w; p++) for (let c = 0; c < 3; c++) fill[p * 3 + c] = base[c];
  } else if (kind === 1) {
    const noise = valueNoise(rng, h, w, rng.uniformIn(1, 2));
    const tint = [rng.uniformIn(0.5, 1.5), rng.uniformIn(0.5, 1.5), rng.uniformIn(0.5, 1.5)];
    for (let p = 0; p < h * w; p++) {
      for (let c = 0; c < 3; c++) fill[p * 3 + c] = Math.min(1, Math.max(0, base[c] + NOISE_GAIN * noise[p] * tint[c]));
    }
  } else {
    const theta = rng.uniformIn(0, Math.PI);
    const period = rng.uniformIn(3, 12);
    const phase = rng.uniformIn(0, 2 * Math.PI);
    const other = [rng.uniform(), rng.uniform(), rng.uniform()];
    const cos = Math.cos(theta);
    const sin = Math.sin(theta);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const s = 0.5 + 0.5 * Math.sin((2 * Math.PI * (x * cos + y * sin)) / period + phase);
        for (let c = 0; c < 3; c++) fill[(y * w + x) * 3 + c] = base[c] * s + other[c] * (1 - s);
      }
    }
  }
  return fill;
}

/** Inside test for one leaf, in coordinates relative to its centre. */
function shapeTest(rng: Rng, shape: number, radius: number): (dx: number, dy: number) => boolean {
  if (shape === 0) return (dx, dy) => dx * dx + dy * dy <= radius * radius;
  if (shape === 1) {
    const half = radius / Math.SQRT2;
    return (dx, dy) => Math.abs(dx) <= half && Math.abs(dy) <= half;
  }
  let angles: number[];
  if (shape === 2) {
    const start = rng.uniformIn(0, Math.PI / 2);
    angles = [0, 1, 2, 3].map((k) => start + (k * Math.PI) / 2);
  } else {
    angles = Array.from({ length: shape === 3 ? 3 : 4 }, () => rng.uniformIn(0, 2 * Math.PI)).sort((a, b) => a - b);
  }
  const px = angles.map((a) => radius * Math.cos(a));
  const py = angles.map((a) => radius * Math.sin(a));
  const n = angles.length;
  // Vertices are counter-clockwise, so the polygon is the intersection of the left half-planes of its edges.
  return (dx, dy) => {
    for (let k = 0; k < n; k++) {
      const next = (k + 1) % n;
      if ((px[next] - px[k]) * (dy - py[k]) - (py[next] - py[k]) * (dx - px[k]) < 0) return false;
    }
    return true;
  };
}

export function generateDeadLeaves(seed: number, index: number, opts: DeadLeavesOptions = {}): DeadLeavesSample {
  const rhoMin = opts.rhoMin ?? 0.05;
  if (!(rhoMin > 0 && rhoMin < RHO_MAX)) throw new Error(`generateDeadLeaves: rhoMin must be in (0, 1), got ${rhoMin}`);
  const res = DEADLEAVES_RES;
  const rng = createRng(seed).fork(index);
  const table = radiusTable(rhoMin);
  const colour = new Float64Array(res * res * 3);
  const shapeClass = new Uint8Array(res * res);
  const leafId = new Int32Array(res * res).fill(-1);
  let uncovered = res * res;
  for (let leaf = 0; leaf < MAX_LEAVES && uncovered > 0; leaf++) {
    const radius = Math.max(sampleRho(table, rng.uniform()) * res, 1);
    const cx = rng.uniformIn(0, res);
    const cy = rng.uniformIn(0, res);
    const shape = rng.int(0, SHAPE_CLASSES.length);
    const inside = shapeTest(rng, shape, radius);
    const x0 = Math.max(Math.floor(cx - radius - 1), 0);
    const x1 = Math.min(Math.floor(cx + radius + 2), res);
    const y0 = Math.max(Math.floor(cy - radius - 1), 0);
    const y1 = Math.min(Math.floor(cy + radius + 2), res);
    const painted: number[] = [];
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) {
        // Pixel centres at +½; front-to-back: a leaf only claims pixels no earlier (nearer) leaf covers.
        if (leafId[y * res + x] === -1 && inside(x + 0.5 - cx, y + 0.5 - cy)) painted.push(y * res + x);
      }
    }
    if (painted.length === 0) continue;
    const patchW = x1 - x0;
    const fill = leafFill(rng, y1 - y0, patchW);
    for (const p of painted) {
      const local = (Math.floor(p / res) - y0) * patchW + ((p % res) - x0);
      for (let c = 0; c < 3; c++) colour[p * 3 + c] = fill[local * 3 + c];
      shapeClass[p] = shape;
      leafId[p] = leaf;
    }
    uncovered -= painted.length;
  }
  if (uncovered > 0) {
    const flat = [rng.uniform(), rng.uniform(), rng.uniform()];
    for (let p = 0; p < res * res; p++) {
      if (leafId[p] !== -1) continue;
      for (let c = 0; c < 3; c++) colour[p * 3 + c] = flat[c];
      shapeClass[p] = 1;
      leafId[p] = MAX_LEAVES;
    }
  }
  const data = new Uint8Array(res * res * 3);
  for (let k = 0; k < data.length; k++) data[k] = Math.min(255, Math.floor(colour[k] * 255 + 0.5));
  return { image: { width: res, height: res, channels: 3, data }, shapeClass, leafId };
}

// ---------------------------------------------------------------------------------------------- cached pools

export interface DeadLeavesPool {
  readonly seed: number;
  readonly count: number;
  readonly version: number;
  readonly rhoMin: number;
  /** count × 64 × 64 × 3 bytes; labels are not stored (regenerate one image with generateDeadLeaves). */
  readonly images: Uint8Array;
  image(index: number): Image;
}

export interface PoolOptions extends DeadLeavesOptions {
  /** Where cache files live; `<repo>/.cache/deadleaves/` by default. */
  readonly cacheDir?: string;
  /** Told why a cache file was unusable or could not be written (the pool is still returned). */
  readonly warn?: (message: string) => void;
  readonly onProgress?: (done: number, total: number) => void;
}

const MAGIC = 'CLVDL001';
const HEADER_BYTES = 8 + 4 + 4 + 4 + 8 + 8 + 32;
// Next to the kernel cache, under the working directory: the same place whether this runs from the repository's
// sources or from an installed package (whose files may be read-only).
const defaultCacheDir = resolve('.cache', 'deadleaves');

const poolFileName = (seed: number, count: number, version: number, rhoMin: number): string =>
  `deadleaves-v${version}-seed${seed}-n${count}-rho${rhoMin}.bin`;

function makePool(seed: number, count: number, version: number, rhoMin: number, images: Uint8Array): DeadLeavesPool {
  const bytesPerImage = DEADLEAVES_RES * DEADLEAVES_RES * 3;
  return {
    seed, count, version, rhoMin, images,
    image(index: number): Image {
      if (!(Number.isInteger(index) && index >= 0 && index < count)) {
        throw new Error(`DeadLeavesPool.image: index ${index} outside [0, ${count})`);
      }
      const data = images.subarray(index * bytesPerImage, (index + 1) * bytesPerImage);
      return { width: DEADLEAVES_RES, height: DEADLEAVES_RES, channels: 3, data };
    },
  };
}

function readPoolFile(path: string, seed: number, count: number, version: number, rhoMin: number): E.Either<string, Uint8Array> {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch {
    return E.left(`${path}: no cache file`);
  }
  const payloadBytes = count * DEADLEAVES_RES * DEADLEAVES_RES * 3;
  if (bytes.length !== HEADER_BYTES + payloadBytes) {
    return E.left(`${path}: ${bytes.length} bytes, expected ${HEADER_BYTES + payloadBytes}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const header = {
    magic: bytes.subarray(0, 8).toString('latin1'), version: view.getUint32(8, true), res: view.getUint32(12, true),
    count: view.getUint32(16, true), seed: view.getFloat64(20, true), rhoMin: view.getFloat64(28, true),
  };
  if (header.magic !== MAGIC || header.version !== version || header.res !== DEADLEAVES_RES ||
      header.count !== count || header.seed !== seed || header.rhoMin !== rhoMin) {
    return E.left(`${path}: header ${JSON.stringify(header)} does not describe this pool`);
  }
  const payload = bytes.subarray(HEADER_BYTES);
  const digest = createHash('sha256').update(payload).digest();
  if (!digest.equals(bytes.subarray(36, HEADER_BYTES))) return E.left(`${path}: checksum mismatch (corrupt cache)`);
  return E.right(new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength));
}

function writePoolFile(path: string, dir: string, seed: number, count: number, version: number, rhoMin: number, images: Uint8Array): E.Either<string, void> {
  const header = Buffer.alloc(HEADER_BYTES);
  header.write(MAGIC, 0, 'latin1');
  header.writeUInt32LE(version, 8);
  header.writeUInt32LE(DEADLEAVES_RES, 12);
  header.writeUInt32LE(count, 16);
  header.writeDoubleLE(seed, 20);
  header.writeDoubleLE(rhoMin, 28);
  createHash('sha256').update(images).digest().copy(header, 36);
  // Write-then-rename, so a crash or a concurrent reader never sees a half-written file under the final name.
  const temp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    mkdirSync(dir, { recursive: true });
    writeFileSync(temp, Buffer.concat([header, images]));
    renameSync(temp, path);
    return E.right(undefined);
  } catch (err) {
    try { unlinkSync(temp); } catch { /* the temp file may never have been created */ }
    return E.left(`${path}: could not write cache (${err instanceof Error ? err.message : String(err)})`);
  }
}

/**
 * `count` images of (seed, index = 0..count−1), generated once and cached on disk. The cache is only an
 * optimisation: a missing, stale or corrupt file is regenerated, and a failed write still returns the pool.
 */
export function deadLeavesPool(seed: number, count: number, version: number, opts: PoolOptions = {}): E.Either<string, DeadLeavesPool> {
  if (version !== DEADLEAVES_VERSION) {
    return E.left(`deadLeavesPool: this build generates version ${DEADLEAVES_VERSION}, asked for version ${version}`);
  }
  if (!Number.isSafeInteger(seed)) return E.left(`deadLeavesPool: seed must be an integer, got ${seed}`);
  if (!(Number.isInteger(count) && count > 0 && count < 2 ** 31)) return E.left(`deadLeavesPool: count must be a positive integer, got ${count}`);
  const rhoMin = opts.rhoMin ?? 0.05;
  if (!(rhoMin > 0 && rhoMin < RHO_MAX)) return E.left(`deadLeavesPool: rhoMin must be in (0, 1), got ${rhoMin}`);
  const dir = opts.cacheDir ?? defaultCacheDir;
  const path = join(dir, poolFileName(seed, count, version, rhoMin));
  const cached = readPoolFile(path, seed, count, version, rhoMin);
  if (E.isRight(cached)) return E.right(makePool(seed, count, version, rhoMin, cached.right));
  if (!cached.left.endsWith('no cache file')) opts.warn?.(`${cached.left}; regenerating`);
  const bytesPerImage = DEADLEAVES_RES * DEADLEAVES_RES * 3;
  const images = new Uint8Array(count * bytesPerImage);
  for (let index = 0; index < count; index++) {
    images.set(generateDeadLeaves(seed, index, { rhoMin }).image.data, index * bytesPerImage);
    opts.onProgress?.(index + 1, count);
  }
  const written = writePoolFile(path, dir, seed, count, version, rhoMin, images);
  if (E.isLeft(written)) opts.warn?.(written.left);
  return E.right(makePool(seed, count, version, rhoMin, images));
}

// GIMP's pattern files (`gimp-data`, /usr/share/gimp/2.0/patterns): the textures of evaluation protocol P4
// (EVAL_PROTOCOLS.md). A `.pat` file is a big-endian header (header size, version 1, width, height, bytes per pixel
// 1–4, the magic "GPAT", a NUL-terminated name) followed by width·height·bpp bytes (grey, grey+alpha, RGB, RGBA).
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import type { Image } from './image.ts';
import { createRng } from './rng.ts';

export const GIMP_PATTERNS_DIR = '/usr/share/gimp/2.0/patterns';

/** A texture as grey levels in [0, 1], row-major. */
export interface GreyTexture {
  readonly name: string;
  readonly width: number;
  readonly height: number;
  readonly grey: Float32Array;
}

/** Decodes one `.pat` file to grey (Rec. 601 luma for colour patterns; alpha ignored). */
export function decodePattern(name: string, bytes: Uint8Array): E.Either<string, GreyTexture> {
  if (bytes.length < 24) return E.left(`${name}: ${bytes.length} bytes, too short for a GIMP pattern header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const [headerSize, version, width, height, bpp] = [0, 4, 8, 12, 16].map((o) => view.getUint32(o));
  const magic = String.fromCharCode(...bytes.subarray(20, 24));
  if (magic !== 'GPAT' || version !== 1) return E.left(`${name}: not a GIMP pattern (magic '${magic}', version ${version})`);
  if (!(bpp >= 1 && bpp <= 4) || width < 1 || height < 1) return E.left(`${name}: unsupported pattern ${width}×${height} with ${bpp} bytes per pixel`);
  if (headerSize < 24 || headerSize + width * height * bpp > bytes.length) {
    return E.left(`${name}: header of ${headerSize} bytes and ${width}×${height}×${bpp} pixels exceed the file's ${bytes.length} bytes`);
  }
  const pixels = bytes.subarray(headerSize);
  const grey = new Float32Array(width * height);
  for (let p = 0; p < grey.length; p++) {
    const px = pixels.subarray(p * bpp, p * bpp + bpp);
    grey[p] = (bpp >= 3 ? 0.299 * px[0] + 0.587 * px[1] + 0.114 * px[2] : px[0]) / 255;
  }
  return E.right({ name, width, height, grey });
}

/** Relative paths of the non-Legacy patterns under `dir`, sorted (the order P4's held-out split is defined on). */
export function listPatterns(dir: string): E.Either<string, string[]> {
  const found: string[] = [];
  const walk = (rel: string): void => {
    for (const entry of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const child = rel === '' ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory() && entry.name !== 'Legacy') walk(child);
      else if (entry.isFile() && entry.name.endsWith('.pat')) found.push(child);
    }
  };
  try {
    walk('');
  } catch (error) {
    return E.left(`cannot list the GIMP patterns in ${dir}: ${(error as Error).message}`);
  }
  return found.length === 0 ? E.left(`no GIMP patterns (*.pat) under ${dir}`) : E.right(found.sort());
}

/** P4's held-out textures: every third pattern in sorted order (indices 0, 3, 6, …). */
export function heldOutPatterns(dir: string = GIMP_PATTERNS_DIR): E.Either<string, GreyTexture[]> {
  const listed = listPatterns(dir);
  if (E.isLeft(listed)) return listed;
  const textures: GreyTexture[] = [];
  for (const rel of listed.right.filter((_p, k) => k % 3 === 0)) {
    let bytes: Uint8Array;
    try {
      bytes = fs.readFileSync(path.join(dir, rel));
    } catch (error) {
      return E.left(`cannot read ${path.join(dir, rel)}: ${(error as Error).message}`);
    }
    const t = decodePattern(rel.replace(/\.pat$/, ''), bytes);
    if (E.isLeft(t)) return t;
    textures.push(t.right);
  }
  return E.right(textures);
}

/** P4's canvases: grey 64×64 images, each pixel's Voronoi region, and each canvas's region count R. */
export interface TextureCanvases {
  readonly images: readonly Image[];
  /** Region index in [0, R) of every pixel, [N, 64, 64]. */
  readonly regions: Int32Array;
  readonly regionCounts: Int32Array;
}

export const TEXTURE_CANVAS = 64;

/**
 * EVAL_PROTOCOLS P4: canvas n (rng forked from `seed` by n) is a Voronoi partition into R ~ U{2..5} regions with
 * seeds ~ U[0, 64)²; each region shows a distinct texture, rotated by k·90° (k ~ U{0..3}), flipped horizontally
 * with p = ½ and tiled from a random offset. Every texture is first standardised to mean 0.5 and standard
 * deviation 0.15, so grey level, brightness and contrast carry no information: only texture does.
 */
export function textureCanvases(textures: readonly GreyTexture[], count: number, seed: number): E.Either<string, TextureCanvases> {
  if (textures.length < 5) return E.left(`P4 needs at least 5 distinct textures for its up-to-5 regions, got ${textures.length}`);
  const S = TEXTURE_CANVAS;
  const standardised = textures.map(standardise);
  const images: Image[] = [];
  const regions = new Int32Array(count * S * S);
  const regionCounts = new Int32Array(count);
  const root = createRng(seed);
  for (let n = 0; n < count; n++) {
    const rng = root.fork(n);
    const R = rng.int(2, 6);
    const seeds = Array.from({ length: R }, () => [rng.uniform() * S, rng.uniform() * S] as const);
    const pool = textures.map((_t, i) => i);
    const fills = Array.from({ length: R }, (_r, r) => {
      const pick = r + rng.int(0, pool.length - r);
      [pool[r], pool[pick]] = [pool[pick], pool[r]];
      const t = standardised[pool[r]];
      return { t, turns: rng.int(0, 4), flip: rng.uniform() < 0.5, dx: rng.int(0, t.width), dy: rng.int(0, t.height) };
    });
    const data = new Uint8Array(S * S);
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        let region = 0;
        let nearest = Infinity;
        seeds.forEach(([sx, sy], r) => {
          const d = (x + 0.5 - sx) ** 2 + (y + 0.5 - sy) ** 2;
          if (d < nearest) [region, nearest] = [r, d];
        });
        const { t, turns, flip, dx, dy } = fills[region];
        const a = flip ? S - 1 - x : x;
        const [u, v] = [[a, y], [y, S - 1 - a], [S - 1 - a, S - 1 - y], [S - 1 - y, a]][turns];
        const value = t.grey[((v + dy) % t.height) * t.width + ((u + dx) % t.width)];
        data[y * S + x] = Math.min(255, Math.max(0, Math.round(255 * value)));
        regions[(n * S + y) * S + x] = region;
      }
    }
    images.push({ width: S, height: S, channels: 1, data });
    regionCounts[n] = R;
  }
  return E.right({ images, regions, regionCounts });
}

/** Mean 0.5, standard deviation 0.15 (a flat texture stays at 0.5). */
function standardise(t: GreyTexture): GreyTexture {
  const n = t.grey.length;
  const mean = t.grey.reduce((s, v) => s + v, 0) / n;
  const std = Math.sqrt(t.grey.reduce((s, v) => s + (v - mean) ** 2, 0) / n);
  return { ...t, grey: t.grey.map((v) => 0.5 + (std > 0 ? (0.15 * (v - mean)) / std : 0)) };
}

// Fashion-MNIST idx readers (EVAL_PROTOCOLS §3b/§3f). Files may be gzipped; headers are big-endian.
import * as E from 'fp-ts/lib/Either.js';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

/** Where Debian's `dataset-fashion-mnist` installs the idx files. */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

const IMAGES_MAGIC = 0x00000803;
const LABELS_MAGIC = 0x00000801;

export interface IdxImages {
  /** count × rows × cols bytes. */
  readonly images: Uint8Array;
  readonly count: number;
  readonly rows: number;
  readonly cols: number;
}

export interface FashionMnist extends IdxImages {
  /** count class ids 0..9. */
  readonly labels: Uint8Array;
}

export type FashionMnistSplit = 'train' | 't10k';

const isGzip = (b: Uint8Array): boolean => b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b;

function inflate(bytes: Uint8Array, path: string): E.Either<string, Uint8Array> {
  if (!isGzip(bytes)) return E.right(bytes);
  try {
    const out = gunzipSync(bytes);
    return E.right(new Uint8Array(out.buffer, out.byteOffset, out.byteLength));
  } catch (err) {
    return E.left(`${path}: corrupt gzip stream (${err instanceof Error ? err.message : String(err)})`);
  }
}

const hex = (v: number): string => `0x${v.toString(16).padStart(8, '0')}`;

/** Parse an idx3 image file (magic 0x803, then count, rows, cols as big-endian uint32). */
export function parseIdxImages(bytes: Uint8Array, pathForMessages: string): E.Either<string, IdxImages> {
  const raw = inflate(bytes, pathForMessages);
  if (E.isLeft(raw)) return raw;
  const b = raw.right;
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const magic = b.length >= 4 ? view.getUint32(0, false) : -1;
  if (magic !== IMAGES_MAGIC) return E.left(`${pathForMessages}: magic ${magic < 0 ? 'missing' : hex(magic)}, expected ${hex(IMAGES_MAGIC)} (idx3 ubyte images)`);
  if (b.length < 16) return E.left(`${pathForMessages}: ${b.length} bytes is shorter than the 16-byte idx3 header`);
  const count = view.getUint32(4, false);
  const rows = view.getUint32(8, false);
  const cols = view.getUint32(12, false);
  const expected = 16 + count * rows * cols;
  if (b.length !== expected) {
    return E.left(`${pathForMessages}: header says ${count}×${rows}×${cols} (${expected} bytes) but the file has ${b.length}`);
  }
  return E.right({ images: b.subarray(16), count, rows, cols });
}

/** Parse an idx1 label file (magic 0x801, then count as big-endian uint32). */
export function parseIdxLabels(bytes: Uint8Array, pathForMessages: string): E.Either<string, Uint8Array> {
  const raw = inflate(bytes, pathForMessages);
  if (E.isLeft(raw)) return raw;
  const b = raw.right;
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const magic = b.length >= 4 ? view.getUint32(0, false) : -1;
  if (magic !== LABELS_MAGIC) return E.left(`${pathForMessages}: magic ${magic < 0 ? 'missing' : hex(magic)}, expected ${hex(LABELS_MAGIC)} (idx1 ubyte labels)`);
  if (b.length < 8) return E.left(`${pathForMessages}: ${b.length} bytes is shorter than the 8-byte idx1 header`);
  const count = view.getUint32(4, false);
  if (b.length !== 8 + count) return E.left(`${pathForMessages}: header says ${count} labels but the file has ${b.length - 8} bytes of them`);
  return E.right(b.subarray(8));
}

/** `<dir>/<split>-<kind>-ubyte.gz`, or the same name without `.gz`. */
function findIdxFile(dir: string, split: FashionMnistSplit, kind: 'images-idx3' | 'labels-idx1'): E.Either<string, string> {
  const base = join(dir, `${split}-${kind}-ubyte`);
  for (const candidate of [`${base}.gz`, base]) if (existsSync(candidate)) return E.right(candidate);
  return E.left(`${base}(.gz): not found (install Debian's dataset-fashion-mnist or pass the folder holding the idx files)`);
}

function readBytes(path: string): E.Either<string, Uint8Array> {
  try {
    return E.right(new Uint8Array(readFileSync(path)));
  } catch (err) {
    return E.left(`${path}: unreadable (${err instanceof Error ? err.message : String(err)})`);
  }
}

/** True when both idx files of the split are present in `dir`. */
export function fashionMnistAvailable(split: FashionMnistSplit, dir: string = FASHION_MNIST_DIR): boolean {
  return E.isRight(findIdxFile(dir, split, 'images-idx3')) && E.isRight(findIdxFile(dir, split, 'labels-idx1'));
}

export function loadFashionMnist(split: FashionMnistSplit, dir: string = FASHION_MNIST_DIR): E.Either<string, FashionMnist> {
  const imagesPath = findIdxFile(dir, split, 'images-idx3');
  if (E.isLeft(imagesPath)) return imagesPath;
  const labelsPath = findIdxFile(dir, split, 'labels-idx1');
  if (E.isLeft(labelsPath)) return labelsPath;
  const imageBytes = readBytes(imagesPath.right);
  if (E.isLeft(imageBytes)) return imageBytes;
  const images = parseIdxImages(imageBytes.right, imagesPath.right);
  if (E.isLeft(images)) return images;
  const labelBytes = readBytes(labelsPath.right);
  if (E.isLeft(labelBytes)) return labelBytes;
  const labels = parseIdxLabels(labelBytes.right, labelsPath.right);
  if (E.isLeft(labels)) return labels;
  if (labels.right.length !== images.right.count) {
    return E.left(`${labelsPath.right}: ${labels.right.length} labels for ${images.right.count} images in ${imagesPath.right}`);
  }
  const outOfRange = labels.right.findIndex((v) => v > 9);
  if (outOfRange >= 0) return E.left(`${labelsPath.right}: label ${labels.right[outOfRange]} at index ${outOfRange} is not a class 0..9`);
  return E.right({ ...images.right, labels: labels.right });
}

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import jpeg from 'jpeg-js';
import { property } from './prop.ts';
import { createRng, rngFromState } from '../clove/data/rng.ts';
import { decodeImage, encodePng, probeImageSize, type Image } from '../clove/data/image.ts';
import { DEADLEAVES_VERSION, deadLeavesPool, generateDeadLeaves } from '../clove/data/deadleaves.ts';
import { type FashionMnist, fashionMnistAvailable, loadFashionMnist, parseIdxImages, parseIdxLabels } from '../clove/data/fmnist.ts';
import { MOSAIC_SIZE, boxIou, fillHoles, generateMosaics, mosaicSplit, pretrainingMosaics, resizeCornersAligned } from '../clove/data/mosaic.ts';
import { openImageFolder } from '../clove/data/folder.ts';

const scratch = (name: string): string => mkdtempSync(join(tmpdir(), `clove-${name}-`));

// ------------------------------------------------------------------------------------------------- rng

test('rng: state round trip, forks are pure and key-sensitive, draws stay in range', () => {
  property(fc.property(fc.integer(), fc.nat(50), (seed, skip) => {
    const a = createRng(seed);
    for (let k = 0; k < skip; k++) a.uniform();
    const b = rngFromState(a.state());
    const fromA = Array.from({ length: 5 }, () => [a.uniform(), a.int(-3, 7), a.normal()]);
    const fromB = Array.from({ length: 5 }, () => [b.uniform(), b.int(-3, 7), b.normal()]);
    assert.deepEqual(fromA, fromB);
    for (const [u, i, n] of fromA) assert.ok(u >= 0 && u < 1 && Number.isInteger(i) && i >= -3 && i < 7 && Number.isFinite(n));
    const root = createRng(seed);
    const before = root.state();
    const first = root.fork(1, 2, 3).uniform();
    assert.equal(root.state(), before, 'fork must not advance the parent');
    assert.equal(root.fork(1, 2, 3).uniform(), first);
    assert.notEqual(root.fork(1, 2, 4).uniform(), first);
    assert.notEqual(root.fork(1, 3, 2).uniform(), first);
  }), 200);
  const rng = createRng(7);
  const n = 20000;
  const draws = Array.from({ length: n }, () => rng.normal());
  const mean = draws.reduce((s, v) => s + v, 0) / n;
  const variance = draws.reduce((s, v) => s + (v - mean) ** 2, 0) / n;
  assert.ok(Math.abs(mean) < 0.05 && Math.abs(variance - 1) < 0.05, `normal mean ${mean}, variance ${variance}`);
  const counts = new Array<number>(10).fill(0);
  for (let k = 0; k < n; k++) counts[rng.int(0, 10)]++;
  assert.ok(counts.every((c) => Math.abs(c - n / 10) < 0.1 * (n / 10)), `int histogram ${counts}`);
});

// ------------------------------------------------------------------------------------------------- images

const imageArb: fc.Arbitrary<Image> = fc.record({ width: fc.integer({ min: 1, max: 12 }), height: fc.integer({ min: 1, max: 12 }), channels: fc.constantFrom(1 as const, 3 as const) })
  .chain(({ width, height, channels }) => fc.uint8Array({ minLength: width * height * channels, maxLength: width * height * channels })
    .map((data) => ({ width, height, channels, data })));

test('images: PNG round trip is lossless for grey and RGB', () => {
  property(fc.property(imageArb, (img) => {
    const back = decodeImage(encodePng(img), 'roundtrip.png');
    assert.ok(E.isRight(back));
    assert.deepEqual({ ...back.right, data: Array.from(back.right.data) }, { ...img, data: Array.from(img.data) });
  }), 100);
});

test('images: an RGB JPEG decodes close to what was encoded', () => {
  const width = 16;
  const height = 8;
  const rgba = new Uint8Array(width * height * 4);
  for (let p = 0; p < width * height; p++) rgba.set([200, 40, 90, 255], p * 4);
  const encoded = jpeg.encode({ width, height, data: rgba }, 95).data;
  const decoded = decodeImage(new Uint8Array(encoded), 'flat.jpg');
  assert.ok(E.isRight(decoded), JSON.stringify(decoded));
  assert.equal(decoded.right.channels, 3);
  assert.equal(decoded.right.width, width);
  const [r, g, b] = decoded.right.data;
  assert.ok(Math.abs(r - 200) <= 4 && Math.abs(g - 40) <= 4 && Math.abs(b - 90) <= 4, `decoded ${[r, g, b]}`);
});

test('images: corrupt or truncated bytes are a Left naming the file, never a throw', () => {
  const png = encodePng({ width: 6, height: 5, channels: 3, data: new Uint8Array(90).fill(77) });
  property(fc.property(fc.integer({ min: 0, max: png.length - 1 }), fc.uint8Array({ maxLength: 64 }), (cut, noise) => {
    for (const bytes of [png.subarray(0, cut), noise, Uint8Array.from([0xff, 0xd8, 0xff, ...noise])]) {
      const r = decodeImage(bytes, '/data/broken.png');
      if (E.isLeft(r)) assert.match(r.left, /\/data\/broken\.png/);
    }
    assert.ok(E.isLeft(decodeImage(png.subarray(0, cut), '/data/broken.png')));
  }), 100);
});

// ------------------------------------------------------------------------------------------------- dead leaves

const leavesHash = (count: number, seed: number): string => {
  const hash = createHash('sha256');
  for (let k = 0; k < count; k++) {
    const s = generateDeadLeaves(seed, k);
    hash.update(s.image.data).update(s.shapeClass).update(new Uint8Array(s.leafId.buffer));
  }
  return hash.digest('hex');
};

test('deadleaves: pinned sha256 of images 0..7 of seed 0 (generator drift must bump DEADLEAVES_VERSION)', () => {
  assert.equal(DEADLEAVES_VERSION, 1);
  assert.equal(leavesHash(8, 0), 'd7f802370a503aa972b53b71586274e13da141f8bcd016cd3f356dadc0f437d3');
});

test('deadleaves: every pixel covered, labels consistent, deterministic per (seed, index)', () => {
  property(fc.property(fc.integer(), fc.nat(1e6), fc.constantFrom(0.05, 0.08, 0.2), (seed, index, rhoMin) => {
    const s = generateDeadLeaves(seed, index, { rhoMin });
    assert.equal(s.image.data.length, 64 * 64 * 3);
    const classOfLeaf = new Map<number, number>();
    for (let p = 0; p < 64 * 64; p++) {
      const id = s.leafId[p];
      assert.ok(id >= 0 && id <= 3000, `pixel ${p} has leaf id ${id}`);
      assert.ok(s.shapeClass[p] <= 4);
      const known = classOfLeaf.get(id);
      assert.ok(known === undefined || known === s.shapeClass[p], `leaf ${id} has two shape classes`);
      classOfLeaf.set(id, s.shapeClass[p]);
    }
    const again = generateDeadLeaves(seed, index, { rhoMin });
    assert.deepEqual(again, s);
  }), 25);
  assert.notDeepEqual(generateDeadLeaves(0, 0).image.data, generateDeadLeaves(0, 1).image.data);
});

test('deadleaves pool: generated once, cached atomically, corrupt cache regenerated', () => {
  const dir = scratch('pool');
  try {
    const warnings: string[] = [];
    const warn = (m: string): void => { warnings.push(m); };
    const first = deadLeavesPool(3, 3, DEADLEAVES_VERSION, { cacheDir: dir, warn });
    assert.ok(E.isRight(first));
    for (let k = 0; k < 3; k++) assert.deepEqual(first.right.image(k).data, generateDeadLeaves(3, k).image.data);
    const files = readdirSync(dir);
    assert.equal(files.length, 1, `cache files: ${files}`);
    assert.deepEqual(warnings, []);
    const cached = deadLeavesPool(3, 3, DEADLEAVES_VERSION, { cacheDir: dir, warn, onProgress: () => assert.fail('a cached pool must not regenerate') });
    assert.ok(E.isRight(cached));
    assert.deepEqual(cached.right.images, first.right.images);
    const path = join(dir, files[0]);
    const bytes = readFileSync(path);
    bytes[bytes.length - 5] ^= 0xff;
    writeFileSync(path, bytes);
    const repaired = deadLeavesPool(3, 3, DEADLEAVES_VERSION, { cacheDir: dir, warn });
    assert.ok(E.isRight(repaired));
    assert.deepEqual(repaired.right.images, first.right.images);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /checksum/);
    assert.deepEqual(readdirSync(dir), files, 'no temp files left behind');
    assert.ok(E.isLeft(deadLeavesPool(3, 3, DEADLEAVES_VERSION + 1, { cacheDir: dir })));
    assert.ok(E.isLeft(deadLeavesPool(3, 0, DEADLEAVES_VERSION, { cacheDir: dir })));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ------------------------------------------------------------------------------------------------- fashion-mnist

function idxImages(count: number, rows: number, cols: number, pixel: (n: number, p: number) => number): Uint8Array {
  const out = new Uint8Array(16 + count * rows * cols);
  const view = new DataView(out.buffer);
  view.setUint32(0, 0x803);
  view.setUint32(4, count);
  view.setUint32(8, rows);
  view.setUint32(12, cols);
  for (let n = 0; n < count; n++) for (let p = 0; p < rows * cols; p++) out[16 + n * rows * cols + p] = pixel(n, p);
  return out;
}

function idxLabels(labels: number[]): Uint8Array {
  const out = new Uint8Array(8 + labels.length);
  new DataView(out.buffer).setUint32(0, 0x801);
  new DataView(out.buffer).setUint32(4, labels.length);
  out.set(labels, 8);
  return out;
}

test('fmnist: idx parser on synthetic buffers (raw and gzipped) and its error messages', () => {
  property(fc.property(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 6 }), fc.boolean(), (count, rows, cols, gz) => {
    const raw = idxImages(count, rows, cols, (n, p) => (n * 31 + p) % 256);
    const parsed = parseIdxImages(gz ? gzipSync(raw) : raw, 'x.idx3');
    assert.ok(E.isRight(parsed));
    assert.deepEqual([parsed.right.count, parsed.right.rows, parsed.right.cols], [count, rows, cols]);
    assert.deepEqual(Array.from(parsed.right.images), Array.from(raw.subarray(16)));
    if (count > 0) assert.ok(E.isLeft(parseIdxImages(raw.subarray(0, raw.length - 1), 'x.idx3')), 'a truncated file is a Left');
  }), 50);
  const labels = parseIdxLabels(gzipSync(idxLabels([3, 1, 4])), 'y.idx1');
  assert.ok(E.isRight(labels));
  assert.deepEqual(Array.from(labels.right), [3, 1, 4]);
  const wrongMagic = parseIdxImages(idxLabels([1, 2]), '/d/train-images');
  assert.ok(E.isLeft(wrongMagic) && /\/d\/train-images: magic 0x00000801, expected 0x00000803/.test(wrongMagic.left), JSON.stringify(wrongMagic));
  assert.ok(E.isLeft(parseIdxLabels(Uint8Array.from([0x1f, 0x8b, 1, 2, 3]), 'bad.gz')));
  const dir = scratch('fmnist');
  try {
    writeFileSync(join(dir, 'train-images-idx3-ubyte.gz'), gzipSync(idxImages(3, 2, 2, () => 9)));
    writeFileSync(join(dir, 'train-labels-idx1-ubyte'), idxLabels([0, 9, 5]));
    const fm = loadFashionMnist('train', dir);
    assert.ok(E.isRight(fm), JSON.stringify(fm));
    assert.deepEqual(Array.from(fm.right.labels), [0, 9, 5]);
    const missing = loadFashionMnist('t10k', dir);
    assert.ok(E.isLeft(missing) && missing.left.includes('t10k-images-idx3-ubyte'));
    writeFileSync(join(dir, 'train-labels-idx1-ubyte'), idxLabels([0, 9]));
    assert.ok(E.isLeft(loadFashionMnist('train', dir)), 'label/image count mismatch must be a Left');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const haveFashionMnist = fashionMnistAvailable('train') && fashionMnistAvailable('t10k');
const noFashionMnist = haveFashionMnist ? false : 'Fashion-MNIST idx files absent (apt-get install dataset-fashion-mnist)';

test('fmnist: the Debian files load with the documented sizes', { skip: noFashionMnist }, () => {
  for (const [split, count] of [['train', 60000], ['t10k', 10000]] as const) {
    const fm = loadFashionMnist(split);
    assert.ok(E.isRight(fm), E.isLeft(fm) ? fm.left : '');
    assert.deepEqual([fm.right.count, fm.right.rows, fm.right.cols, fm.right.labels.length], [count, 28, 28, count]);
  }
});

// ------------------------------------------------------------------------------------------------- mosaics

/** A synthetic pool: item n is a filled disk (with a one-pixel hole) of radius 3..8, class n mod 10. */
function blobPool(count: number): FashionMnist {
  const size = 28;
  const images = new Uint8Array(count * size * size);
  for (let n = 0; n < count; n++) {
    const radius = 3 + (n % 6);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const d = Math.hypot(x - 13.5, y - 13.5);
        const hole = Math.round(x - 13.5) === 0 && Math.round(y - 13.5) === 0;
        images[n * size * size + y * size + x] = d <= radius && !hole ? 100 + n : 0;
      }
    }
  }
  return { images, labels: Uint8Array.from({ length: count }, (_, n) => n % 10), count, rows: size, cols: size };
}

function checkMosaics(m: ReturnType<typeof generateMosaics>, count: number, minItems: number): void {
  assert.ok(E.isRight(m), E.isLeft(m) ? m.left : '');
  const { canvases, sem, inst, items } = m.right;
  assert.equal(canvases.length, count * 64 * 64);
  items.forEach((list, k) => {
    assert.ok(list.length >= minItems && list.length <= 4, `canvas ${k} has ${list.length} items`);
    list.forEach((a, p) => {
      assert.ok(a.x0 >= 0 && a.y0 >= 0 && a.x1 <= MOSAIC_SIZE && a.y1 <= MOSAIC_SIZE && a.x0 < a.x1 && a.y0 < a.y1, `box ${JSON.stringify(a)}`);
      assert.ok(a.visibleFraction >= 0 && a.visibleFraction <= 1);
      list.slice(p + 1).forEach((b) => assert.ok(boxIou([a.x0, a.y0, a.x1, a.y1], [b.x0, b.y0, b.x1, b.y1]) <= 0.3));
    });
    if (list.length > 0) assert.equal(list[list.length - 1].visibleFraction, 1, 'the last pasted item is never occluded');
    const visible = new Array<number>(list.length + 1).fill(0);
    for (let p = 0; p < 64 * 64; p++) {
      const at = k * 64 * 64 + p;
      const order = inst[at];
      assert.ok(order <= list.length);
      assert.equal(sem[at], order === 0 ? 0 : list[order - 1].classId + 1, `sem/inst disagree at canvas ${k} pixel ${p}`);
      if (order === 0) assert.equal(canvases[at], 0, 'background stays 0');
      else {
        const box = list[order - 1];
        const [x, y] = [p % 64, Math.floor(p / 64)];
        assert.ok(x >= box.x0 && x < box.x1 && y >= box.y0 && y < box.y1, `item ${order} pixel outside its box`);
      }
      visible[order]++;
    }
    list.forEach((item, q) => assert.ok((visible[q + 1] > 0) === (item.visibleFraction > 0)));
  });
}

test('mosaic: boxes inside the canvas, pairwise IoU ≤ 0.3, ≥ 2 items, sem consistent with inst', () => {
  property(fc.property(fc.integer(), fc.integer({ min: 1, max: 6 }), (seed, count) => {
    const fm = blobPool(40);
    const m = generateMosaics(fm, [5, 40], count, seed);
    checkMosaics(m, count, 2);
    assert.deepEqual(generateMosaics(fm, [5, 40], count, seed), m);
    if (E.isRight(m)) for (const item of m.right.items.flat()) assert.ok(item.sourceIndex >= 5 && item.sourceIndex < 40);
  }), 30);
  assert.ok(E.isLeft(generateMosaics(blobPool(4), [2, 9], 1, 0)), 'pool beyond the source is a Left');
  assert.ok(E.isLeft(pretrainingMosaics(blobPool(4), 1, 0)), 'seeds below 100 are reserved for evaluation');
});

test('mosaic helpers: corners-aligned resize and hole filling', () => {
  const src = Uint8Array.from({ length: 9 }, (_, k) => k * 10);
  assert.deepEqual(Array.from(resizeCornersAligned(src, 3, 3, 3)), Array.from(src));
  // 3→5 samples input coordinates 0, ½, 1, 1½, 2 along each axis.
  assert.deepEqual(Array.from(resizeCornersAligned(src, 3, 3, 5).subarray(0, 5)), [0, 5, 10, 15, 20]);
  const ring = Uint8Array.from([0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 1, 0, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0]);
  const filled = fillHoles(ring, 5);
  assert.equal(filled[12], 1, 'the enclosed pixel is a hole');
  assert.equal(filled[0] + filled[4] + filled[20] + filled[24], 0);
  const open = Uint8Array.from(ring);
  open[13] = 0; // a gap in the ring connects the centre to the outside (4-connectivity)
  assert.equal(fillHoles(open, 5)[12], 0);
});

test('mosaic: real FMNIST splits match the documented statistics and a pinned hash', { skip: noFashionMnist }, () => {
  const train = loadFashionMnist('train');
  const t10k = loadFashionMnist('t10k');
  assert.ok(E.isRight(train) && E.isRight(t10k));
  const val = mosaicSplit('val', train.right, 300);
  checkMosaics(val, 300, 1);
  if (E.isLeft(val)) return;
  const counts = val.right.items.map((l) => l.length);
  const mean = counts.reduce((s, v) => s + v, 0) / counts.length;
  assert.ok(Math.abs(mean - 3) < 0.2 && Math.min(...counts) >= 2, `items per canvas: mean ${mean}, min ${Math.min(...counts)}`);
  const foreground = val.right.sem.reduce((s, v) => s + (v > 0 ? 1 : 0), 0) / val.right.sem.length;
  assert.ok(Math.abs(foreground - 0.255) < 0.03, `foreground fraction ${foreground}`);
  const test50 = mosaicSplit('test', t10k.right, 50);
  assert.ok(E.isRight(test50));
  const hash = createHash('sha256').update(test50.right.canvases).update(test50.right.sem).update(test50.right.inst).digest('hex');
  assert.equal(hash, '295ca6b0af0495d45d98e300bf0d523ae4b8cbd10abd44d8bc64cfb15d193271');
});

// ------------------------------------------------------------------------------------------------- folders

test('folder: recursive listing, lazy decoding, corrupt files skipped with one warning and counted', () => {
  const dir = scratch('folder');
  try {
    mkdirSync(join(dir, 'nested', 'deeper'), { recursive: true });
    const img: Image = { width: 3, height: 2, channels: 3, data: new Uint8Array(18).fill(40) };
    writeFileSync(join(dir, 'a.png'), encodePng(img));
    const rgba = new Uint8Array(3 * 2 * 4).fill(200);
    writeFileSync(join(dir, 'nested', 'b.JPG'), jpeg.encode({ width: 3, height: 2, data: rgba }, 90).data);
    writeFileSync(join(dir, 'nested', 'deeper', 'c.jpeg'), Uint8Array.from([0xff, 0xd8, 0xff, 0, 1, 2]));
    writeFileSync(join(dir, 'nested', 'notes.txt'), 'not an image');
    const warnings: string[] = [];
    const folder = openImageFolder(dir, (m) => warnings.push(m));
    assert.ok(E.isRight(folder), JSON.stringify(folder));
    assert.equal(folder.right.paths.length, 3);
    assert.equal(warnings.length, 0, 'nothing is decoded before it is asked for');
    for (let epoch = 0; epoch < 2; epoch++) {
      const seen: string[] = [...folder.right.images()].map((x) => x.path.slice(dir.length + 1));
      assert.deepEqual(seen, ['a.png', join('nested', 'b.JPG')]);
    }
    assert.equal(warnings.length, 1, `warnings: ${warnings}`);
    assert.match(warnings[0], /c\.jpeg/);
    assert.equal(folder.right.skippedCount(), 1);
    assert.ok(O.isNone(folder.right.load(2)));
    assert.equal(warnings.length, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('folder: a missing folder, an empty one, or one without images is a Left', () => {
  const dir = scratch('empty');
  try {
    const none = openImageFolder(join(dir, 'missing'), () => assert.fail('no warning expected'));
    assert.ok(E.isLeft(none) && none.left.includes('missing'));
    assert.ok(E.isLeft(openImageFolder(dir, () => undefined)));
    writeFileSync(join(dir, 'readme.md'), '#');
    const onlyText = openImageFolder(dir, () => undefined);
    assert.ok(E.isLeft(onlyText) && /no \.png, \.jpg or \.jpeg/.test(onlyText.left));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Issue #12, item 3: sizes come from the header, so unusable files are skipped before anything is decoded.
test('probeImageSize reads PNG and JPEG headers; an indexed folder skips 1×1, over-cap and corrupt files, naming each', () => {
  property(
    fc.property(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 40 }), (w, h) => {
      const png = encodePng({ width: w, height: h, channels: 3, data: new Uint8Array(w * h * 3) });
      assert.deepEqual(probeImageSize(png, 'x.png'), E.right({ width: w, height: h }));
      const jpg = new Uint8Array(jpeg.encode({ width: w, height: h, data: new Uint8Array(w * h * 4) }, 80).data);
      assert.deepEqual(probeImageSize(jpg, 'x.jpg'), E.right({ width: w, height: h }));
    }),
    30,
  );
  const dir = scratch('indexed');
  try {
    const rgba = (w: number, h: number) => new Uint8Array(w * h * 4).fill(90);
    writeFileSync(join(dir, 'ok.jpg'), jpeg.encode({ width: 8, height: 6, data: rgba(8, 6) }, 90).data);
    writeFileSync(join(dir, 'dot.jpg'), jpeg.encode({ width: 1, height: 1, data: rgba(1, 1) }, 90).data);
    writeFileSync(join(dir, 'big.png'), encodePng({ width: 30, height: 30, channels: 1, data: new Uint8Array(900) }));
    writeFileSync(join(dir, 'junk.png'), 'junk');
    const warnings: string[] = [];
    const folder = openImageFolder(dir, (m) => warnings.push(m), { index: { maxPixels: 800 } });
    assert.ok(E.isRight(folder), JSON.stringify(folder));
    assert.deepEqual(folder.right.paths, [join(dir, 'ok.jpg')]);
    assert.equal(warnings.length, 3, warnings.join('\n'));
    assert.ok(warnings.some((m) => m.includes('big.png') && m.includes('over the cap')));
    assert.ok(warnings.some((m) => m.includes('dot.jpg') && m.includes('too small')));
    assert.ok(warnings.some((m) => m.includes('junk.png')));
    rmSync(join(dir, 'ok.jpg'));
    const none = openImageFolder(dir, () => undefined, { index: { maxPixels: 800 } });
    assert.ok(E.isLeft(none) && none.left.includes('none of its 3 image files is usable'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

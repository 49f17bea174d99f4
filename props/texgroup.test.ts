// P4 (texture grouping): the GIMP pattern reader, the canvases, k-means, the matched mIoU and the protocol.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import * as E from 'fp-ts/lib/Either.js';
import fc from 'fast-check';
import { decodePattern, heldOutPatterns, listPatterns, TEXTURE_CANVAS, textureCanvases } from '../clove/data/gimp.ts';
import { splitmix32 } from '../clove/eval/bootstrap.ts';
import { kMeans, matchedMeanIou } from '../clove/eval/metrics.ts';
import { texGroup } from '../clove/eval/protocols.ts';
import { property } from './prop.ts';
import { generatedTextures } from './textures.ts';

/** A `.pat` file as GIMP writes it. */
function patFile(name: string, width: number, height: number, bpp: number, pixels: Uint8Array): Uint8Array {
  const nameBytes = new TextEncoder().encode(`${name}\0`);
  const header = new DataView(new ArrayBuffer(24));
  [24 + nameBytes.length, 1, width, height, bpp].forEach((v, k) => header.setUint32(4 * k, v));
  const out = new Uint8Array(24 + nameBytes.length + pixels.length);
  out.set(new Uint8Array(header.buffer));
  out.set(new TextEncoder().encode('GPAT'), 20);
  out.set(nameBytes, 24);
  out.set(pixels, 24 + nameBytes.length);
  return out;
}

test('decodePattern reads grey and RGB(A) patterns to luma in [0, 1]; malformed files are Left values naming the file', () => {
  const grey = decodePattern('g', patFile('g', 2, 1, 1, Uint8Array.from([0, 255])));
  assert.ok(E.isRight(grey) && grey.right.width === 2 && [...grey.right.grey].join() === '0,1');
  const rgba = decodePattern('c', patFile('c', 1, 1, 4, Uint8Array.from([255, 0, 0, 7])));
  assert.ok(E.isRight(rgba) && Math.abs(rgba.right.grey[0] - 0.299) < 1e-6);
  const truncated = patFile('t', 4, 4, 3, new Uint8Array(10));
  assert.match(E.isLeft(decodePattern('t', truncated)) ? (decodePattern('t', truncated) as E.Left<string>).left : '', /^t: .*exceed/);
  const badMagic = patFile('m', 1, 1, 1, new Uint8Array(1));
  badMagic[20] = 0x58;
  assert.ok(E.isLeft(decodePattern('m', badMagic)));
});

test('the held-out set is every third non-Legacy pattern in sorted order; a folder without patterns is a Left', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clove-pat-'));
  try {
    assert.ok(E.isLeft(listPatterns(dir)));
    const names = ['Wood/b', 'Animal/a', 'Legacy/x', 'Stone/c', 'Stone/d', 'Animal/e'];
    for (const n of names) {
      fs.mkdirSync(path.join(dir, path.dirname(n)), { recursive: true });
      fs.writeFileSync(path.join(dir, `${n}.pat`), patFile(n, 2, 2, 1, Uint8Array.from([0, 85, 170, 255])));
    }
    assert.deepEqual(listPatterns(dir), E.right(['Animal/a.pat', 'Animal/e.pat', 'Stone/c.pat', 'Stone/d.pat', 'Wood/b.pat']));
    const held = heldOutPatterns(dir);
    assert.ok(E.isRight(held));
    assert.deepEqual(held.right.map((t) => t.name), ['Animal/a', 'Stone/d']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('texture canvases: 2–5 regions each, labels in range, grey standardised to mean ≈ 0.5, the same for the same seed', () => {
  const textures = generatedTextures();
  const a = textureCanvases(textures, 12, 3);
  const b = textureCanvases(textures, 12, 3);
  assert.ok(E.isRight(a) && E.isRight(b));
  assert.deepEqual(a.right.regions, b.right.regions);
  const S = TEXTURE_CANVAS;
  a.right.images.forEach((img, n) => {
    const R = a.right.regionCounts[n];
    assert.ok(R >= 2 && R <= 5, `canvas ${n}: R = ${R}`);
    const labels = a.right.regions.subarray(n * S * S, (n + 1) * S * S);
    assert.ok(labels.every((r) => r >= 0 && r < R));
    const mean = img.data.reduce((s, v) => s + v, 0) / img.data.length / 255;
    assert.ok(Math.abs(mean - 0.5) < 0.08, `canvas ${n}: mean grey ${mean}`);
  });
  assert.ok(E.isLeft(textureCanvases(textures.slice(0, 4), 1, 3)), 'fewer than 5 textures cannot fill 5 regions');
});

test('matched mIoU is 1 for any relabelling of the truth and invariant to permuting the clusters', () => {
  property(
    fc.property(fc.integer({ min: 1, max: 5 }).chain((k) => fc.tuple(fc.constant(k), fc.array(fc.integer({ min: 0, max: k - 1 }), { minLength: 1, maxLength: 80 }), fc.shuffledSubarray([...Array(k).keys()], { minLength: k, maxLength: k }), fc.array(fc.integer({ min: 0, max: k - 1 }), { minLength: 80, maxLength: 80 }))), ([k, truth, perm, noise]) => {
      assert.equal(matchedMeanIou(truth, truth.map((t) => perm[t]), k) * k, [...new Set(truth)].length, 'each present region matched perfectly, absent ones score 0');
      const predicted = truth.map((_t, p) => noise[p]);
      const relabelled = predicted.map((c) => perm[c]);
      assert.ok(Math.abs(matchedMeanIou(truth, predicted, k) - matchedMeanIou(truth, relabelled, k)) < 1e-12);
    }),
    100,
  );
});

test('k-means ends at a Lloyd fixed point: every cell is nearest to the mean of its own cluster; k = 1 is one cluster', () => {
  property(
    fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 2 ** 31 - 1 }), (k, seed) => {
      const random = splitmix32(seed);
      const [cells, dim] = [40, 4];
      // Five separated blobs: Lloyd's iterations settle well within the 30 rounds.
      const rows = Float64Array.from({ length: cells * dim }, (_, i) => 10 * (Math.floor(i / dim) % 5 === i % dim ? 1 : 0) + 0.1 * random());
      const clusters = kMeans(rows, cells, dim, k, 30, splitmix32(seed + 1));
      if (k === 1) assert.ok(clusters.every((c) => c === 0));
      const means = new Float64Array(k * dim);
      const counts = new Int32Array(k);
      clusters.forEach((c, r) => {
        counts[c]++;
        for (let q = 0; q < dim; q++) means[c * dim + q] += rows[r * dim + q];
      });
      for (let c = 0; c < k; c++) for (let q = 0; q < dim; q++) means[c * dim + q] /= Math.max(1, counts[c]);
      const distance = (r: number, c: number): number => Array.from({ length: dim }, (_, q) => (rows[r * dim + q] - means[c * dim + q]) ** 2).reduce((s, v) => s + v, 0);
      clusters.forEach((c, r) => {
        for (let o = 0; o < k; o++) if (counts[o] > 0) assert.ok(distance(r, c) <= distance(r, o) + 1e-9, `cell ${r} in cluster ${c} is nearer cluster ${o}`);
      });
    }),
    50,
  );
});

test('P4 on generated textures: features that know the region score high, constant features score low', () => {
  const canvases = textureCanvases(generatedTextures(), 10, 3);
  assert.ok(E.isRight(canvases));
  const { regions, regionCounts } = canvases.right;
  const side = 8;
  const stride = TEXTURE_CANVAS / side;
  const D = 5;
  const oracle = new Float32Array(10 * side * side * D);
  for (let n = 0; n < 10; n++) {
    for (let c = 0; c < side * side; c++) {
      const [y, x] = [Math.floor(c / side) * stride + stride / 2, (c % side) * stride + stride / 2];
      oracle[(n * side * side + c) * D + regions[(n * TEXTURE_CANVAS + y) * TEXTURE_CANVAS + x]] = 1;
    }
  }
  const known = texGroup({ feats: oracle, h: side, w: side, D, regions, regionCounts });
  const blind = texGroup({ feats: new Float32Array(oracle.length), h: side, w: side, D, regions, regionCounts });
  assert.ok(E.isRight(known) && E.isRight(blind));
  // Random-cell initialisation (as the protocol prescribes) sometimes starts two centroids in one region, and the
  // restarts are averaged, not the best taken: even features that know the region do not reach 1.
  assert.ok(known.right.miou > 0.5, `oracle features: mIoU ${known.right.miou}`);
  assert.ok(blind.right.miou < known.right.miou - 0.2, `constant features: mIoU ${blind.right.miou}`);
  assert.equal(known.right.perImage.length, 10);
  assert.ok(E.isLeft(texGroup({ feats: oracle, h: side, w: side, D, regions: regions.subarray(1), regionCounts })));
});

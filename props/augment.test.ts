import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { property } from './prop.ts';
import {
  CROP_RATIO, CLOVE_JITTER, GREY_MEAN, GREY_STD, IMAGENET_MEAN, IMAGENET_STD, type Planar, type ViewTransform,
  adjustBrightness, adjustHue, adjustSaturation, applyViewTransform, gaussianBlur, hsvToRgb, rgbToHsv,
  sampleResizedCrop, solarize, withChannels,
} from '../clove/data/augment.ts';
import type { Image } from '../clove/data/image.ts';
import { createRng } from '../clove/data/rng.ts';
import { type MultiCropConfig, makeViews, sampleViews } from '../clove/data/views.ts';
import { viewCoords } from '../clove/geometry.ts';

/** R = x, G = y (so W, H ≤ 256), B = 0: every pixel names its own position. */
function coordinateImage(width: number, height: number): Image {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) { data[(y * width + x) * 3] = x; data[(y * width + x) * 3 + 1] = y; }
  return { width, height, channels: 3, data };
}

const geometryOnly = (outputSize: number, scale: readonly [number, number], interpolation: 'bicubic' | 'bilinear'): ViewTransform => ({
  outputSize, scale, ratio: CROP_RATIO, interpolation, flipP: 0.5, jitterP: 0, jitter: CLOVE_JITTER,
  grayscaleP: 0, blurP: 0, blurSigma: [0.1, 2], solarizeP: 0,
});

const support = (interpolation: 'bicubic' | 'bilinear'): number => (interpolation === 'bicubic' ? 2 : 1);

test('crop boxes: a coordinate-encoding image decodes back to the recorded box, with and without flip', () => {
  const arb = fc.record({
    width: fc.integer({ min: 8, max: 256 }), height: fc.integer({ min: 8, max: 256 }), size: fc.integer({ min: 4, max: 48 }),
    seed: fc.integer(), interpolation: fc.constantFrom('bicubic' as const, 'bilinear' as const),
  });
  property(fc.property(arb, ({ width, height, size, seed, interpolation }) => {
    const img = coordinateImage(width, height);
    const view = applyViewTransform(img, createRng(seed), geometryOnly(size, [0.08, 1], interpolation));
    const { i, j, h, w } = view.box;
    const at = (c: number, v: number, u: number): number => (view.pixels.data[(c * size + v) * size + u] * IMAGENET_STD[c] + IMAGENET_MEAN[c]) * 255;
    const sx = w / size;
    const sy = h / size;
    // Unflipped view column u samples original x = j + (u+½)·w/S − ½ (pixel-centre convention).
    const sourceX = (u: number): number => j + ((view.flipped ? size - 1 - u : u) + 0.5) * sx - 0.5;
    const sourceY = (v: number): number => i + (v + 0.5) * sy - 0.5;
    // Where every tap with non-zero weight (|x + ½ − centre| < reach) is inside the crop, a linear ramp is
    // reproduced: exactly when enlarging, within a quarter pixel when shrinking (PIL's stretched, sampled
    // anti-aliasing kernel is only nearly linear-exact). An off-by-one box would be off by a whole pixel.
    const rampTolerance = (scale: number): number => (scale <= 1 ? 2e-3 : 0.25);
    const interior = (u: number, scale: number, extent: number): boolean => {
      const centre = (u + 0.5) * scale;
      const reach = support(interpolation) * Math.max(scale, 1);
      return centre - reach + 0.5 >= 0 && centre + reach - 0.5 <= extent;
    };
    for (let v = 0; v < size; v++) {
      for (let u = 0; u < size; u++) {
        const uUnflipped = view.flipped ? size - 1 - u : u;
        if (interior(uUnflipped, sx, w)) assert.ok(Math.abs(at(0, v, u) - sourceX(u)) < rampTolerance(sx), `x at (${u},${v}): ${at(0, v, u)} vs ${sourceX(u)}`);
        if (interior(v, sy, h)) assert.ok(Math.abs(at(1, v, u) - sourceY(v)) < rampTolerance(sy), `y at (${u},${v}): ${at(1, v, u)} vs ${sourceY(v)}`);
      }
    }
    // Corners: top-left of the view is the box's (left or right, top) corner, within the filter's reach.
    const tolX = 0.5 * Math.max(sx, 1) + support(interpolation) * Math.max(sx, 1);
    const tolY = 0.5 * Math.max(sy, 1) + support(interpolation) * Math.max(sy, 1);
    const [firstX, lastX] = view.flipped ? [j + w - 1, j] : [j, j + w - 1];
    assert.ok(Math.abs(at(0, 0, 0) - firstX) <= tolX, `left corner x ${at(0, 0, 0)} vs ${firstX} (box ${JSON.stringify(view.box)})`);
    assert.ok(Math.abs(at(0, 0, size - 1) - lastX) <= tolX, `right corner x ${at(0, 0, size - 1)} vs ${lastX}`);
    assert.ok(Math.abs(at(1, 0, 0) - i) <= tolY && Math.abs(at(1, size - 1, 0) - (i + h - 1)) <= tolY, 'corner y');
  }), 60);
});

test('RandomResizedCrop: boxes lie inside the image and within the scale and ratio ranges, or are the fallback', () => {
  const arb = fc.record({
    width: fc.integer({ min: 1, max: 400 }), height: fc.integer({ min: 1, max: 400 }), seed: fc.integer(),
    scale: fc.tuple(fc.double({ min: 0.01, max: 1, noNaN: true }), fc.double({ min: 0.01, max: 1, noNaN: true })).map(([a, b]) => [Math.min(a, b), Math.max(a, b)] as const),
  });
  property(fc.property(arb, ({ width, height, seed, scale }) => {
    const { box, fallback } = sampleResizedCrop(createRng(seed), width, height, scale);
    assert.ok(box.i >= 0 && box.j >= 0 && box.h >= 1 && box.w >= 1 && box.i + box.h <= height && box.j + box.w <= width, JSON.stringify(box));
    if (fallback) {
      const ratio = width / height;
      const expectW = ratio > CROP_RATIO[1] ? Math.round(height * CROP_RATIO[1]) : width;
      const expectH = ratio < CROP_RATIO[0] ? Math.round(width / CROP_RATIO[0]) : height;
      assert.deepEqual(box, { i: Math.floor((height - expectH) / 2), j: Math.floor((width - expectW) / 2), h: expectH, w: expectW });
    } else {
      // w and h are rounded from exact values whose product and ratio are in range.
      const area = width * height;
      assert.ok((box.w + 0.5) * (box.h + 0.5) >= scale[0] * area - 1e-9 && (box.w - 0.5) * (box.h - 0.5) <= scale[1] * area + 1e-9, `area of ${JSON.stringify(box)}`);
      assert.ok((box.w + 0.5) / Math.max(box.h - 0.5, 1e-9) >= CROP_RATIO[0] - 1e-9 && (box.w - 0.5) / (box.h + 0.5) <= CROP_RATIO[1] + 1e-9, `ratio of ${JSON.stringify(box)}`);
    }
  }), 500);
  // An elongated image cannot fit any 3/4..4/3 crop: always the fallback, clamped to ratio 4/3.
  assert.deepEqual(sampleResizedCrop(createRng(1), 200, 10, [0.08, 1]), { box: { i: 0, j: 93, h: 10, w: 13 }, fallback: true });
});

const smallConfig: MultiCropConfig = { globalSize: 16, localSize: 8, nLocal: 3, globalScale: [0.2, 1], localScale: [0.08, 0.3], channels: 3 };

const randomImage = (seed: number, width: number, height: number, channels: 1 | 3): Image => {
  const rng = createRng(seed);
  return { width, height, channels, data: Uint8Array.from({ length: width * height * channels }, () => rng.int(0, 256)) };
};

test('views: same (seed, epoch, index) gives identical views; another index or epoch gives different ones', () => {
  property(fc.property(fc.integer(), fc.nat(1000), fc.nat(100000), (seed, epoch, index) => {
    const img = randomImage(seed, 24, 20, 3);
    const a = sampleViews(img, seed, epoch, index, smallConfig);
    const b = sampleViews(img, seed, epoch, index, smallConfig);
    assert.deepEqual(a, b);
    const otherIndex = sampleViews(img, seed, epoch, index + 1, smallConfig);
    const otherEpoch = sampleViews(img, seed, epoch + 1, index, smallConfig);
    assert.notDeepEqual(a.map((v) => v.pixels), otherIndex.map((v) => v.pixels));
    assert.notDeepEqual(a.map((v) => v.pixels), otherEpoch.map((v) => v.pixels));
  }), 40);
});

test('views: layout, sizes, channels and coordinates of the multi-crop', () => {
  property(fc.property(fc.integer(), fc.constantFrom(1 as const, 3 as const), fc.constantFrom(1 as const, 3 as const), fc.constantFrom('normalized' as const, 'pixel' as const),
    (seed, inputChannels, channels, coordMode) => {
      const img = randomImage(seed, 30, 22, inputChannels);
      const views = makeViews(img, createRng(seed), { ...smallConfig, channels, coordMode });
      assert.deepEqual(views.map((v) => v.transform), ['T1', 'T2', 'T3', 'T3', 'T3']);
      assert.deepEqual(views.map((v) => v.kind), ['global', 'global', 'local', 'local', 'local']);
      for (const v of views) {
        const size = v.kind === 'global' ? smallConfig.globalSize : smallConfig.localSize;
        assert.equal(v.size, size);
        assert.equal(v.channels, channels);
        assert.equal(v.pixels.length, channels * size * size);
        assert.ok(v.pixels.every(Number.isFinite));
        assert.deepEqual(v.coords, viewCoords(v.box, img.width, img.height, v.flipped, coordMode));
      }
    }), 40);
});

test('views: each global view is flipped about half the time', () => {
  const img = randomImage(5, 32, 32, 3);
  const cfg = { ...smallConfig, nLocal: 0 };
  let flips = 0;
  const runs = 400;
  for (let k = 0; k < runs; k++) flips += makeViews(img, createRng(k), cfg).filter((v) => v.flipped).length;
  assert.ok(Math.abs(flips / (2 * runs) - 0.5) < 0.08, `flip rate ${flips / (2 * runs)}`);
});

// --------------------------------------------------------------------------------------------- colour ops

const planar = (channels: 1 | 3, values: number[]): Planar => ({ channels, height: 1, width: values.length / channels, data: Float32Array.from(values) });
const unit = fc.double({ min: 0, max: 1, noNaN: true });

test('colour: HSV round trip, and neutral factors leave images unchanged', () => {
  property(fc.property(unit, unit, unit, (r, g, b) => {
    const [h, s, v] = rgbToHsv(r, g, b);
    assert.ok(h >= 0 && h < 1 && s >= 0 && s <= 1 && v === Math.max(r, g, b));
    const back = hsvToRgb(h, s, v);
    [r, g, b].forEach((x, k) => assert.ok(Math.abs(back[k] - x) < 1e-9, `${[r, g, b]} → ${back}`));
  }), 300);
  property(fc.property(fc.array(unit, { minLength: 3, maxLength: 30 }).filter((a) => a.length % 3 === 0), (values) => {
    const img = planar(3, values);
    for (const out of [adjustBrightness(img, 1), adjustSaturation(img, 1), adjustHue(img, 0)]) {
      out.data.forEach((v, k) => assert.ok(Math.abs(v - img.data[k]) < 1e-6));
    }
  }), 100);
  // Hue rotation by a third of a turn maps pure red to pure green; grey has no hue to rotate.
  adjustHue(planar(3, [1, 0, 0]), 1 / 3).data.forEach((v, k) => assert.ok(Math.abs(v - [0, 1, 0][k]) < 1e-6, `red → ${v} at ${k}`));
  assert.deepEqual(Array.from(adjustHue(planar(3, [0.5, 0.5, 0.5]), 0.25).data), [0.5, 0.5, 0.5]);
  assert.deepEqual(Array.from(solarize(planar(1, [0.2, 128 / 255, 0.9])).data).map((v) => Math.round(v * 255)), [51, 127, 26]);
});

test('blur keeps constant images constant; grey/colour conversion; normalisation constants', () => {
  property(fc.property(unit, fc.double({ min: 0.1, max: 2, noNaN: true }), (value, sigma) => {
    const img: Planar = { channels: 1, height: 7, width: 9, data: new Float32Array(63).fill(value) };
    gaussianBlur(img, sigma).data.forEach((v) => assert.ok(Math.abs(v - value) < 1e-6));
  }), 50);
  const grey: Image = { width: 2, height: 1, channels: 1, data: Uint8Array.from([10, 200]) };
  assert.deepEqual(Array.from(withChannels(grey, 3).data), [10, 10, 10, 200, 200, 200]);
  assert.deepEqual(Array.from(withChannels({ width: 1, height: 1, channels: 3, data: Uint8Array.from([255, 0, 0]) }, 1).data), [76]);
  assert.ok(Math.abs(GREY_MEAN - 0.449) < 1e-12 && Math.abs(GREY_STD - 0.226) < 1e-12);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import * as E from 'fp-ts/lib/Either.js';
import pngjs from 'pngjs';
import { property } from './prop.ts';
import {
  blankImage,
  cellBounds,
  cellCentre,
  decodePng,
  axisLabel,
  drawAttention,
  drawCurves,
  drawMatches,
  encodePng,
  matchColour,
  matchLayout,
  pixelAt,
  viewToRgb,
  writePng,
  type CellGrid,
  type Rgb,
  type RgbImage,
} from '../clove/pictures.ts';

const imagenetMean = [0.485, 0.456, 0.406];
const imagenetStd = [0.229, 0.224, 0.225];

const sameColour = (a: Rgb, b: Rgb): boolean => a[0] === b[0] && a[1] === b[1] && a[2] === b[2];
const luminance = (c: Rgb): number => 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];

/** A gray view: gray (r = g = b) survives grid blending, and no match colour is gray, so lines are identifiable. */
const grayViewArb = (sizes: number[]) =>
  fc.tuple(fc.constantFrom(...sizes), fc.integer({ min: 0, max: 255 })).map(([size, level]) => blankImage(size, size, [level, level, level]));
const gridArb = fc.record({ rows: fc.integer({ min: 1, max: 7 }), cols: fc.integer({ min: 1, max: 7 }) });

test('viewToRgb inverts the normalisation of a view (RGB and grayscale)', () => {
  property(
    fc.property(fc.integer({ min: 1, max: 12 }), fc.constantFrom(1 as const, 3 as const), fc.nat(), (size, channels, seed) => {
      const bytes = Uint8Array.from({ length: channels * size * size }, (_, i) => (seed + i * 97) % 256);
      const mean = channels === 3 ? imagenetMean : [0.5];
      const std = channels === 3 ? imagenetStd : [0.25];
      const plane = size * size;
      const normalized = Float32Array.from(bytes, (b, i) => (b / 255 - mean[Math.floor(i / plane)]!) / std[Math.floor(i / plane)]!);
      const img = viewToRgb(normalized, channels, size, mean, std);
      assert.deepEqual([img.width, img.height, img.channels, img.data.length], [size, size, 3, plane * 3]);
      for (let p = 0; p < plane; p++) {
        for (let c = 0; c < 3; c++) assert.equal(img.data[p * 3 + c], bytes[(channels === 1 ? 0 : c) * plane + p]);
      }
    }),
    100,
  );
  // Out-of-range values clamp instead of wrapping around.
  const clamped = viewToRgb(Float32Array.from([100, -100, Number.NaN]), 3, 1, imagenetMean, imagenetStd);
  assert.deepEqual([...clamped.data], [255, 0, 0]);
  assert.throws(() => viewToRgb(new Float32Array(5), 3, 2, imagenetMean, imagenetStd), /3×2×2/);
});

test('drawMatches: output size is both scaled views plus the gap', () => {
  property(
    fc.property(grayViewArb([4, 8, 16, 32]), grayViewArb([4, 8, 16]), gridArb, gridArb, fc.integer({ min: 1, max: 4 }), fc.nat(12), (a, b, ga, gb, scale, gap) => {
      const out = drawMatches(a, b, ga, gb, [], { scale, gap });
      assert.equal(out.width, (a.width + b.width) * scale + gap);
      assert.equal(out.height, Math.max(a.height, b.height) * scale);
      assert.equal(out.data.length, out.width * out.height * 3);
    }),
    50,
  );
  const small = blankImage(32, 32);
  assert.equal(matchLayout(small, blankImage(16, 16)).scale, 8, 'a 32-px view is scaled up to 256 px');
});

test('drawMatches: a match line runs from one cell centre to the other', () => {
  property(
    fc.property(
      grayViewArb([8, 16, 32]),
      grayViewArb([8, 16]),
      gridArb,
      gridArb,
      fc.integer({ min: 1, max: 4 }),
      fc.nat(),
      fc.nat(),
      fc.nat(10),
      (a, b, ga, gb, scale, iSeed, jSeed, colourIndex) => {
        const i = iSeed % (ga.rows * ga.cols);
        const j = jSeed % (gb.rows * gb.cols);
        // Earlier pairs are drawn first (they use other colours); only the last one is measured.
        const pairs: Array<[number, number]> = [...Array.from({ length: colourIndex }, (): [number, number] => [0, 0]), [i, j]];
        const out = drawMatches(a, b, ga, gb, pairs, { scale, gap: 6 });
        const colour = matchColour(colourIndex);
        const offsetB = a.width * scale + 6;
        // Cell centres computed here from first principles, not with the module's own helper.
        const centre = (grid: CellGrid, cell: number, size: number): [number, number] => [
          Math.floor((((cell % grid.cols) + 0.5) * size) / grid.cols),
          Math.floor(((Math.floor(cell / grid.cols) + 0.5) * size) / grid.rows),
        ];
        const [xa, ya] = centre(ga, i, a.width * scale);
        const [xbLocal, yb] = centre(gb, j, b.width * scale);
        const xb = offsetB + xbLocal;
        assert.ok(sameColour(pixelAt(out, xa, ya), colour), 'line must start at the centre of cell i in view A');
        assert.ok(sameColour(pixelAt(out, xb, yb), colour), 'line must end at the centre of cell j in view B');
        // The pixels of that colour connect the two centres (8-connected) and stay within the line's box, widened by
        // the end dots' radius (2).
        const onLine = (x: number, y: number) => x >= 0 && y >= 0 && x < out.width && y < out.height && sameColour(pixelAt(out, x, y), colour);
        const seen = new Set<number>([ya * out.width + xa]);
        const queue: Array<[number, number]> = [[xa, ya]];
        while (queue.length > 0) {
          const [x, y] = queue.pop()!;
          for (let dy = -1; dy <= 1; dy++) {
            for (let dx = -1; dx <= 1; dx++) {
              const key = (y + dy) * out.width + (x + dx);
              if (!seen.has(key) && onLine(x + dx, y + dy)) {
                seen.add(key);
                queue.push([x + dx, y + dy]);
              }
            }
          }
        }
        assert.ok(seen.has(yb * out.width + xb), 'the line must connect the two centres');
        for (const key of seen) {
          const x = key % out.width;
          const y = Math.floor(key / out.width);
          assert.ok(x >= Math.min(xa, xb) - 2 && x <= Math.max(xa, xb) + 2 && y >= Math.min(ya, yb) - 2 && y <= Math.max(ya, yb) + 2);
        }
      },
    ),
    150,
  );
});

test('by default the match and attention pictures are at least 512 px wide, whatever the view size', () => {
  for (const size of [16, 32, 64, 96, 224]) {
    const view = blankImage(size, size);
    const grid = { rows: 4, cols: 4 };
    assert.ok(drawMatches(view, view, grid, grid, [[0, 5]]).width >= 512, `matches of ${size}-px views`);
    assert.ok(drawAttention(view, grid, 0, new Float32Array(16)).width >= 512, `attention over a ${size}-px view`);
  }
});

test('drawCurves: one panel per curve, any points (none, one, non-finite), the running mean drawn over the raw values', () => {
  property(
    fc.property(
      fc.array(fc.array(fc.oneof(fc.double({ min: -1e6, max: 1e6, noNaN: true }), fc.constant(Number.NaN)), { maxLength: 60 }), { minLength: 1, maxLength: 3 }),
      (series) => {
        const curves = series.map((ys, k) => ({ title: `curve ${k}`, points: ys.map((y, i) => [i + 1, y] as const) }));
        const out = drawCurves(curves, 600, 150);
        assert.deepEqual([out.width, out.height], [600, 150 * curves.length]);
        series.forEach((ys, k) => {
          if (!ys.some(Number.isFinite)) return;
          const bright = matchColour(k);
          const panel = { top: 150 * k, bottom: 150 * (k + 1) };
          let seen = false;
          for (let y = panel.top; y < panel.bottom && !seen; y++) for (let x = 0; x < out.width && !seen; x++) seen = pixelAt(out, x, y).join() === bright.join();
          assert.ok(seen, `curve ${k}'s running mean is drawn in its panel`);
        });
      },
    ),
    30,
  );
  assert.deepEqual([0, 1234.5678, -0.5, 1e-5, 3e7].map(axisLabel), ['0', '1230', '-0.5', '1.0e-5', '3.0e+7']);
});

test('match colours are distinct and never gray', () => {
  const colours = Array.from({ length: 48 }, (_, k) => matchColour(k));
  assert.equal(new Set(colours.map((c) => c.join(','))).size, colours.length);
  for (const c of colours) assert.ok(!(c[0] === c[1] && c[1] === c[2]), `colour ${c} is gray`);
  const view = blankImage(8, 8, [128, 128, 128]);
  assert.throws(() => drawMatches(view, view, { rows: 2, cols: 2 }, { rows: 2, cols: 2 }, [[4, 0]]), /outside the grids/);
});

test('drawAttention: size, hotter cells are brighter, and the chosen cell is framed', () => {
  property(
    fc.property(
      grayViewArb([8, 16, 32]),
      gridArb,
      fc.integer({ min: 1, max: 4 }),
      fc.nat(),
      fc.array(fc.float({ min: 0, max: 1, noNaN: true }), { minLength: 49, maxLength: 49 }),
      (view, grid, scale, cellSeed, rawWeights) => {
        const cells = grid.rows * grid.cols;
        const cell = cellSeed % cells;
        const weights = Float32Array.from(rawWeights.slice(0, cells));
        const out = drawAttention(view, grid, cell, weights, { scale });
        assert.deepEqual([out.width, out.height], [view.width * scale, view.height * scale]);
        const centreColour = (k: number) => {
          const [x, y] = cellCentre(grid, k, out.width, out.height);
          return pixelAt(out, x, y);
        };
        // Only cells big enough to have an interior centre away from the frame and the grid lines are compared.
        const interior = (k: number) => {
          const { x0, x1, y0, y1 } = cellBounds(grid, k, out.width, out.height);
          return k !== cell && x1 - x0 >= 6 && y1 - y0 >= 6;
        };
        const candidates = Array.from({ length: cells }, (_, k) => k).filter(interior);
        const lo = Math.min(...weights);
        const hi = Math.max(...weights);
        for (const p of candidates) {
          for (const q of candidates) {
            // Per-channel rounding can reorder colours whose weights differ by under ~1% of the range (an
            // invisible, sub-grey-level difference), so only clearly different weights are compared.
            if (weights[p]! - weights[q]! > 0.02 * (hi - lo)) assert.ok(luminance(centreColour(p)) >= luminance(centreColour(q)), `cell ${p} (w=${weights[p]}) is not brighter than cell ${q} (w=${weights[q]})`);
          }
        }
        const { x0, y0, x1, y1 } = cellBounds(grid, cell, out.width, out.height);
        assert.ok(sameColour(pixelAt(out, x0, y0), [0, 255, 64]) && sameColour(pixelAt(out, x1 - 1, y1 - 1), [0, 255, 64]));
      },
    ),
    100,
  );
  // With a clear winner, the hottest cell is the brightest thing in the picture's cell interiors.
  const grid: CellGrid = { rows: 3, cols: 3 };
  const out = drawAttention(blankImage(24, 24, [100, 100, 100]), grid, 0, Float32Array.from([0, 0, 0, 0, 1, 0, 0, 0, 0]), { scale: 2 });
  const [cx, cy] = cellCentre(grid, 4, out.width, out.height);
  const [ox, oy] = cellCentre(grid, 8, out.width, out.height);
  assert.ok(luminance(pixelAt(out, cx, cy)) > luminance(pixelAt(out, ox, oy)) + 50);
  assert.throws(() => drawAttention(blankImage(8, 8), grid, 0, new Float32Array(4)), /4 weights/);
});

const imageArb: fc.Arbitrary<RgbImage> = fc
  .tuple(fc.integer({ min: 1, max: 24 }), fc.integer({ min: 1, max: 24 }))
  .chain(([w, h]) => fc.uint8Array({ minLength: w * h * 3, maxLength: w * h * 3 }).map((data) => ({ width: w, height: h, channels: 3 as const, data })));

test('PNG: encoded images decode (with pngjs) to the same pixels', () => {
  property(
    fc.property(imageArb, (img) => {
      const bytes = encodePng(img);
      const independent = pngjs.PNG.sync.read(Buffer.from(bytes));
      assert.deepEqual([independent.width, independent.height], [img.width, img.height]);
      for (let p = 0; p < img.width * img.height; p++) {
        assert.deepEqual([...independent.data.subarray(p * 4, p * 4 + 3)], [...img.data.subarray(p * 3, p * 3 + 3)]);
      }
      assert.deepEqual(decodePng(bytes), E.right({ ...img, data: new Uint8Array(img.data) }));
    }),
    100,
  );
  assert.ok(E.isLeft(decodePng(Uint8Array.from([1, 2, 3]))));
});

test('writePng writes a file that decodes to the picture', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clove-pictures-'));
  try {
    const view = viewToRgb(Float32Array.from({ length: 3 * 16 * 16 }, (_, i) => Math.sin(i)), 3, 16, imagenetMean, imagenetStd);
    const img = drawMatches(view, view, { rows: 2, cols: 2 }, { rows: 2, cols: 2 }, [[0, 3], [1, 2]]);
    const file = path.join(dir, 'matches.png');
    assert.deepEqual(writePng(file, img), E.right(undefined));
    const back = decodePng(fs.readFileSync(file));
    assert.ok(E.isRight(back));
    assert.deepEqual(back.right, img);
    assert.ok(E.isLeft(writePng(path.join(dir, 'missing', 'x.png'), img)));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// Properties of the evaluation metrics, the ridge probe, the paired bootstrap and the protocols (clove/eval/).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as E from 'fp-ts/lib/Either.js';
import { property } from './prop.ts';
import { accumulateBlock, choleskyInPlace, choleskySolve, createNormalEquations, symmetrise } from '../clove/eval/linalg.ts';
import { buildRidgeProblem, predictRidge, RIDGE_LAMBDAS, solveRidge } from '../clove/eval/ridge.ts';
import {
  argmaxChannels,
  averagePrecision,
  averagePrecisionFromMatches,
  confusionMatrix,
  decodeCentreDetections,
  IOU50,
  CENTRE4PX,
  matchDetections,
  rankPairs,
  aucFromRanked,
  rocAuc,
  segmentationScores,
  standardisedUnitRows,
  upsampleBilinear,
  type Box,
  type Detection,
  type GroundTruthItem,
} from '../clove/eval/metrics.ts';
import { pairedBootstrapDelta, percentileOfSorted, splitmix32 } from '../clove/eval/bootstrap.ts';
import { compareModels, dlPair, fmCls, fmDet, fmSeg, roundHalfEven, samplePairs, type DetSplit, type SegSplit } from '../clove/eval/protocols.ts';

const close = (actual: number, expected: number, tolerance: number, what: string): void =>
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual} vs ${expected} (tolerance ${tolerance})`);

const gaussianSource = (seed: number): (() => number) => {
  const uniform = splitmix32(seed);
  return () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
};

// ------------------------------------------------------------------------------------------- segmentation

test('mIoU is 1 for perfect predictions when every class occurs', () => {
  property(
    fc.property(fc.integer({ min: 2, max: 12 }), fc.integer({ min: 0, max: 2 ** 31 - 1 }), (classes, seed) => {
      const random = splitmix32(seed);
      const labels = Uint8Array.from({ length: 200 }, (_, p) => (p < classes ? p : Math.floor(random() * classes)));
      const scores = segmentationScores(confusionMatrix(labels, labels, classes), classes);
      assert.equal(scores.miou, 1);
      assert.equal(scores.fgMiou, 1);
      assert.equal(scores.bgIou, 1);
    }),
    50,
  );
});

test('mIoU matches a hand-computed 2-class case and skips ignored pixels', () => {
  // truth 0 0 1 1 (+ one ignored pixel), prediction 0 1 1 1 (+ anything): confusion [[1, 1], [0, 2]].
  const confusion = confusionMatrix([0, 1, 1, 1, 0], [0, 0, 1, 1, 255], 2);
  assert.deepEqual(Array.from(confusion), [1, 1, 0, 2]);
  const scores = segmentationScores(confusion, 2);
  close(scores.bgIou, 1 / 2, 1e-15, 'IoU background = 1 / (2 + 1 − 1)');
  close(scores.perClass[1], 2 / 3, 1e-15, 'IoU class 1 = 2 / (2 + 3 − 2)');
  close(scores.miou, 7 / 12, 1e-15, 'mIoU');
  close(scores.fgMiou, 2 / 3, 1e-15, 'foreground mIoU');
});

// ------------------------------------------------------------------------------------------- upsampling

test('bilinear upsampling of a constant is that constant', () => {
  property(
    fc.property(
      fc.integer({ min: 1, max: 6 }),
      fc.integer({ min: 1, max: 6 }),
      fc.integer({ min: 1, max: 3 }),
      fc.integer({ min: 1, max: 8 }),
      fc.double({ min: -1e3, max: 1e3, noNaN: true }),
      (h, w, channels, factor, value) => {
        const out = upsampleBilinear(new Float64Array(h * w * channels).fill(value), h, w, channels, factor);
        assert.equal(out.length, h * factor * w * factor * channels);
        for (const v of out) close(v, value, 1e-12 * Math.max(1, Math.abs(value)), 'upsampled constant');
      },
    ),
    100,
  );
});

test('bilinear ×4 upsampling of a 2×2 map matches the hand-computed align_corners=False result', () => {
  // Output o samples (o + 0.5)/4 − 0.5, clamped to [0, 1]: weights on the second input row/column are
  // 0, 0, 1/8, 3/8, 5/8, 7/8, 1, 1. With input [[0, 1], [2, 3]], out[y][x] = 2·wy + wx.
  const weights = [0, 0, 1 / 8, 3 / 8, 5 / 8, 7 / 8, 1, 1];
  const out = upsampleBilinear([0, 1, 2, 3], 2, 2, 1, 4);
  const expected = [
    [0, 0, 0.125, 0.375, 0.625, 0.875, 1, 1],
    [0, 0, 0.125, 0.375, 0.625, 0.875, 1, 1],
    [0.25, 0.25, 0.375, 0.625, 0.875, 1.125, 1.25, 1.25],
    [0.75, 0.75, 0.875, 1.125, 1.375, 1.625, 1.75, 1.75],
    [1.25, 1.25, 1.375, 1.625, 1.875, 2.125, 2.25, 2.25],
    [1.75, 1.75, 1.875, 2.125, 2.375, 2.625, 2.75, 2.75],
    [2, 2, 2.125, 2.375, 2.625, 2.875, 3, 3],
    [2, 2, 2.125, 2.375, 2.625, 2.875, 3, 3],
  ];
  for (let y = 0; y < 8; y++) {
    for (let x = 0; x < 8; x++) {
      assert.equal(expected[y][x], 2 * weights[y] + weights[x]);
      close(out[y * 8 + x], expected[y][x], 1e-15, `pixel (${y}, ${x})`);
    }
  }
  assert.deepEqual(Array.from(argmaxChannels([1, 3, 3, 0, -1, -2], 3)), [1, 0]);
});

// ------------------------------------------------------------------------------------------- ROC-AUC

const mannWhitneyAuc = (scores: readonly number[], labels: readonly number[]): number => {
  let u = 0;
  let pos = 0;
  let neg = 0;
  for (let i = 0; i < scores.length; i++) {
    if (labels[i] === 1) pos++;
    else neg++;
    if (labels[i] !== 1) continue;
    for (let j = 0; j < scores.length; j++) {
      if (labels[j] !== 0) continue;
      u += scores[i] > scores[j] ? 1 : scores[i] === scores[j] ? 0.5 : 0;
    }
  }
  return u / (pos * neg);
};

const labelledScores = fc
  .array(fc.tuple(fc.integer({ min: -5, max: 5 }), fc.boolean()), { minLength: 2, maxLength: 60 })
  .filter((pairs) => pairs.some(([, l]) => l) && pairs.some(([, l]) => !l));

test('AUC equals the Mann-Whitney U formula (ties at half weight), and is 1 / 0.5 for perfect / constant scores', () => {
  property(
    fc.property(labelledScores, (pairs) => {
      const scores = pairs.map(([s]) => s / 3);
      const labels = Uint8Array.from(pairs, ([, l]) => (l ? 1 : 0));
      close(rocAuc(scores, labels), mannWhitneyAuc(scores, Array.from(labels)), 1e-12, 'AUC vs U/(n⁺n⁻)');
      assert.equal(rocAuc(scores.map(() => 0.25), labels), 0.5);
      const perfect = Array.from(labels, (l, k) => (l === 1 ? 10 + k : -10 - k));
      assert.equal(rocAuc(perfect, labels), 1);
    }),
    200,
  );
});

test('weighted AUC equals the AUC of explicitly repeated pairs', () => {
  property(
    fc.property(labelledScores, fc.integer({ min: 0, max: 2 ** 31 - 1 }), (pairs, seed) => {
      const random = splitmix32(seed);
      const weights = Float64Array.from(pairs, (_, k) => (k === 0 ? 1 : Math.floor(random() * 3)));
      const scores = pairs.map(([s]) => s);
      const labels = Uint8Array.from(pairs, ([, l]) => (l ? 1 : 0));
      const repeatedScores: number[] = [];
      const repeatedLabels: number[] = [];
      pairs.forEach(([s, l], k) => {
        for (let r = 0; r < weights[k]; r++) {
          repeatedScores.push(s);
          repeatedLabels.push(l ? 1 : 0);
        }
      });
      const expected = rocAuc(repeatedScores, Uint8Array.from(repeatedLabels));
      const actual = aucFromRanked(rankPairs(scores, labels), weights);
      if (Number.isNaN(expected)) assert.ok(Number.isNaN(actual));
      else close(actual, expected, 1e-12, 'weighted AUC');
    }),
    100,
  );
});

// ------------------------------------------------------------------------------------------- detection AP

/** Images with non-overlapping ground-truth boxes (one per 16-px tile), all easy unless `difficult`. */
const groundTruthArb = fc.array(
  fc.array(
    fc.record({
      tile: fc.integer({ min: 0, max: 15 }),
      size: fc.integer({ min: 4, max: 14 }),
      cls: fc.integer({ min: 0, max: 2 }),
    }),
    { minLength: 1, maxLength: 6 },
  ),
  { minLength: 1, maxLength: 5 },
).map((images) =>
  images.map((items) => {
    const seen = new Set<number>();
    return items
      .filter(({ tile }) => !seen.has(tile) && seen.add(tile) !== undefined)
      .map(({ tile, size, cls }): GroundTruthItem => {
        const x0 = (tile % 4) * 16;
        const y0 = Math.floor(tile / 4) * 16;
        return { box: [x0, y0, x0 + size, y0 + size], cls, visible: 1 };
      });
  }),
);

const perfectDetections = (gt: readonly (readonly GroundTruthItem[])[], seed: number): Detection[] => {
  const random = splitmix32(seed);
  return gt.flatMap((items, image) => items.map((g) => ({ image, cls: g.cls, score: 0.5 + random() / 2, box: g.box })));
};

test('AP is 1 for perfect detections, class-wise and class-agnostic, by IoU and by centre distance', () => {
  property(
    fc.property(groundTruthArb, fc.integer({ min: 0, max: 2 ** 31 - 1 }), (gt, seed) => {
      const dets = perfectDetections(gt, seed);
      assert.equal(averagePrecision(dets, gt, undefined, IOU50), 1);
      assert.equal(averagePrecision(dets, gt, undefined, CENTRE4PX), 1);
      for (let c = 0; c < 3; c++) {
        const ap = averagePrecision(dets, gt, c, IOU50);
        const present = gt.some((items) => items.some((g) => g.cls === c));
        if (present) assert.equal(ap, 1);
        else assert.ok(Number.isNaN(ap), 'AP without ground truth of the class is NaN');
      }
    }),
    100,
  );
});

test('a false positive scored above all true positives lowers AP', () => {
  property(
    fc.property(groundTruthArb, fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.integer({ min: 0, max: 4 }), (gt, seed, drop) => {
      // Drop some detections so AP starts below 1 as well as at 1.
      const dets = perfectDetections(gt, seed).filter((_, k) => k % 5 !== drop || k === 0);
      const before = averagePrecision(dets, gt, undefined, IOU50);
      const falsePositive: Detection = { image: 0, cls: 0, score: 2, box: [60, 60, 64, 64] };
      const after = averagePrecision([...dets, falsePositive], gt, undefined, IOU50);
      assert.ok(before > 0);
      assert.ok(after < before, `AP ${before} → ${after}`);
    }),
    100,
  );
});

test('difficult items: matching one is neither TP nor FP, missing one costs no recall', () => {
  property(
    fc.property(groundTruthArb, fc.integer({ min: 0, max: 2 ** 31 - 1 }), (gt, seed) => {
      const random = splitmix32(seed);
      // Make some items difficult (but keep at least one easy item).
      const marked = gt.map((items, image) =>
        items.map((g, k): GroundTruthItem => ({ ...g, visible: image === 0 && k === 0 ? 1 : random() < 0.4 ? random() * 0.49 : 0.5 + random() / 2 })),
      );
      const easyOnly = perfectDetections(marked, seed).filter((d) => {
        const g = marked[d.image].find((item) => item.box === d.box);
        return g !== undefined && g.visible >= 0.5;
      });
      assert.equal(averagePrecision(easyOnly, marked, undefined, IOU50), 1, 'undetected difficult items do not count');
      // Two hits per difficult item, scored above everything: the second one would be a duplicate.
      const difficultHits: Detection[] = marked.flatMap((items, image) =>
        items
          .filter((g) => g.visible < 0.5)
          .flatMap((g) => [5, 4].map((base) => ({ image, cls: g.cls, score: base + random(), box: g.box }))),
      );
      const withHits = [...easyOnly, ...difficultHits];
      assert.equal(averagePrecision(withHits, marked, undefined, IOU50), 1, 'hits on difficult items are neither TP nor FP');
      assert.equal(averagePrecision(withHits, marked, undefined, CENTRE4PX), 1, 'same rule for centre-AP');
      // Against the same items marked easy, the duplicate hits are false positives ranked above the easy hits.
      const allEasy = marked.map((items) => items.map((g) => ({ ...g, visible: 1 })));
      if (difficultHits.length > 0) assert.ok(averagePrecision(withHits, allEasy, undefined, IOU50) < 1);
    }),
    100,
  );
});

test('weighted AP equals the AP of explicitly repeated images (what the bootstrap relies on)', () => {
  property(
    fc.property(groundTruthArb, fc.integer({ min: 0, max: 2 ** 31 - 1 }), (gt, seed) => {
      const random = splitmix32(seed);
      // Noisy detections: jittered boxes, random classes and scores, some pure false positives.
      const dets: Detection[] = gt.flatMap((items, image) => [
        ...items.map((g): Detection => {
          const j = Math.floor(random() * 5) - 2;
          return { image, cls: random() < 0.8 ? g.cls : 2, score: random(), box: [g.box[0] + j, g.box[1], g.box[2] + j, g.box[3]] };
        }),
        { image, cls: 0, score: random(), box: [1, 1, 9, 9] as Box },
      ]);
      const weights = Float64Array.from(gt, () => Math.floor(random() * 3));
      weights[0] = Math.max(weights[0], 1);
      const repeatedGt: GroundTruthItem[][] = [];
      const repeatedDets: Detection[] = [];
      gt.forEach((items, image) => {
        for (let r = 0; r < weights[image]; r++) {
          const copy = repeatedGt.length;
          repeatedGt.push([...items]);
          for (const d of dets) if (d.image === image) repeatedDets.push({ ...d, image: copy });
        }
      });
      for (const cls of [undefined, 0, 1]) {
        for (const rule of [IOU50, CENTRE4PX]) {
          const weighted = averagePrecisionFromMatches(matchDetections(dets, gt, cls, rule), weights);
          const explicit = averagePrecision(repeatedDets, repeatedGt, cls, rule);
          if (Number.isNaN(explicit)) assert.ok(Number.isNaN(weighted));
          else close(weighted, explicit, 1e-12, `AP cls=${String(cls)} rule=${rule.kind}`);
        }
      }
    }),
    100,
  );
});

test('centre decoding keeps 3×3 local maxima, the top K by score, and clips sizes', () => {
  property(
    fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.constantFrom(8, 16), (seed, grid) => {
      const random = splitmix32(seed);
      const classes = 3;
      const heat = Float64Array.from({ length: grid * grid * classes }, () => random());
      const size = Float64Array.from({ length: grid * grid * 2 }, () => random() * 1.4 - 0.2);
      const stride = 64 / grid;
      const dets = decodeCentreDetections(heat, size, grid, grid, classes, 7, { stride, canvas: 64, topK: 10, minSize: 0.02, maxSize: 1 });
      assert.equal(dets.length, 10);
      for (let k = 0; k < dets.length; k++) {
        const d = dets[k];
        if (k > 0) assert.ok(dets[k - 1].score >= d.score);
        const cx = (d.box[0] + d.box[2]) / 2;
        const cy = (d.box[1] + d.box[3]) / 2;
        const j = Math.round((cx - stride / 2) / stride);
        const i = Math.round((cy - stride / 2) / stride);
        close(cx, stride * j + stride / 2, 1e-9, 'box centred on a cell centre (x)');
        close(cy, stride * i + stride / 2, 1e-9, 'box centred on a cell centre (y)');
        assert.equal(d.image, 7);
        assert.equal(d.score, heat[(i * grid + j) * classes + d.cls]);
        for (let di = -1; di <= 1; di++) {
          for (let dj = -1; dj <= 1; dj++) {
            const ii = i + di;
            const jj = j + dj;
            if (ii >= 0 && ii < grid && jj >= 0 && jj < grid) assert.ok(heat[(ii * grid + jj) * classes + d.cls] <= d.score);
          }
        }
        const w = d.box[2] - d.box[0];
        const h = d.box[3] - d.box[1];
        close(w, Math.min(Math.max(size[(i * grid + j) * 2], 0.02), 1) * 64, 1e-9, 'width');
        close(h, Math.min(Math.max(size[(i * grid + j) * 2 + 1], 0.02), 1) * 64, 1e-9, 'height');
      }
      // No local maximum outside the returned set scores above the lowest returned one.
      const lowest = dets[dets.length - 1].score;
      let betterPeaks = 0;
      for (let i = 0; i < grid; i++) {
        for (let j = 0; j < grid; j++) {
          for (let c = 0; c < classes; c++) {
            const v = heat[(i * grid + j) * classes + c];
            let peak = true;
            for (let di = -1; di <= 1; di++) {
              for (let dj = -1; dj <= 1; dj++) {
                const ii = i + di;
                const jj = j + dj;
                if (ii >= 0 && ii < grid && jj >= 0 && jj < grid && heat[(ii * grid + jj) * classes + c] > v) peak = false;
              }
            }
            if (peak && v > lowest) betterPeaks++;
          }
        }
      }
      assert.equal(betterPeaks, 9);
    }),
    50,
  );
});

// ------------------------------------------------------------------------------------------- linear algebra and ridge

test('Cholesky solves random SPD systems and block accumulation equals the direct Gram matrix', () => {
  property(
    fc.property(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 600 }), fc.integer({ min: 0, max: 2 ** 31 - 1 }), (p, rows, seed) => {
      const normal = gaussianSource(seed);
      const x = Float64Array.from({ length: rows * p }, normal);
      const t = Float64Array.from({ length: rows * 2 }, normal);
      const eq = createNormalEquations(p, 2);
      for (let first = 0; first < rows; first += 128) {
        const count = Math.min(128, rows - first);
        const block = new Float64Array(p * count);
        for (let r = 0; r < count; r++) for (let c = 0; c < p; c++) block[c * count + r] = x[(first + r) * p + c];
        accumulateBlock(eq, block, t.subarray(first * 2, (first + count) * 2), count);
      }
      symmetrise(eq);
      assert.equal(eq.rows, rows);
      for (let a = 0; a < p; a++) {
        for (let b = 0; b < p; b++) {
          let direct = 0;
          for (let r = 0; r < rows; r++) direct += x[r * p + a] * x[r * p + b];
          close(eq.gram[a * p + b], direct, 1e-9 * rows, `gram[${a},${b}]`);
        }
      }
      const spd = Float64Array.from(eq.gram);
      for (let d = 0; d < p; d++) spd[d * p + d] += 1;
      const factor = Float64Array.from(spd);
      assert.equal(choleskyInPlace(factor, p), -1);
      const solution = choleskySolve(factor, p, eq.cross, 2);
      for (let a = 0; a < p; a++) {
        for (let k = 0; k < 2; k++) {
          let lhs = 0;
          for (let b = 0; b < p; b++) lhs += spd[a * p + b] * solution[b * 2 + k];
          close(lhs, eq.cross[a * 2 + k], 1e-8 * (1 + Math.abs(eq.cross[a * 2 + k])), `(A x)[${a},${k}]`);
        }
      }
    }),
    60,
  );
});

test('ridge recovers a linear map from noiseless data, whatever the feature offsets and scales', () => {
  property(
    fc.property(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 0, max: 2 ** 31 - 1 }), (dim, targets, seed) => {
      const normal = gaussianSource(seed);
      const rows = 300 + dim * 10; // crosses the 256-row block boundary of the accumulation
      const offsets = Array.from({ length: dim }, () => normal() * 1000);
      const scales = Array.from({ length: dim }, () => Math.exp(normal() * 3));
      const weights = Array.from({ length: dim * targets }, normal);
      const bias = Array.from({ length: targets }, () => normal() * 10);
      const makeRows = (count: number): { x: Float32Array; t: Float64Array } => {
        const x = Float32Array.from({ length: count * dim }, (_, k) => offsets[k % dim] + scales[k % dim] * normal());
        const t = new Float64Array(count * targets);
        for (let r = 0; r < count; r++) {
          for (let k = 0; k < targets; k++) {
            let v = bias[k];
            for (let c = 0; c < dim; c++) v += x[r * dim + c] * weights[c * targets + k];
            t[r * targets + k] = v;
          }
        }
        return { x, t };
      };
      const train = makeRows(rows);
      const test = makeRows(50);
      const problem = buildRidgeProblem({ data: train.x, rows, dim }, { data: train.t, targets });
      const predicted = predictRidge(solveRidge(problem, 1e-10), { data: test.x, rows: 50, dim });
      let scale = 0;
      for (const v of test.t) scale = Math.max(scale, Math.abs(v));
      for (let k = 0; k < predicted.length; k++) close(predicted[k], test.t[k], 1e-5 * scale + 1e-6, `prediction ${k}`);
      // The bias is not shrunk: under a huge λ every prediction tends to the train target mean.
      const flat = predictRidge(solveRidge(problem, 1e9), { data: test.x, rows: 50, dim });
      for (let k = 0; k < targets; k++) {
        let mean = 0;
        for (let r = 0; r < rows; r++) mean += train.t[r * targets + k];
        mean /= rows;
        for (let r = 0; r < 50; r++) close(flat[r * targets + k], mean, 1e-6 * scale + 1e-6, `shrunk prediction ${r},${k}`);
      }
    }),
    40,
  );
});

test('ridge left-out rows (keep mask) are the same as never having had them', () => {
  const normal = gaussianSource(42);
  const rows = 40;
  const dim = 3;
  const x = Float32Array.from({ length: rows * dim }, normal);
  const t = Float64Array.from({ length: rows }, normal);
  const keep = Uint8Array.from({ length: rows }, (_, r) => (r % 3 === 0 ? 0 : 1));
  const kept = [...Array(rows).keys()].filter((r) => keep[r] === 1);
  const masked = solveRidge(buildRidgeProblem({ data: x, rows, dim }, { data: t, targets: 1 }, keep), 1e-2);
  const subset = solveRidge(
    buildRidgeProblem(
      { data: Float32Array.from(kept.flatMap((r) => Array.from(x.subarray(r * dim, (r + 1) * dim)))), rows: kept.length, dim },
      { data: Float64Array.from(kept.map((r) => t[r])), targets: 1 },
    ),
    1e-2,
  );
  for (let k = 0; k < masked.weights.length; k++) close(masked.weights[k], subset.weights[k], 1e-12, `weight ${k}`);
});

// ------------------------------------------------------------------------------------------- bootstrap

test('the paired bootstrap CI contains the point estimate and shrinks with more units', () => {
  property(
    fc.property(fc.integer({ min: 40, max: 120 }), fc.integer({ min: 0, max: 2 ** 31 - 1 }), (units, seed) => {
      const random = splitmix32(seed);
      const a = Float64Array.from({ length: units }, () => (random() < 0.7 ? 1 : 0));
      const b = Float64Array.from({ length: units }, () => (random() < 0.6 ? 1 : 0));
      if (a.every((v, k) => v === b[k])) return; // Δ is 0 on every resample: no spread to shrink
      const accuracy = (correct: Float64Array) => (weights: Float64Array): number => {
        let hits = 0;
        let total = 0;
        for (let k = 0; k < correct.length; k++) {
          hits += weights[k] * correct[k % correct.length];
          total += weights[k];
        }
        return hits / total;
      };
      const options = { resamples: 1000, seed: 7, level: 0.95 };
      const small = pairedBootstrapDelta(units, accuracy(a), accuracy(b), options);
      assert.ok(small.lo <= small.delta && small.delta <= small.hi, `Δ ${small.delta} outside [${small.lo}, ${small.hi}]`);
      assert.ok(small.hi > small.lo);
      const repeat = (v: Float64Array): Float64Array => Float64Array.from({ length: v.length * 4 }, (_, k) => v[k % v.length]);
      const large = pairedBootstrapDelta(units * 4, accuracy(repeat(a)), accuracy(repeat(b)), options);
      close(large.delta, small.delta, 1e-12, 'same point estimate on repeated units');
      assert.ok(large.hi - large.lo < 0.8 * (small.hi - small.lo), `width ${large.hi - large.lo} vs ${small.hi - small.lo}`);
    }),
    30,
  );
});

test('percentiles interpolate linearly like numpy', () => {
  assert.equal(percentileOfSorted([1, 2, 3, 4], 50), 2.5);
  assert.equal(percentileOfSorted([0, 10], 2.5), 0.25);
  assert.equal(percentileOfSorted([5], 97.5), 5);
});

// ------------------------------------------------------------------------------------------- protocols

/**
 * Canvases whose labels are constant on each row of stride-4 cells (horizontal stripes, so bilinear upsampling
 * of one-hot logits can only blur along one axis and every pixel stays nearest its own cell), with features =
 * one-hot of the label (+ noise dims).
 */
function cellLabelledCanvases(count: number, seed: number, informative: boolean): SegSplit {
  const random = splitmix32(seed);
  const grid = 16;
  const classes = 11;
  const dim = classes + 2;
  const sem = new Uint8Array(count * 64 * 64);
  const feats = new Float32Array(count * grid * grid * dim);
  for (let n = 0; n < count; n++) {
    for (let i = 0; i < grid; i++) {
      for (let j = 0; j < grid; j++) {
        const cell = n * grid * grid + i * grid + j;
        // Every class appears on the first canvas so no class has an empty union.
        const label = j > 0 ? sem[n * 4096 + 4 * i * 64] : n === 0 && i < classes ? i : Math.floor(random() * classes);
        for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) sem[n * 4096 + (4 * i + y) * 64 + 4 * j + x] = label;
        if (informative) feats[cell * dim + label] = 1;
        else feats[cell * dim + Math.floor(random() * classes)] = 1;
        feats[cell * dim + classes] = random();
        feats[cell * dim + classes + 1] = random();
      }
    }
  }
  return { feats, h: grid, w: grid, D: dim, sem };
}

test('fmSeg: features that encode the cell label give mIoU 1; uninformative features do not', () => {
  const informative = (seed: number): SegSplit => cellLabelledCanvases(6, seed, true);
  const result = fmSeg({ train: informative(1), val: informative(2), test: informative(3) });
  assert.ok(E.isRight(result), E.isLeft(result) ? result.left : '');
  assert.equal(result.right.miou, 1);
  assert.equal(result.right.perCanvasConfusions.length, 6 * 121);
  assert.ok(RIDGE_LAMBDAS.includes(result.right.lambda));
  const noise = (seed: number): SegSplit => cellLabelledCanvases(6, seed, false);
  const chance = fmSeg({ train: noise(1), val: noise(2), test: noise(3) });
  assert.ok(E.isRight(chance));
  assert.ok(chance.right.miou < 0.3, `mIoU of noise features ${chance.right.miou}`);
  // A result compared with itself has Δ = 0 on every resample.
  const self = compareModels({ fmSeg: result.right }, { fmSeg: result.right });
  assert.ok(E.isRight(self) && self.right.fmSeg !== undefined);
  assert.deepEqual([self.right.fmSeg.miou.lo, self.right.fmSeg.miou.delta, self.right.fmSeg.miou.hi], [0, 0, 0]);
  const versus = compareModels({ fmSeg: result.right }, { fmSeg: chance.right });
  assert.ok(E.isRight(versus) && versus.right.fmSeg !== undefined);
  assert.ok(versus.right.fmSeg.miou.lo > 0.5, `CI of a large gain ${versus.right.fmSeg.miou.lo}`);
  const badShape = fmSeg({ train: informative(1), val: { ...informative(2), sem: new Uint8Array(10) }, test: informative(3) });
  assert.ok(E.isLeft(badShape) && badShape.left.includes('sem'));
});

/** Canvases with square items centred on cell centres; features carry the target heat and the item size. */
function centredItemCanvases(count: number, seed: number): DetSplit {
  const random = splitmix32(seed);
  const grid = 16;
  const dim = 12;
  const feats = new Float32Array(count * grid * grid * dim);
  const items: GroundTruthItem[][] = [];
  for (let n = 0; n < count; n++) {
    const canvasItems: GroundTruthItem[] = [];
    for (let quadrant = 0; quadrant < 4; quadrant++) {
      if (quadrant > 1 && random() < 0.5) continue;
      const i = 2 + Math.floor(random() * 4) + 8 * Math.floor(quadrant / 2);
      const j = 2 + Math.floor(random() * 4) + 8 * (quadrant % 2);
      const half = 3 + Math.floor(random() * 6);
      const cx = 4 * j + 2;
      const cy = 4 * i + 2;
      const box: Box = [Math.max(cx - half, 0), Math.max(cy - half, 0), Math.min(cx + half, 64), Math.min(cy + half, 64)];
      canvasItems.push({ box, cls: Math.floor(random() * 10), visible: 1 });
    }
    items.push(canvasItems);
    for (let i = 0; i < grid; i++) {
      for (let j = 0; j < grid; j++) {
        const f = (n * grid * grid + i * grid + j) * dim;
        let nearest = Infinity;
        for (const { box, cls } of canvasItems) {
          const ci = (box[1] + box[3]) / 8 - 0.5;
          const cj = (box[0] + box[2]) / 8 - 0.5;
          const d2 = (i - ci) ** 2 + (j - cj) ** 2;
          feats[f + cls] = Math.max(feats[f + cls], Math.exp(-d2 / 2));
          if (d2 < nearest) {
            nearest = d2;
            feats[f + 10] = (box[2] - box[0]) / 64;
            feats[f + 11] = (box[3] - box[1]) / 64;
          }
        }
      }
    }
  }
  return { feats, h: grid, w: grid, D: dim, items };
}

test('fmDet: features that encode heat-maps and sizes give AP 1 on boxes centred on cells', () => {
  const result = fmDet({ train: centredItemCanvases(30, 1), val: centredItemCanvases(10, 2), test: centredItemCanvases(10, 3) });
  assert.ok(E.isRight(result), E.isLeft(result) ? result.left : '');
  close(result.right.agnosticAP50, 1, 1e-9, 'agnostic AP50');
  close(result.right.mAP50, 1, 1e-9, 'mAP50');
  close(result.right.centreAP4, 1, 1e-9, 'centre-AP@4px');
  const self = compareModels({ fmDet: result.right }, { fmDet: result.right }, { resamples: 50, seed: 1, level: 0.95 });
  assert.ok(E.isRight(self) && self.right.fmDet !== undefined);
  assert.equal(self.right.fmDet.mAP50.hi, 0);
  const wrongClass = fmDet({
    train: centredItemCanvases(3, 1),
    val: centredItemCanvases(3, 2),
    test: { ...centredItemCanvases(3, 3), items: [[{ box: [0, 0, 4, 4], cls: 12, visible: 1 }], [], []] },
  });
  assert.ok(E.isLeft(wrongClass) && wrongClass.left.includes('class 12'));
});

test('the nearest-cell rounding of P2 rounds halves to even, as the reference does', () => {
  assert.deepEqual([0.5, 1.5, 2.5, -0.5, 2.4, 2.6].map(roundHalfEven), [0, 2, 2, -0, 2, 3]);
});

test('fmCls: separable features give top-1 = 1, and comparing mismatched results is a Left', () => {
  const split = (seed: number, n: number) => {
    const random = splitmix32(seed);
    const labels = Uint8Array.from({ length: n }, (_, k) => (k < 10 ? k : Math.floor(random() * 10)));
    const feats = new Float32Array(n * 12);
    labels.forEach((l, k) => {
      feats[k * 12 + l] = 1;
      feats[k * 12 + 10] = random();
      feats[k * 12 + 11] = random();
    });
    return { feats, labels };
  };
  const result = fmCls({ train: split(1, 200), val: split(2, 50), test: split(3, 80) });
  assert.ok(E.isRight(result));
  assert.equal(result.right.top1, 1);
  const other = fmCls({ train: split(1, 200), val: split(2, 50), test: split(3, 70) });
  assert.ok(E.isRight(other));
  const mismatch = compareModels({ fmCls: result.right }, { fmCls: other.right });
  assert.ok(E.isLeft(mismatch) && mismatch.left.includes('80'));
});

test('P5 pairs: 256 per image, half axis-aligned and half diagonal, Chebyshev distance 1–4, inside the grid', () => {
  property(
    fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.constantFrom(8, 16), (seed, grid) => {
      const pairs = samplePairs(splitmix32(seed), grid, grid, 256);
      assert.equal(pairs.length, 256);
      pairs.forEach(({ a, b }, k) => {
        const di = Math.floor(b / grid) - Math.floor(a / grid);
        const dj = (b % grid) - (a % grid);
        assert.ok(a >= 0 && a < grid * grid && b >= 0 && b < grid * grid);
        assert.ok(Math.abs(b % grid - a % grid) <= 4 && Math.abs(dj) === Math.abs((b % grid) - (a % grid)));
        const chebyshev = Math.max(Math.abs(di), Math.abs(dj));
        assert.ok(chebyshev >= 1 && chebyshev <= 4);
        if (k < 128) assert.ok(di === 0 || dj === 0, 'axis-aligned');
        else assert.equal(Math.abs(di), Math.abs(dj), 'diagonal');
      });
    }),
    50,
  );
});

test('dlPair: features that identify the leaf give AUC 1; the cosine uses per-image standardised features', () => {
  const count = 4;
  const leafId = new Int32Array(count * 4096);
  const feats = new Float32Array(count * 256 * 6);
  const random = splitmix32(5);
  for (let n = 0; n < count; n++) {
    // Leaves: vertical stripes of random width, so neighbouring cells are often but not always on one leaf.
    const edges = [0, 12 + Math.floor(random() * 12), 36 + Math.floor(random() * 12), 64];
    for (let y = 0; y < 64; y++) for (let x = 0; x < 64; x++) leafId[n * 4096 + y * 64 + x] = edges.findIndex((e, k) => x >= e && x < edges[k + 1]);
    for (let c = 0; c < 256; c++) {
      const leaf = leafId[n * 4096 + (4 * Math.floor(c / 16) + 2) * 64 + 4 * (c % 16) + 2];
      feats[(n * 256 + c) * 6 + leaf] = 100 + n; // a per-image offset that standardisation removes
      feats[(n * 256 + c) * 6 + 5] = 7;
    }
  }
  const result = dlPair({ feats, h: 16, w: 16, D: 6, leafId, seed: 3 });
  assert.ok(E.isRight(result), E.isLeft(result) ? result.left : '');
  assert.equal(result.right.pairs.labels.length, count * 256);
  assert.equal(result.right.auc, 1);
  assert.ok(result.right.sameLeafFraction > 0.2 && result.right.sameLeafFraction < 1);
  const rows = standardisedUnitRows([1, 10, 3, 10, 5, 10], 3, 2);
  [-1, 0, 0, 0, 1, 0].forEach((expected, k) => close(rows[k], expected, 1e-5, `standardised unit row value ${k}`));
});

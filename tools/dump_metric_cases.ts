// Writes random metric cases, together with what the TypeScript metrics and protocols compute for them, to a
// JSON file; tools/crosscheck_metrics.py recomputes every case with the numpy reference
// (../shared/tools/datasets_ref.py) and prints the largest difference per metric.
// Run: node --import tsx tools/dump_metric_cases.ts [out.json] [seed]
import { writeFileSync } from 'node:fs';
import * as E from 'fp-ts/lib/Either.js';
import { splitmix32 } from '../clove/eval/bootstrap.ts';
import {
  argmaxChannels,
  averagePrecision,
  CENTRE4PX,
  confusionMatrix,
  decodeCentreDetections,
  IOU50,
  nanMean,
  P2_DECODING,
  rocAuc,
  rowDot,
  segmentationScores,
  standardisedUnitRows,
  sumConfusions,
  upsampleBilinear,
  type Box,
  type Detection,
  type GroundTruthItem,
} from '../clove/eval/metrics.ts';
import { buildRidgeProblem, predictRidge, RIDGE_LAMBDAS, solveRidge } from '../clove/eval/ridge.ts';
import { fmDet, fmSeg, type DetSplit, type SegSplit } from '../clove/eval/protocols.ts';

const outPath = process.argv[2] ?? '/tmp/clove_metric_cases.json';
const seed = Number(process.argv[3] ?? 1);
const random = splitmix32(seed);
const normal = (): number => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
const randInt = (n: number): number => Math.floor(random() * n);
const list = (values: ArrayLike<number>): number[] => Array.from(values);

// ---------------------------------------------------------------- segmentation: confusion, mIoU
const segCases = Array.from({ length: 8 }, () => {
  const n = 4;
  const classes = 11;
  const gt = new Uint8Array(n * 4096);
  const pred = new Uint8Array(n * 4096);
  for (let p = 0; p < gt.length; p++) {
    gt[p] = random() < 0.05 ? 255 : random() < 0.6 ? 0 : 1 + randInt(classes - 1);
    pred[p] = random() < 0.6 ? (gt[p] === 255 ? randInt(classes) : gt[p]) : randInt(classes);
  }
  const perCanvas = new Float64Array(n * classes * classes);
  for (let k = 0; k < n; k++) {
    perCanvas.set(confusionMatrix(pred.subarray(k * 4096, (k + 1) * 4096), gt.subarray(k * 4096, (k + 1) * 4096), classes), k * classes * classes);
  }
  const total = sumConfusions(perCanvas, classes);
  const scores = segmentationScores(total, classes);
  return { n, classes, gt: list(gt), pred: list(pred), ts: { confusion: list(total), miou: scores.miou, fgMiou: scores.fgMiou, bgIou: scores.bgIou } };
});

// ---------------------------------------------------------------- bilinear upsampling + argmax
const upsampleCases = [
  { n: 2, grid: 16, channels: 11, factor: 4 },
  { n: 2, grid: 8, channels: 3, factor: 8 },
  { n: 1, grid: 16, channels: 1, factor: 4 },
].map(({ n, grid, channels, factor }) => {
  const logits = Float32Array.from({ length: n * grid * grid * channels }, normal);
  const up: number[] = [];
  const argmax: number[] = [];
  for (let k = 0; k < n; k++) {
    const u = upsampleBilinear(logits.subarray(k * grid * grid * channels, (k + 1) * grid * grid * channels), grid, grid, channels, factor);
    up.push(...u);
    argmax.push(...argmaxChannels(u, channels));
  }
  return { n, grid, channels, factor, logits: list(logits), ts: { up, argmax } };
});

// ---------------------------------------------------------------- P2 decoding
const decodeCases = Array.from({ length: 4 }, () => {
  const n = 3;
  const heat = Float32Array.from({ length: n * 256 * 10 }, () => random() * 2 - 0.5);
  const size = Float32Array.from({ length: n * 256 * 2 }, () => random() * 1.3 - 0.15);
  const dets: Detection[] = [];
  for (let k = 0; k < n; k++) {
    dets.push(
      ...decodeCentreDetections(heat.subarray(k * 2560, (k + 1) * 2560), size.subarray(k * 512, (k + 1) * 512), 16, 16, 10, k, { ...P2_DECODING, stride: 4 }),
    );
  }
  return { n, heat: list(heat), size: list(size), ts: dets.map((d) => [d.image, d.cls, d.score, ...d.box]) };
});

// ---------------------------------------------------------------- AP (IoU, centre distance, difficult rule)
const apCases = Array.from({ length: 12 }, () => {
  const images = 5 + randInt(20);
  const objs: GroundTruthItem[][] = [];
  const dets: Detection[] = [];
  for (let k = 0; k < images; k++) {
    const items: GroundTruthItem[] = [];
    const count = randInt(5);
    for (let q = 0; q < count; q++) {
      const w = 8 + randInt(25);
      const h = 8 + randInt(25);
      const x0 = randInt(64 - w);
      const y0 = randInt(64 - h);
      items.push({ box: [x0, y0, x0 + w, y0 + h], cls: randInt(10), visible: random() < 0.2 ? random() * 0.5 : 0.5 + random() * 0.5 });
    }
    objs.push(items);
    for (const g of items) {
      for (let r = 0; r < 1 + randInt(2); r++) {
        const jitter = (): number => normal() * 3;
        // Quantised scores create ties, which both sides must break by input order.
        const score = random() < 0.3 ? Math.round(random() * 4) / 4 : random();
        dets.push({ image: k, cls: random() < 0.8 ? g.cls : randInt(10), score, box: [g.box[0] + jitter(), g.box[1] + jitter(), g.box[2] + jitter(), g.box[3] + jitter()] });
      }
    }
    for (let r = 0; r < randInt(4); r++) {
      const x0 = random() * 50;
      const y0 = random() * 50;
      dets.push({ image: k, cls: randInt(10), score: random(), box: [x0, y0, x0 + 4 + random() * 20, y0 + 4 + random() * 20] as Box });
    }
  }
  const perClassIou = Array.from({ length: 10 }, (_, c) => averagePrecision(dets, objs, c, IOU50));
  const perClassCentre = Array.from({ length: 10 }, (_, c) => averagePrecision(dets, objs, c, CENTRE4PX));
  return {
    objs: objs.map((items) => items.map((g) => [g.cls, ...g.box, g.visible])),
    dets: dets.map((d) => [d.image, d.cls, d.score, ...d.box]),
    ts: {
      perClassIou,
      perClassCentre,
      mAP50: nanMean(perClassIou),
      agnosticAP50: averagePrecision(dets, objs, undefined, IOU50),
      centreAP4: nanMean(perClassCentre),
    },
  };
});

// ---------------------------------------------------------------- ROC-AUC with ties
const aucCases = Array.from({ length: 10 }, (_, k) => {
  const n = 50 + randInt(2000);
  const labels = Uint8Array.from({ length: n }, () => (random() < 0.3 ? 1 : 0));
  const scores = Float64Array.from(labels, (l) => (k % 2 === 0 ? Math.round((normal() + l) * 4) / 4 : normal() + 0.7 * l));
  return { scores: list(scores), labels: list(labels), ts: rocAuc(scores, labels) };
});

// ---------------------------------------------------------------- ridge (standardisation, bias, λ·N, mask)
const ridgeCases = Array.from({ length: 4 }, (_, k) => {
  const rows = 300 + randInt(400);
  const dim = 5 + randInt(30);
  const targets = 1 + randInt(11);
  const offsets = Array.from({ length: dim }, () => normal() * 5);
  const scales = Array.from({ length: dim }, () => Math.exp(normal()));
  const x = Float32Array.from({ length: rows * dim }, (_, q) => offsets[q % dim] + scales[q % dim] * normal());
  const t = Float32Array.from({ length: rows * targets }, normal);
  const keep = Uint8Array.from({ length: rows }, () => (k % 2 === 1 && random() < 0.2 ? 0 : 1));
  const testRows = 50;
  const xTest = Float32Array.from({ length: testRows * dim }, (_, q) => offsets[q % dim] + scales[q % dim] * normal());
  const problem = buildRidgeProblem({ data: x, rows, dim }, { data: t, targets }, keep);
  const predictions = RIDGE_LAMBDAS.map((lambda) => list(predictRidge(solveRidge(problem, lambda), { data: xTest, rows: testRows, dim })));
  return { rows, dim, targets, x: list(x), t: list(t), keep: list(keep), xTest: list(xTest), lambdas: RIDGE_LAMBDAS, ts: predictions };
});

// ---------------------------------------------------------------- P5 per-image standardised cosine
const cosineCases = Array.from({ length: 4 }, () => {
  const dim = 3 + randInt(40);
  const feats = Float32Array.from({ length: 256 * dim }, () => normal() * 3 + 1);
  const pairs = Array.from({ length: 200 }, () => [randInt(256), randInt(256)]);
  const unit = standardisedUnitRows(feats, 256, dim);
  return { dim, feats: list(feats), pairs, ts: pairs.map(([a, b]) => rowDot(unit, dim, a, b)) };
});

// ---------------------------------------------------------------- end-to-end P1 / P2 on synthetic features
function syntheticCanvases(count: number): { seg: SegSplit; det: DetSplit; objs: number[][][] } {
  const dim = 24;
  const sem = new Uint8Array(count * 4096);
  const feats = new Float32Array(count * 256 * dim);
  const items: GroundTruthItem[][] = [];
  for (let n = 0; n < count; n++) {
    const canvasItems: GroundTruthItem[] = [];
    for (let q = 0; q < 2 + randInt(3); q++) {
      const w = 12 + randInt(20);
      const h = 12 + randInt(20);
      const x0 = randInt(64 - w);
      const y0 = randInt(64 - h);
      const cls = randInt(10);
      for (let y = y0; y < y0 + h; y++) for (let x = x0; x < x0 + w; x++) sem[n * 4096 + y * 64 + x] = cls + 1;
      canvasItems.push({ box: [x0, y0, x0 + w, y0 + h], cls, visible: 0.3 + random() * 0.7 });
    }
    items.push(canvasItems);
    for (let i = 0; i < 16; i++) {
      for (let j = 0; j < 16; j++) {
        const f = (n * 256 + i * 16 + j) * dim;
        const label = sem[n * 4096 + (4 * i + 2) * 64 + 4 * j + 2];
        for (let c = 0; c < dim; c++) feats[f + c] = normal() * 0.25;
        feats[f + label] += 1;
        for (const { box, cls } of canvasItems) {
          const d2 = (i - ((box[1] + box[3]) / 8 - 0.5)) ** 2 + (j - ((box[0] + box[2]) / 8 - 0.5)) ** 2;
          feats[f + 11 + cls] += Math.exp(-d2 / 2);
          if (d2 < 1) {
            feats[f + 21] += (box[2] - box[0]) / 64;
            feats[f + 22] += (box[3] - box[1]) / 64;
          }
        }
      }
    }
  }
  const grid = { feats, h: 16, w: 16, D: dim };
  return {
    seg: { ...grid, sem },
    det: { ...grid, items },
    objs: items.map((canvasItems) => canvasItems.map((g) => [g.cls, ...g.box, g.visible])),
  };
}

const [train, val, test] = [syntheticCanvases(60), syntheticCanvases(20), syntheticCanvases(30)];
const seg = fmSeg({ train: train.seg, val: val.seg, test: test.seg });
const det = fmDet({ train: train.det, val: val.det, test: test.det });
if (E.isLeft(seg) || E.isLeft(det)) throw new Error(`synthetic protocol run failed: ${E.isLeft(seg) ? seg.left : ''} ${E.isLeft(det) ? det.left : ''}`);
const splitJson = (s: { seg: SegSplit; objs: number[][][] }) => ({ feats: list(s.seg.feats), sem: list(s.seg.sem), objs: s.objs });
const protocols = {
  dim: 24,
  train: splitJson(train),
  val: splitJson(val),
  test: splitJson(test),
  ts: {
    fmSeg: { miou: seg.right.miou, fgMiou: seg.right.fgMiou, bgIou: seg.right.bgIou, lambda: seg.right.lambda },
    fmDet: { mAP50: det.right.mAP50, agnosticAP50: det.right.agnosticAP50, centreAP4: det.right.centreAP4, lambda: det.right.lambda },
  },
};

writeFileSync(outPath, JSON.stringify({ seed, segCases, upsampleCases, decodeCases, apCases, aucCases, ridgeCases, cosineCases, protocols }));
console.log(`wrote ${outPath} (seed ${seed})`);

// Metrics of the dense-evaluation protocols (EVAL_PROTOCOLS.md §3c), on plain typed arrays.
// Every metric that the paired bootstrap resamples is computed from per-unit sufficient statistics
// (confusion matrices, matched detections, scored pairs) plus optional per-unit weights: a resample
// that draws unit u k times is the same statistic with weight k on u, so no resample copies data.

/** Ground-truth label that is skipped by the confusion matrix. */
export const IGNORE_LABEL = 255;

// ------------------------------------------------------------------------------------------- segmentation

/**
 * Adds the pixels of one label map to a confusion matrix [numClasses, numClasses] (row = ground truth,
 * column = prediction). Ground truth IGNORE_LABEL is skipped; any other label or prediction outside
 * [0, numClasses) is a programmer error.
 */
export function accumulateConfusion(
  confusion: Float64Array,
  predicted: ArrayLike<number>,
  groundTruth: ArrayLike<number>,
  numClasses: number,
): void {
  if (predicted.length !== groundTruth.length) {
    throw new Error(`accumulateConfusion: ${predicted.length} predictions for ${groundTruth.length} labels`);
  }
  if (confusion.length !== numClasses * numClasses) {
    throw new Error(`accumulateConfusion: confusion has ${confusion.length} cells, expected ${numClasses}²`);
  }
  for (let p = 0; p < groundTruth.length; p++) {
    const g = groundTruth[p];
    if (g === IGNORE_LABEL) continue;
    const q = predicted[p];
    if (!(g >= 0 && g < numClasses && q >= 0 && q < numClasses)) {
      throw new Error(`accumulateConfusion: label ${g} / prediction ${q} at pixel ${p} outside [0, ${numClasses})`);
    }
    confusion[g * numClasses + q]++;
  }
}

export function confusionMatrix(
  predicted: ArrayLike<number>,
  groundTruth: ArrayLike<number>,
  numClasses: number,
): Float64Array {
  const confusion = new Float64Array(numClasses * numClasses);
  accumulateConfusion(confusion, predicted, groundTruth, numClasses);
  return confusion;
}

/** Sum of per-unit confusion matrices (each [numClasses²], concatenated), unit u weighted by weights[u]. */
export function sumConfusions(
  perUnit: Float64Array,
  numClasses: number,
  weights?: ArrayLike<number>,
): Float64Array {
  const cells = numClasses * numClasses;
  if (perUnit.length % cells !== 0) {
    throw new Error(`sumConfusions: ${perUnit.length} values is not a whole number of ${numClasses}×${numClasses} matrices`);
  }
  const units = perUnit.length / cells;
  const total = new Float64Array(cells);
  for (let u = 0; u < units; u++) {
    const w = weights === undefined ? 1 : weights[u];
    if (w === 0) continue;
    const off = u * cells;
    for (let c = 0; c < cells; c++) total[c] += w * perUnit[off + c];
  }
  return total;
}

/**
 * IoU per class, inter / max(union, 1): a class that is neither present nor predicted gets IoU 0,
 * as in the reference, so every mean below is over all its classes.
 */
export function iouPerClass(confusion: Float64Array, numClasses: number): Float64Array {
  const iou = new Float64Array(numClasses);
  for (let c = 0; c < numClasses; c++) {
    let row = 0;
    let col = 0;
    for (let k = 0; k < numClasses; k++) {
      row += confusion[c * numClasses + k];
      col += confusion[k * numClasses + c];
    }
    const inter = confusion[c * numClasses + c];
    iou[c] = inter / Math.max(row + col - inter, 1);
  }
  return iou;
}

export interface SegmentationScores {
  /** Mean IoU over all classes, background (class 0) included. */
  readonly miou: number;
  /** Mean IoU over the foreground classes 1..numClasses-1. */
  readonly fgMiou: number;
  /** IoU of class 0. */
  readonly bgIou: number;
  readonly perClass: Float64Array;
}

export function segmentationScores(confusion: Float64Array, numClasses: number): SegmentationScores {
  if (numClasses < 2) throw new Error(`segmentationScores: need background + ≥1 foreground class, got ${numClasses}`);
  const perClass = iouPerClass(confusion, numClasses);
  let all = 0;
  for (let c = 0; c < numClasses; c++) all += perClass[c];
  return {
    miou: all / numClasses,
    fgMiou: (all - perClass[0]) / (numClasses - 1),
    bgIou: perClass[0],
    perClass,
  };
}

/**
 * Bilinear upsampling by an integer factor with align_corners = False (torch F.interpolate): output
 * pixel o samples input coordinate (o + 0.5)/factor − 0.5, clamped to the edge. `source` is
 * row-major [height, width, channels]; the result is [height·factor, width·factor, channels].
 */
export function upsampleBilinear(
  source: ArrayLike<number>,
  height: number,
  width: number,
  channels: number,
  factor: number,
): Float64Array {
  if (source.length !== height * width * channels) {
    throw new Error(`upsampleBilinear: source holds ${source.length} values, expected ${height}×${width}×${channels}`);
  }
  if (!Number.isInteger(factor) || factor < 1) throw new Error(`upsampleBilinear: factor must be a positive integer, got ${factor}`);
  const outH = height * factor;
  const outW = width * factor;
  const axis = (size: number, outSize: number): { lo: Int32Array; hi: Int32Array; frac: Float64Array } => {
    const lo = new Int32Array(outSize);
    const hi = new Int32Array(outSize);
    const frac = new Float64Array(outSize);
    for (let o = 0; o < outSize; o++) {
      const s = Math.max((o + 0.5) / factor - 0.5, 0);
      const i0 = Math.min(Math.floor(s), size - 1);
      lo[o] = i0;
      hi[o] = Math.min(i0 + 1, size - 1);
      frac[o] = s - i0;
    }
    return { lo, hi, frac };
  };
  const rows = axis(height, outH);
  const cols = axis(width, outW);
  const out = new Float64Array(outH * outW * channels);
  for (let y = 0; y < outH; y++) {
    const fy = rows.frac[y];
    const r0 = rows.lo[y] * width;
    const r1 = rows.hi[y] * width;
    for (let x = 0; x < outW; x++) {
      const fx = cols.frac[x];
      const a = (r0 + cols.lo[x]) * channels;
      const b = (r0 + cols.hi[x]) * channels;
      const c = (r1 + cols.lo[x]) * channels;
      const d = (r1 + cols.hi[x]) * channels;
      const o = (y * outW + x) * channels;
      for (let k = 0; k < channels; k++) {
        const top = source[a + k] * (1 - fx) + source[b + k] * fx;
        const bottom = source[c + k] * (1 - fx) + source[d + k] * fx;
        out[o + k] = top * (1 - fy) + bottom * fy;
      }
    }
  }
  return out;
}

/** Index of the largest channel per pixel (the first one on ties); `values` is [pixels, channels]. */
export function argmaxChannels(values: ArrayLike<number>, channels: number): Uint8Array {
  if (channels > 256) throw new Error(`argmaxChannels: ${channels} channels do not fit a Uint8Array`);
  const pixels = values.length / channels;
  if (!Number.isInteger(pixels)) throw new Error(`argmaxChannels: ${values.length} values is not a multiple of ${channels}`);
  const out = new Uint8Array(pixels);
  for (let p = 0; p < pixels; p++) {
    const off = p * channels;
    let best = 0;
    let bestValue = values[off];
    for (let k = 1; k < channels; k++) {
      if (values[off + k] > bestValue) {
        bestValue = values[off + k];
        best = k;
      }
    }
    out[p] = best;
  }
  return out;
}

// ------------------------------------------------------------------------------------------- detection

/** Axis-aligned box [x0, y0, x1, y1) in canvas pixels (x1, y1 exclusive). */
export type Box = readonly [number, number, number, number];

export interface GroundTruthItem {
  readonly box: Box;
  readonly cls: number;
  /** Visible fraction of the item's mask (occlusion); below VISIBLE_MIN it is "difficult". */
  readonly visible: number;
}

export interface Detection {
  /** Index of the image (canvas) the detection belongs to. */
  readonly image: number;
  readonly cls: number;
  readonly score: number;
  readonly box: Box;
}

export const VISIBLE_MIN = 0.5;

export function boxIou(a: Box, b: Box): number {
  const iw = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const ih = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = iw * ih;
  const union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return union > 0 ? inter / union : 0;
}

/** When a detection matches a ground-truth item. */
export type MatchRule =
  | { readonly kind: 'iou'; readonly minIou: number }
  | { readonly kind: 'centre'; readonly maxPixels: number };

export const IOU50: MatchRule = { kind: 'iou', minIou: 0.5 };
export const CENTRE4PX: MatchRule = { kind: 'centre', maxPixels: 4 };

export const OUTCOME_FALSE_POSITIVE = 0;
export const OUTCOME_TRUE_POSITIVE = 1;
/** Matched a difficult item: neither a true nor a false positive. */
export const OUTCOME_IGNORED = 2;

/**
 * Matched detections of one AP computation, in decreasing score (stable, so equal scores keep input order),
 * with the number of non-difficult ground-truth items per unit (image).
 */
export interface MatchedDetections {
  readonly scores: Float64Array;
  readonly outcomes: Uint8Array;
  readonly units: Int32Array;
  readonly positivesPerUnit: Float64Array;
}

/**
 * Greedy VOC matching: detections in decreasing score each take the best-matching ground truth of their image
 * (and class, unless `cls` is undefined: class-agnostic). A match to an item already taken is a false positive;
 * a match to a difficult item (visible < VISIBLE_MIN) is ignored. Matching never crosses images, so each
 * detection's outcome depends only on its own image: that is what lets the bootstrap reweight images.
 */
export function matchDetections(
  detections: readonly Detection[],
  groundTruth: readonly (readonly GroundTruthItem[])[],
  cls: number | undefined,
  rule: MatchRule,
): MatchedDetections {
  const units = groundTruth.length;
  const positivesPerUnit = new Float64Array(units);
  const items: GroundTruthItem[][] = groundTruth.map((g, u) => {
    const kept = g.filter((item) => cls === undefined || item.cls === cls);
    positivesPerUnit[u] = kept.filter((item) => item.visible >= VISIBLE_MIN).length;
    return kept;
  });
  const used = items.map((g) => new Uint8Array(g.length));
  const selected = detections
    .filter((d) => cls === undefined || d.cls === cls)
    .map((d, order) => ({ d, order }))
    .sort((p, q) => q.d.score - p.d.score || p.order - q.order);
  const n = selected.length;
  const scores = new Float64Array(n);
  const outcomes = new Uint8Array(n);
  const unitOf = new Int32Array(n);
  for (let k = 0; k < n; k++) {
    const d = selected[k].d;
    if (!(d.image >= 0 && d.image < units)) {
      throw new Error(`matchDetections: detection of image ${d.image}, but ground truth covers ${units} images`);
    }
    scores[k] = d.score;
    unitOf[k] = d.image;
    const candidates = items[d.image];
    let best = -Infinity;
    let bestIndex = -1;
    for (let j = 0; j < candidates.length; j++) {
      const g = candidates[j].box;
      let quality: number;
      let ok: boolean;
      if (rule.kind === 'iou') {
        quality = boxIou(d.box, g);
        ok = quality >= rule.minIou;
      } else {
        const dx = (d.box[0] + d.box[2] - g[0] - g[2]) / 2;
        const dy = (d.box[1] + d.box[3] - g[1] - g[3]) / 2;
        const distance = Math.hypot(dx, dy);
        quality = -distance;
        ok = distance <= rule.maxPixels;
      }
      if (ok && quality > best) {
        best = quality;
        bestIndex = j;
      }
    }
    if (bestIndex >= 0 && candidates[bestIndex].visible < VISIBLE_MIN) {
      outcomes[k] = OUTCOME_IGNORED;
    } else if (bestIndex >= 0 && used[d.image][bestIndex] === 0) {
      used[d.image][bestIndex] = 1;
      outcomes[k] = OUTCOME_TRUE_POSITIVE;
    } else {
      outcomes[k] = OUTCOME_FALSE_POSITIVE;
    }
  }
  return { scores, outcomes, units: unitOf, positivesPerUnit };
}

/**
 * VOC all-point AP (area under the monotone precision envelope) from matched detections, image u weighted
 * by weights[u] (all 1 when absent). NaN when there is no non-difficult ground truth. A weight k acts like
 * k copies of the image: its detections then share a score, and a run of k equal-score hits or misses gives
 * the same envelope area as one step of size k.
 */
export function averagePrecisionFromMatches(matched: MatchedDetections, weights?: ArrayLike<number>): number {
  const { outcomes, units, positivesPerUnit } = matched;
  let positives = 0;
  for (let u = 0; u < positivesPerUnit.length; u++) positives += (weights === undefined ? 1 : weights[u]) * positivesPerUnit[u];
  if (positives === 0) return NaN;
  const recall: number[] = [0];
  const precision: number[] = [0];
  let tp = 0;
  let fp = 0;
  for (let k = 0; k < outcomes.length; k++) {
    const outcome = outcomes[k];
    if (outcome === OUTCOME_IGNORED) continue;
    const w = weights === undefined ? 1 : weights[units[k]];
    if (w === 0) continue;
    if (outcome === OUTCOME_TRUE_POSITIVE) tp += w;
    else fp += w;
    recall.push(tp / positives);
    precision.push(tp / Math.max(tp + fp, 1e-9));
  }
  recall.push(1);
  precision.push(0);
  for (let i = precision.length - 2; i >= 0; i--) precision[i] = Math.max(precision[i], precision[i + 1]);
  let ap = 0;
  for (let i = 0; i + 1 < recall.length; i++) {
    if (recall[i + 1] !== recall[i]) ap += (recall[i + 1] - recall[i]) * precision[i + 1];
  }
  return ap;
}

export function averagePrecision(
  detections: readonly Detection[],
  groundTruth: readonly (readonly GroundTruthItem[])[],
  cls: number | undefined,
  rule: MatchRule,
): number {
  return averagePrecisionFromMatches(matchDetections(detections, groundTruth, cls, rule));
}

/** Mean over the values that are not NaN (NaN when all are). */
export function nanMean(values: readonly number[]): number {
  let sum = 0;
  let count = 0;
  for (const v of values) {
    if (Number.isNaN(v)) continue;
    sum += v;
    count++;
  }
  return count === 0 ? NaN : sum / count;
}

/** Everything the three detection metrics need, per image, so that images can be resampled. */
export interface DetectionStatistics {
  readonly numClasses: number;
  /** Per class, IoU ≥ 0.5 matching. */
  readonly perClassIou50: readonly MatchedDetections[];
  /** Class-agnostic IoU ≥ 0.5 matching. */
  readonly agnosticIou50: MatchedDetections;
  /** Per class, centre within 4 px. */
  readonly perClassCentre4: readonly MatchedDetections[];
}

export interface DetectionScores {
  readonly mAP50: number;
  readonly agnosticAP50: number;
  readonly centreAP4: number;
}

export function detectionStatistics(
  detections: readonly Detection[],
  groundTruth: readonly (readonly GroundTruthItem[])[],
  numClasses: number,
): DetectionStatistics {
  const classes = Array.from({ length: numClasses }, (_, c) => c);
  return {
    numClasses,
    perClassIou50: classes.map((c) => matchDetections(detections, groundTruth, c, IOU50)),
    agnosticIou50: matchDetections(detections, groundTruth, undefined, IOU50),
    perClassCentre4: classes.map((c) => matchDetections(detections, groundTruth, c, CENTRE4PX)),
  };
}

/** mAP50 and centre-AP@4px average over the classes that have non-difficult ground truth (nan-mean). */
export function detectionScores(stats: DetectionStatistics, weights?: ArrayLike<number>): DetectionScores {
  return {
    mAP50: nanMean(stats.perClassIou50.map((m) => averagePrecisionFromMatches(m, weights))),
    agnosticAP50: averagePrecisionFromMatches(stats.agnosticIou50, weights),
    centreAP4: nanMean(stats.perClassCentre4.map((m) => averagePrecisionFromMatches(m, weights))),
  };
}

export interface CentreDecoding {
  /** Grid cell size in canvas pixels (64 / grid height). */
  readonly stride: number;
  /** Canvas side in pixels; sizes are predicted as fractions of it. */
  readonly canvas: number;
  /** Detections kept per image. */
  readonly topK: number;
  /** Predicted sizes are clipped to [minSize, maxSize]·canvas. */
  readonly minSize: number;
  readonly maxSize: number;
}

export const P2_DECODING: Omit<CentreDecoding, 'stride'> = { canvas: 64, topK: 10, minSize: 0.02, maxSize: 1 };

/**
 * CenterNet-style decoding of one image: a cell is a candidate for class c when its heat is the maximum of its
 * 3×3 neighbourhood in channel c (outside the grid counts as −∞, equal values both qualify); the topK
 * candidates by heat become boxes centred on the cell centre (stride·j + stride/2, stride·i + stride/2) with the
 * predicted (w, h) clipped to [minSize, maxSize]·canvas. `heat` is [h, w, classes], `size` is [h, w, 2].
 */
export function decodeCentreDetections(
  heat: ArrayLike<number>,
  size: ArrayLike<number>,
  gridH: number,
  gridW: number,
  numClasses: number,
  image: number,
  decoding: CentreDecoding,
): Detection[] {
  if (heat.length !== gridH * gridW * numClasses || size.length !== gridH * gridW * 2) {
    throw new Error(
      `decodeCentreDetections: heat ${heat.length} / size ${size.length} values for a ${gridH}×${gridW} grid ` +
        `with ${numClasses} classes`,
    );
  }
  const candidates: { i: number; j: number; c: number; score: number; order: number }[] = [];
  for (let i = 0; i < gridH; i++) {
    for (let j = 0; j < gridW; j++) {
      for (let c = 0; c < numClasses; c++) {
        const v = heat[(i * gridW + j) * numClasses + c];
        let peak = true;
        for (let di = -1; di <= 1 && peak; di++) {
          const ii = i + di;
          if (ii < 0 || ii >= gridH) continue;
          for (let dj = -1; dj <= 1; dj++) {
            const jj = j + dj;
            if (jj < 0 || jj >= gridW) continue;
            if (heat[(ii * gridW + jj) * numClasses + c] > v) {
              peak = false;
              break;
            }
          }
        }
        if (peak) candidates.push({ i, j, c, score: v, order: candidates.length });
      }
    }
  }
  candidates.sort((p, q) => q.score - p.score || p.order - q.order);
  const { stride, canvas, topK, minSize, maxSize } = decoding;
  const clip = (v: number): number => Math.min(Math.max(v, minSize), maxSize) * canvas;
  return candidates.slice(0, topK).map(({ i, j, c, score }) => {
    const cell = (i * gridW + j) * 2;
    const w = clip(size[cell]);
    const h = clip(size[cell + 1]);
    const cx = j * stride + stride / 2;
    const cy = i * stride + stride / 2;
    return { image, cls: c, score, box: [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2] as const };
  });
}

// ------------------------------------------------------------------------------------------- ROC-AUC

/** Scored binary outcomes sorted once by score, with the tie groups, so AUC can be re-evaluated under weights. */
export interface RankedPairs {
  /** Unit indices in increasing score. */
  readonly order: Int32Array;
  /** Start offsets (into `order`) of the groups of equal scores, plus a final entry = length. */
  readonly groupStarts: Int32Array;
  readonly labels: Uint8Array;
}

export function rankPairs(scores: ArrayLike<number>, labels: Uint8Array): RankedPairs {
  if (scores.length !== labels.length) throw new Error(`rankPairs: ${scores.length} scores for ${labels.length} labels`);
  const order = Int32Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[a] - scores[b] || a - b);
  const starts: number[] = [];
  for (let k = 0; k < order.length; k++) if (k === 0 || scores[order[k]] !== scores[order[k - 1]]) starts.push(k);
  starts.push(order.length);
  return { order, groupStarts: Int32Array.from(starts), labels };
}

/**
 * ROC-AUC = P(score⁺ > score⁻) + ½·P(score⁺ = score⁻), i.e. the Mann-Whitney U statistic with ties at average
 * rank, with unit u counted weights[u] times. NaN without both classes.
 */
export function aucFromRanked(ranked: RankedPairs, weights?: ArrayLike<number>): number {
  const { order, groupStarts, labels } = ranked;
  let negativesBelow = 0;
  let positives = 0;
  let wins = 0;
  for (let g = 0; g + 1 < groupStarts.length; g++) {
    let groupPos = 0;
    let groupNeg = 0;
    for (let k = groupStarts[g]; k < groupStarts[g + 1]; k++) {
      const u = order[k];
      const w = weights === undefined ? 1 : weights[u];
      if (labels[u] !== 0) groupPos += w;
      else groupNeg += w;
    }
    wins += groupPos * (negativesBelow + groupNeg / 2);
    negativesBelow += groupNeg;
    positives += groupPos;
  }
  return positives > 0 && negativesBelow > 0 ? wins / (positives * negativesBelow) : NaN;
}

export function rocAuc(scores: ArrayLike<number>, labels: Uint8Array): number {
  return aucFromRanked(rankPairs(scores, labels));
}

// ------------------------------------------------------------------------------------------- P5 features

/**
 * Per-image channel standardisation over the image's cells ((x − mean)/(std + 1e-6), population std) followed
 * by L2 normalisation of each cell (÷ (norm + 1e-6)), so a dot product of two rows is their cosine.
 * `features` is [cells, dim].
 */
export function standardisedUnitRows(features: ArrayLike<number>, cells: number, dim: number): Float64Array {
  if (features.length !== cells * dim) {
    throw new Error(`standardisedUnitRows: ${features.length} values, expected ${cells} cells × ${dim}`);
  }
  const out = Float64Array.from(features);
  for (let c = 0; c < dim; c++) {
    let mean = 0;
    for (let r = 0; r < cells; r++) mean += out[r * dim + c];
    mean /= cells;
    let variance = 0;
    for (let r = 0; r < cells; r++) {
      const d = out[r * dim + c] - mean;
      variance += d * d;
    }
    const scale = Math.sqrt(variance / cells) + 1e-6;
    for (let r = 0; r < cells; r++) out[r * dim + c] = (out[r * dim + c] - mean) / scale;
  }
  for (let r = 0; r < cells; r++) {
    let norm = 0;
    for (let c = 0; c < dim; c++) norm += out[r * dim + c] * out[r * dim + c];
    const inv = 1 / (Math.sqrt(norm) + 1e-6);
    for (let c = 0; c < dim; c++) out[r * dim + c] *= inv;
  }
  return out;
}

export function rowDot(rows: Float64Array, dim: number, a: number, b: number): number {
  let s = 0;
  for (let c = 0; c < dim; c++) s += rows[a * dim + c] * rows[b * dim + c];
  return s;
}

// ------------------------------------------------------------------------------------------- P4 grouping

/**
 * k-means on the rows of `rows` ([cells, dim]): centroids initialised from k distinct random cells, `iterations`
 * rounds of nearest-centroid assignment (squared Euclidean, ties to the lower cluster) and mean updates (an empty
 * cluster keeps its centroid). Returns each cell's cluster.
 */
export function kMeans(rows: Float64Array, cells: number, dim: number, k: number, iterations: number, random: () => number): Int32Array {
  if (k < 1 || k > cells) throw new Error(`kMeans: k = ${k} clusters for ${cells} cells`);
  const order = Array.from({ length: cells }, (_, i) => i);
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(random() * (cells - i));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const centroids = new Float64Array(k * dim);
  for (let c = 0; c < k; c++) centroids.set(rows.subarray(order[c] * dim, (order[c] + 1) * dim), c * dim);
  const assignment = new Int32Array(cells);
  for (let it = 0; it < iterations; it++) {
    for (let r = 0; r < cells; r++) {
      let best = 0;
      let bestDistance = Infinity;
      for (let c = 0; c < k; c++) {
        let d = 0;
        for (let q = 0; q < dim; q++) d += (rows[r * dim + q] - centroids[c * dim + q]) ** 2;
        if (d < bestDistance) [best, bestDistance] = [c, d];
      }
      assignment[r] = best;
    }
    const sums = new Float64Array(k * dim);
    const counts = new Int32Array(k);
    for (let r = 0; r < cells; r++) {
      counts[assignment[r]]++;
      for (let q = 0; q < dim; q++) sums[assignment[r] * dim + q] += rows[r * dim + q];
    }
    for (let c = 0; c < k; c++) if (counts[c] > 0) for (let q = 0; q < dim; q++) centroids[c * dim + q] = sums[c * dim + q] / counts[c];
  }
  return assignment;
}

/**
 * Mean IoU of `predicted` clusters against `truth` regions (both labels in [0, k) per pixel) under the matching of
 * clusters to regions that maximises it (Hungarian-matched mIoU; solved exactly by trying every permutation,
 * which is cheap for P4's k ≤ 5).
 */
export function matchedMeanIou(truth: ArrayLike<number>, predicted: ArrayLike<number>, k: number): number {
  if (truth.length !== predicted.length) throw new Error(`matchedMeanIou: ${truth.length} truth labels, ${predicted.length} predicted`);
  const joint = new Float64Array(k * k);
  const truthCount = new Float64Array(k);
  const predictedCount = new Float64Array(k);
  for (let p = 0; p < truth.length; p++) {
    joint[truth[p] * k + predicted[p]]++;
    truthCount[truth[p]]++;
    predictedCount[predicted[p]]++;
  }
  const iou = (t: number, c: number): number => {
    const union = truthCount[t] + predictedCount[c] - joint[t * k + c];
    return union > 0 ? joint[t * k + c] / union : 0;
  };
  let best = 0;
  const used = new Array<boolean>(k).fill(false);
  const search = (t: number, total: number): void => {
    if (t === k) {
      best = Math.max(best, total);
      return;
    }
    for (let c = 0; c < k; c++) {
      if (used[c]) continue;
      used[c] = true;
      search(t + 1, total + iou(t, c));
      used[c] = false;
    }
  };
  search(0, 0);
  return best / k;
}

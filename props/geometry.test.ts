import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { property } from './prop.ts';
import {
  type CropBox, type Grid, type ViewCoords,
  binDiagonal, cellCenters, cellDistances, matchCells, pairsToMask, positiveMask, viewCoords,
} from '../clove/geometry.ts';

const T_POS = 0.7;
const TIE = 1e-9;

/** An image size and a crop box inside it (w, h ≥ 2 so that bins have a non-zero diagonal). */
const boxIn = (width: number, height: number): fc.Arbitrary<CropBox> =>
  fc.record({ w: fc.integer({ min: 2, max: width }), h: fc.integer({ min: 2, max: height }) }).chain(({ w, h }) =>
    fc.record({ i: fc.integer({ min: 0, max: height - h }), j: fc.integer({ min: 0, max: width - w }) }).map(({ i, j }) => ({ i, j, h, w })));

const imageSize = fc.record({ width: fc.integer({ min: 2, max: 300 }), height: fc.integer({ min: 2, max: 300 }) });
const grid: fc.Arbitrary<Grid> = fc.tuple(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 8 }));
const mode = fc.constantFrom('normalized' as const, 'pixel' as const);

/** Two views of one image: sizes, boxes, flips, grids. */
const viewPair = imageSize.chain(({ width, height }) =>
  fc.record({
    width: fc.constant(width), height: fc.constant(height),
    boxA: boxIn(width, height), boxB: boxIn(width, height),
    flipA: fc.boolean(), flipB: fc.boolean(), gridA: grid, gridB: grid, mode,
  }));

const key = ([i, j]: readonly [number, number]): string => `${i},${j}`;
const sortPairs = (pairs: Array<[number, number]>): Array<[number, number]> =>
  [...pairs].sort((p, q) => p[0] - q[0] || p[1] - q[1]);

/** Pairs whose distance is clearly on one side of t, so that rounding in equivalent formulas cannot flip them. */
function robustPairs(d: Float64Array, lb: number, t: number, inside: boolean): Set<string> {
  const out = new Set<string>();
  d.forEach((v, k) => {
    if (Math.abs(v - t) > TIE && (v < t) === inside) out.add(key([Math.floor(k / lb), k % lb]));
  });
  return out;
}

test('viewCoords: normalized = pixel / (W−1, H−1); flip swaps x0 and x1 only', () => {
  property(fc.property(imageSize.chain(({ width, height }) =>
    fc.record({ width: fc.constant(width), height: fc.constant(height), box: boxIn(width, height), flipped: fc.boolean() })),
  ({ width, height, box, flipped }) => {
    const px = viewCoords(box, width, height, false, 'pixel');
    const nz = viewCoords(box, width, height, flipped, 'normalized');
    assert.deepEqual(px, { x0: box.j, y0: box.i, x1: box.j + box.w - 1, y1: box.i + box.h - 1 });
    const [left, right] = flipped ? [nz.x1, nz.x0] : [nz.x0, nz.x1];
    assert.ok(Math.abs(left - px.x0 / (width - 1)) < 1e-12 && Math.abs(right - px.x1 / (width - 1)) < 1e-12);
    assert.ok(Math.abs(nz.y0 - px.y0 / (height - 1)) < 1e-12 && Math.abs(nz.y1 - px.y1 / (height - 1)) < 1e-12);
  }), 200);
});

test('cellCenters: a worked example (flipped 2×3 grid) and the neighbour distance 1/√2', () => {
  const c: ViewCoords = { x0: 0.6, y0: 0, x1: 0, y1: 0.4 };
  const centres = cellCenters(c, [2, 3]);
  const expectX = [0.5, 0.3, 0.1, 0.5, 0.3, 0.1];
  const expectY = [0.1, 0.1, 0.1, 0.3, 0.3, 0.3];
  expectX.forEach((v, k) => assert.ok(Math.abs(centres.x[k] - v) < 1e-12, `x[${k}] = ${centres.x[k]}`));
  expectY.forEach((v, k) => assert.ok(Math.abs(centres.y[k] - v) < 1e-12, `y[${k}] = ${centres.y[k]}`));
  assert.ok(Math.abs(binDiagonal(c, [2, 3]) - Math.hypot(0.2, 0.2)) < 1e-12);
  const d = cellDistances(c, c, [2, 3], [2, 3]);
  assert.ok(Math.abs(d[1] - Math.SQRT1_2) < 1e-12, `horizontal neighbours at ${d[1]}`);
  assert.deepEqual(matchCells(c, c, [2, 3], [2, 3], T_POS), [[0, 0], [1, 1], [2, 2], [3, 3], [4, 4], [5, 5]]);
});

test('matcher: identical views with square cells match exactly the diagonal at T_pos = 0.7', () => {
  const squareCase = fc.record({ side: fc.integer({ min: 2, max: 300 }), g: fc.integer({ min: 1, max: 8 }), flipped: fc.boolean(), mode })
    .chain(({ side, g, flipped, mode: m }) => fc.integer({ min: 2, max: side }).chain((s) =>
      fc.record({ i: fc.integer({ min: 0, max: side - s }), j: fc.integer({ min: 0, max: side - s }) })
        .map(({ i, j }) => ({ side, g, flipped, mode: m, box: { i, j, h: s, w: s } }))));
  property(fc.property(squareCase, ({ side, g, flipped, mode: m, box }) => {
    const c = viewCoords(box, side, side, flipped, m);
    const pairs = matchCells(c, c, [g, g], [g, g], T_POS);
    assert.deepEqual(pairs, Array.from({ length: g * g }, (_, k) => [k, k]));
  }), 200);
});

test('matcher: swapping the two views transposes the pairs', () => {
  property(fc.property(viewPair, fc.double({ min: 0.05, max: 3, noNaN: true }), (v, t) => {
    const a = viewCoords(v.boxA, v.width, v.height, v.flipA, v.mode);
    const b = viewCoords(v.boxB, v.width, v.height, v.flipB, v.mode);
    const forward = matchCells(a, b, v.gridA, v.gridB, t);
    const backward = matchCells(b, a, v.gridB, v.gridA, t);
    assert.deepEqual(backward, sortPairs(forward.map(([i, j]) => [j, i])));
  }), 300);
});

test('matcher: flipping both views reflects columns (c → cols−1−c) in both grids', () => {
  property(fc.property(viewPair, fc.double({ min: 0.05, max: 3, noNaN: true }), (v, t) => {
    const [, ca] = v.gridA;
    const [rb, cb] = v.gridB;
    const lb = rb * cb;
    const coords = (flipA: boolean, flipB: boolean): [ViewCoords, ViewCoords] => [
      viewCoords(v.boxA, v.width, v.height, flipA, v.mode), viewCoords(v.boxB, v.width, v.height, flipB, v.mode)];
    const [a, b] = coords(v.flipA, v.flipB);
    const [af, bf] = coords(!v.flipA, !v.flipB);
    const reflect = (k: number, cols: number): number => Math.floor(k / cols) * cols + (cols - 1 - (k % cols));
    const plain = cellDistances(a, b, v.gridA, v.gridB);
    const flippedPairs = new Set(matchCells(af, bf, v.gridA, v.gridB, t).map(key));
    const reflected = (p: string): string => {
      const [i, j] = p.split(',').map(Number);
      return key([reflect(i, ca), reflect(j, cb)]);
    };
    for (const p of robustPairs(plain, lb, t, true)) assert.ok(flippedPairs.has(reflected(p)), `matched ${p} does not reflect to a match`);
    for (const p of robustPairs(plain, lb, t, false)) assert.ok(!flippedPairs.has(reflected(p)), `unmatched ${p} reflects to a match`);
  }), 300);
});

test('matcher: equal square crops that do not overlap have no pairs at T_pos = 0.7', () => {
  const disjoint = fc.record({ side: fc.integer({ min: 4, max: 300 }), g: fc.integer({ min: 1, max: 8 }), horizontal: fc.boolean(), flipA: fc.boolean(), flipB: fc.boolean() })
    .chain((r) => fc.integer({ min: 2, max: Math.floor(r.side / 2) }).chain((s) =>
      fc.record({
        first: fc.integer({ min: 0, max: r.side - 2 * s }),
        gapFraction: fc.double({ min: 0, max: 1, noNaN: true }),
        across: fc.integer({ min: 0, max: r.side - s }),
        across2: fc.integer({ min: 0, max: r.side - s }),
      }).map((p) => ({ ...r, s, ...p }))));
  property(fc.property(disjoint, ({ side, g, horizontal, flipA, flipB, s, first, gapFraction, across, across2 }) => {
    const second = first + s + Math.floor(gapFraction * (side - s - (first + s)));
    const boxA: CropBox = horizontal ? { i: across, j: first, h: s, w: s } : { i: first, j: across, h: s, w: s };
    const boxB: CropBox = horizontal ? { i: across2, j: second, h: s, w: s } : { i: second, j: across2, h: s, w: s };
    const a = viewCoords(boxA, side, side, flipA, 'normalized');
    const b = viewCoords(boxB, side, side, flipB, 'normalized');
    assert.deepEqual(matchCells(a, b, [g, g], [g, g], T_POS), []);
  }), 300);
});

test('matcher: crops separated by more than t·D along an axis have no pairs (any shapes)', () => {
  property(fc.property(viewPair, fc.double({ min: 0.05, max: 3, noNaN: true }), (v, t) => {
    const a = viewCoords(v.boxA, v.width, v.height, v.flipA, v.mode);
    const b = viewCoords(v.boxB, v.width, v.height, v.flipB, v.mode);
    const scale = Math.max(binDiagonal(a, v.gridA), binDiagonal(b, v.gridB));
    const gapX = Math.max(Math.min(a.x0, a.x1) - Math.max(b.x0, b.x1), Math.min(b.x0, b.x1) - Math.max(a.x0, a.x1));
    const gapY = Math.max(a.y0 - b.y1, b.y0 - a.y1);
    fc.pre(Math.max(gapX, gapY) >= t * scale);
    assert.deepEqual(matchCells(a, b, v.gridA, v.gridB, t), []);
  }), 300);
});

test('matcher: monotone in T_pos (pairs at t ⊆ pairs at t′ > t)', () => {
  property(fc.property(viewPair, fc.double({ min: 0, max: 3, noNaN: true }), fc.double({ min: 0, max: 3, noNaN: true }), (v, t1, t2) => {
    const [lo, hi] = t1 <= t2 ? [t1, t2] : [t2, t1];
    const a = viewCoords(v.boxA, v.width, v.height, v.flipA, v.mode);
    const b = viewCoords(v.boxB, v.width, v.height, v.flipB, v.mode);
    const wide = new Set(matchCells(a, b, v.gridA, v.gridB, hi).map(key));
    for (const p of matchCells(a, b, v.gridA, v.gridB, lo)) assert.ok(wide.has(key(p)), `pair ${key(p)} at ${lo} lost at ${hi}`);
  }), 300);
});

test('matcher: agrees with a brute-force pixel-space oracle on square images', () => {
  const squareViews = fc.integer({ min: 2, max: 300 }).chain((side) =>
    fc.record({ side: fc.constant(side), boxA: boxIn(side, side), boxB: boxIn(side, side), flipA: fc.boolean(), flipB: fc.boolean(), gridA: grid, gridB: grid }));
  /** Centres directly in original-image pixels: the crop spans pixel centres j..j+w−1 and i..i+h−1. */
  const oracleCentres = (box: CropBox, flipped: boolean, [rows, cols]: Grid): Array<[number, number]> => {
    const out: Array<[number, number]> = [];
    const cellW = (box.w - 1) / cols;
    const cellH = (box.h - 1) / rows;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const fromLeft = (c + 0.5) * cellW;
        out.push([flipped ? box.j + box.w - 1 - fromLeft : box.j + fromLeft, box.i + (r + 0.5) * cellH]);
      }
    }
    return out;
  };
  property(fc.property(squareViews, fc.double({ min: 0.05, max: 3, noNaN: true }), (v, t) => {
    const ca = oracleCentres(v.boxA, v.flipA, v.gridA);
    const cb = oracleCentres(v.boxB, v.flipB, v.gridB);
    const diag = (box: CropBox, [rows, cols]: Grid): number => Math.sqrt(((box.w - 1) / cols) ** 2 + ((box.h - 1) / rows) ** 2);
    const scale = Math.max(diag(v.boxA, v.gridA), diag(v.boxB, v.gridB));
    const oracle = new Float64Array(ca.length * cb.length);
    ca.forEach(([xa, ya], i) => cb.forEach(([xb, yb], j) => { oracle[i * cb.length + j] = Math.sqrt((xa - xb) ** 2 + (ya - yb) ** 2) / scale; }));
    const a = viewCoords(v.boxA, v.side, v.side, v.flipA, 'normalized');
    const b = viewCoords(v.boxB, v.side, v.side, v.flipB, 'normalized');
    const got = new Set(matchCells(a, b, v.gridA, v.gridB, t).map(key));
    const sure = robustPairs(oracle, cb.length, t, true);
    const sureNot = robustPairs(oracle, cb.length, t, false);
    for (const p of sure) assert.ok(got.has(p), `oracle pair ${p} missing`);
    for (const p of got) assert.ok(!sureNot.has(p), `pair ${p} is not an oracle pair`);
  }), 300);
});

test('positiveMask: the dense [N, La, Lb] mask holds exactly the matched pairs', () => {
  const batch = imageSize.chain(({ width, height }) => fc.record({
    width: fc.constant(width), height: fc.constant(height), gridA: grid, gridB: grid, mode,
    views: fc.array(fc.record({ boxA: boxIn(width, height), boxB: boxIn(width, height), flipA: fc.boolean(), flipB: fc.boolean() }), { minLength: 1, maxLength: 5 }),
  }));
  property(fc.property(batch, fc.double({ min: 0.05, max: 3, noNaN: true }), (v, t) => {
    const as = v.views.map((x) => viewCoords(x.boxA, v.width, v.height, x.flipA, v.mode));
    const bs = v.views.map((x) => viewCoords(x.boxB, v.width, v.height, x.flipB, v.mode));
    const la = v.gridA[0] * v.gridA[1];
    const lb = v.gridB[0] * v.gridB[1];
    const mask = positiveMask(as, bs, v.gridA, v.gridB, t);
    assert.equal(mask.length, v.views.length * la * lb);
    as.forEach((a, n) => {
      const pairs = new Set(matchCells(a, bs[n], v.gridA, v.gridB, t).map(key));
      for (let i = 0; i < la; i++) {
        for (let j = 0; j < lb; j++) assert.equal(mask[(n * la + i) * lb + j], pairs.has(key([i, j])) ? 1 : 0);
      }
    });
  }), 150);
  assert.throws(() => pairsToMask([[[0, 4]]], 2, 4), /outside 2×4/);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as E from 'fp-ts/lib/Either.js';
import { property } from './prop.ts';
import { input, param, type Tensor } from '../dsl/tensor.ts';
import { grad } from '../dsl/grad.ts';
import { makeGraph } from '../compiler/ir.ts';
import { interpret, type Bindings } from '../compiler/interp/interpret.ts';
import { createRng } from '../clove/data/rng.ts';
import {
  cloveLoss, hardNegatives, maskInputName, officialLoss, pairLoss, perPairLoss, viewPairs,
  officialLossDefaults, perPairLossDefaults, type LossOptions,
} from '../clove/loss.ts';

// ---- cases --------------------------------------------------------------------------------------------------

interface Case {
  readonly n: number;
  readonly lq: number;
  readonly lk: number;
  readonly d: number;
  readonly k: number;
  readonly C: Float64Array;
  readonly F: Float64Array;
  readonly mask: Float64Array;
}

const normals = (seed: number, length: number): Float64Array => {
  const rng = createRng(seed);
  return Float64Array.from({ length }, () => rng.normal());
};

/**
 * Random embeddings and a mask. `maxMatchesPerRow` bounds the matches of each query row (Lk − k keeps every row
 * valid for the unmatched pool); some images get an empty mask.
 */
function makeCase(n: number, lq: number, lk: number, d: number, k: number, seed: number, maxMatchesPerRow: number): Case {
  const rng = createRng(seed + 7);
  const mask = new Float64Array(n * lq * lk);
  for (let b = 0; b < n; b++) {
    if (rng.uniform() < 0.2) continue;
    for (let i = 0; i < lq; i++) {
      const matches = rng.int(0, maxMatchesPerRow + 1);
      const order = [...Array(lk).keys()].sort(() => rng.uniform() - 0.5);
      for (const j of order.slice(0, matches)) mask[(b * lq + i) * lk + j] = 1;
    }
  }
  return { n, lq, lk, d, k, C: normals(seed, n * lq * d), F: normals(seed + 1, n * lk * d), mask };
}

const caseArb = (validRows: boolean): fc.Arbitrary<Case> =>
  fc
    .record({
      n: fc.integer({ min: 1, max: 3 }),
      lq: fc.integer({ min: 1, max: 5 }),
      lk: fc.integer({ min: 3, max: 7 }),
      d: fc.integer({ min: 2, max: 5 }),
      seed: fc.integer({ min: 0, max: 1_000_000 }),
    })
    .chain((r) =>
      fc.integer({ min: 2, max: r.lk }).map((k) => makeCase(r.n, r.lq, r.lk, r.d, k, r.seed, validRows ? r.lk - k : r.lk)),
    );

const optionsArb = (c: Case): fc.Arbitrary<LossOptions> =>
  fc.record({
    variant: fc.constantFrom('official' as const, 'per-pair' as const),
    lambda: fc.double({ min: 0, max: 4, noNaN: true }),
    margin: fc.double({ min: -3, max: 100, noNaN: true }),
    k: fc.constant(c.k),
    negativePool: fc.constantFrom('unmatched' as const, 'all' as const),
    reduction: fc.constantFrom('mean' as const, 'sum' as const),
  });

const withOptions = (validRows: boolean) => caseArb(validRows).chain((c) => fc.tuple(fc.constant(c), optionsArb(c)));

// ---- evaluation ---------------------------------------------------------------------------------------------

const symbols = (c: Case) => ({
  C: input('C', [c.n, c.lq, c.d]) as Tensor<3>,
  F: input('F', [c.n, c.lk, c.d]) as Tensor<3>,
  mask: input('mask', [c.n, c.lq, c.lk]) as Tensor<3>,
});
const bind = (c: Case, C = c.C, F = c.F, mask = c.mask): Bindings => ({ C, F, mask });

function evaluate(outputs: Record<string, Tensor>, bindings: Bindings): Record<string, Float64Array> {
  const r = interpret(makeGraph(outputs), bindings, 'f64');
  if (E.isLeft(r)) throw new Error(r.left);
  return Object.fromEntries(Object.entries(r.right).map(([k, v]) => [k, Float64Array.from(v.data)]));
}

function lossValue(c: Case, o: LossOptions, C = c.C, F = c.F, mask = c.mask): number {
  const s = symbols(c);
  return evaluate({ loss: pairLoss(s.C, s.F, s.mask, o).loss }, bind(c, C, F, mask)).loss[0];
}

const close = (a: number, b: number, tol: number): boolean => Math.abs(a - b) <= tol * (1 + Math.abs(a) + Math.abs(b));

// ---- plain-TS reference -------------------------------------------------------------------------------------

function unitRows(x: Float64Array, rows: number, d: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let e = 0; e < d; e++) s += x[r * d + e] ** 2;
    const norm = Math.max(Math.sqrt(s), 1e-12);
    for (let e = 0; e < d; e++) out[r * d + e] = x[r * d + e] / norm;
  }
  return out;
}

/** cos[b][i][j] between unit query and key cells. */
function cosineTable(c: Case): number[][][] {
  const cu = unitRows(c.C, c.n * c.lq, c.d);
  const fu = unitRows(c.F, c.n * c.lk, c.d);
  return [...Array(c.n).keys()].map((b) =>
    [...Array(c.lq).keys()].map((i) =>
      [...Array(c.lk).keys()].map((j) => {
        let s = 0;
        for (let e = 0; e < c.d; e++) s += cu[(b * c.lq + i) * c.d + e] * fu[(b * c.lk + j) * c.d + e];
        return s;
      }),
    ),
  );
}

const maskAt = (c: Case, b: number, i: number, j: number): number => c.mask[(b * c.lq + i) * c.lk + j];

/** Mean of the cosines ranked 2..k among the row's allowed keys (most similar first). */
function rowNegative(cos: number[], allowed: (j: number) => boolean, k: number): number {
  const sorted = cos.filter((_v, j) => allowed(j)).sort((a, b) => b - a);
  return sorted.slice(1, k).reduce((a, v) => a + v, 0) / (k - 1);
}

// ---- properties ---------------------------------------------------------------------------------------------

test('per-pair loss is never negative', () => {
  property(
    fc.property(withOptions(false), ([c, o]) => {
      const value = lossValue(c, { ...o, variant: 'per-pair' });
      assert.ok(value >= 0, `per-pair loss ${value} < 0`);
    }),
    40,
  );
});

test('both losses are invariant to positive per-cell rescaling of C and F', () => {
  property(
    fc.property(withOptions(false), fc.integer({ min: 0, max: 1_000_000 }), ([c, o], seed) => {
      const rng = createRng(seed);
      const rescale = (x: Float64Array, d: number) => {
        const out = new Float64Array(x.length);
        for (let r = 0; r < x.length / d; r++) {
          const s = Math.exp(rng.uniformIn(-3, 3));
          for (let e = 0; e < d; e++) out[r * d + e] = x[r * d + e] * s;
        }
        return out;
      };
      const before = lossValue(c, o);
      const after = lossValue(c, o, rescale(c.C, c.d), rescale(c.F, c.d));
      assert.ok(close(before, after, 1e-9), `${o.variant}: ${before} before, ${after} after rescaling`);
    }),
    40,
  );
});

test('a consistent permutation of query cells, key cells and the mask leaves both losses unchanged', () => {
  property(
    fc.property(withOptions(false), fc.integer({ min: 0, max: 1_000_000 }), ([c, o], seed) => {
      const rng = createRng(seed);
      const shuffle = (m: number) => [...Array(m).keys()].map((i) => [rng.uniform(), i] as const).sort((a, b) => a[0] - b[0]).map(([, i]) => i);
      const pq = shuffle(c.lq);
      const pk = shuffle(c.lk);
      const C = new Float64Array(c.C.length);
      const F = new Float64Array(c.F.length);
      const mask = new Float64Array(c.mask.length);
      for (let b = 0; b < c.n; b++) {
        for (let i = 0; i < c.lq; i++) for (let e = 0; e < c.d; e++) C[(b * c.lq + i) * c.d + e] = c.C[(b * c.lq + pq[i]) * c.d + e];
        for (let j = 0; j < c.lk; j++) for (let e = 0; e < c.d; e++) F[(b * c.lk + j) * c.d + e] = c.F[(b * c.lk + pk[j]) * c.d + e];
        for (let i = 0; i < c.lq; i++) for (let j = 0; j < c.lk; j++) mask[(b * c.lq + i) * c.lk + j] = maskAt(c, b, pq[i], pk[j]);
      }
      const before = lossValue(c, o);
      const after = lossValue(c, o, C, F, mask);
      assert.ok(close(before, after, 1e-9), `${o.variant}/${o.negativePool}: ${before} before, ${after} after permuting`);
    }),
    40,
  );
});

test('hard negatives are ranks 2..k of the allowed keys: never the most similar, never an excluded key', () => {
  property(
    fc.property(caseArb(false), fc.boolean(), (c, unmatchedPool) => {
      const cos = input('cos', [c.n, c.lq, c.lk]) as Tensor<3>;
      const excluded = input('excluded', [c.n, c.lq, c.lk]) as Tensor<3>;
      const table = cosineTable(c);
      const flat = Float64Array.from(table.flat(2));
      const ex = unmatchedPool ? c.mask : new Float64Array(c.mask.length);
      const h = hardNegatives(cos, excluded, c.k);
      const out = evaluate({ indices: h.indices, valid: h.valid }, { cos: flat, excluded: ex });
      for (let b = 0; b < c.n; b++)
        for (let i = 0; i < c.lq; i++) {
          const allowed = [...Array(c.lk).keys()].filter((j) => ex[(b * c.lq + i) * c.lk + j] === 0);
          const valid = out.valid[b * c.lq + i];
          assert.equal(valid, allowed.length >= c.k ? 1 : 0, `row (${b}, ${i}) validity`);
          if (valid === 0) continue;
          const ranked = [...allowed].sort((p, q) => table[b][i][q] - table[b][i][p]);
          const picked = [...out.indices.slice((b * c.lq + i) * (c.k - 1), (b * c.lq + i + 1) * (c.k - 1))];
          assert.ok(!picked.includes(ranked[0]), `row (${b}, ${i}) picked the most similar key ${ranked[0]}: ${picked}`);
          assert.ok(picked.every((j) => allowed.includes(j)), `row (${b}, ${i}) picked an excluded key: ${picked}`);
          assert.deepEqual(picked, ranked.slice(1, c.k), `row (${b}, ${i}) picks ranks 2..k`);
        }
    }),
    60,
  );
});

test('official loss equals 100 + 2·c̄_neg − 4·c̄_pos per image while the hinge is inactive (empty masks included)', () => {
  property(
    fc.property(caseArb(true), (c) => {
      const table = cosineTable(c);
      let expected = 0;
      for (let b = 0; b < c.n; b++) {
        let pos = 0;
        let matches = 0;
        let neg = 0;
        for (let i = 0; i < c.lq; i++) {
          for (let j = 0; j < c.lk; j++) if (maskAt(c, b, i, j) === 1) (pos += table[b][i][j]), matches++;
          neg += rowNegative(table[b][i], (j) => maskAt(c, b, i, j) === 0, c.k);
        }
        const cPos = matches === 0 ? 0 : pos / matches;
        expected += 100 + 2 * (neg / c.lq) - 4 * cPos;
      }
      expected /= c.n;
      const value = lossValue(c, { ...officialLossDefaults, k: c.k });
      assert.ok(close(value, expected, 1e-6), `official ${value}, closed form ${expected}`);
    }),
    60,
  );
});

test('empty masks: official keeps the negative term over all keys (P = 0), per-pair gives 0', () => {
  property(
    fc.property(caseArb(true), (c0) => {
      const c = { ...c0, mask: new Float64Array(c0.mask.length) };
      const table = cosineTable(c);
      let expected = 0;
      for (let b = 0; b < c.n; b++) {
        let neg = 0;
        for (let i = 0; i < c.lq; i++) neg += rowNegative(table[b][i], () => true, c.k);
        expected += 100 + 2 * (neg / c.lq);
      }
      expected /= c.n;
      const official = lossValue(c, { ...officialLossDefaults, k: c.k });
      assert.ok(close(official, expected, 1e-9), `official ${official}, expected ${expected}`);
      for (const negativePool of ['all', 'unmatched'] as const) {
        assert.equal(lossValue(c, { ...perPairLossDefaults, k: c.k, negativePool }), 0);
      }
    }),
    30,
  );
});

test('official: an image with a row short of k unmatched keys contributes 0, with finite values throughout', () => {
  const c = makeCase(2, 3, 4, 3, 3, 11, 1);
  // Image 0: row 0 matches 2 of 4 keys, leaving 2 < k = 3 unmatched.
  const mask = Float64Array.from(c.mask);
  mask.fill(0, 0, 3 * 4);
  mask[0] = 1;
  mask[1] = 1;
  const s = symbols(c);
  const out = officialLoss(s.C, s.F, s.mask, { ...officialLossDefaults, k: 3 });
  const both = evaluate({ loss: out.loss, neg: out.negCos }, bind(c, c.C, c.F, mask)).loss[0];
  const onlySecond = { ...c, n: 1, C: c.C.slice(3 * 3), F: c.F.slice(4 * 3), mask: mask.slice(3 * 4) };
  const second = lossValue(onlySecond, { ...officialLossDefaults, k: 3 });
  assert.ok(Number.isFinite(both) && close(both, second / 2, 1e-12), `batch loss ${both}, image 1 alone ${second}`);
  const g = grad((p: { C: Tensor }) => officialLoss(p.C as Tensor<3>, s.F, s.mask, { ...officialLossDefaults, k: 3 }).loss)({ C: param('C', [2, 3, 3]) });
  const gc = evaluate({ g: g.C as Tensor }, bind(c, c.C, c.F, mask)).g;
  assert.ok(gc.every(Number.isFinite), 'gradient is finite');
  assert.ok(gc.slice(0, 9).every((v) => v === 0), 'the skipped image gets no gradient');
});

test('no gradient reaches the teacher, and the student does get one', () => {
  property(
    fc.property(withOptions(true), ([c, o]) => {
      const s = symbols(c);
      const grads = grad((p: { C: Tensor; F: Tensor }) => pairLoss(p.C as Tensor<3>, p.F as Tensor<3>, s.mask, o).loss)({
        C: param('C', [c.n, c.lq, c.d]),
        F: param('F', [c.n, c.lk, c.d]),
      });
      const out = evaluate({ gC: grads.C as Tensor, gF: grads.F as Tensor }, bind(c));
      assert.ok(out.gF.every((v) => v === 0), `teacher gradient ${out.gF}`);
      assert.ok(out.gC.every(Number.isFinite));
    }),
    30,
  );
});

test('grad of the loss agrees with central finite differences (float64 interpreter)', () => {
  property(
    fc.property(withOptions(true), ([c, o]) => {
      const s = symbols(c);
      const g = grad((p: { C: Tensor }) => pairLoss(p.C as Tensor<3>, s.F, s.mask, o).loss)({ C: param('C', [c.n, c.lq, c.d]) });
      const analytic = evaluate({ g: g.C as Tensor }, bind(c)).g;
      const h = 1e-6;
      for (let e = 0; e < c.C.length; e++) {
        const plus = Float64Array.from(c.C);
        const minus = Float64Array.from(c.C);
        plus[e] += h;
        minus[e] -= h;
        const numeric = (lossValue(c, o, plus) - lossValue(c, o, minus)) / (2 * h);
        assert.ok(Math.abs(numeric - analytic[e]) <= 1e-5 * (1 + Math.abs(numeric)), `${o.variant} d/dC[${e}]: grad ${analytic[e]}, differences ${numeric}`);
      }
    }),
    20,
  );
});

test('cloveLoss averages the spec’s view pairs: g0→t1, g1→t0 and every local against both globals', () => {
  assert.deepEqual(
    viewPairs(2).map((p) => p.name),
    ['global0.global1', 'global1.global0', 'local0.global0', 'local0.global1', 'local1.global0', 'local1.global1'],
  );
  assert.equal(maskInputName(viewPairs(1)[2]), 'mask.local0.global0');
  const n = 2;
  const lg = 4;
  const ll = 2;
  const d = 3;
  const g = [0, 1].map((v) => input(`g${v}`, [n, lg, d]) as Tensor<3>);
  const t = [0, 1].map((v) => input(`t${v}`, [n, lg, d]) as Tensor<3>);
  const l = [input('l0', [n, ll, d]) as Tensor<3>];
  const pairs = viewPairs(1);
  const masks = Object.fromEntries(pairs.map((p) => [p.name, input(`m.${p.name}`, [n, p.query.kind === 'global' ? lg : ll, lg]) as Tensor<3>]));
  const o: LossOptions = { ...officialLossDefaults, k: 2 };
  const total = cloveLoss({ global: g, local: l }, t, masks, o);
  const parts = pairs.map((p) => perPairOrOfficial(p.query.kind === 'global' ? g[p.query.index] : l[p.query.index], t[p.key], masks[p.name], o));
  const bindings: Record<string, Float64Array> = {};
  let seed = 100;
  for (const name of ['g0', 'g1', 't0', 't1']) bindings[name] = normals(seed++, n * lg * d);
  bindings.l0 = normals(seed++, n * ll * d);
  for (const p of pairs) {
    const rows = p.query.kind === 'global' ? lg : ll;
    bindings[`m.${p.name}`] = Float64Array.from({ length: n * rows * lg }, (_v, i) => (i % (lg + 1) === 0 ? 1 : 0));
  }
  const out = evaluate({ total: total.loss, ...Object.fromEntries(parts.map((p, i) => [`p${i}`, p])) }, bindings);
  const mean = parts.reduce((a, _p, i) => a + out[`p${i}`][0], 0) / parts.length;
  assert.ok(close(out.total[0], mean, 1e-12), `cloveLoss ${out.total[0]}, mean of terms ${mean}`);
  assert.throws(() => cloveLoss({ global: g, local: l }, t, {}, o), /no mask for view pair 'global0.global1'/);
});

function perPairOrOfficial(C: Tensor<3>, F: Tensor<3>, mask: Tensor<3>, o: LossOptions): Tensor<0> {
  return o.variant === 'official' ? officialLoss(C, F, mask, o).loss : perPairLoss(C, F, mask, o).loss;
}

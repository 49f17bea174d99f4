// Evaluate both CLoVE loss variants on plain arrays through the reference interpreter.
// Run: node --import tsx examples/loss.ts
import * as E from 'fp-ts/lib/Either.js';
import * as T from '../dsl/index.ts';
import { matchCells, pairsToMask } from '../clove/geometry.ts';
import { officialLossDefaults, pairLoss, perPairLossDefaults } from '../clove/loss.ts';

// Two views of one image: view b is the right 3/4 of view a's crop, horizontally flipped.
const a = { x0: 0, y0: 0, x1: 1, y1: 1 };
const b = { x0: 1, y0: 0, x1: 0.25, y1: 1 };
const pairs = matchCells(a, b, [4, 4], [4, 4], 0.7); // sorted [i, j] row-major cell indices
console.log(`${pairs.length} matched cells:`, JSON.stringify(pairs));

// Student cells C [1, 16, 8] and teacher cells F [1, 16, 8] as plain numbers; the mask from the pairs.
const D = 8;
const values = (seed: number) => Float32Array.from({ length: 16 * D }, (_v, i) => Math.sin(seed * 12.9898 + i * 78.233));
const C = T.l2Normalize(T.input('C', [1, 16, D]), -1);
const F = T.l2Normalize(T.input('F', [1, 16, D]), -1);
const mask = T.input('mask', [1, 16, 16]);
for (const o of [officialLossDefaults, perPairLossDefaults]) {
  const { loss, posCos, negCos } = pairLoss(C, F, mask, o);
  const out = T.interpret(T.makeGraph({ loss, posCos, negCos }), { C: values(1), F: values(2), mask: pairsToMask([pairs], 16, 16) });
  if (E.isLeft(out)) throw new Error(out.left);
  const [l, p, n] = [out.right.loss, out.right.posCos, out.right.negCos].map((v) => v.data[0].toFixed(4));
  console.log(`${o.variant}: loss ${l}  mean positive cos ${p}  mean hard-negative cos ${n}`);
}

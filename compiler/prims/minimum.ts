import * as b from '../build.ts';
import { binaryPrim } from './elementwise.ts';
// Ties split the cotangent evenly (as JAX does).
export const minimum = binaryPrim(
  'minimum',
  (a, c) => Math.min(a, c),
  (a, c, _y, g) => {
    const wa = b.where(b.lt(a, c), b.scalar(1, g), b.where(b.eq(a, c), b.scalar(0.5, g), b.scalar(0, g)));
    return [b.mul(g, wa), b.mul(g, b.sub(b.scalar(1, g), wa))];
  },
  (a, c) => `Math.min(${a}, ${c})`,
  [],
);

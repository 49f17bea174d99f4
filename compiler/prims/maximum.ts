import * as b from '../build.ts';
import { binaryPrim } from './elementwise.ts';
// Ties split the cotangent evenly (as JAX does), so the rule stays symmetric in its operands.
export const maximum = binaryPrim(
  'maximum',
  (a, c) => Math.max(a, c),
  (a, c, _y, g) => {
    const wa = b.where(b.lt(c, a), b.scalar(1, g), b.where(b.eq(a, c), b.scalar(0.5, g), b.scalar(0, g)));
    return [b.mul(g, wa), b.mul(g, b.sub(b.scalar(1, g), wa))];
  },
  (a, c) => `Math.max(${a}, ${c})`,
  [],
);

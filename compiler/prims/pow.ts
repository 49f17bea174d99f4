import * as b from '../build.ts';
import { binary } from '../kernel/ir.ts';
import { binaryPrim } from './elementwise.ts';
// d a^c / da = c a^(c-1);  d a^c / dc = a^c log a (defined for a > 0; the exponent gradient is only
// meaningful there, as in every framework).
export const pow = binaryPrim(
  'pow',
  Math.pow,
  (a, c, y, g) => [b.mul(g, b.mul(c, b.pow(a, b.sub(c, b.scalar(1, c))))), b.mul(g, b.mul(y, b.log(a)))],
  (a, c) => binary('pow', a, c),
  [],
);

import * as b from '../build.ts';
import { unaryPrim } from './elementwise.ts';
export const reciprocal = unaryPrim('reciprocal', (x) => 1 / x, (_x, y, g) => b.neg(b.mul(g, b.mul(y, y))), (x) => `(1.0 / ${x})`);

import * as b from '../build.ts';
import { fconst, fdiv } from '../kernel/ir.ts';
import { unaryPrim } from './elementwise.ts';
export const reciprocal = unaryPrim('reciprocal', (x) => 1 / x, (_x, y, g) => b.neg(b.mul(g, b.mul(y, y))), (x) => fdiv(fconst(1), x));

import * as b from '../build.ts';
import { unary } from '../kernel/ir.ts';
import { unaryPrim } from './elementwise.ts';
export const neg = unaryPrim('neg', (x) => -x, (_x, _y, g) => b.neg(g), (x) => unary('neg', x), true);

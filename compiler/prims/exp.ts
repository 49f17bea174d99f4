import * as b from '../build.ts';
import { unary } from '../kernel/ir.ts';
import { unaryPrim } from './elementwise.ts';
export const exp = unaryPrim('exp', Math.exp, (_x, y, g) => b.mul(g, y), (x) => unary('exp', x));

import * as b from '../build.ts';
import { unary } from '../kernel/ir.ts';
import { unaryPrim } from './elementwise.ts';
export const log = unaryPrim('log', Math.log, (x, _y, g) => b.div(g, x), (x) => unary('log', x));

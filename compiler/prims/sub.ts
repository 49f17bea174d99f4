import * as b from '../build.ts';
import { fsub } from '../kernel/ir.ts';
import { binaryPrim } from './elementwise.ts';
export const sub = binaryPrim('sub', (a, c) => a - c, (_a, _c, _y, g) => [g, b.neg(g)], fsub, [0, 1]);

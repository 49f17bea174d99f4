import * as b from '../build.ts';
import { fdiv } from '../kernel/ir.ts';
import { binaryPrim } from './elementwise.ts';
// d(a/c)/dc = -a/c² = -y/c
export const div = binaryPrim('div', (a, c) => a / c, (_a, c, y, g) => [b.div(g, c), b.neg(b.div(b.mul(g, y), c))], fdiv, [0]);

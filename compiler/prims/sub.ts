import * as b from '../build.ts';
import { binaryPrim } from './elementwise.ts';
export const sub = binaryPrim('sub', (a, c) => a - c, (_a, _c, _y, g) => [g, b.neg(g)], (a, c) => `(${a} - ${c})`, [0, 1]);

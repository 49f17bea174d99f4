import * as b from '../build.ts';
import { fmul } from '../kernel/ir.ts';
import { binaryPrim } from './elementwise.ts';
export const mul = binaryPrim('mul', (a, c) => a * c, (a, c, _y, g) => [b.mul(g, c), b.mul(g, a)], fmul, [0, 1], true);

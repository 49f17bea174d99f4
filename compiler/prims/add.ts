import { fadd } from '../kernel/ir.ts';
import { binaryPrim } from './elementwise.ts';
export const add = binaryPrim('add', (a, c) => a + c, (_a, _c, _y, g) => [g, g], fadd, [0, 1], true);

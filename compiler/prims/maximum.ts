import * as b from '../build.ts';
import { fmax } from '../kernel/ir.ts';
import { extremumPrim } from './elementwise.ts';
export const maximum = extremumPrim('maximum', Math.max, (a, c) => b.lt(c, a), fmax);

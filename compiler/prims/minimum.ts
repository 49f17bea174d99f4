import * as b from '../build.ts';
import { fmin } from '../kernel/ir.ts';
import { extremumPrim } from './elementwise.ts';
export const minimum = extremumPrim('minimum', Math.min, (a, c) => b.lt(a, c), fmin);

import * as b from '../build.ts';
import { extremumPrim } from './elementwise.ts';
export const maximum = extremumPrim('maximum', Math.max, (a, c) => b.lt(c, a), 'Math.max');

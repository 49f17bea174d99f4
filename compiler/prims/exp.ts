import * as b from '../build.ts';
import { unaryPrim } from './elementwise.ts';
export const exp = unaryPrim('exp', Math.exp, (_x, y, g) => b.mul(g, y), (x) => `Math.exp(${x})`);

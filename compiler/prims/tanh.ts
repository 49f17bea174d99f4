import * as b from '../build.ts';
import { unaryPrim } from './elementwise.ts';
export const tanh = unaryPrim('tanh', Math.tanh, (_x, y, g) => b.mul(g, b.sub(b.scalar(1, y), b.mul(y, y))));

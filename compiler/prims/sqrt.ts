import * as b from '../build.ts';
import { unary } from '../kernel/ir.ts';
import { scaled, unaryPrim } from './elementwise.ts';
// d sqrt(x) = 1 / (2 sqrt(x)): reuse the forward value instead of a second sqrt.
export const sqrt = unaryPrim('sqrt', Math.sqrt, (_x, y, g) => b.div(scaled(g, 0.5), y), (x) => unary('sqrt', x));

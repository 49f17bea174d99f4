import * as b from '../build.ts';
import { fconst, fdiv, unary } from '../kernel/ir.ts';
import { scaled, unaryPrim } from './elementwise.ts';
// d x^(-1/2) = -1/2 x^(-3/2) = -1/2 y^3
export const rsqrt = unaryPrim('rsqrt', (x) => 1 / Math.sqrt(x), (_x, y, g) => scaled(b.mul(g, b.mul(y, b.mul(y, y))), -0.5), (x) => fdiv(fconst(1), unary('sqrt', x)));

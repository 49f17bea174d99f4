import * as b from '../build.ts';
import { unary } from '../kernel/ir.ts';
import { unaryPrim } from './elementwise.ts';
// The subgradient at 0 is 0 (sign(0) = 0), as in PyTorch and JAX.
export const abs = unaryPrim('abs', Math.abs, (x, _y, g) => b.mul(g, b.sign(x)), (x) => unary('abs', x));

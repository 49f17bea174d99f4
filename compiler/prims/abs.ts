import * as b from '../build.ts';
import { unary } from '../kernel/ir.ts';
import { unaryPrim } from './elementwise.ts';
// The subgradient at 0 is 0 (g·sign(0)), as in PyTorch (abs backward is grad·sgn(x)). JAX gives 1 there (its rule
// selects on x ≥ 0); the method never takes |x| of a differentiated value, so PyTorch's convention is kept.
export const abs = unaryPrim('abs', Math.abs, (x, _y, g) => b.mul(g, b.sign(x)), (x) => unary('abs', x));

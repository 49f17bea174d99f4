import { fcmp, fconst, fselect } from '../kernel/ir.ts';
import { unaryPrim } from './elementwise.ts';
// Piecewise constant: zero derivative everywhere it exists, and 0 at the jump too (PyTorch and JAX alike).
export const sign = unaryPrim('sign', (x) => (x > 0 ? 1 : x < 0 ? -1 : 0), () => null, (x) => fselect(fcmp('>', x, fconst(0)), fconst(1), fselect(fcmp('<', x, fconst(0)), fconst(-1), fconst(0))));

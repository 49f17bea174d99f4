import { unaryPrim } from './elementwise.ts';
// Piecewise constant: zero derivative everywhere it exists, and 0 at the jump too (PyTorch and JAX alike).
export const sign = unaryPrim('sign', (x) => (x > 0 ? 1 : x < 0 ? -1 : 0), () => null, (x) => `(${x} > 0.0 ? 1.0 : (${x} < 0.0 ? -1.0 : 0.0))`);

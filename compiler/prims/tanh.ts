import * as b from '../build.ts';
import { unaryPrim } from './elementwise.ts';
export const tanh = unaryPrim('tanh', Math.tanh, (_x, y, g) => b.mul(g, b.sub(b.scalar(1, y), b.mul(y, y))),
  // 1 − 2/(e^{2x}+1) saturates correctly at ±1 when e^{2x} overflows or underflows (no Math.tanh in every dialect).
  (x) => `(1.0 - 2.0 / (Math.exp(2.0 * ${x}) + 1.0))`,
);

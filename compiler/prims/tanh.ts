import * as b from '../build.ts';
import { fadd, fconst, fdiv, fmul, fsub, unary } from '../kernel/ir.ts';
import { unaryPrim } from './elementwise.ts';
export const tanh = unaryPrim('tanh', Math.tanh, (_x, y, g) => b.mul(g, b.sub(b.scalar(1, y), b.mul(y, y))),
  // 1 − 2/(e^{2x}+1) saturates correctly at ±1 when e^{2x} overflows or underflows (no Math.tanh in every dialect).
  (x) => fsub(fconst(1), fdiv(fconst(2), fadd(unary('exp', fmul(fconst(2), x)), fconst(1)))),
);

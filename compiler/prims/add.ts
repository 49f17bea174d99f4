import { binaryPrim } from './elementwise.ts';
export const add = binaryPrim('add', (a, c) => a + c, (_a, _c, _y, g) => [g, g], (a, c) => `(${a} + ${c})`, [0, 1]);

import { comparePrim } from './elementwise.ts';
export const lt = comparePrim('lt', (a, c) => a < c, '<');

import { comparePrim } from './elementwise.ts';
export const eq = comparePrim('eq', (a, c) => a === c, '==');

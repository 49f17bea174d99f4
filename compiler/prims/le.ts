import { comparePrim } from './elementwise.ts';
export const le = comparePrim('le', (a, c) => a <= c, '<=');

import { comparePrim } from './elementwise.ts';
export const ne = comparePrim('ne', (a, c) => a !== c, '!=');

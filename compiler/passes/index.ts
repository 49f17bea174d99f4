import { flow } from 'fp-ts/lib/function.js';
import type { Graph } from '../ir.ts';
import { cse } from './cse.ts';
import { dce } from './dce.ts';
import { simplify } from './simplify.ts';

export { cse, dce, simplify };
export type Pass = (g: Graph) => Graph;
/** The standard pipeline run before scheduling. */
export const optimize: Pass = flow(simplify, cse, dce);

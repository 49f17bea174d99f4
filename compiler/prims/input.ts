import { bufferLeaf } from './leaves.ts';
/** A per-call input (images, masks, step counters), bound by name when a graph runs. */
export const input = bufferLeaf('input');

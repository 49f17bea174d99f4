import { bufferLeaf } from './leaves.ts';
/** A trainable parameter, bound by name when a graph runs. Gradients are taken with respect to these. */
export const param = bufferLeaf('param');

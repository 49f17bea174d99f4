// Two-level reductions. A reduction with a long loop and few outputs leaves most of a GPU idle (e.g. batch-norm
// statistics: 32 channels, each summing N·H·W = 32 768 values). This pass rewrites it as partial reductions over
// chunks followed by a reduction of the partials; the reshuffle in between is movement only, so it is index
// arithmetic in the first kernel and allocates nothing.
import * as b from '../build.ts';
import { numel, type Graph, type Node } from '../ir.ts';
import { NEG_SENTINEL } from '../prims/pool2d.ts';
import { mapGraph } from './rewrite.ts';

/** Loops at least this long are split… */
export const SPLIT_MIN_LENGTH = 4096;
/** …when the reduction has at most this many outputs (otherwise there is parallelism enough). */
export const SPLIT_MAX_OUTPUTS = 4096;
/** Length of each partial reduction. */
export const SPLIT_CHUNK = 256;

function split(n: Node): Node {
  if (n.op !== 'sum' && n.op !== 'reduceMax') return n;
  const x = n.inputs[0];
  const axes = (n.params as { axes: readonly number[] }).axes;
  const R = axes.reduce((a, ax) => a * x.shape[ax], 1);
  const O = numel(n.shape);
  if (R < SPLIT_MIN_LENGTH || O > SPLIT_MAX_OUTPUTS) return n;
  const kept = x.shape.map((_d, i) => i).filter((i) => !axes.includes(i));
  const parts = Math.ceil(R / SPLIT_CHUNK);
  const padded = parts * SPLIT_CHUNK;
  const rows = b.reshape(b.permute(x, [...kept, ...axes]), [O, R]);
  // Pad with the reduction's identity so the last chunk can be partial.
  const full = padded === R ? rows : b.pad(rows, [0, 0], [0, padded - R], [0, 0], n.op === 'sum' ? 0 : NEG_SENTINEL);
  const chunks = b.reshape(full, [O, parts, SPLIT_CHUNK]);
  const reduce = n.op === 'sum' ? b.sum : b.reduceMax;
  return b.reshape(reduce(reduce(chunks, [2]), [1]), n.shape);
}

export const splitReductions = (g: Graph): Graph => mapGraph(g, split);

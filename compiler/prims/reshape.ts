import * as b from '../build.ts';
import { fail, numel, ok, showShape } from '../ir.ts';
import type { Prim } from '../prim.ts';
import { badShape } from './checks.ts';
/** Row-major reshape (no data movement). */
export const reshape: Prim<'reshape'> = {
  name: 'reshape',
  arity: 1,
  kind: 'movement',
  cheapReread: true,
  keepsBytes: true,
  shape: (p, [x]) => {
    const bad = badShape(p.shape);
    if (bad !== undefined) return fail(bad);
    return numel(p.shape) === numel(x.shape) ? ok(p.shape, x.dtype) : fail(`cannot reshape ${showShape(x.shape)} (${numel(x.shape)} elements) to ${showShape(p.shape)}`);
  },
  vjp: (node, g) => [b.reshape(g, node.inputs[0].shape)],
  interp: (_p, [x], _o, ctx) => {
    const out = ctx.alloc(x.data.length);
    out.set(x.data);
    return out;
  },
  // Row-major reshape keeps the flat index.
  lower: (_n, idx, ctx) => ctx.input(0, idx),
  linearIn: [0],
};

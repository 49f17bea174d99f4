import type { Prim } from '../prim.ts';
// Shared rules of the four leaf primitives (each has its own file exporting its Prim).
import { fail, ok, type DType, type Shape, type ShapeResult } from '../ir.ts';
import { badShape } from './checks.ts';

export function leafShape(shape: Shape, dtype: DType, extra?: string): ShapeResult {
  const bad = badShape(shape) ?? extra;
  return bad === undefined ? ok(shape, dtype) : fail(bad);
}

/** The two buffer leaves (param, input): bound by name when a graph runs, never computed by a kernel. */
export function bufferLeaf<Op extends 'param' | 'input'>(name: Op): Prim<Op> {
  return {
    name,
    arity: 0,
    kind: 'leaf',
    shape: (p) => leafShape(p.shape, p.dtype, p.name === '' ? `${name}s need a name` : undefined),
    vjp: () => [],
    interp: (p, _i, out, ctx) => ctx.lookup(p.name, out),
    lower: (node) => {
      throw new Error(`${name} '${node.params.name}' is a buffer: the scheduler binds it, it is never inlined`);
    },
    linearIn: [],
  };
}

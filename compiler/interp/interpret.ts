// The reference interpreter: evaluates any valid graph on host arrays. It is the oracle of every test.
// `precision: 'f64'` evaluates in float64 (for finite-difference gradient checks); 'f32' rounds every
// intermediate to float32, like the GPU kernels do.
import * as E from 'fp-ts/lib/Either.js';
import { numel, showShape, type Graph, type Node } from '../ir.ts';
import type { Buf, InterpContext, Value } from '../prim.ts';
import { registry } from '../registry.ts';

export type Precision = 'f32' | 'f64';
export type Bindings = Readonly<Record<string, ArrayLike<number>>>;
export interface Evaluated {
  readonly shape: readonly number[];
  readonly data: Buf;
}

class BindingError extends Error {}

/** Evaluate every output of `graph` with params and inputs bound by name. */
export function interpret(graph: Graph, bindings: Bindings, precision: Precision = 'f32'): E.Either<string, Record<string, Evaluated>> {
  const alloc = (n: number): Buf => (precision === 'f64' ? new Float64Array(n) : new Float32Array(n));
  const ctx: InterpContext = {
    alloc,
    lookup: (name, info) => {
      const v = bindings[name];
      if (v === undefined) throw new BindingError(`no value bound for '${name}' (shape ${showShape(info.shape)})`);
      if (v.length !== numel(info.shape))
        throw new BindingError(`'${name}' has ${v.length} elements, expected ${numel(info.shape)} for shape ${showShape(info.shape)}`);
      const out = alloc(v.length);
      for (let i = 0; i < v.length; i++) out[i] = v[i];
      return out;
    },
  };
  const invalid = graph.nodes.find((n) => !n.valid);
  if (invalid !== undefined) return E.left(`cannot interpret an ill-typed graph (node ${invalid.id}: ${invalid.op} ${invalid.error ?? ''}); run typecheck first`);
  // Free each value after its last reader so large graphs (whole training steps) fit in memory.
  const lastUse = new Map<number, number>();
  graph.nodes.forEach((n, pos) => n.inputs.forEach((i) => lastUse.set(i.id, pos)));
  const outputIds = new Set(Object.values(graph.outputs).map((n) => n.id));
  const values = new Map<number, Value>();
  try {
    graph.nodes.forEach((n, pos) => {
      values.set(n.id, { shape: n.shape, data: evalNode(n, values, ctx) });
      for (const i of n.inputs) if (lastUse.get(i.id) === pos && !outputIds.has(i.id)) values.delete(i.id);
    });
  } catch (e) {
    if (e instanceof BindingError) return E.left(e.message);
    throw e;
  }
  const result: Record<string, Evaluated> = {};
  for (const [name, n] of Object.entries(graph.outputs)) result[name] = values.get(n.id) as Evaluated;
  return E.right(result);
}

function evalNode(n: Node, values: ReadonlyMap<number, Value>, ctx: InterpContext): Buf {
  const inputs = n.inputs.map((i) => values.get(i.id) as Value);
  const prim = registry[n.op] as unknown as { interp: (p: unknown, i: readonly Value[], o: Node, c: InterpContext) => Buf };
  return prim.interp(n.params, inputs, n, ctx);
}

// Shape checking of a whole graph, reporting every bad node at once.
import * as E from 'fp-ts/lib/Either.js';
import type { NonEmptyArray } from 'fp-ts/lib/NonEmptyArray.js';
import { showShape, type Graph } from './ir.ts';

export interface ShapeError {
  readonly op: string;
  readonly layer: string;
  readonly inputShapes: readonly (readonly number[])[];
  /** Full message: `<layer>: <op> <what is wrong>`. */
  readonly message: string;
}

/** Right(graph) when every node is well-typed; otherwise one error per node whose own shape rule failed. */
export function typecheck(graph: Graph): E.Either<NonEmptyArray<ShapeError>, Graph> {
  const errors: ShapeError[] = graph.nodes
    .filter((n) => n.error !== undefined)
    .map((n) => ({
      op: n.op,
      layer: n.layer,
      inputShapes: n.inputs.map((i) => i.shape),
      message: `${n.layer === '' ? '<top>' : n.layer}: ${n.op} ${n.error as string}`,
    }));
  return errors.length > 0 ? E.left(errors as NonEmptyArray<ShapeError>) : E.right(graph);
}

export const formatShapeErrors = (errors: readonly ShapeError[]): string =>
  errors.map((e) => `  ${e.message}${e.message.includes('[') ? '' : ` (inputs ${e.inputShapes.map(showShape).join(', ')})`}`).join('\n');

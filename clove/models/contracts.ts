// The contract every model variant keeps, checked on symbolic shapes (no values): what the training step, the
// loss and the evaluation rely on. `buildTrainStep` checks the configured modules with it before building the step,
// so a user's variant that breaks it is one message naming the module and its layer path; `clove-ts/testing`
// exposes the same checks for property tests over sizes.
import * as E from 'fp-ts/lib/Either.js';
import * as T from '../../dsl/tensor.ts';
import type { Tensor } from '../../dsl/tensor.ts';
import { flatten, isTensor, type ParamTree } from '../../dsl/tree.ts';
import { makeGraph, showShape, withScope, type Shape } from '../../compiler/ir.ts';
import { formatShapeErrors, typecheck } from '../../compiler/typecheck.ts';
import { createRng } from '../data/rng.ts';
import { isHostLeaf, isShape, symbolicParams, type HostTree, type ShapeTree } from './init.ts';
import type { CloveModel, Encoder, Predictor, StatefulModule } from './registry.ts';

const PARAMS = 'params';
const STATE = 'state';
const INPUT = 'x';

/**
 * The shape errors of the graph `outputs` span, each naming its layer path (`student.layer1.0.conv1: …`), or else
 * the contract's own problems (which would only restate a shape error's consequences).
 */
function problemsOf(outputs: Readonly<Record<string, Tensor>>, contract: () => string[]): string[] {
  const checked = typecheck(makeGraph(outputs));
  return E.isLeft(checked) ? [`\n${formatShapeErrors(checked.left)}`] : contract();
}

const namesAndShapes = (tree: ParamTree): string => flatten(tree, isTensor).map(([n, t]) => `${n} ${showShape(t.shape)}`).join(', ');
const declared = (tree: ShapeTree): string => flatten(tree, isShape).map(([n, s]) => `${n} ${showShape(s)}`).join(', ');

/** What `forward` returned as new state against `stateShapes`: the same names with the same shapes. */
function stateProblems(state: ParamTree, shapes: ShapeTree): string[] {
  const got = namesAndShapes(state);
  const want = declared(shapes);
  return got === want ? [] : [`the returned state is {${got}}, stateShapes declares {${want}}`];
}

/** What `init` returned against the declared shapes: the same names, each with as many values as its shape. */
function initProblems(what: string, values: HostTree, shapes: ShapeTree): string[] {
  const sizes = (entries: [string, number][]) => entries.map(([n, k]) => `${n}:${k}`).join(', ');
  const got = sizes(flatten(values, isHostLeaf).map(([n, v]) => [n, v.length]));
  const want = sizes(flatten(shapes, isShape).map(([n, s]) => [n, s.reduce((a, c) => a * c, 1)]));
  return got === want ? [] : [`init's ${what} {${got}} do not match the declared ${what} shapes {${want}}`];
}

/**
 * An encoder's contract, for a [batch, inChannels, size, size] input: its forward type-checks (shape errors name
 * the layer path), its output is [batch, outChannels, gridSide(size), gridSide(size)], its new BN state has
 * `stateShapes`' names and shapes, and `init` fills exactly the declared tensors. Right: the output shape.
 */
export function checkEncoderShapes(encoder: Encoder, input: { readonly inChannels: number; readonly batch: number; readonly size: number }, training = true): E.Either<string, Shape> {
  const { inChannels, batch, size } = input;
  const x = T.input(INPUT, [batch, inChannels, size, size]) as Tensor<4>;
  const out = encoder.forward(symbolicParams(encoder.paramShapes, PARAMS), symbolicParams(encoder.stateShapes, STATE), x, training);
  const side = encoder.gridSide(size);
  const want = [batch, encoder.outChannels, side, side];
  const problems = problemsOf({ y: out.y, ...Object.fromEntries(flatten(out.state, isTensor)) }, () => [
    ...(showShape(out.y.shape) === showShape(want) ? [] : [`the output is ${showShape(out.y.shape)}, outChannels and gridSide(${size}) promise ${showShape(want)}`]),
    ...stateProblems(out.state, encoder.stateShapes),
  ]);
  return problems.length === 0 ? E.right(out.y.shape) : E.left(`encoder on ${showShape(x.shape)}: ${problems.join('; ')}`);
}

/** A projector's contract on an encoder output [batch, inChannels, side, side]: [batch, out, side, side], state as declared. */
export function checkProjectorShapes(
  projector: StatefulModule,
  input: { readonly batch: number; readonly inChannels: number; readonly side: number; readonly out: number },
  training = true,
): E.Either<string, Shape> {
  const x = T.input(INPUT, [input.batch, input.inChannels, input.side, input.side]) as Tensor<4>;
  const out = projector.forward(symbolicParams(projector.paramShapes, PARAMS), symbolicParams(projector.stateShapes, STATE), x, training);
  const want = [input.batch, input.out, input.side, input.side];
  const problems = problemsOf({ y: out.y, ...Object.fromEntries(flatten(out.state, isTensor)) }, () => [
    ...(showShape(out.y.shape) === showShape(want) ? [] : [`the output is ${showShape(out.y.shape)}, model.projector.out = ${input.out} promises ${showShape(want)}`]),
    ...stateProblems(out.state, projector.stateShapes),
  ]);
  return problems.length === 0 ? E.right(out.y.shape) : E.left(`projector on ${showShape(x.shape)}: ${problems.join('; ')}`);
}

/** `init(rng)` against the declared shapes: exactly the declared tensors, each with as many values as its shape. */
export function checkInitShapes(module: StatefulModule | Predictor): E.Either<string, void> {
  const problems =
    'stateShapes' in module
      ? [...initProblems('parameters', module.init(createRng(0)).params, module.paramShapes), ...initProblems('state', module.init(createRng(0)).state, module.stateShapes)]
      : initProblems('parameters', module.init(createRng(0)), module.paramShapes);
  return problems.length === 0 ? E.right(undefined) : E.left(problems.join('; '));
}

/**
 * The configured modules chained as the step chains them, for each view size the step feeds them (global, then
 * local), under the student's scope so that layer paths read as in the step (`student.layer1.0.conv1: …`).
 */
export function checkModelShapes(model: CloveModel, io: { readonly batch: number; readonly channels: number; readonly sizes: readonly number[] }): E.Either<string, void> {
  for (const size of io.sizes) {
    const checked = withScope('student', () => {
      const encoded = checkEncoderShapes(model.encoder, { inChannels: io.channels, batch: io.batch, size });
      if (E.isLeft(encoded)) return encoded;
      const [, , side] = encoded.right;
      const projected = checkProjectorShapes(model.projector, { batch: io.batch, inChannels: model.encoder.outChannels, side, out: model.dim });
      if (E.isLeft(projected)) return projected;
      return checkPredictorShapes(model.predictor, { batch: io.batch, dim: model.dim, side });
    });
    if (E.isLeft(checked)) return E.left(`${size}-px views: ${checked.left}`);
  }
  return E.right(undefined);
}

/** A predictor's contract on a projected map [batch, dim, h, w]: cells [batch, h·w, dim], weights type-check. */
export function checkPredictorShapes(predictor: Predictor, input: { readonly batch: number; readonly dim: number; readonly side: number }): E.Either<string, Shape> {
  const x = T.input(INPUT, [input.batch, input.dim, input.side, input.side]) as Tensor<4>;
  const out = predictor.forward(symbolicParams(predictor.paramShapes, PARAMS), x);
  const want = [input.batch, input.side * input.side, input.dim];
  const problems = problemsOf({ cells: out.cells, weights: out.weights }, () =>
    showShape(out.cells.shape) === showShape(want) ? [] : [`the cells are ${showShape(out.cells.shape)}, the loss needs ${showShape(want)}`],
  );
  return problems.length === 0 ? E.right(out.cells.shape) : E.left(`predictor on ${showShape(x.shape)}: ${problems.join('; ')}`);
}


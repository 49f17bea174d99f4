// Gradient checks of a whole module (an encoder, a projector) that a user runs on a variant of their own, in
// property tests over seeds: its gradients against float64 central differences at the module's own initial
// weights. The shape contracts live with the models (clove/models/contracts.ts); `clove-ts/testing` exports both.
import * as T from '../dsl/tensor.ts';
import type { Tensor } from '../dsl/tensor.ts';
import { flatten, isTensor } from '../dsl/tree.ts';
import { createRng } from '../clove/data/rng.ts';
import { isHostLeaf, symbolicParams } from '../clove/models/init.ts';
import type { StatefulModule } from '../clove/models/registry.ts';
import { defaultTolerance, vjpMismatches, type LeafCheck, type Tolerance } from './gradcheck.ts';
import { drawValues, prng } from './gen.ts';

/**
 * Tolerance for whole modules. Central differences in float64 cross a kink (ReLU, max pooling) only where an
 * activation lies within h of it; a module has thousands of activations, so h = 1e-6 (ten times smaller than for
 * one primitive) keeps that rare, while rounding (≈ 1e-16·|f|/h = 1e-10·|f|) stays far below rtol. rtol 1e-5 is
 * batch norm's (its variance divides by values near each other).
 */
export const moduleTolerance: Tolerance = { ...defaultTolerance, h: 1e-6, rtol: 1e-5 };

/**
 * The gradient of a random weighted sum of a stateful module's output, with respect to every parameter and to its
 * input, against central differences in float64, at the module's initial weights (`init(seed)`) and a random
 * input of `inputShape`. Returns the disagreements: none means the gradient is right.
 */
export function moduleGradientMismatches(
  module: StatefulModule,
  inputShape: readonly [number, number, number, number],
  options: { readonly seed: number; readonly training?: boolean; readonly tolerance?: Tolerance },
): LeafCheck[] {
  const params = symbolicParams(module.paramShapes, 'params');
  const x = T.input('x', inputShape) as Tensor<4>;
  const out = module.forward(params, symbolicParams(module.stateShapes, 'state'), x, options.training ?? true);
  const init = module.init(createRng(options.seed));
  const rand = prng(options.seed);
  const values: Record<string, Float64Array> = { x: drawValues({ shape: inputShape, dtype: 'f32', values: 'smooth' }, rand) };
  for (const [name, v] of flatten(init.params, isHostLeaf)) values[`params.${name}`] = Float64Array.from(v);
  for (const [name, v] of flatten(init.state, isHostLeaf)) values[`state.${name}`] = Float64Array.from(v);
  const leaves = [...flatten(params, isTensor).map(([, t]) => t), x];
  return vjpMismatches(out.y, leaves, values, rand, options.tolerance ?? moduleTolerance);
}

// Float64 gradient checking shared by the composite, pass and DSL tests: a directional derivative along a
// random direction, by central differences, against the same directional derivative of the analytic
// gradient (⟨∇f, v⟩). One direction per leaf checks every element of the gradient at once with two
// interpretations, which keeps whole layers (attention, batch norm) cheap to check.
import * as E from 'fp-ts/lib/Either.js';
import { vjp } from '../compiler/autodiff.ts';
import * as b from '../compiler/build.ts';
import { makeGraph, numel, type Node } from '../compiler/ir.ts';
import { interpret, type Bindings, type Evaluated } from '../compiler/interp/interpret.ts';
import { drawValues } from './gen.ts';

/** Interpret in float64, treating a Left as a test failure (the graphs here are built to be valid). */
export function evalF64(outputs: Readonly<Record<string, Node>>, bindings: Bindings): Record<string, Evaluated> {
  const r = interpret(makeGraph(outputs), bindings, 'f64');
  if (E.isLeft(r)) throw new Error(`interpretation failed: ${r.left}`);
  return r.right;
}

export function dotProduct(a: ArrayLike<number>, c: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * c[i];
  return s;
}

/** The name a param or input leaf is bound by. */
export function leafName(leaf: Node): string {
  if (leaf.op !== 'param' && leaf.op !== 'input') throw new Error(`gradient checks need param/input leaves, got ${leaf.op} (node ${leaf.id})`);
  return (leaf.params as { name: string }).name;
}

export interface Tolerance {
  /** Central-difference step. */
  readonly h: number;
  readonly rtol: number;
  readonly atol: number;
}
/**
 * Central differences in float64 with h = 1e-5 have truncation error O(h²·f''') ≈ 1e-10 and rounding error
 * ≈ 1e-16·|f|/h ≈ 1e-11·|f| for the O(1) values these tests draw; 1e-6 relative (plus 1e-7 absolute for
 * derivatives near 0) keeps about two orders of magnitude of margin yet catches any wrong factor or sign.
 */
export const defaultTolerance: Tolerance = { h: 1e-5, rtol: 1e-6, atol: 1e-7 };

/** One leaf's comparison; `ok` is false when the two directional derivatives disagree beyond the tolerance. */
export interface LeafCheck {
  readonly leaf: string;
  readonly finiteDifference: number;
  readonly analytic: number;
  readonly ok: boolean;
}

/**
 * Compare the gradient nodes `grads[i]` of the scalar `loss` with respect to `leaves[i]` against central
 * differences along a random direction drawn from `rand`. `values` binds every leaf of the graph.
 */
export function checkGradients(
  loss: Node,
  leaves: readonly Node[],
  grads: readonly Node[],
  values: Readonly<Record<string, Float64Array>>,
  rand: () => number,
  tol: Tolerance = defaultTolerance,
): LeafCheck[] {
  if (loss.shape.length !== 0) throw new Error(`checkGradients needs a scalar loss, got shape [${loss.shape.join(',')}]`);
  if (leaves.length !== grads.length) throw new Error(`${leaves.length} leaves but ${grads.length} gradients`);
  const outs: Record<string, Node> = {};
  grads.forEach((g, i) => (outs[`grad${i}`] = g));
  const analyticGrads = evalF64(outs, values);
  return leaves.map((leaf, i) => {
    const name = leafName(leaf);
    const g = analyticGrads[`grad${i}`].data;
    if (g.length !== numel(leaf.shape)) throw new Error(`gradient of '${name}' has ${g.length} elements, leaf has shape [${leaf.shape.join(',')}]`);
    const direction = drawValues({ shape: leaf.shape, dtype: 'f32', values: 'smooth' }, rand);
    const base = values[name];
    const at = (step: number): number => {
      const moved = Float64Array.from(base, (x, k) => x + step * direction[k]);
      return evalF64({ loss }, { ...values, [name]: moved }).loss.data[0];
    };
    const central = (h: number): number => (at(h) - at(-h)) / (2 * h);
    const analytic = dotProduct(g, direction);
    const agrees = (fd: number): boolean =>
      Math.abs(fd - analytic) <= tol.atol + tol.rtol * Math.max(Math.abs(fd), Math.abs(analytic), 1);
    const coarse = central(tol.h);
    if (agrees(coarse)) return { leaf: name, finiteDifference: coarse, analytic, ok: true };
    // A second opinion before failing: Richardson's (4·D(h/2) − D(h))/3 cancels the O(h²·f''') term, which
    // dominates where f''' is large (a cosine of nearly-zero vectors, a saturating softmax) and the exact
    // gradient would otherwise fail by truncation alone.
    const extrapolated = (4 * central(tol.h / 2) - coarse) / 3;
    return { leaf: name, finiteDifference: extrapolated, analytic, ok: agrees(extrapolated) };
  });
}

/**
 * Scalarize a (possibly non-scalar) output with a random weighting so every output element takes part:
 * loss = Σ output ⊙ w, with w bound under `weightName`. Returns the loss and the weight values to bind.
 */
export function weightedSum(output: Node, weightName: string, rand: () => number): { readonly loss: Node; readonly weights: Float64Array } {
  const w = b.input(weightName, output.shape, 'f32');
  const loss = b.sum(b.mul(output, w), output.shape.map((_d, i) => i));
  return { loss, weights: drawValues({ shape: output.shape, dtype: 'f32', values: 'smooth' }, rand) };
}

/** checkGradients with gradients built by `vjp` of a weighted sum of `output`; returns only the failures. */
export function vjpMismatches(
  output: Node,
  leaves: readonly Node[],
  values: Readonly<Record<string, Float64Array>>,
  rand: () => number,
  tol: Tolerance = defaultTolerance,
): LeafCheck[] {
  const { loss, weights } = weightedSum(output, 'gradcheck.w', rand);
  return checkGradients(loss, leaves, vjp(loss, leaves), { ...values, 'gradcheck.w': weights }, rand, tol).filter((c) => !c.ok);
}

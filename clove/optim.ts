// Optimizers as pure state transitions written in the DSL, so the update compiles into the training step.
// The learning rate is a scalar tensor (an `input` of the step), so a schedule never forces a recompile.
//
// Both follow the official code's parameter groups (PixPro/CLoVE lars.py `add_weight_decay`): parameters with
// at least 2 dims (conv, linear, attention projection weights) get weight decay added to the gradient; 1-D
// parameters (biases, BN affine, attention biases) get none. LARS then rescales the decayed gradient of the
// ≥2-D parameters by the trust ratio; the inner step is PyTorch's SGD with momentum (no dampening, no Nesterov).
import * as T from '../dsl/tensor.ts';
import type { Tensor } from '../dsl/tensor.ts';
import { flatten, isTensor, unflatten, type ParamTree } from '../dsl/tree.ts';
import type { Config } from './config.ts';

export type OptimizerName = Config['optim']['name'];

export interface OptimizerOptions {
  readonly name: OptimizerName;
  readonly momentum: number;
  readonly weightDecay: number;
  /** LARS trust coefficient (0.001 in the official code); unused by SGD. */
  readonly trust: number;
  /** LARS ε in ‖g‖ + ε (1e-8 in lars.py). */
  readonly eps?: number;
}

export interface LeafUpdate {
  readonly param: Tensor;
  readonly buffer: Tensor;
}

/** Weight decay and LARS apply to parameters with at least 2 dims only. */
export const isDecayed = (shape: readonly number[]): boolean => shape.length >= 2;

const l2Norm = (x: Tensor): Tensor<0> => T.sqrt(T.sum(T.mul(x, x)));

/** PyTorch SGD with momentum: d = g (+ wd·w); buf ← m·buf + d; w ← w − lr·buf. */
export function sgdLeaf(w: Tensor, g: Tensor, buffer: Tensor, lr: Tensor<0>, o: OptimizerOptions): LeafUpdate {
  const decayed = isDecayed(w.shape) && o.weightDecay > 0 ? T.add(g, T.mul(w, o.weightDecay)) : g;
  return momentumStep(w, decayed, buffer, lr, o.momentum);
}

function momentumStep(w: Tensor, d: Tensor, buffer: Tensor, lr: Tensor<0>, momentum: number): LeafUpdate {
  const nextBuffer = T.add(T.mul(buffer, momentum), d);
  return { param: T.sub(w, T.mul(nextBuffer, lr)), buffer: nextBuffer };
}

/**
 * LARS (lars.py): for ≥2-D parameters d = g + wd·w, then d ← d · trust·‖w‖/(‖d‖ + ε) when both norms are
 * positive (ratio 1 otherwise, as the official code); 1-D parameters keep d = g. Then SGD with momentum.
 */
export function larsLeaf(w: Tensor, g: Tensor, buffer: Tensor, lr: Tensor<0>, o: OptimizerOptions): LeafUpdate {
  if (!isDecayed(w.shape)) return momentumStep(w, g, buffer, lr, o.momentum);
  const decayed = o.weightDecay > 0 ? T.add(g, T.mul(w, o.weightDecay)) : g;
  const wNorm = l2Norm(w);
  const dNorm = l2Norm(decayed);
  const ratio = T.div(T.mul(wNorm, o.trust), T.add(dNorm, o.eps ?? 1e-8));
  const adaptive = T.where(T.gt(wNorm, 0), T.where(T.gt(dNorm, 0), ratio, 1), 1);
  return momentumStep(w, T.mul(decayed, adaptive), buffer, lr, o.momentum);
}

export interface OptimizerStep {
  readonly params: ParamTree;
  readonly buffers: ParamTree;
}

/** One optimizer step over whole trees; params, grads and buffers must have the same names and shapes. */
export function optimizerStep(params: ParamTree, grads: ParamTree, buffers: ParamTree, lr: Tensor<0>, o: OptimizerOptions): OptimizerStep {
  const gradsByName = new Map(flatten(grads, isTensor));
  const buffersByName = new Map(flatten(buffers, isTensor));
  const leaf = o.name === 'lars' ? larsLeaf : sgdLeaf;
  const updates = flatten(params, isTensor).map(([name, w]) => {
    const g = gradsByName.get(name);
    const buffer = buffersByName.get(name);
    if (g === undefined || buffer === undefined) {
      throw new Error(`optimizerStep: parameter '${name}' has no ${g === undefined ? 'gradient' : 'momentum buffer'}`);
    }
    const same = (x: Tensor) => x.shape.length === w.shape.length && x.shape.every((d, i) => d === w.shape[i]);
    if (!same(g) || !same(buffer)) {
      throw new Error(`optimizerStep: '${name}' is [${w.shape.join(',')}] but its gradient is [${g.shape.join(',')}] and its buffer [${buffer.shape.join(',')}]`);
    }
    return [name, leaf(w, g, buffer, lr, o)] as const;
  });
  return {
    params: unflatten(updates.map(([n, u]) => [n, u.param] as const)) as ParamTree,
    buffers: unflatten(updates.map(([n, u]) => [n, u.buffer] as const)) as ParamTree,
  };
}

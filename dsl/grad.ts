// grad / valueAndGrad in the JAX style, over parameter trees. Because tensors are symbolic, calling the
// returned function builds the forward and backward graph (nothing is computed until it is interpreted or
// compiled).
import { vjp } from '../compiler/autodiff.ts';
import { flatten, isTensor, unflatten, type ParamTree } from './tree.ts';
import type { Tensor } from './tensor.ts';

export interface ValueAndGrad<Aux> {
  readonly value: Tensor<0>;
  readonly grads: ParamTree;
  readonly aux: Aux;
}

/** d f / d params for a scalar-valued f, as a tree shaped like `params`. */
export const grad =
  <P extends ParamTree>(f: (params: P) => Tensor<0>) =>
  (params: P): ParamTree =>
    valueAndGrad((p: P) => ({ value: f(p), aux: undefined }))(params).grads;

/** The value of f, its gradient tree and any auxiliary outputs f returns (metrics, new BN state). */
export const valueAndGrad =
  <P extends ParamTree, Aux>(f: (params: P) => { readonly value: Tensor<0>; readonly aux: Aux }) =>
  (params: P): ValueAndGrad<Aux> => {
    const { value, aux } = f(params);
    const leaves = flatten(params, isTensor);
    const grads = vjp(value, leaves.map(([, t]) => t));
    return { value, aux, grads: unflatten(leaves.map(([n], i) => [n, grads[i] as Tensor] as const)) as ParamTree };
  };

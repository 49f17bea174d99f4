// CLoVE's projection head (MLP2d in CLoVE.py, CLOVE_SPEC §d): 1×1 conv (no bias) → BN → ReLU → 1×1 conv
// (no bias) → BN without affine parameters. The names (`linear1`, `bn1`, `linear2`, `bn2`) are the official
// module's, so a checkpoint maps one to one. Student and teacher share this architecture.
import { batchNorm, conv1x1, relu } from '../../dsl/nn.ts';
import type { Tensor } from '../../dsl/tensor.ts';
import { unflatten, type ParamTree } from '../../dsl/tree.ts';
import { withScope } from '../../compiler/ir.ts';
import type { Rng } from '../data/rng.ts';
import {
  filled, hostTree, ranked, subtreeAt, tensorAt, torchDefaultWeightInit, unflattenShapes,
  type HostTree, type ShapeTree,
} from './init.ts';

export interface ProjectorOptions {
  readonly inChannels: number;
  readonly hidden: number;
  readonly out: number;
}

export const projectorParamShapes = (o: ProjectorOptions): ShapeTree =>
  unflattenShapes([
    ['linear1.weight', [o.hidden, o.inChannels, 1, 1]],
    ['bn1.weight', [o.hidden]],
    ['bn1.bias', [o.hidden]],
    ['linear2.weight', [o.out, o.hidden, 1, 1]],
  ]);

export const projectorStateShapes = (o: ProjectorOptions): ShapeTree =>
  unflattenShapes([
    ['bn1.running_mean', [o.hidden]],
    ['bn1.running_var', [o.hidden]],
    ['bn2.running_mean', [o.out]],
    ['bn2.running_var', [o.out]],
  ]);

/**
 * Initial values: the official code leaves the projector at PyTorch's defaults (conv weights
 * kaiming_uniform(a=√5) = U(±1/√fan_in), BN γ = 1, β = 0, running mean 0 and variance 1).
 */
export function initProjector(o: ProjectorOptions, rng: Rng): { readonly params: HostTree; readonly state: HostTree } {
  const params = hostTree(projectorParamShapes(o), (shape, name) =>
    shape.length === 4 ? torchDefaultWeightInit(rng, shape) : filled(shape, name.endsWith('.bias') ? 0 : 1),
  );
  const state = hostTree(projectorStateShapes(o), (shape, name) => filled(shape, name.endsWith('running_var') ? 1 : 0));
  return { params, state };
}

/** The projection of a feature map [N, C, H, W] → [N, out, H, W], with the BN layers' new running statistics. */
export function projectorForward(params: ParamTree, state: ParamTree, x: Tensor<4>, training: boolean): { readonly y: Tensor<4>; readonly state: ParamTree } {
  const where = 'projector';
  const weight = (conv: string): Tensor<4> => ranked(tensorAt(subtreeAt(params, conv, where), 'weight', where), 4, where);
  const bnState = (bn: string) => {
    const s = subtreeAt(state, bn, where);
    return { runningMean: ranked(tensorAt(s, 'running_mean', where), 1, where), runningVar: ranked(tensorAt(s, 'running_var', where), 1, where) };
  };
  const bn1 = subtreeAt(params, 'bn1', where);
  const first = withScope('linear1', () =>
    batchNorm(
      conv1x1(x, weight('linear1')),
      { weight: ranked(tensorAt(bn1, 'weight', where), 1, where), bias: ranked(tensorAt(bn1, 'bias', where), 1, where) },
      bnState('bn1'),
      { training },
    ),
  );
  const second = withScope('linear2', () => batchNorm(conv1x1(relu(first.y), weight('linear2')), {}, bnState('bn2'), { training }));
  const next = unflatten([
    ['bn1.running_mean', first.state.runningMean],
    ['bn1.running_var', first.state.runningVar],
    ['bn2.running_mean', second.state.runningMean],
    ['bn2.running_var', second.state.runningVar],
  ]) as ParamTree;
  return { y: second.y, state: next };
}

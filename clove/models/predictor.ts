// The student's predictor q_s: "NMHSA" (CLOVE_SPEC §c). nn.MultiheadAttention over the cells of one view
// (query = key = value, no positional encoding, residual, norm or MLP), then per-cell L2 normalisation.
// The cosine-attention variant (l2-normalised q and k, logits divided by a temperature) is the unconfirmed
// paper reading of the unused `--attn-temp`; it shares parameters and initialisation.
import * as T from '../../dsl/tensor.ts';
import type { Tensor } from '../../dsl/tensor.ts';
import { l2Normalize, multiHeadAttention } from '../../dsl/nn.ts';
import type { ParamTree } from '../../dsl/tree.ts';
import { withScope } from '../../compiler/ir.ts';
import type { Rng } from '../data/rng.ts';
import {
  filled, hostTree, ranked, subtreeAt, tensorAt, torchDefaultWeightInit, unflattenShapes, xavierUniformInit,
  type HostTree, type ShapeTree,
} from './init.ts';

export interface AttentionPredictorOptions {
  /** Embedding width D (the projector's output channels). */
  readonly dim: number;
  readonly heads: number;
  /** Present: cosine attention with this temperature; absent: scaled dot product (the official code). */
  readonly cosineTemperature?: number;
}

/** nn.MultiheadAttention's parameter names: in_proj_weight [3D, D], in_proj_bias, out_proj.{weight, bias}. */
export const attentionParamShapes = (o: AttentionPredictorOptions): ShapeTree =>
  unflattenShapes([
    ['in_proj_weight', [3 * o.dim, o.dim]],
    ['in_proj_bias', [3 * o.dim]],
    ['out_proj.weight', [o.dim, o.dim]],
    ['out_proj.bias', [o.dim]],
  ]);

/** PyTorch's defaults: xavier_uniform_ on the packed in-projection, zero biases, nn.Linear's init for out_proj.weight. */
export function initAttention(o: AttentionPredictorOptions, rng: Rng): HostTree {
  return hostTree(attentionParamShapes(o), (shape, name) => {
    if (name === 'in_proj_weight') return xavierUniformInit(rng, shape);
    if (name === 'out_proj.weight') return torchDefaultWeightInit(rng, shape);
    return filled(shape, 0);
  });
}

export interface PredictorOutput {
  /** Unit-norm cell embeddings C^s, [N, L, D]. */
  readonly cells: Tensor<3>;
  /** Attention weights averaged over heads, [N, L, L]. */
  readonly weights: Tensor<3>;
}

/** A projected map [N, D, H, W] as cells [N, H·W, D], row-major over (H, W) as the official reshape. */
export function cellsOf(x: Tensor<4>): Tensor<3> {
  const [n, d, h, w] = x.shape;
  return T.permute(T.reshape(x, [n, d, h * w]), [0, 2, 1]);
}

export function attentionPredictorForward(o: AttentionPredictorOptions, params: ParamTree, projected: Tensor<4>): PredictorOutput {
  const where = 'predictor';
  const out = subtreeAt(params, 'out_proj', where);
  const attended = withScope('self_attn', () =>
    multiHeadAttention(
      cellsOf(projected),
      {
        inProjWeight: ranked(tensorAt(params, 'in_proj_weight', where), 2, where),
        inProjBias: ranked(tensorAt(params, 'in_proj_bias', where), 1, where),
        outProjWeight: ranked(tensorAt(out, 'weight', where), 2, where),
        outProjBias: ranked(tensorAt(out, 'bias', where), 1, where),
      },
      o.cosineTemperature === undefined ? { heads: o.heads } : { heads: o.heads, cosineTemperature: o.cosineTemperature },
    ),
  );
  // F.normalize(dim=1) on the [N, D, H, W] map is the same per-cell normalisation over D.
  return { cells: l2Normalize(attended.out, -1, 1e-12), weights: attended.weights };
}

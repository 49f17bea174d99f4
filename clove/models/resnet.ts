// The ResNet family (torchvision's v1.5: the stride sits on the 3×3 conv of a bottleneck) as a pure function
// over parameter trees. Parameter and buffer names follow torchvision exactly (`layer2.0.downsample.1.bias`),
// so exporting the student backbone is a prefix strip. The output is the last feature map before pooling
// (CLoVE's `early_return` head, CLOVE_SPEC §d).
import * as T from '../../dsl/tensor.ts';
import type { Tensor } from '../../dsl/tensor.ts';
import { batchNorm, relu } from '../../dsl/nn.ts';
import { unflatten, type ParamTree } from '../../dsl/tree.ts';
import { withScope, type Shape } from '../../compiler/ir.ts';
import { windowOut } from '../../compiler/prims/conv2d.ts';
import type { Rng } from '../data/rng.ts';
import {
  filled, hostTree, ranked, resnetConvInit, subtreeAt, tensorAt, unflattenShapes,
  type HostTree, type ShapeTree,
} from './init.ts';

export type ResNetDepth = 18 | 34 | 50;
export type StemKind = 'imagenet' | 'small' | 'compact';

interface Stem {
  readonly kernel: number;
  readonly stride: number;
  readonly maxPool: boolean;
  /** Stride of the last stage's first block (2 in torchvision). */
  readonly lastStageStride: number;
}
/**
 * 'imagenet': torchvision's 7×7 stride-2 conv and 3×3 stride-2 max pool (total stride 32). 'small': a 3×3 stride-1
 * conv and no pool (stride 8, as for CIFAR). 'compact': a 3×3 stride-2 conv, no pool, and a stride-1 last stage:
 * still stride 8, so 64-px views keep an 8×8 grid, but the first stage runs at half the resolution (where 'small'
 * spends a quarter of its FLOPs per stage at 4× the pixels) and the last at the third's: at width 32 on 64-px views
 * the encoder's convs cost 7 units against 'small''s 16 (C²·H·W per stage).
 */
const STEMS: Readonly<Record<StemKind, Stem>> = {
  imagenet: { kernel: 7, stride: 2, maxPool: true, lastStageStride: 2 },
  small: { kernel: 3, stride: 1, maxPool: false, lastStageStride: 2 },
  compact: { kernel: 3, stride: 2, maxPool: false, lastStageStride: 1 },
};

export interface ResNetOptions {
  readonly depth: ResNetDepth;
  /** Base width w: the four stages have w, 2w, 4w, 8w planes (64 in torchvision's resnet18/50). */
  readonly width: number;
  readonly stem: StemKind;
  /** Image channels (3 for RGB, 1 for grayscale). */
  readonly inChannels: number;
}

export type BlockKind = 'basic' | 'bottleneck';

/** One residual block: its torchvision name (`layer3.1`), channels and stride. */
export interface BlockPlan {
  readonly name: string;
  readonly kind: BlockKind;
  readonly inChannels: number;
  readonly planes: number;
  readonly outChannels: number;
  readonly stride: number;
  readonly downsample: boolean;
}

export interface ResNetPlan {
  readonly stemChannels: number;
  readonly blocks: readonly BlockPlan[];
  readonly outChannels: number;
}

const stageBlocks: Readonly<Record<ResNetDepth, readonly [BlockKind, readonly number[]]>> = {
  18: ['basic', [2, 2, 2, 2]],
  34: ['basic', [3, 4, 6, 3]],
  50: ['bottleneck', [3, 4, 6, 3]],
};
const expansion: Readonly<Record<BlockKind, number>> = { basic: 1, bottleneck: 4 };

/** The layer plan: the one description both the parameter shapes and the forward pass are derived from. */
export function resnetPlan(o: ResNetOptions): ResNetPlan {
  const [kind, counts] = stageBlocks[o.depth];
  const blocks: BlockPlan[] = [];
  let inChannels = o.width;
  counts.forEach((count, stage) => {
    const planes = o.width * 2 ** stage;
    const outChannels = planes * expansion[kind];
    for (let i = 0; i < count; i++) {
      const stride = i === 0 && stage > 0 ? (stage === 3 ? STEMS[o.stem].lastStageStride : 2) : 1;
      blocks.push({
        name: `layer${stage + 1}.${i}`,
        kind,
        inChannels,
        planes,
        outChannels,
        stride,
        downsample: stride !== 1 || inChannels !== outChannels,
      });
      inChannels = outChannels;
    }
  });
  return { stemChannels: o.width, blocks, outChannels: inChannels };
}

/** Total downsampling of the encoder: 32 with the ImageNet stem (2·2 in the stem, 2³ in the stages), else 8. */
export const resnetStride = (stem: StemKind): number => {
  const s = STEMS[stem];
  return s.stride * (s.maxPool ? 2 : 1) * 4 * s.lastStageStride;
};

/** The output grid side for a square input of `size` pixels (exact conv/pool arithmetic, not size/stride). */
export function resnetGridSide(stem: StemKind, size: number): number {
  const s = STEMS[stem];
  let side = windowOut(size, s.kernel, s.stride, (s.kernel - 1) / 2);
  if (s.maxPool) side = windowOut(side, 3, 2, 1);
  // Strided stages use a 3×3, pad-1 conv (the 1×1 downsample gives the same size).
  for (const stride of [2, 2, s.lastStageStride]) side = windowOut(side, 3, stride, 1);
  return side;
}

interface ConvSpec {
  readonly name: string;
  readonly shape: Shape;
}

/** Every conv of a block with its weight shape, in forward order, with the BN that follows it. */
function blockConvs(b: BlockPlan): { readonly conv: ConvSpec; readonly bn: string }[] {
  const convs =
    b.kind === 'basic'
      ? [
          { conv: { name: 'conv1', shape: [b.planes, b.inChannels, 3, 3] }, bn: 'bn1' },
          { conv: { name: 'conv2', shape: [b.planes, b.planes, 3, 3] }, bn: 'bn2' },
        ]
      : [
          { conv: { name: 'conv1', shape: [b.planes, b.inChannels, 1, 1] }, bn: 'bn1' },
          { conv: { name: 'conv2', shape: [b.planes, b.planes, 3, 3] }, bn: 'bn2' },
          { conv: { name: 'conv3', shape: [b.outChannels, b.planes, 1, 1] }, bn: 'bn3' },
        ];
  return b.downsample ? [...convs, { conv: { name: 'downsample.0', shape: [b.outChannels, b.inChannels, 1, 1] }, bn: 'downsample.1' }] : convs;
}

/** The BN whose γ starts at zero so that each residual branch starts as the identity (zero_init_residual). */
export const lastBnOf = (b: BlockPlan): string => (b.kind === 'basic' ? 'bn2' : 'bn3');

/** [name, shape] of every trainable parameter, with torchvision's names. */
function parameterEntries(o: ResNetOptions): [string, Shape][] {
  const plan = resnetPlan(o);
  const k = STEMS[o.stem].kernel;
  const bn = (name: string, c: number): [string, Shape][] => [
    [`${name}.weight`, [c]],
    [`${name}.bias`, [c]],
  ];
  const out: [string, Shape][] = [['conv1.weight', [plan.stemChannels, o.inChannels, k, k]], ...bn('bn1', plan.stemChannels)];
  for (const b of plan.blocks) {
    for (const { conv, bn: bnName } of blockConvs(b)) {
      out.push([`${b.name}.${conv.name}.weight`, conv.shape], ...bn(`${b.name}.${bnName}`, conv.shape[0]));
    }
  }
  return out;
}

/** Names of every BN layer with its channel count. */
function bnEntries(o: ResNetOptions): [string, number][] {
  const plan = resnetPlan(o);
  return [['bn1', plan.stemChannels], ...plan.blocks.flatMap((b) => blockConvs(b).map(({ conv, bn }): [string, number] => [`${b.name}.${bn}`, conv.shape[0]]))];
}

export const resnetParamShapes = (o: ResNetOptions): ShapeTree => unflattenShapes(parameterEntries(o));

/** BN running statistics, kept apart from the trainable parameters (`bn1.running_mean`, ...). */
export const resnetStateShapes = (o: ResNetOptions): ShapeTree =>
  unflattenShapes(bnEntries(o).flatMap(([name, c]): [string, Shape][] => [[`${name}.running_mean`, [c]], [`${name}.running_var`, [c]]]));

/**
 * Initial values as torchvision/CLoVE's resnet.py: conv weights N(0, 2/(k·k·C_out)), BN γ = 1 and β = 0,
 * the last BN γ of every block 0; running mean 0, running variance 1.
 */
export function initResnet(o: ResNetOptions, rng: Rng): { readonly params: HostTree; readonly state: HostTree } {
  const zeroGammas = new Set(resnetPlan(o).blocks.map((b) => `${b.name}.${lastBnOf(b)}.weight`));
  const params = hostTree(resnetParamShapes(o), (shape, name) => {
    if (name.endsWith('.bias')) return filled(shape, 0);
    if (shape.length === 1) return filled(shape, zeroGammas.has(name) ? 0 : 1);
    return resnetConvInit(rng, shape);
  });
  const state = hostTree(resnetStateShapes(o), (shape, name) => filled(shape, name.endsWith('running_var') ? 1 : 0));
  return { params, state };
}

export interface EncoderOutput {
  readonly y: Tensor<4>;
  readonly state: ParamTree;
}

/** Conv (no bias) → BN, collecting the BN's new running statistics under its name. */
function convBn(
  params: ParamTree,
  state: ParamTree,
  x: Tensor<4>,
  conv: string,
  bn: string,
  stride: number,
  padding: number,
  training: boolean,
  newState: [string, Tensor][],
): Tensor<4> {
  const where = `resnet ${conv}`;
  const w = ranked(tensorAt(subtreeAt(params, conv, where), 'weight', where), 4, where);
  const y = T.conv2d(x, w, { stride, padding });
  const bnParams = subtreeAt(params, bn, where);
  const bnState = subtreeAt(state, bn, where);
  const out = batchNorm(
    y,
    { weight: ranked(tensorAt(bnParams, 'weight', where), 1, where), bias: ranked(tensorAt(bnParams, 'bias', where), 1, where) },
    { runningMean: ranked(tensorAt(bnState, 'running_mean', where), 1, where), runningVar: ranked(tensorAt(bnState, 'running_var', where), 1, where) },
    { training },
  );
  newState.push([`${bn}.running_mean`, out.state.runningMean], [`${bn}.running_var`, out.state.runningVar]);
  return out.y;
}

/** Dotted lookups such as 'layer1.0' or 'downsample.0' inside a tree. */
function descend(tree: ParamTree, path: string, where: string): ParamTree {
  return path.split('.').reduce((t, key) => subtreeAt(t, key, where), tree);
}

function block(b: BlockPlan, params: ParamTree, state: ParamTree, x: Tensor<4>, training: boolean, newState: [string, Tensor][]): Tensor<4> {
  const where = `resnet ${b.name}`;
  const p = descend(params, b.name, where);
  const s = descend(state, b.name, where);
  const local: [string, Tensor][] = [];
  const [first, second, third] = blockConvs(b).filter(({ conv }) => conv.name !== 'downsample.0');
  let h: Tensor<4>;
  if (b.kind === 'basic') {
    h = relu(convBn(p, s, x, first.conv.name, first.bn, b.stride, 1, training, local));
    h = convBn(p, s, h, second.conv.name, second.bn, 1, 1, training, local);
  } else {
    h = relu(convBn(p, s, x, first.conv.name, first.bn, 1, 0, training, local));
    h = relu(convBn(p, s, h, second.conv.name, second.bn, b.stride, 1, training, local));
    h = convBn(p, s, h, third.conv.name, third.bn, 1, 0, training, local);
  }
  let identity: Tensor<4> = x;
  if (b.downsample) {
    const ds = subtreeAt(p, 'downsample', where);
    const dsState = subtreeAt(s, 'downsample', where);
    const dsLocal: [string, Tensor][] = [];
    identity = convBn(ds, dsState, x, '0', '1', b.stride, 0, training, dsLocal);
    local.push(...dsLocal.map(([n, t]): [string, Tensor] => [`downsample.${n}`, t]));
  }
  newState.push(...local.map(([n, t]): [string, Tensor] => [`${b.name}.${n}`, t]));
  return relu(T.add(h, identity));
}

/**
 * The forward pass: stem, four stages, no pooling. In training mode BN uses batch statistics and the new
 * running statistics come back as `state` (same names as the input state).
 */
export function resnetForward(o: ResNetOptions, params: ParamTree, state: ParamTree, x: Tensor<4>, training: boolean): EncoderOutput {
  const newState: [string, Tensor][] = [];
  let h = withScope('stem', () => {
    const s = STEMS[o.stem];
    const y = relu(convBn(params, state, x, 'conv1', 'bn1', s.stride, (s.kernel - 1) / 2, training, newState));
    return s.maxPool ? T.maxPool2d(y, 3, { stride: 2, padding: 1 }) : y;
  });
  for (const b of resnetPlan(o).blocks) h = withScope(b.name, () => block(b, params, state, h, training, newState));
  return { y: h, state: unflatten(newState) as ParamTree };
}

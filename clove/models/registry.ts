// The variant registry: encoders, projectors, predictors and losses by the name a config gives. The built-in ones
// are here; a user's script adds its own with `withVariants` and passes the result to `pretrain`/`evaluate`, so a
// config (and every checkpoint written from it) names the variant it holds. Builders validate their config
// section and return an error value naming the field, because the config is user input.
import * as E from 'fp-ts/lib/Either.js';
import type { Tensor } from '../../dsl/tensor.ts';
import type { ParamTree } from '../../dsl/tree.ts';
import type { Config } from '../config.ts';
import type { Grid } from '../geometry.ts';
import type { Rng } from '../data/rng.ts';
import { builtinPairLosses, type PairLossFunction } from '../loss.ts';
import type { HostTree, ShapeTree } from './init.ts';
import { initResnet, resnetForward, resnetGridSide, resnetParamShapes, resnetPlan, resnetStateShapes, resnetStride, type ResNetOptions } from './resnet.ts';
import { initProjector, projectorForward, projectorParamShapes, projectorStateShapes, type ProjectorOptions } from './projector.ts';
import { attentionParamShapes, attentionPredictorForward, initAttention, type AttentionPredictorOptions, type PredictorOutput } from './predictor.ts';

export type EncoderConfig = Config['model']['encoder'];
export type ProjectorConfig = Config['model']['projector'];
export type PredictorConfig = Config['model']['predictor'];

/** Something with BN-style state: parameters, running statistics, and a forward pass returning the new statistics. */
export interface StatefulModule {
  readonly paramShapes: ShapeTree;
  readonly stateShapes: ShapeTree;
  readonly init: (rng: Rng) => { readonly params: HostTree; readonly state: HostTree };
  readonly forward: (params: ParamTree, state: ParamTree, x: Tensor<4>, training: boolean) => { readonly y: Tensor<4>; readonly state: ParamTree };
}

export interface Encoder extends StatefulModule {
  readonly outChannels: number;
  /** Total downsampling factor from pixels to feature cells. */
  readonly stride: number;
  /** Feature grid side for a square view of `size` pixels. */
  readonly gridSide: (size: number) => number;
}

export interface Predictor {
  readonly paramShapes: ShapeTree;
  readonly init: (rng: Rng) => HostTree;
  /** Projected map [N, D, H, W] → unit cell embeddings [N, H·W, D] and attention weights. */
  readonly forward: (params: ParamTree, projected: Tensor<4>) => PredictorOutput;
}

export type EncoderBuilder = (cfg: EncoderConfig, inChannels: number) => E.Either<string, Encoder>;
export type ProjectorBuilder = (cfg: ProjectorConfig, inChannels: number) => E.Either<string, StatefulModule>;
export type PredictorBuilder = (cfg: PredictorConfig, dim: number) => E.Either<string, Predictor>;

function resnetEncoder(cfg: EncoderConfig, inChannels: number): E.Either<string, Encoder> {
  const o: ResNetOptions = { depth: cfg.depth, width: cfg.width, stem: cfg.stem, inChannels };
  return E.right({
    paramShapes: resnetParamShapes(o),
    stateShapes: resnetStateShapes(o),
    outChannels: resnetPlan(o).outChannels,
    stride: resnetStride(cfg.stem),
    gridSide: (size) => resnetGridSide(cfg.stem, size),
    init: (rng) => initResnet(o, rng),
    forward: (params, state, x, training) => resnetForward(o, params, state, x, training),
  });
}

function attentionPredictor(cosine: boolean): PredictorBuilder {
  return (cfg, dim) => {
    if (dim % cfg.heads !== 0) {
      return E.left(`model.predictor.heads = ${cfg.heads} must divide the embedding width model.projector.out = ${dim}`);
    }
    const o: AttentionPredictorOptions = cosine ? { dim, heads: cfg.heads, cosineTemperature: cfg.temperature } : { dim, heads: cfg.heads };
    return E.right({
      paramShapes: attentionParamShapes(o),
      init: (rng) => initAttention(o, rng),
      forward: (params, projected) => attentionPredictorForward(o, params, projected),
    });
  };
}

/** The projection head of the paper (one architecture; student and teacher each own a copy). */
function mlpProjector(cfg: ProjectorConfig, inChannels: number): E.Either<string, StatefulModule> {
  const o: ProjectorOptions = { inChannels, hidden: cfg.hidden, out: cfg.out };
  return E.right({
    paramShapes: projectorParamShapes(o),
    stateShapes: projectorStateShapes(o),
    init: (rng) => initProjector(o, rng),
    forward: projectorForward,
  });
}

/** Every variant a config can name, by kind. */
export interface Variants {
  readonly encoders: Readonly<Record<string, EncoderBuilder>>;
  readonly projectors: Readonly<Record<string, ProjectorBuilder>>;
  readonly predictors: Readonly<Record<string, PredictorBuilder>>;
  /** One (student view, teacher view) pair's loss; `loss.variant` names it. */
  readonly losses: Readonly<Record<string, PairLossFunction>>;
}

export const builtinVariants: Variants = {
  encoders: { resnet: resnetEncoder },
  projectors: { mlp: mlpProjector },
  predictors: { nmhsa: attentionPredictor(false), 'cosine-attention': attentionPredictor(true) },
  losses: builtinPairLosses,
};

const KINDS = ['encoders', 'projectors', 'predictors', 'losses'] as const;

/**
 * `base` with the user's variants added under their names. A name already taken is refused rather than replaced: a
 * checkpoint that says `resnet` must mean the same network in every script that reads it.
 */
export function withVariants(added: Partial<Variants>, base: Variants = builtinVariants): E.Either<string, Variants> {
  const taken = KINDS.flatMap((kind) => Object.keys(added[kind] ?? {}).filter((name) => Object.prototype.hasOwnProperty.call(base[kind], name)).map((name) => `${kind} '${name}'`));
  if (taken.length > 0) return E.left(`withVariants: ${taken.join(', ')} ${taken.length === 1 ? 'is' : 'are'} already registered; give your variant a name of its own`);
  const empty = KINDS.flatMap((kind) => Object.keys(added[kind] ?? {}).filter((name) => name.trim() === '').map(() => kind));
  if (empty.length > 0) return E.left(`withVariants: a variant among ${empty.join(', ')} has an empty name`);
  return E.right({
    encoders: { ...base.encoders, ...added.encoders },
    projectors: { ...base.projectors, ...added.projectors },
    predictors: { ...base.predictors, ...added.predictors },
    losses: { ...base.losses, ...added.losses },
  });
}

/** The registered builder named by a config field, or an error listing the names that are registered. */
export const lookupVariant = <B>(table: Readonly<Record<string, B>>, name: string, field: string): E.Either<string, B> =>
  Object.prototype.hasOwnProperty.call(table, name)
    ? E.right(table[name])
    : E.left(`${field} = '${name}' is not a registered variant (known: ${Object.keys(table).join(', ')}); a variant of your own is added with withVariants and passed as \`variants\` (\`--variants module.js\` on the command line)`);

export interface CloveModel {
  readonly encoder: Encoder;
  readonly projector: StatefulModule;
  readonly predictor: Predictor;
  /** Projector output width D: the embedding the loss compares. */
  readonly dim: number;
}

/** The variant names a config selects, for messages. */
export const describeModules = (c: Config): string =>
  `encoder '${c.model.encoder.name}', projector '${c.model.projector.name}', predictor '${c.model.predictor.name}', loss '${c.loss.variant}'`;

const buildEncoder = (cfg: Config, variants: Variants): E.Either<string, Encoder> =>
  E.chain((build: EncoderBuilder) => build(cfg.model.encoder, cfg.views.channels))(lookupVariant(variants.encoders, cfg.model.encoder.name, 'model.encoder.name'));

/** The student's three parts for a config (the teacher uses the same encoder and projector). */
export function buildModel(model: Config['model'], inChannels: number, variants: Variants = builtinVariants): E.Either<string, CloveModel> {
  const encoder = E.chain((build: EncoderBuilder) => build(model.encoder, inChannels))(lookupVariant(variants.encoders, model.encoder.name, 'model.encoder.name'));
  const predictor = E.chain((build: PredictorBuilder) => build(model.predictor, model.projector.out))(
    lookupVariant(variants.predictors, model.predictor.name, 'model.predictor.name'),
  );
  if (E.isLeft(encoder)) return encoder;
  if (E.isLeft(predictor)) return predictor;
  const projector = E.chain((build: ProjectorBuilder) => build(model.projector, encoder.right.outChannels))(
    lookupVariant(variants.projectors, model.projector.name, 'model.projector.name'),
  );
  if (E.isLeft(projector)) return projector;
  return E.right({ encoder: encoder.right, projector: projector.right, predictor: predictor.right, dim: model.projector.out });
}

/** Pixels per feature cell of the configured encoder (32 for the ImageNet stem, 8 for the small one). */
export const featureStride = (cfg: Config, variants: Variants = builtinVariants): E.Either<string, number> =>
  E.map((e: Encoder) => e.stride)(buildEncoder(cfg, variants));

export interface ViewGrids {
  readonly global: Grid;
  readonly local: Grid;
}

/**
 * Feature grids of the global and local views, or why the views are too small for the encoder: a view
 * smaller than the encoder's stride would give a grid of padding-dominated cells, which the matcher cannot
 * place meaningfully, so it is refused before any graph is built.
 */
export function viewGrids(
  cfg: Config,
  sizes: { readonly globalSize: number; readonly localSize: number; readonly nLocal: number } = cfg.views,
  variants: Variants = builtinVariants,
): E.Either<string, ViewGrids> {
  const encoder = buildEncoder(cfg, variants);
  if (E.isLeft(encoder)) return encoder;
  const { stride, gridSide } = encoder.right;
  const describe =
    cfg.model.encoder.name === 'resnet' ? `resnet-${cfg.model.encoder.depth} with the '${cfg.model.encoder.stem}' stem` : `the encoder '${cfg.model.encoder.name}'`;
  const problems: string[] = [];
  const check = (field: string, size: number): void => {
    if (size < stride) {
      problems.push(`${field} = ${size} px is smaller than the feature stride ${stride} of ${describe}; use views of at least ${stride} px${cfg.model.encoder.stem === 'imagenet' ? " or the 'small' stem (stride 8)" : ''}`);
    }
  };
  check('views.globalSize', sizes.globalSize);
  if (sizes.nLocal > 0) check('views.localSize', sizes.localSize);
  if (problems.length > 0) return E.left(problems.join('; '));
  const g = gridSide(sizes.globalSize);
  const l = gridSide(sizes.localSize);
  return E.right({ global: [g, g], local: [l, l] });
}

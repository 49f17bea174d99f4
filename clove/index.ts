// `clove-ts/clove`: the method. Data and views, the matcher, the model variants and their registry, the losses,
// optimizers and schedules, the training step as one graph, pretraining, evaluation, checkpoints and export.
// A model of one's own: write an `EncoderBuilder` (or projector, predictor, pair loss), register it with
// `withVariants`, name it in the config, and pass the variants to `pretrain` and `evaluate`.

// data and views
export * from './data/index.ts';
export { GIMP_PATTERNS_DIR, heldOutPatterns, textureCanvases, type GreyTexture } from './data/gimp.ts';
// the matcher
export { binDiagonal, cellCenters, cellDistances, matchCells, pairsToMask, positiveMask, viewCoords, type CellCenters, type CoordMode, type CropBox, type Grid, type ViewCoords } from './geometry.ts';
// models and the variant registry
export {
  buildModel,
  builtinVariants,
  describeModules,
  featureStride,
  lookupVariant,
  viewGrids,
  withVariants,
  type CloveModel,
  type Encoder,
  type EncoderBuilder,
  type EncoderConfig,
  type Predictor,
  type PredictorBuilder,
  type PredictorConfig,
  type ProjectorBuilder,
  type ProjectorConfig,
  type StatefulModule,
  type Variants,
  type ViewGrids,
} from './models/registry.ts';
export * from './models/init.ts';
export { checkEncoderShapes, checkInitShapes, checkModelShapes, checkPredictorShapes, checkProjectorShapes } from './models/contracts.ts';
export { initResnet, resnetForward, resnetGridSide, resnetParamShapes, resnetPlan, resnetStateShapes, resnetStride, type EncoderOutput, type ResNetDepth, type ResNetOptions, type StemKind } from './models/resnet.ts';
export { initProjector, projectorForward, projectorParamShapes, projectorStateShapes, type ProjectorOptions } from './models/projector.ts';
export { attentionParamShapes, attentionPredictorForward, cellsOf, initAttention, type AttentionPredictorOptions, type PredictorOutput } from './models/predictor.ts';
// losses, optimizers, EMA, schedules
export {
  builtinPairLosses,
  cloveLoss,
  EXCLUDED_SIMILARITY,
  hardNegatives,
  maskInputName,
  officialLoss,
  officialLossDefaults,
  pairLoss,
  perPairLoss,
  perPairLossDefaults,
  viewPairs,
  type CloveLoss,
  type HardNegatives,
  type LossOptions,
  type LossVariant,
  type PairLoss,
  type PairLossFunction,
  type StudentCells,
  type ViewPair,
  type ViewRef,
} from './loss.ts';
export { isDecayed, larsLeaf, optimizerStep, sgdLeaf, type LeafUpdate, type OptimizerName, type OptimizerOptions, type OptimizerStep } from './optim.ts';
export { emaUpdate } from './ema.ts';
export { cosineScheduleAt, emaMomentumAt, learningRateAt, type LearningRateSchedule } from './schedules.ts';
// the training step, configs, pretraining
export { buildTrainStep, initTrainState, lossOptionsOf, stepShapesOf, trainStateRecord, INPUT, METRIC_NAMES, STATE_PREFIX, type StepShapes, type TrainState, type TrainStep } from './step.ts';
export {
  applyOverrides,
  configCodec,
  defaultPresetName,
  parseConfig,
  presetNamed,
  presetNames,
  presets,
  readConfigFile,
  validateConfig,
  type BackendName,
  type Config,
  type DataSource,
  type PresetName,
} from './config.ts';
export { openPretrainData, pretrain, variantMismatch, type Logger, type PretrainData, type PretrainOptions, type RunResult } from './train.ts';
// checkpoints, export, evaluation
export { listCheckpoints, loadCheckpoint, loadNewestGoodCheckpoint, saveCheckpoint, type CheckpointTensor, type LoadedCheckpoint, type Manifest } from './checkpoint.ts';
export { torchvisionBackbone } from './export.ts';
export { checkpointEncoderWeights, evaluate, initialEncoderWeights, TIER_SIZES, tierNames, type EvalReport, type EvaluateOptions, type ResultRow, type Tier, type TierSizes } from './eval/run.ts';
export { compileExtractor, extractFeatures } from './eval/features.ts';
export type { DenseFeatures } from './eval/protocols.ts';

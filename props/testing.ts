// `clove-ts/testing`: what a user needs to property-test a model variant of their own with fast-check. `property`
// runs a fast-check property and prints the seed that replays a failure (CLOVE_SEED=<seed>); the module checks
// test an encoder's or predictor's shapes and its gradients against float64 central differences; the lower-level
// gradient checks work on any scalar graph.
export { property, runs } from './prop.ts';
export { checkEncoderShapes, checkInitShapes, checkPredictorShapes, checkProjectorShapes } from '../clove/models/contracts.ts';
export { moduleGradientMismatches, moduleTolerance } from './modules.ts';
export { checkGradients, defaultTolerance, evalF64, vjpMismatches, weightedSum, type LeafCheck, type Tolerance } from './gradcheck.ts';
export { drawValues, prng, type Operand, type Values } from './gen.ts';

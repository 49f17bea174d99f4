// One CLoVE training step as one graph (CLOVE_SPEC §1): student forward on the globals (one batch of 2N) and on
// the locals (one batch of nLocal·N), the EMA update of the teacher followed by its forward on the globals, the
// loss over all view pairs, gradients, the optimizer update, new BN running statistics, metrics and the first
// global view's attention weights. The graph is built once per (config, shapes); every per-step quantity
// (views, positive masks, learning rate, EMA momentum) is an `input`, and every persistent tensor is a
// `param` whose next value is the graph output of the same name, so a runtime feeds outputs back by name.
import * as E from 'fp-ts/lib/Either.js';
import * as T from '../dsl/tensor.ts';
import type { Tensor } from '../dsl/tensor.ts';
import { flatten, isTensor, type ParamTree } from '../dsl/tree.ts';
import { valueAndGrad } from '../dsl/grad.ts';
import { withScope, type Shape } from '../compiler/ir.ts';
import type { Config } from './config.ts';
import { createRng } from './data/rng.ts';
import { emaUpdate } from './ema.ts';
import { cloveLoss, maskInputName, viewPairs, type LossOptions, type ViewPair } from './loss.ts';
import { optimizerStep } from './optim.ts';
import { buildModel, builtinVariants, describeModules, lookupVariant, viewGrids, type CloveModel, type Variants, type ViewGrids } from './models/registry.ts';
import { checkModelShapes } from './models/contracts.ts';
import { copyHostTree, filled, hostRecord, hostTree, shapeRecord, subtreeAt, symbolicParams, type HostTree, type ShapeTree } from './models/init.ts';

/** Batch and view geometry of a step (the config's, unless a caller such as a test overrides them). */
export interface StepShapes {
  readonly batch: number;
  readonly channels: number;
  readonly globalSize: number;
  readonly localSize: number;
  readonly nLocal: number;
}

export const stepShapesOf = (config: Config): StepShapes => ({
  batch: config.optim.batchSize,
  channels: config.views.channels,
  globalSize: config.views.globalSize,
  localSize: config.views.localSize,
  nLocal: config.views.nLocal,
});

/** Name prefixes of the persistent state; the step's param names and `trainStateRecord` both use them. */
export const STATE_PREFIX = {
  student: 'student',
  teacher: 'teacher',
  momentum: 'optim.momentum',
  bnStudent: 'bn.student',
  bnTeacher: 'bn.teacher',
} as const;

/** Per-call input names. Views are stacked view-major: rows [v·N, (v+1)·N) hold view v of every image. */
export const INPUT = {
  globalViews: 'views.global',
  localViews: 'views.local',
  learningRate: 'lr',
  emaMomentum: 'emaMomentum',
} as const;

export const METRIC_NAMES = ['loss', 'posCos', 'negCos', 'matchedFraction'] as const;
export type MetricName = (typeof METRIC_NAMES)[number];
export const metricOutputName = (m: MetricName): string => `metrics.${m}`;
export const ATTENTION_OUTPUT = 'attention.global0';

export interface TrainStep {
  /**
   * Every graph output by name: the next value of each state tensor under that tensor's own name,
   * `metrics.<name>` scalars and `attention.global0` ([N, Lg, Lg], head-averaged, student global view 0).
   */
  readonly outputs: Readonly<Record<string, Tensor>>;
  /** Per-call inputs and their shapes: views, one positive mask per view pair, lr, emaMomentum. */
  readonly inputs: Readonly<Record<string, Shape>>;
  /** Persistent state tensors (params of the graph) and their shapes; each has an output of the same name. */
  readonly state: Readonly<Record<string, Shape>>;
  readonly grids: ViewGrids;
  /** The loss terms, in order; `maskInputName(pair)` names each one's mask input [N, Lq, Lk]. */
  readonly pairs: readonly ViewPair[];
}

/** Host values of every state tensor, as trees. */
export interface TrainState {
  readonly student: HostTree;
  readonly teacher: HostTree;
  readonly momentum: HostTree;
  readonly bnStudent: HostTree;
  readonly bnTeacher: HostTree;
}

interface StateShapes {
  readonly student: ShapeTree;
  readonly teacher: ShapeTree;
  readonly bn: ShapeTree;
}

function stateShapesOf(model: CloveModel): StateShapes {
  return {
    student: { encoder: model.encoder.paramShapes, projector: model.projector.paramShapes, predictor: model.predictor.paramShapes },
    teacher: { encoder: model.encoder.paramShapes, projector: model.projector.paramShapes },
    bn: { encoder: model.encoder.stateShapes, projector: model.projector.stateShapes },
  };
}

const cells = (g: readonly [number, number]): number => g[0] * g[1];

/** Everything about sizes that would otherwise fail deep inside graph construction, as one message. */
function checkStep(config: Config, shapes: StepShapes, grids: ViewGrids): E.Either<string, void> {
  const problems: string[] = [];
  const keys = cells(grids.global);
  if (config.loss.k > keys) {
    problems.push(
      `loss.k = ${config.loss.k} ranks k teacher cells per query cell, but global views of ${shapes.globalSize} px give a ${grids.global[0]}×${grids.global[1]} teacher grid (${keys} cells); use larger global views or k <= ${keys}`,
    );
  }
  if (!(Number.isInteger(shapes.batch) && shapes.batch >= 1)) problems.push(`batch = ${shapes.batch} must be a positive integer`);
  if (shapes.nLocal > 0 && shapes.nLocal * shapes.batch * cells(grids.local) < 2) {
    problems.push(
      `the local batch has one value per channel at the last layers (nLocal = ${shapes.nLocal}, batch = ${shapes.batch}, ${grids.local[0]}×${grids.local[1]} grid): batch statistics need at least 2`,
    );
  }
  if (shapes.channels !== config.views.channels) problems.push(`shapes.channels = ${shapes.channels} differs from views.channels = ${config.views.channels}`);
  return problems.length === 0 ? E.right(undefined) : E.left(problems.join('; '));
}

const tensorRecord = (tree: ParamTree, prefix: string): Record<string, Tensor> =>
  Object.fromEntries(flatten(tree, isTensor).map(([name, t]) => [`${prefix}.${name}`, t]));

/** Rows [from·n, (from+1)·n) of a view-major batch. */
const viewRows = <R extends number>(x: Tensor<R>, view: number, n: number): Tensor<R> =>
  T.slice(x, [[view * n, (view + 1) * n, 1]]);

export const lossOptionsOf = (config: Config): LossOptions => ({
  variant: config.loss.variant,
  lambda: config.loss.lambda,
  margin: config.loss.margin,
  k: config.loss.k,
  negativePool: config.loss.negativePool,
  reduction: config.loss.reduction,
});

/** The graph outputs of one training step (with the config's variants from `variants`), with the names and shapes of every input and state tensor. */
export function buildTrainStep(config: Config, shapes: StepShapes, variants: Variants = builtinVariants): E.Either<string, TrainStep> {
  const model = buildModel(config.model, shapes.channels, variants);
  if (E.isLeft(model)) return model;
  const pairLoss = lookupVariant(variants.losses, config.loss.variant, 'loss.variant');
  if (E.isLeft(pairLoss)) return pairLoss;
  const grids = viewGrids(config, shapes, variants);
  if (E.isLeft(grids)) return grids;
  const checked = checkStep(config, shapes, grids.right);
  if (E.isLeft(checked)) return checked;
  const sizes = shapes.nLocal > 0 ? [shapes.globalSize, shapes.localSize] : [shapes.globalSize];
  const contract = checkModelShapes(model.right, { batch: shapes.batch, channels: shapes.channels, sizes });
  if (E.isLeft(contract)) return E.left(`${describeModules(config)}: ${contract.left}`);
  const { encoder, projector, predictor } = model.right;
  const n = shapes.batch;
  const pairs = viewPairs(shapes.nLocal);
  const shapeTrees = stateShapesOf(model.right);

  const student = symbolicParams(shapeTrees.student, STATE_PREFIX.student);
  const teacher = symbolicParams(shapeTrees.teacher, STATE_PREFIX.teacher);
  const momentum = symbolicParams(shapeTrees.student, STATE_PREFIX.momentum);
  const bnStudent = symbolicParams(shapeTrees.bn, STATE_PREFIX.bnStudent);
  const bnTeacher = symbolicParams(shapeTrees.bn, STATE_PREFIX.bnTeacher);

  const inputs: Record<string, Shape> = {
    [INPUT.globalViews]: [2 * n, shapes.channels, shapes.globalSize, shapes.globalSize],
    ...(shapes.nLocal > 0 ? { [INPUT.localViews]: [shapes.nLocal * n, shapes.channels, shapes.localSize, shapes.localSize] } : {}),
    [INPUT.learningRate]: [],
    [INPUT.emaMomentum]: [],
  };
  const lg = cells(grids.right.global);
  const ll = cells(grids.right.local);
  for (const p of pairs) inputs[maskInputName(p)] = [n, p.query.kind === 'global' ? lg : ll, lg];
  const globalViews = T.input(INPUT.globalViews, inputs[INPUT.globalViews]) as Tensor<4>;
  const localViews = shapes.nLocal > 0 ? (T.input(INPUT.localViews, inputs[INPUT.localViews]) as Tensor<4>) : undefined;
  const lr = T.input(INPUT.learningRate, []) as Tensor<0>;
  const emaMomentum = T.input(INPUT.emaMomentum, []) as Tensor<0>;
  const masks = Object.fromEntries(pairs.map((p) => [p.name, T.input(maskInputName(p), inputs[maskInputName(p)]) as Tensor<3>]));

  // The teacher moves towards the student's current (pre-update) weights before its forward (CLoVE.py).
  const where = 'buildTrainStep';
  const teacherNext = emaUpdate(teacher, { encoder: subtreeAt(student, 'encoder', where), projector: subtreeAt(student, 'projector', where) }, emaMomentum);
  const teacherOut = withScope('teacher', () => {
    const enc = encoder.forward(subtreeAt(teacherNext, 'encoder', where), subtreeAt(bnTeacher, 'encoder', where), globalViews, true);
    const proj = projector.forward(subtreeAt(teacherNext, 'projector', where), subtreeAt(bnTeacher, 'projector', where), enc.y, true);
    const [b, d, h, w] = proj.y.shape;
    // F^t: per-cell projections [2N, L, D]; the loss normalises them and cuts their gradient.
    const f = T.stopGradient(T.permute(T.reshape(proj.y, [b, d, h * w]), [0, 2, 1]));
    return { cells: [viewRows(f, 0, n), viewRows(f, 1, n)], bn: { encoder: enc.state, projector: proj.state } };
  });

  const lossOptions = lossOptionsOf(config);
  const objective = (params: ParamTree) =>
    withScope('student', () => {
      const pEncoder = subtreeAt(params, 'encoder', where);
      const pProjector = subtreeAt(params, 'projector', where);
      const pPredictor = subtreeAt(params, 'predictor', where);
      const g = encoder.forward(pEncoder, subtreeAt(bnStudent, 'encoder', where), globalViews, true);
      const gp = projector.forward(pProjector, subtreeAt(bnStudent, 'projector', where), g.y, true);
      const gq = predictor.forward(pPredictor, gp.y);
      let bn: ParamTree = { encoder: g.state, projector: gp.state };
      const local: Tensor<3>[] = [];
      if (localViews !== undefined) {
        // The locals are a second forward through the same modules, so BN statistics update twice, as in PyTorch.
        const l = encoder.forward(pEncoder, g.state, localViews, true);
        const lp = projector.forward(pProjector, gp.state, l.y, true);
        const lq = predictor.forward(pPredictor, lp.y);
        for (let v = 0; v < shapes.nLocal; v++) local.push(viewRows(lq.cells, v, n));
        bn = { encoder: l.state, projector: lp.state };
      }
      const loss = cloveLoss({ global: [viewRows(gq.cells, 0, n), viewRows(gq.cells, 1, n)], local }, teacherOut.cells, masks, lossOptions, pairLoss.right);
      return { value: loss.loss, aux: { loss, bn, attention: T.stopGradient(viewRows(gq.weights, 0, n)) } };
    });
  const { value, grads, aux } = valueAndGrad(objective)(student);
  const updated = optimizerStep(student, grads, momentum, lr, config.optim);

  const outputs: Record<string, Tensor> = {
    ...tensorRecord(updated.params, STATE_PREFIX.student),
    ...tensorRecord(updated.buffers, STATE_PREFIX.momentum),
    ...tensorRecord(teacherNext, STATE_PREFIX.teacher),
    ...tensorRecord(aux.bn, STATE_PREFIX.bnStudent),
    ...tensorRecord(teacherOut.bn, STATE_PREFIX.bnTeacher),
    [metricOutputName('loss')]: value,
    [metricOutputName('posCos')]: aux.loss.posCos,
    [metricOutputName('negCos')]: aux.loss.negCos,
    [metricOutputName('matchedFraction')]: aux.loss.matchedFraction,
    [ATTENTION_OUTPUT]: aux.attention,
  };
  const state = {
    ...shapeRecord(shapeTrees.student, STATE_PREFIX.student),
    ...shapeRecord(shapeTrees.student, STATE_PREFIX.momentum),
    ...shapeRecord(shapeTrees.teacher, STATE_PREFIX.teacher),
    ...shapeRecord(shapeTrees.bn, STATE_PREFIX.bnStudent),
    ...shapeRecord(shapeTrees.bn, STATE_PREFIX.bnTeacher),
  };
  return E.right({ outputs, inputs, state, grids: grids.right, pairs });
}

/**
 * Initial state for a config and seed: student parameters from the models' initialisers (independent PRNG
 * streams per module, so changing the predictor leaves the encoder's draw alone), the teacher as an exact copy
 * of the student's encoder and projector, zero momentum buffers, and BN running mean 0 / variance 1.
 */
export function initTrainState(config: Config, seed: number, variants: Variants = builtinVariants): E.Either<string, TrainState> {
  const model = buildModel(config.model, config.views.channels, variants);
  if (E.isLeft(model)) return model;
  const { encoder, projector, predictor } = model.right;
  const rng = createRng(seed);
  const enc = encoder.init(rng.fork(1));
  const proj = projector.init(rng.fork(2));
  const pred = predictor.init(rng.fork(3));
  const student: HostTree = { encoder: enc.params, projector: proj.params, predictor: pred };
  const bnStudent: HostTree = { encoder: enc.state, projector: proj.state };
  return E.right({
    student,
    teacher: copyHostTree({ encoder: enc.params, projector: proj.params }),
    momentum: hostTree(stateShapesOf(model.right).student, (shape) => filled(shape, 0)),
    bnStudent,
    bnTeacher: copyHostTree(bnStudent),
  });
}

/** The state as name → values, with the names the step binds (`student.encoder.conv1.weight`, ...). */
export function trainStateRecord(s: TrainState): Record<string, Float32Array> {
  return {
    ...hostRecord(s.student, STATE_PREFIX.student),
    ...hostRecord(s.momentum, STATE_PREFIX.momentum),
    ...hostRecord(s.teacher, STATE_PREFIX.teacher),
    ...hostRecord(s.bnStudent, STATE_PREFIX.bnStudent),
    ...hostRecord(s.bnTeacher, STATE_PREFIX.bnTeacher),
  };
}

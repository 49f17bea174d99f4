// Model variants written in the user's own script: registered with withVariants, selected by name in the config,
// trained by `pretrain`, read back by `evaluate`'s weight loader; the module checks of `clove-ts/testing` on them;
// and the refusals: a taken name, an unknown name, a resume with another variant, a layer's shape error.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import * as E from 'fp-ts/lib/Either.js';
import * as T from '../dsl/tensor.ts';
import { batchNorm, l2Normalize } from '../dsl/nn.ts';
import { withScope } from '../compiler/ir.ts';
import { loadCheckpoint } from '../clove/checkpoint.ts';
import { main as exportMain } from '../clove/export.ts';
import { readSafetensorsFile } from '../clove/safetensors.ts';
import { parseConfig, presets, type Config } from '../clove/config.ts';
import { checkpointEncoderWeights, evaluate } from '../clove/eval/run.ts';
import { filled, normalValues, subtreeAt, tensorAt, type HostTree } from '../clove/models/init.ts';
import { builtinVariants, withVariants, type Encoder, type EncoderBuilder, type ProjectorBuilder, type Variants } from '../clove/models/registry.ts';
import type { PairLossFunction } from '../clove/loss.ts';
import { buildTrainStep, stepShapesOf } from '../clove/step.ts';
import { pretrain, type Logger } from '../clove/train.ts';
import { loadVariantsModule } from '../clove/variants-module.ts';
import { checkEncoderShapes, checkInitShapes, checkPredictorShapes } from '../clove/models/contracts.ts';
import { moduleGradientMismatches } from './modules.ts';
import { property } from './prop.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'clove-variants-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

/**
 * A user's encoder: a stride-`patch` patch embedding (conv, BN, tanh), then `depth` residual 3×3 conv + BN + tanh
 * mixers. Smooth activations, so its gradient check never meets a kink.
 */
const patchEncoder =
  (patch: number, depth: number, wrongMixerChannels = false): EncoderBuilder =>
  (cfg, inChannels) => {
    const c = cfg.width;
    const bnShapes = { weight: [c], bias: [c] };
    const statShapes = { running_mean: [c], running_var: [c] };
    const mixers = Array.from({ length: depth }, (_v, i) => `mixer${i}`);
    const encoder: Encoder = {
      outChannels: c,
      stride: patch,
      gridSide: (size) => Math.floor(size / patch),
      paramShapes: {
        embed: { weight: [c, inChannels, patch, patch], bn: bnShapes },
        ...Object.fromEntries(mixers.map((m) => [m, { weight: [c, wrongMixerChannels ? c + 1 : c, 3, 3], bn: bnShapes }])),
      },
      stateShapes: { embed: statShapes, ...Object.fromEntries(mixers.map((m) => [m, statShapes])) },
      init: (rng) => {
        const bn = (): HostTree => ({ weight: filled([c], 1), bias: filled([c], 0) });
        const stats = (): HostTree => ({ running_mean: filled([c], 0), running_var: filled([c], 1) });
        return {
          params: {
            embed: { weight: normalValues(rng, [c, inChannels, patch, patch], Math.sqrt(1 / (inChannels * patch * patch))), bn: bn() },
            ...Object.fromEntries(mixers.map((m) => [m, { weight: normalValues(rng, [c, wrongMixerChannels ? c + 1 : c, 3, 3], Math.sqrt(1 / (9 * c))), bn: bn() }])),
          },
          state: { embed: stats(), ...Object.fromEntries(mixers.map((m) => [m, stats()])) },
        };
      },
      forward: (params, state, x, training) => {
        const where = 'patchEncoder';
        const layer = (name: string, input: T.Tensor<4>, o: T.ConvOptions) =>
          withScope(name, () => {
            const p = subtreeAt(params, name, where);
            const s = subtreeAt(state, name, where);
            const bnp = subtreeAt(p, 'bn', where);
            const out = batchNorm(
              T.conv2d(input, tensorAt(p, 'weight', where) as T.Tensor<4>, o),
              { weight: tensorAt(bnp, 'weight', where) as T.Tensor<1>, bias: tensorAt(bnp, 'bias', where) as T.Tensor<1> },
              { runningMean: tensorAt(s, 'running_mean', where) as T.Tensor<1>, runningVar: tensorAt(s, 'running_var', where) as T.Tensor<1> },
              { training },
            );
            return { y: T.tanh(out.y), state: { running_mean: out.state.runningMean, running_var: out.state.runningVar } };
          });
        const embed = layer('embed', x, { stride: patch });
        let h = embed.y;
        const newState: Record<string, { running_mean: T.Tensor; running_var: T.Tensor }> = { embed: embed.state };
        for (const m of mixers) {
          const mixed = layer(m, h, { padding: 1 });
          h = T.add(h, mixed.y);
          newState[m] = mixed.state;
        }
        return { y: h, state: newState };
      },
    };
    return E.right(encoder);
  };

const unwrap = <A>(e: E.Either<string, A>): A => {
  if (E.isLeft(e)) throw new Error(e.left);
  return e.right;
};

const withPatches = (patch: number, depth: number, wrong = false): Variants => unwrap(withVariants({ encoders: { patches: patchEncoder(patch, depth, wrong) } }));

/** The tiny preset with the user's encoder: 32-px globals give a 4×4 teacher grid at patch 8, so k = 3 fits. */
function patchConfig(outDir: string, edit: (c: Config) => void = () => undefined): Config {
  const c = structuredClone(presets.tiny);
  c.model.encoder = { ...c.model.encoder, name: 'patches', width: 8 };
  c.views = { ...c.views, nLocal: 1 };
  c.loss = { ...c.loss, k: 3 };
  c.optim = { ...c.optim, steps: 2, warmupSteps: 0 };
  c.run = { ...c.run, outDir, backend: 'wasm', checkpointEvery: 2, picturesEvery: 100, logEvery: 1, metricsEvery: 1 };
  edit(c);
  return c;
}

const quiet = (): Logger & { readonly lines: string[] } => {
  const lines: string[] = [];
  return { lines, info: (l) => lines.push(l), warn: (l) => lines.push(`warning: ${l}`) };
};

test('withVariants adds names, refuses taken and empty ones; an unregistered name lists the known ones', () => {
  const v = withPatches(8, 1);
  assert.deepEqual(Object.keys(v.encoders), ['resnet', 'patches']);
  assert.equal(Object.keys(builtinVariants.encoders).length, 1, 'the built-in registry is unchanged');
  const taken = withVariants({ encoders: { resnet: patchEncoder(8, 1) }, losses: { official: builtinVariants.losses['per-pair'] } });
  assert.ok(E.isLeft(taken) && taken.left.includes("encoders 'resnet'") && taken.left.includes("losses 'official'"), JSON.stringify(taken));
  assert.ok(E.isLeft(withVariants({ predictors: { ' ': builtinVariants.predictors.nmhsa } })));
  const config = patchConfig(root);
  const unknown = buildTrainStep(config, stepShapesOf(config));
  assert.ok(E.isLeft(unknown) && unknown.left.includes("model.encoder.name = 'patches'") && unknown.left.includes('known: resnet') && unknown.left.includes('withVariants'), JSON.stringify(unknown));
  const badLoss = buildTrainStep({ ...config, loss: { ...config.loss, variant: 'triplet' } }, stepShapesOf(config), v);
  assert.ok(E.isLeft(badLoss) && badLoss.left.includes("loss.variant = 'triplet'") && badLoss.left.includes('official, per-pair'), JSON.stringify(badLoss));
});

test('a config from before projectors were named reads as the MLP projector', () => {
  const old = structuredClone(presets.tiny) as unknown as { model: { projector: Record<string, unknown> } };
  delete old.model.projector.name;
  const parsed = parseConfig(old, 'tiny');
  assert.ok(E.isRight(parsed), JSON.stringify(parsed));
  assert.equal(parsed.right.model.projector.name, 'mlp');
});

test('module checks (clove-ts/testing): shapes over sizes, gradients at init; a broken variant is caught', () => {
  property(
    fc.property(fc.integer({ min: 2, max: 8 }), fc.integer({ min: 0, max: 2 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 8, max: 40 }), (patch, depth, batch, channels, size) => {
      fc.pre(size >= patch);
      const config = patchConfig(root, (c) => (c.model.encoder.width = 4));
      const encoder = unwrap(withPatches(patch, depth).encoders.patches(config.model.encoder, channels));
      const side = Math.floor(size / patch);
      assert.deepEqual(checkEncoderShapes(encoder, { inChannels: channels, batch, size }), E.right([batch, 4, side, side]));
    }),
    30,
  );
  const config = patchConfig(root, (c) => (c.model.encoder.width = 3));
  const encoder = unwrap(withPatches(2, 1).encoders.patches(config.model.encoder, 2));
  assert.deepEqual(moduleGradientMismatches(encoder, [2, 2, 4, 4], { seed: 5 }), []);
  // The same network with a gradient that is wrong by a factor on one path: the check must see it.
  const wrongGrad: Encoder = { ...encoder, forward: (p, s, x, training) => { const out = encoder.forward(p, s, x, training); return { ...out, y: T.add(T.stopGradient(T.mul(out.y, 0.5)), T.mul(out.y, 0.5)) }; } };
  assert.ok(moduleGradientMismatches(wrongGrad, [2, 2, 4, 4], { seed: 5 }).length > 0, 'a halved gradient is caught');
  const lying: Encoder = { ...encoder, gridSide: (size) => size / 2 + 1 };
  const caught = checkEncoderShapes(lying, { inChannels: 2, batch: 1, size: 8 });
  assert.ok(E.isLeft(caught) && caught.left.includes('gridSide(8) promise [1,3,5,5]'), JSON.stringify(caught));
  assert.deepEqual(checkInitShapes(encoder), E.right(undefined));
  const badInit: Encoder = { ...encoder, init: (rng) => ({ ...encoder.init(rng), state: {} }) };
  const initCaught = checkInitShapes(badInit);
  assert.ok(E.isLeft(initCaught) && initCaught.left.includes("init's state {} do not match"), JSON.stringify(initCaught));
  const predictor = unwrap(builtinVariants.predictors.nmhsa(config.model.predictor, 8));
  assert.deepEqual(checkPredictorShapes(predictor, { batch: 2, dim: 8, side: 3 }), E.right([2, 9, 8]));
});

test("a shape error in the user's layer is reported with the layer's path", () => {
  const config = patchConfig(root);
  const step = buildTrainStep(config, stepShapesOf(config), withPatches(8, 2, true));
  assert.ok(E.isLeft(step), 'the step is refused before anything is compiled');
  assert.match(step.left, /student\.mixer0: conv2d expects 9 input channels, got 8/);
});

test('pretrain trains a user variant, its checkpoint loads with the variants, and a resume with another variant is refused', async () => {
  const out = path.join(root, 'patches');
  const log = quiet();
  const run = await pretrain({ config: patchConfig(out), variants: withPatches(8, 1), resume: false, log });
  assert.ok(E.isRight(run), E.isLeft(run) ? run.left : '');
  assert.equal(run.right.lastStep, 2);
  assert.ok(Number.isFinite(run.right.lastLoss));
  const ck = unwrap(loadCheckpoint(out));
  assert.equal(ck.config.model.encoder.name, 'patches');
  assert.ok(ck.tensors['params/student.encoder.mixer0.weight'] !== undefined);
  const weights = checkpointEncoderWeights(ck, withPatches(8, 1));
  assert.ok(E.isRight(weights), JSON.stringify(weights));
  const exported = path.join(root, 'patches.safetensors');
  const exportLog = quiet();
  assert.ok(E.isRight(await exportMain(['--checkpoint', out, '--out', exported], exportLog)));
  assert.match(exportLog.lines.join('\n'), /exported 10 tensors \(encoder 'patches', its own names: embed\.bn\.bias/);
  const file = readSafetensorsFile(exported);
  assert.ok(E.isRight(file) && file.right.metadata.arch === 'patches' && file.right.tensors['mixer0.weight'] !== undefined, JSON.stringify(E.isRight(file) ? file.right.metadata : file));
  const unregistered = checkpointEncoderWeights(ck);
  assert.ok(E.isLeft(unregistered) && unregistered.left.includes("'patches' is not a registered variant"));
  // The evaluation pipeline at a few images (P1–P3 and P4 run where their datasets are installed; P5 always).
  const sizes = { mosaic: { train: 8, val: 4, test: 4 }, fmCls: { train: 20, val: 10, test: 10 }, dlPair: 4, texGroup: 4, recalibration: 4 };
  const report = await evaluate(ck, 'ci', 'wasm', { variants: withPatches(8, 1), sizes, batch: 4, otherInits: 0 });
  assert.ok(E.isRight(report), E.isLeft(report) ? report.left : '');
  assert.match(report.right.encoder, /^'patches' width 8, 3-channel input/);
  assert.ok(report.right.rows.some((r) => r.protocol === 'P5' && Number.isFinite(r.pretrained)), JSON.stringify(report.right.rows));

  // Same name, another network (two mixers): the state does not fit, and the message names both.
  const longer = patchConfig(out, (c) => (c.optim.steps = 4));
  const refused = await pretrain({ config: longer, variants: withPatches(8, 2), resume: true, log: quiet() });
  assert.ok(E.isLeft(refused), 'resuming with another network is refused');
  assert.match(refused.left, /it holds encoder 'patches', projector 'mlp', predictor 'nmhsa', loss 'official' and this run builds encoder 'patches'/);
  assert.match(refused.left, /student\.encoder\.mixer1\.weight \[8,8,3,3\] is not in the checkpoint/);
  // Another name: a config difference, with both names.
  const renamed = await pretrain({ config: patchConfig(out, (c) => { c.optim.steps = 4; c.model.encoder.name = 'resnet'; }), resume: true, log: quiet() });
  assert.ok(E.isLeft(renamed) && renamed.left.includes('model.encoder.name') && renamed.left.includes('patches') && renamed.left.includes('resnet'), E.isLeft(renamed) ? renamed.left : '');
  // The right variant resumes.
  const resumed = await pretrain({ config: longer, variants: withPatches(8, 1), resume: true, log: quiet() });
  assert.ok(E.isRight(resumed) && resumed.right.lastStep === 4, E.isLeft(resumed) ? resumed.left : '');
});

test('--variants: a module exporting what withVariants returns loads; a wrong or missing export is one message', async () => {
  const registry = new URL('../clove/models/registry.ts', import.meta.url).href;
  const write = (name: string, text: string): string => {
    const file = path.join(root, name);
    fs.writeFileSync(file, text);
    return file;
  };
  const good = await loadVariantsModule(write('good.mjs', `import { withVariants } from '${registry}';\nexport const variants = withVariants({ encoders: { mine: () => { throw new Error('unused'); } } }).right;\n`));
  assert.ok(E.isRight(good) && Object.keys(good.right.encoders).includes('mine'), JSON.stringify(good));
  const missing = await loadVariantsModule(write('none.mjs', 'export const encoders = {};\n'));
  assert.ok(E.isLeft(missing) && missing.left.includes("no export named 'variants'"), JSON.stringify(missing));
  const either = await loadVariantsModule(write('either.mjs', `import { withVariants } from '${registry}';\nexport const variants = withVariants({});\n`));
  assert.ok(E.isLeft(either) && either.left.includes('encoders: expected an object of builders by name, got undefined'), JSON.stringify(either));
  const notFunction = await loadVariantsModule(write('bad.mjs', `export const variants = { encoders: { mine: 3 }, projectors: {}, predictors: {}, losses: {} };\n`));
  assert.ok(E.isLeft(notFunction) && notFunction.left.includes('encoders.mine: expected a builder function, got number'), JSON.stringify(notFunction));
  const absent = await loadVariantsModule(path.join(root, 'no-such-module.mjs'));
  assert.ok(E.isLeft(absent) && absent.left.startsWith(`--variants ${path.join(root, 'no-such-module.mjs')}: cannot import it`), JSON.stringify(absent));
});

/** A user's projector: one 1×1 conv with a bias, no batch norm (its state is empty). */
const linearProjector: ProjectorBuilder = (cfg, inChannels) =>
  E.right({
    paramShapes: { weight: [cfg.out, inChannels, 1, 1], bias: [cfg.out] },
    stateShapes: {},
    init: (rng) => ({ params: { weight: normalValues(rng, [cfg.out, inChannels, 1, 1], 1 / Math.sqrt(inChannels)), bias: filled([cfg.out], 0) }, state: {} }),
    forward: (params, state, x) => ({
      y: T.add(T.conv2d(x, tensorAt(params, 'weight', 'linear') as T.Tensor<4>), T.reshape(tensorAt(params, 'bias', 'linear'), [1, cfg.out, 1, 1])),
      state,
    }),
  });

/** A user's loss: pull matched cells together, no negatives (1 − mean matched cosine). */
const matchedCosineLoss: PairLossFunction = (C, F, mask) => {
  const cos = T.matmul(l2Normalize(C, -1), T.transpose(T.stopGradient(l2Normalize(F, -1))));
  const matched = T.div(T.sum(T.mul(cos, mask)), T.maximum(T.sum(mask), 1));
  return { loss: T.sub(1, matched), posCos: T.stopGradient(matched), negCos: T.scalar(0) };
};

test("a user's projector and loss, selected by name, train end to end", async () => {
  const variants = unwrap(withVariants({ encoders: { patches: patchEncoder(8, 1) }, projectors: { linear: linearProjector }, losses: { 'matched-cosine': matchedCosineLoss } }));
  const config = patchConfig(path.join(root, 'own-head'), (c) => {
    c.model.projector = { ...c.model.projector, name: 'linear' };
    c.loss = { ...c.loss, variant: 'matched-cosine' };
    c.optim = { ...c.optim, steps: 1 };
  });
  const step = unwrap(buildTrainStep(config, stepShapesOf(config), variants));
  assert.ok(Object.keys(step.state).includes('student.projector.weight') && !Object.keys(step.state).some((n) => n.startsWith('bn.student.projector')));
  const run = await pretrain({ config, variants, resume: false, log: quiet() });
  assert.ok(E.isRight(run), E.isLeft(run) ? run.left : '');
  // 1 − a cosine lies in [0, 2]; the official loss would sit near its margin of 100.
  assert.ok(run.right.lastLoss >= 0 && run.right.lastLoss <= 2, String(run.right.lastLoss));
});

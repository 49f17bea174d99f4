import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as E from 'fp-ts/lib/Either.js';
import { property } from './prop.ts';
import { input, type Tensor } from '../dsl/tensor.ts';
import { flatten, isTensor } from '../dsl/tree.ts';
import { makeGraph } from '../compiler/ir.ts';
import { typecheck } from '../compiler/typecheck.ts';
import { interpret } from '../compiler/interp/interpret.ts';
import { presets, type Config } from '../clove/config.ts';
import { createRng } from '../clove/data/rng.ts';
import { isHostLeaf, isShape, symbolicParams } from '../clove/models/init.ts';
import { initResnet, resnetForward, resnetParamShapes, resnetPlan, resnetStateShapes, type ResNetDepth, type ResNetOptions, type StemKind } from '../clove/models/resnet.ts';
import { attentionParamShapes, initAttention } from '../clove/models/predictor.ts';
import { buildModel, featureStride, viewGrids } from '../clove/models/registry.ts';

// torchvision.models.resnet18().named_parameters(), without the classifier (fc.weight, fc.bias): CLoVE's
// encoder stops before pooling.
const RESNET18_NAMES = [
  'conv1.weight', 'bn1.weight', 'bn1.bias',
  'layer1.0.conv1.weight', 'layer1.0.bn1.weight', 'layer1.0.bn1.bias', 'layer1.0.conv2.weight', 'layer1.0.bn2.weight', 'layer1.0.bn2.bias',
  'layer1.1.conv1.weight', 'layer1.1.bn1.weight', 'layer1.1.bn1.bias', 'layer1.1.conv2.weight', 'layer1.1.bn2.weight', 'layer1.1.bn2.bias',
  'layer2.0.conv1.weight', 'layer2.0.bn1.weight', 'layer2.0.bn1.bias', 'layer2.0.conv2.weight', 'layer2.0.bn2.weight', 'layer2.0.bn2.bias',
  'layer2.0.downsample.0.weight', 'layer2.0.downsample.1.weight', 'layer2.0.downsample.1.bias',
  'layer2.1.conv1.weight', 'layer2.1.bn1.weight', 'layer2.1.bn1.bias', 'layer2.1.conv2.weight', 'layer2.1.bn2.weight', 'layer2.1.bn2.bias',
  'layer3.0.conv1.weight', 'layer3.0.bn1.weight', 'layer3.0.bn1.bias', 'layer3.0.conv2.weight', 'layer3.0.bn2.weight', 'layer3.0.bn2.bias',
  'layer3.0.downsample.0.weight', 'layer3.0.downsample.1.weight', 'layer3.0.downsample.1.bias',
  'layer3.1.conv1.weight', 'layer3.1.bn1.weight', 'layer3.1.bn1.bias', 'layer3.1.conv2.weight', 'layer3.1.bn2.weight', 'layer3.1.bn2.bias',
  'layer4.0.conv1.weight', 'layer4.0.bn1.weight', 'layer4.0.bn1.bias', 'layer4.0.conv2.weight', 'layer4.0.bn2.weight', 'layer4.0.bn2.bias',
  'layer4.0.downsample.0.weight', 'layer4.0.downsample.1.weight', 'layer4.0.downsample.1.bias',
  'layer4.1.conv1.weight', 'layer4.1.bn1.weight', 'layer4.1.bn1.bias', 'layer4.1.conv2.weight', 'layer4.1.bn2.weight', 'layer4.1.bn2.bias',
];

const imagenet = (depth: ResNetDepth): ResNetOptions => ({ depth, width: 64, stem: 'imagenet', inChannels: 3 });
const entries = (o: ResNetOptions) => flatten(resnetParamShapes(o), isShape);
const count = (o: ResNetOptions) => entries(o).reduce((a, [, s]) => a + s.reduce((x, y) => x * y, 1), 0);

test('resnet18 parameter names are torchvision’s, BN statistics live apart under the same layer names', () => {
  assert.deepEqual(entries(imagenet(18)).map(([n]) => n).sort(), [...RESNET18_NAMES].sort());
  const state = flatten(resnetStateShapes(imagenet(18)), isShape).map(([n]) => n).sort();
  const bnLayers = RESNET18_NAMES.filter((n) => n.endsWith('.bias')).map((n) => n.slice(0, -'.bias'.length));
  assert.deepEqual(state, bnLayers.flatMap((l) => [`${l}.running_mean`, `${l}.running_var`]).sort());
  const shapes = Object.fromEntries(entries(imagenet(18)));
  assert.deepEqual(shapes['conv1.weight'], [64, 3, 7, 7]);
  assert.deepEqual(shapes['layer2.0.downsample.0.weight'], [128, 64, 1, 1]);
  assert.deepEqual(shapes['layer4.1.conv2.weight'], [512, 512, 3, 3]);
});

test('parameter counts equal torchvision’s resnet18/34/50 without the classifier', () => {
  // torchvision totals 11,689,512 / 21,797,672 / 25,557,032 include fc (512·1000 + 1000 or 2048·1000 + 1000).
  assert.equal(count(imagenet(18)), 11_689_512 - 513_000);
  assert.equal(count(imagenet(34)), 21_797_672 - 513_000);
  assert.equal(count(imagenet(50)), 25_557_032 - 2_049_000);
  const bottleneck = Object.fromEntries(entries(imagenet(50)));
  assert.deepEqual(bottleneck['layer1.0.conv3.weight'], [256, 64, 1, 1]);
  assert.deepEqual(bottleneck['layer2.0.conv2.weight'], [128, 128, 3, 3], 'v1.5: the stride sits on the 3×3 conv');
});

test('encoder output: [N, 8w (basic) or 32w (bottleneck), ⌈S/stride⌉, ⌈S/stride⌉] for every depth and stem', () => {
  property(
    fc.property(
      fc.constantFrom<ResNetDepth>(18, 34, 50),
      fc.constantFrom<StemKind>('imagenet', 'small', 'compact'),
      fc.integer({ min: 1, max: 4 }),
      fc.integer({ min: 8, max: 230 }),
      fc.constantFrom(1, 3),
      (depth, stem, width, size, channels) => {
        const o: ResNetOptions = { depth, width, stem, inChannels: channels };
        const x = input('x', [2, channels, size, size]) as Tensor<4>;
        const out = resnetForward(o, symbolicParams(resnetParamShapes(o), 'p'), symbolicParams(resnetStateShapes(o), 's'), x, true);
        const side = Math.ceil(size / { imagenet: 32, small: 8, compact: 8 }[stem]);
        assert.deepEqual(out.y.shape, [2, (depth === 50 ? 32 : 8) * width, side, side]);
        assert.equal(resnetPlan(o).outChannels, out.y.shape[1]);
        const checked = typecheck(makeGraph({ y: out.y, ...Object.fromEntries(flatten(out.state, isTensor)) }));
        assert.ok(E.isRight(checked), 'the graph type-checks');
        assert.deepEqual(
          flatten(out.state, isTensor).map(([n, t]) => [n, [...t.shape]]),
          flatten(resnetStateShapes(o), isShape).map(([n, s]) => [n, [...s]]),
          'new BN state has the state tree’s names and shapes',
        );
      },
    ),
    15,
  );
});

test('init: last BN γ of every block is 0, other γ 1, β 0, conv weights N(0, 2/(k·k·C_out)), running stats 0/1', () => {
  for (const depth of [18, 50] as const) {
    const o: ResNetOptions = { depth, width: 4, stem: 'imagenet', inChannels: 3 };
    const { params, state } = initResnet(o, createRng(1));
    const last = new Set(resnetPlan(o).blocks.map((b) => `${b.name}.${depth === 50 ? 'bn3' : 'bn2'}.weight`));
    assert.equal(last.size, depth === 50 ? 16 : 8);
    for (const [name, v] of flatten(params, isHostLeaf)) {
      if (name.endsWith('.bias')) assert.ok(v.every((x) => x === 0), `${name} starts at 0`);
      else if (v.length > 0 && !name.includes('conv') && !name.includes('downsample.0')) {
        const want = last.has(name) ? 0 : 1;
        assert.ok(v.every((x) => x === want), `${name} starts at ${want}`);
      }
    }
    for (const [name, v] of flatten(state, isHostLeaf)) assert.ok(v.every((x) => x === (name.endsWith('running_var') ? 1 : 0)), name);
  }
  const wide: ResNetOptions = { depth: 18, width: 16, stem: 'small', inChannels: 3 };
  const w = Object.fromEntries(flatten(initResnet(wide, createRng(2)).params, isHostLeaf))['layer4.1.conv2.weight'];
  const std = Math.sqrt(w.reduce((a, x) => a + x * x, 0) / w.length);
  const want = Math.sqrt(2 / (3 * 3 * 128));
  assert.ok(Math.abs(std / want - 1) < 0.02, `conv std ${std}, want ${want}`);
});

test('predictor init: xavier-uniform packed in-projection, zero biases, nn.Linear default out-projection', () => {
  const dim = 64;
  const p = Object.fromEntries(flatten(initAttention({ dim, heads: 8 }, createRng(3)), isHostLeaf));
  assert.deepEqual(Object.keys(p).sort(), flatten(attentionParamShapes({ dim, heads: 8 }), isShape).map(([n]) => n).sort());
  const maxAbs = (v: Float32Array) => v.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
  const xavier = Math.sqrt(6 / (dim + 3 * dim));
  assert.ok(maxAbs(p.in_proj_weight) <= xavier && maxAbs(p.in_proj_weight) > 0.95 * xavier);
  assert.ok(maxAbs(p['out_proj.weight']) <= 1 / Math.sqrt(dim) && maxAbs(p['out_proj.weight']) > 0.95 / Math.sqrt(dim));
  assert.ok(p.in_proj_bias.every((x) => x === 0) && p['out_proj.bias'].every((x) => x === 0));
});

const tinyConfig = (patch: (c: Config) => void = () => {}): Config => {
  const c = structuredClone(presets.tiny);
  patch(c);
  return c;
};

test('predictor output cells are unit rows and attention rows sum to 1; cosine attention differs', () => {
  const results = (['nmhsa', 'cosine-attention'] as const).map((name) => {
    const model = buildModel(tinyConfig((c) => (c.model.predictor = { name, heads: 2, temperature: 0.2 })).model, 3);
    if (E.isLeft(model)) throw new Error(model.left);
    const x = input('x', [2, 16, 2, 3]) as Tensor<4>;
    const out = model.right.predictor.forward(symbolicParams(model.right.predictor.paramShapes, 'q'), x);
    assert.deepEqual(out.cells.shape, [2, 6, 16]);
    assert.deepEqual(out.weights.shape, [2, 6, 6]);
    const rng = createRng(5);
    const bindings: Record<string, ArrayLike<number>> = { x: Float32Array.from({ length: 2 * 16 * 6 }, () => rng.normal()) };
    const init = model.right.predictor.init(createRng(6));
    for (const [n, v] of flatten(init, isHostLeaf)) bindings[`q.${n}`] = v;
    const r = interpret(makeGraph({ cells: out.cells, weights: out.weights }), bindings, 'f64');
    if (E.isLeft(r)) throw new Error(r.left);
    const cells = Array.from(r.right.cells.data);
    const weights = Array.from(r.right.weights.data);
    for (let row = 0; row < 12; row++) {
      const norm = Math.hypot(...cells.slice(row * 16, row * 16 + 16));
      assert.ok(Math.abs(norm - 1) < 1e-12, `cell ${row} has norm ${norm}`);
      const sum = weights.slice(row * 6, row * 6 + 6).reduce((a, v) => a + v, 0);
      assert.ok(Math.abs(sum - 1) < 1e-12, `attention row ${row} sums to ${sum}`);
    }
    return cells;
  });
  assert.notDeepEqual(results[0], results[1]);
});

test('registry: strides, grids, and clear error values for small views, unknown variants and bad head counts', () => {
  const ok = tinyConfig();
  assert.deepEqual(featureStride(ok), E.right(8));
  assert.deepEqual(viewGrids(ok), E.right({ global: [4, 4], local: [2, 2] }));
  const imagenetStem = tinyConfig((c) => (c.model.encoder.stem = 'imagenet'));
  assert.deepEqual(featureStride(imagenetStem), E.right(32));
  const small = viewGrids(imagenetStem);
  assert.ok(E.isLeft(small) && /views\.globalSize = 32 px/.test(small.left) === false && /views\.localSize = 16 px is smaller than the feature stride 32/.test(small.left), JSON.stringify(small));
  const unknown = buildModel(tinyConfig((c) => (c.model.encoder.name = 'vit')).model, 3);
  assert.ok(E.isLeft(unknown) && unknown.left.includes("model.encoder.name = 'vit'") && unknown.left.includes('resnet'));
  const badHeads = buildModel(tinyConfig((c) => (c.model.predictor.heads = 3)).model, 3);
  assert.ok(E.isLeft(badHeads) && badHeads.left.includes('heads = 3 must divide') && badHeads.left.includes('= 16'));
  const unknownPredictor = buildModel(tinyConfig((c) => (c.model.predictor.name = 'mlp')).model, 3);
  assert.ok(E.isLeft(unknownPredictor) && unknownPredictor.left.includes('nmhsa') && unknownPredictor.left.includes('cosine-attention'));
});

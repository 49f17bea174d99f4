import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import * as E from 'fp-ts/lib/Either.js';
import { property } from './prop.ts';
import {
  applyOverrides,
  backendNames,
  compareResumeConfig,
  resumableFields,
  configCodec,
  dataSources,
  parseConfig,
  presetNamed,
  presetNames,
  presets,
  readConfigFile,
  validateConfig,
  type Config,
} from '../clove/config.ts';

// One row per settable field: how to make a valid value and how to make an invalid one.
interface FieldSpec {
  readonly path: string;
  readonly valid: fc.Arbitrary<unknown>;
  readonly invalid: fc.Arbitrary<unknown>;
}

const notANumber = fc.constantFrom<unknown>('1', null, true, [], {}, undefined, Number.NaN, Number.POSITIVE_INFINITY);
const positiveInt = fc.integer({ min: 1, max: 1_000_000 });
const badPositiveInt = fc.oneof(fc.integer({ min: -1000, max: 0 }), fc.constantFrom(0.5, 2.25), notANumber);
const nonNegativeInt = fc.integer({ min: 0, max: 1_000_000 });
const badNonNegativeInt = fc.oneof(fc.integer({ min: -1000, max: -1 }), fc.constant(1.5), notANumber);
// `+ 0` turns -0 into 0: JSON (files and flags alike) cannot carry the sign of zero.
const finite = fc.double({ min: -1e6, max: 1e6, noNaN: true }).map((v) => v + 0);
const positive = fc.double({ min: 1e-6, max: 1e6, noNaN: true });
const unitInterval = (max: number) => fc.double({ min: 0, max, noNaN: true }).map((v) => v + 0);
const badPositive = fc.oneof(fc.double({ min: -1e6, max: 0, noNaN: true }), notANumber);
const word = fc.string({ minLength: 1, maxLength: 12 });
const badEnum = fc.oneof(fc.constantFrom<unknown>('nope', '', 7, null, undefined, ['cpu']));
const scale = fc
  .tuple(fc.double({ min: 0.01, max: 1, noNaN: true }), fc.double({ min: 0.01, max: 1, noNaN: true }))
  .map(([a, b]) => [Math.min(a, b), Math.max(a, b)]);
const badScale = fc.constantFrom<unknown>([0.5, 0.2], [0, 1], [0.1, 1.5], [0.1], [0.1, 0.2, 0.3], '0.2,1', null, undefined);

const fields: readonly FieldSpec[] = [
  { path: 'seed', valid: fc.integer(), invalid: fc.oneof(fc.constant(0.5), notANumber) },
  { path: 'data.source', valid: fc.constantFrom(...dataSources), invalid: badEnum },
  { path: 'data.path', valid: fc.oneof(word.filter((w) => w !== 'null'), fc.constant(null)), invalid: fc.constantFrom<unknown>(3, true, [], undefined) },
  { path: 'data.poolSize', valid: positiveInt, invalid: badPositiveInt },
  { path: 'views.channels', valid: fc.constantFrom(1, 3), invalid: fc.constantFrom<unknown>(0, 2, 4, '3', null) },
  { path: 'views.globalSize', valid: positiveInt, invalid: badPositiveInt },
  { path: 'views.localSize', valid: positiveInt, invalid: badPositiveInt },
  { path: 'views.nLocal', valid: nonNegativeInt, invalid: badNonNegativeInt },
  { path: 'views.globalScale', valid: scale, invalid: badScale },
  { path: 'views.localScale', valid: scale, invalid: badScale },
  { path: 'model.encoder.name', valid: word, invalid: fc.constantFrom<unknown>('', 5, null, undefined) },
  { path: 'model.encoder.depth', valid: fc.constantFrom(18, 34, 50), invalid: fc.constantFrom<unknown>(101, 0, '50', null) },
  { path: 'model.encoder.width', valid: positiveInt, invalid: badPositiveInt },
  { path: 'model.encoder.stem', valid: fc.constantFrom('imagenet', 'small'), invalid: badEnum },
  { path: 'model.projector.name', valid: word, invalid: fc.constantFrom<unknown>('', 5, null) },
  { path: 'model.projector.hidden', valid: positiveInt, invalid: badPositiveInt },
  { path: 'model.projector.out', valid: positiveInt, invalid: badPositiveInt },
  { path: 'model.predictor.name', valid: word, invalid: fc.constantFrom<unknown>('', 1, undefined) },
  { path: 'model.predictor.heads', valid: positiveInt, invalid: badPositiveInt },
  { path: 'model.predictor.temperature', valid: positive, invalid: badPositive },
  // Any name may be registered (withVariants); the step refuses one that is not (props/variants.test.ts).
  { path: 'loss.variant', valid: fc.constantFrom('official', 'per-pair'), invalid: fc.constantFrom<unknown>('', 7, null, undefined, ['official']) },
  { path: 'loss.tPos', valid: positive, invalid: badPositive },
  { path: 'loss.lambda', valid: finite, invalid: notANumber },
  { path: 'loss.margin', valid: finite, invalid: notANumber },
  { path: 'loss.k', valid: fc.integer({ min: 2, max: 100 }), invalid: fc.oneof(fc.integer({ min: -5, max: 1 }), fc.constant(2.5), notANumber) },
  { path: 'loss.negativePool', valid: fc.constantFrom('unmatched', 'all'), invalid: badEnum },
  { path: 'loss.reduction', valid: fc.constantFrom('mean', 'sum'), invalid: badEnum },
  { path: 'loss.coords', valid: fc.constantFrom('normalized', 'pixel'), invalid: badEnum },
  { path: 'optim.name', valid: fc.constantFrom('sgd', 'lars'), invalid: badEnum },
  { path: 'optim.baseLr', valid: positive, invalid: badPositive },
  { path: 'optim.momentum', valid: unitInterval(0.999), invalid: fc.oneof(fc.double({ min: 1, max: 10, noNaN: true }), fc.constant(-0.1), notANumber) },
  { path: 'optim.weightDecay', valid: unitInterval(1), invalid: fc.oneof(fc.constant(-1e-5), notANumber) },
  { path: 'optim.trust', valid: positive, invalid: badPositive },
  { path: 'optim.warmupSteps', valid: nonNegativeInt, invalid: badNonNegativeInt },
  { path: 'optim.steps', valid: positiveInt, invalid: badPositiveInt },
  { path: 'optim.batchSize', valid: positiveInt, invalid: badPositiveInt },
  { path: 'ema.base', valid: unitInterval(1), invalid: fc.oneof(fc.constant(1.01), fc.constant(-0.5), notANumber) },
  { path: 'run.outDir', valid: word, invalid: fc.constantFrom<unknown>('', 0, null, undefined) },
  { path: 'run.backend', valid: fc.constantFrom(...backendNames), invalid: badEnum },
  { path: 'run.logEvery', valid: positiveInt, invalid: badPositiveInt },
  { path: 'run.metricsEvery', valid: positiveInt, invalid: badPositiveInt },
  { path: 'run.checkpointEvery', valid: positiveInt, invalid: badPositiveInt },
  { path: 'run.picturesEvery', valid: positiveInt, invalid: badPositiveInt },
  // Keys the codec does not know: any value there is an error (a typo must not pass silently).
  { path: 'optim.stpes', valid: fc.constant(undefined), invalid: fc.integer() },
  { path: 'model.encoder.dept', valid: fc.constant(undefined), invalid: fc.integer() },
  { path: 'extra', valid: fc.constant(undefined), invalid: fc.string() },
];

const knownFields = fields.filter((f) => !['optim.stpes', 'model.encoder.dept', 'extra'].includes(f.path));

function setAt(root: Record<string, unknown>, dotted: string, value: unknown): void {
  const keys = dotted.split('.');
  let node = root;
  for (const key of keys.slice(0, -1)) node = node[key] as Record<string, unknown>;
  const last = keys[keys.length - 1]!;
  if (value === undefined) delete node[last];
  else node[last] = value;
}

function getAt(root: unknown, dotted: string): unknown {
  return dotted.split('.').reduce<unknown>((node, key) => (node as Record<string, unknown>)[key], root);
}

const presetArb = fc.constantFrom(...presetNames).map((name) => structuredClone(presets[name]));

/** A random valid config: every known field drawn independently, then the two cross-field rules honoured. */
const validConfigArb: fc.Arbitrary<Config> = fc
  .tuple(presetArb, fc.tuple(...knownFields.map((f) => f.valid)))
  .map(([base, values]) => {
    const draft = base as unknown as Record<string, unknown>;
    knownFields.forEach((f, i) => setAt(draft, f.path, values[i]));
    const config = draft as unknown as Config;
    if (config.data.source === 'folder' && config.data.path === null) config.data.path = 'images';
    config.optim.warmupSteps = Math.min(config.optim.warmupSteps, config.optim.steps);
    return config;
  });

test('every preset validates unchanged', () => {
  for (const name of presetNames) {
    const result = validateConfig(presets[name]);
    assert.ok(E.isRight(result), `preset ${name}: ${E.isLeft(result) ? result.left.join('; ') : ''}`);
    assert.deepEqual(result.right, presets[name]);
    assert.deepEqual(presetNamed(name), E.right(presets[name]));
  }
  assert.ok(E.isLeft(presetNamed('cpu-big')));
});

test('the r50-224 preset carries the paper hyperparameters', () => {
  const c = presets['r50-224'];
  assert.equal(c.model.encoder.depth, 50);
  assert.deepEqual([c.views.globalSize, c.views.localSize, c.views.nLocal], [224, 96, 6]);
  assert.deepEqual([c.views.globalScale, c.views.localScale], [[0.2, 1], [0.08, 0.3]]);
  assert.deepEqual([c.model.projector.hidden, c.model.projector.out, c.model.predictor.heads], [4096, 256, 8]);
  assert.deepEqual([c.loss.tPos, c.loss.lambda, c.loss.margin, c.loss.k], [0.7, 2, 100, 10]);
  assert.deepEqual([c.optim.name, c.optim.baseLr, c.optim.weightDecay, c.ema.base], ['lars', 1.0, 2e-5, 0.99]);
});

test('encode → JSON → decode is the identity on valid configs', () => {
  property(
    fc.property(validConfigArb, (config) => {
      const decoded = configCodec.decode(JSON.parse(JSON.stringify(configCodec.encode(config))));
      assert.ok(E.isRight(decoded));
      assert.deepEqual(decoded.right, config);
    }),
    200,
  );
});

test('N independent invalid fields give exactly N errors, each naming its path', () => {
  const invalidPicks = fc
    .uniqueArray(fc.integer({ min: 0, max: fields.length - 1 }), { minLength: 1, maxLength: 8 })
    .chain((indices) => fc.tuple(fc.constant(indices), fc.tuple(...indices.map((i) => fields[i]!.invalid))));
  property(
    fc.property(validConfigArb, invalidPicks, (config, [indices, values]) => {
      const draft = structuredClone(config) as unknown as Record<string, unknown>;
      indices.forEach((i, k) => setAt(draft, fields[i]!.path, values[k]));
      const result = validateConfig(draft);
      assert.ok(E.isLeft(result), 'an invalid config was accepted');
      const paths = indices.map((i) => fields[i]!.path).sort();
      const reported = result.left.map((message) => message.slice(0, message.indexOf(':'))).sort();
      assert.deepEqual(reported, paths, result.left.join('\n'));
      for (const message of result.left) assert.match(message, /^[\w.]+: (expected .+, got .+|unknown field .+)$/);
    }),
    300,
  );
});

test('messages state the expected range and the received value', () => {
  const result = parseConfig({ optim: { momentum: 1.5 }, views: { channels: 2 } }, 'tiny');
  assert.deepEqual(result, E.left(['views.channels: expected one of 1 | 3, got 2', 'optim.momentum: expected a number in [0, 1), got 1.5']));
  const typo = parseConfig({ optim: { stpes: 100 } }, 'tiny');
  assert.ok(E.isLeft(typo) && typo.left.length === 1 && typo.left[0]!.startsWith('optim.stpes: unknown field'));
  assert.ok(E.isLeft(parseConfig([1, 2], 'tiny')));
  assert.deepEqual(parseConfig({ data: { source: 'folder' } }, 'tiny'), E.left([
    "data.path: expected a directory path when data.source is 'folder', got null",
  ]));
  assert.deepEqual(parseConfig({ optim: { warmupSteps: 7 } }, 'tiny'), E.left([
    'optim.warmupSteps: expected an integer in [0, optim.steps = 6], got 7',
  ]));
});

test('partial JSON is deep-merged onto the preset', () => {
  property(
    fc.property(
      fc.constantFrom(...presetNames),
      validConfigArb,
      fc.uniqueArray(fc.integer({ min: 0, max: knownFields.length - 1 }), { maxLength: 6 }),
      (presetName, donor, picks) => {
        const partial: Record<string, unknown> = {};
        const expected = structuredClone(presets[presetName]) as unknown as Record<string, unknown>;
        for (const i of picks) {
          const dotted = knownFields[i]!.path;
          const keys = dotted.split('.');
          let node = partial;
          for (const key of keys.slice(0, -1)) node = (node[key] ??= {}) as Record<string, unknown>;
          node[keys[keys.length - 1]!] = getAt(donor, dotted);
          setAt(expected, dotted, getAt(donor, dotted));
        }
        const result = parseConfig(partial, presetName);
        // Mixing donor fields into a preset can break the two cross-field rules; then the codec must say so.
        const e = expected as unknown as Config;
        const crossBroken = (e.data.source === 'folder' && e.data.path === null) || e.optim.warmupSteps > e.optim.steps;
        if (crossBroken) assert.ok(E.isLeft(result));
        else assert.deepEqual(result, E.right(expected));
      },
    ),
    200,
  );
});

test('CLI overrides set fields and the result is re-validated', () => {
  property(
    fc.property(validConfigArb, validConfigArb, fc.uniqueArray(fc.integer({ min: 0, max: knownFields.length - 1 }), { maxLength: 6 }), fc.boolean(), (base, donor, picks, spaced) => {
      const expected = structuredClone(base) as unknown as Record<string, unknown>;
      const args: string[] = [];
      for (const i of picks) {
        const dotted = knownFields[i]!.path;
        const value = getAt(donor, dotted);
        const text = typeof value === 'string' ? value : JSON.stringify(value);
        if (spaced && !text.startsWith('--')) args.push(`--${dotted}`, text);
        else args.push(`--${dotted}=${text}`);
        setAt(expected, dotted, value);
      }
      const result = applyOverrides(base, args);
      const e = expected as unknown as Config;
      const crossBroken = (e.data.source === 'folder' && e.data.path === null) || e.optim.warmupSteps > e.optim.steps;
      if (crossBroken) assert.ok(E.isLeft(result));
      else assert.deepEqual(result, E.right(expected), JSON.stringify(args));
    }),
    200,
  );
});

test('short aliases and flag errors', () => {
  const result = applyOverrides(presets.tiny, ['--steps', '100', '--batch=4', '--backend', 'cpu', '--out', '2024', '--seed', '-3', '--data', '/images']);
  assert.ok(E.isRight(result));
  const c = result.right;
  assert.deepEqual(
    [c.optim.steps, c.optim.batchSize, c.run.backend, c.run.outDir, c.seed, c.data.source, c.data.path],
    [100, 4, 'cpu', '2024', -3, 'folder', '/images'],
  );
  assert.deepEqual(applyOverrides(presets.tiny, ['--optim.momentum=1.5']), E.left(['optim.momentum: expected a number in [0, 1), got 1.5']));
  const bad = applyOverrides(presets.tiny, ['--optim.stepz=3', 'stray', '--batch', '--backend=gpu']);
  assert.ok(E.isLeft(bad));
  assert.equal(bad.left.length, 4, bad.left.join('\n'));
  assert.match(bad.left[0]!, /^flag --optim.stepz: no config field/);
  assert.match(bad.left[1]!, /^argument "stray"/);
  assert.match(bad.left[2]!, /^flag --batch: expected a value/);
  assert.match(bad.left[3]!, /^run.backend: expected one of 'auto'/);
});

test('config files: JSON errors and field errors name the file', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clove-config-'));
  try {
    const good = path.join(dir, 'good.json');
    fs.writeFileSync(good, JSON.stringify({ optim: { steps: 12 } }));
    const read = readConfigFile(good, 'tiny');
    assert.ok(E.isRight(read) && read.right.optim.steps === 12);
    const broken = path.join(dir, 'broken.json');
    fs.writeFileSync(broken, '{ "optim": ');
    const r1 = readConfigFile(broken, 'tiny');
    assert.ok(E.isLeft(r1) && r1.left[0]!.includes(broken) && r1.left[0]!.includes('not valid JSON'));
    const invalid = path.join(dir, 'invalid.json');
    fs.writeFileSync(invalid, JSON.stringify({ ema: { base: 2 } }));
    assert.deepEqual(readConfigFile(invalid, 'tiny'), E.left([`config file ${invalid}: ema.base: expected a number in [0, 1], got 2`]));
    const r3 = readConfigFile(path.join(dir, 'missing.json'));
    assert.ok(E.isLeft(r3) && r3.left[0]!.includes('cannot be read'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// Issue #12, items 7 and 13: resumes that change a run's meaning, and two flags setting one field.
test('two flags that set one field to different values are a conflict, in any spelling; the same value twice is not', () => {
  const tiny = presets.tiny;
  const conflict = applyOverrides(tiny, ['--steps', '5', '--optim.steps=7']);
  assert.ok(E.isLeft(conflict) && conflict.left.some((m) => /conflicting flags: --steps 5 and --optim\.steps 7 both set optim\.steps/.test(m)), JSON.stringify(conflict));
  const data = applyOverrides(tiny, ['--data', '/x', '--data.path', '/y']);
  assert.ok(E.isLeft(data) && data.left.some((m) => m.includes('both set data.path')));
  assert.ok(E.isRight(applyOverrides(tiny, ['--steps', '5', '--optim.steps', '5'])));
});

test('compareResumeConfig: every field outside the resumable set is refused and listed; resumable changes are returned', () => {
  const base = presets.tiny;
  property(
    fc.property(fc.integer({ min: 7, max: 100 }), fc.integer({ min: 1, max: 9 }), fc.boolean(), fc.boolean(), (steps, every, seed, batch) => {
      const now: Config = {
        ...base,
        seed: seed ? base.seed + 1 : base.seed,
        optim: { ...base.optim, steps, batchSize: batch ? base.optim.batchSize + 1 : base.optim.batchSize },
        run: { ...base.run, logEvery: every, outDir: 'elsewhere' },
      };
      const r = compareResumeConfig(base, now);
      if (seed || batch) {
        assert.ok(E.isLeft(r));
        assert.equal(/seed: 0 in the checkpoint/.test(r.left), seed);
        assert.equal(/optim\.batchSize: 2 in the checkpoint/.test(r.left), batch);
        assert.doesNotMatch(r.left, /(optim\.steps|run\.logEvery|run\.outDir): \S+ in the checkpoint/);
      } else {
        assert.ok(E.isRight(r));
        assert.deepEqual(r.right, [`optim.steps: 6 → ${steps}`, ...(every === 1 ? [] : [`run.logEvery: 1 → ${every}`])]);
      }
    }),
    50,
  );
  assert.ok(resumableFields.has('optim.steps') && !resumableFields.has('seed'));
  const model = compareResumeConfig(base, presets['cpu-small']);
  assert.ok(E.isLeft(model) && /preset 'tiny'; this command's are those of preset 'cpu-small'/.test(model.left));
});

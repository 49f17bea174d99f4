// The pretraining configuration: one io-ts codec validated at the boundary (JSON files, CLI flags).
// Users give partial JSON that is deep-merged onto a named preset; the merged object must then pass the codec.
// Every invalid field is reported at once, each message naming its dotted path, what was expected and what
// was received, and unknown keys are errors, so a typo such as `optim.stpes` never passes silently.
import * as fs from 'node:fs';
import * as t from 'io-ts';
import * as E from 'fp-ts/lib/Either.js';
import { BACKEND_ORDER } from '../compiler/runtime/errors.ts';

// ---------------------------------------------------------------------------------------------------------
// Error reporting

/** Short, readable rendering of a received value for error messages. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing (the field is missing)';
  if (typeof value === 'number') return Number.isNaN(value) ? 'NaN' : String(value);
  if (typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  if (typeof value === 'function') return 'a function';
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** The dotted path of a validation context, skipping the unnamed root entry. */
export function contextPath(context: t.Context): string {
  return context
    .map((entry) => entry.key)
    .filter((key) => key !== '')
    .join('.');
}

/**
 * One message per validation error: `path: expected X, got Y`. Our leaf codecs put the whole
 * "expected ..., got ..." sentence into `message`, so this only falls back to the codec name for foreign codecs.
 */
export function describeErrors(errors: t.Errors): string[] {
  return errors.map((error) => {
    const path = contextPath(error.context);
    const last = error.context[error.context.length - 1];
    const sentence = error.message ?? `expected ${last === undefined ? 'a value' : last.type.name}, got ${describeValue(error.value)}`;
    return `${path === '' ? '(root)' : path}: ${sentence}`;
  });
}

// ---------------------------------------------------------------------------------------------------------
// Leaf codecs: each validates in one step and yields at most one error, so N bad fields give N messages.

function leaf<A>(name: string, accepts: (u: unknown) => u is A): t.Type<A, A, unknown> {
  return new t.Type<A, A, unknown>(
    name,
    accepts,
    (u, c) => (accepts(u) ? t.success(u) : t.failure(u, c, `expected ${name}, got ${describeValue(u)}`)),
    (a) => a,
  );
}

const isFiniteNumber = (u: unknown): u is number => typeof u === 'number' && Number.isFinite(u);
const isInteger = (u: unknown): u is number => typeof u === 'number' && Number.isSafeInteger(u);

/** An integer with an inclusive lower bound (and optional inclusive upper bound). */
export function integerCodec(min: number, max?: number): t.Type<number, number, unknown> {
  const name =
    max !== undefined
      ? `an integer in [${min}, ${max}]`
      : min === Number.MIN_SAFE_INTEGER
        ? 'an integer'
        : min === 1
          ? 'an integer > 0'
          : `an integer >= ${min}`;
  return leaf(name, (u): u is number => isInteger(u) && u >= min && (max === undefined || u <= max));
}

interface NumberBounds {
  readonly min?: number;
  readonly minOpen?: boolean;
  readonly max?: number;
  readonly maxOpen?: boolean;
}

/** A finite number within optional bounds, open or closed at each end. */
export function numberCodec(bounds: NumberBounds = {}): t.Type<number, number, unknown> {
  const { min, max, minOpen = false, maxOpen = false } = bounds;
  const name =
    min !== undefined && max !== undefined
      ? `a number in ${minOpen ? '(' : '['}${min}, ${max}${maxOpen ? ')' : ']'}`
      : min !== undefined
        ? `a number ${minOpen ? '>' : '>='} ${min}`
        : max !== undefined
          ? `a number ${maxOpen ? '<' : '<='} ${max}`
          : 'a finite number';
  return leaf(name, (u): u is number => {
    if (!isFiniteNumber(u)) return false;
    if (min !== undefined && (minOpen ? u <= min : u < min)) return false;
    if (max !== undefined && (maxOpen ? u >= max : u > max)) return false;
    return true;
  });
}

/** One of a fixed set of literal strings or numbers. */
export function oneOfCodec<const V extends readonly (string | number)[]>(values: V): t.Type<V[number], V[number], unknown> {
  const shown = values.map((v) => (typeof v === 'string' ? `'${v}'` : String(v)));
  const name = `one of ${shown.join(' | ')}`;
  return leaf(name, (u): u is V[number] => values.some((v) => v === u));
}

/** `codec`, with `value` standing in for a missing field (for fields added after configs were first written). */
function withDefault<A>(codec: t.Type<A, A, unknown>, value: A): t.Type<A, A, unknown> {
  return new t.Type<A, A, unknown>(codec.name, codec.is, (u, c) => (u === undefined ? t.success(value) : codec.validate(u, c)), codec.encode);
}

const nonEmptyString = leaf('a non-empty string', (u): u is string => typeof u === 'string' && u.length > 0);
const stringOrNull = leaf('a string or null', (u): u is string | null => u === null || typeof u === 'string');

/** A crop-area range [lo, hi] as fractions of the image area. */
const scaleRange = leaf(
  'a pair [lo, hi] with 0 < lo <= hi <= 1',
  (u): u is [number, number] =>
    Array.isArray(u) && u.length === 2 && isFiniteNumber(u[0]) && isFiniteNumber(u[1]) && u[0] > 0 && u[0] <= u[1] && u[1] <= 1,
);

// ---------------------------------------------------------------------------------------------------------
// Strict objects: io-ts's `exact`/`strict` silently strip unknown keys; we must report them instead.

type PropsOf = Record<string, t.Mixed>;
type TypeOfProps<P extends PropsOf> = { [K in keyof P]: t.TypeOf<P[K]> };
type OutputOfProps<P extends PropsOf> = { [K in keyof P]: t.OutputOf<P[K]> };

const isPlainObject = (u: unknown): u is Record<string, unknown> =>
  typeof u === 'object' && u !== null && !Array.isArray(u);

/** A cross-field problem found after every field of an object validated on its own. */
export interface FieldProblem {
  readonly field: string;
  readonly message: string;
}

/**
 * An object codec that requires every listed field, rejects unknown ones and reports every bad field.
 * `crossCheck` runs only when all fields are valid, so one bad field never produces a second, derived error.
 */
export function strictObject<P extends PropsOf>(
  name: string,
  props: P,
  crossCheck: (value: TypeOfProps<P>) => readonly FieldProblem[] = () => [],
): t.Type<TypeOfProps<P>, OutputOfProps<P>, unknown> {
  const known = Object.keys(props);
  const is = (u: unknown): u is TypeOfProps<P> =>
    isPlainObject(u) &&
    Object.keys(u).every((k) => known.includes(k)) &&
    known.every((k) => props[k]!.is(u[k])) &&
    crossCheck(u as TypeOfProps<P>).length === 0;
  return new t.Type<TypeOfProps<P>, OutputOfProps<P>, unknown>(
    name,
    is,
    (u, c) => {
      if (!isPlainObject(u)) return t.failure(u, c, `expected ${name}, got ${describeValue(u)}`);
      const errors: t.ValidationError[] = [];
      for (const key of Object.keys(u)) {
        if (!known.includes(key)) {
          errors.push({
            value: u[key],
            context: t.appendContext(c, key, t.never, u[key]),
            message: `unknown field (known fields here: ${known.join(', ')}), got ${describeValue(u[key])}`,
          });
        }
      }
      const result: Record<string, unknown> = {};
      for (const key of known) {
        const codec = props[key]!;
        const decoded = codec.validate(u[key], t.appendContext(c, key, codec, u[key]));
        if (E.isLeft(decoded)) errors.push(...decoded.left);
        else result[key] = decoded.right;
      }
      if (errors.length > 0) return t.failures(errors);
      const value = result as TypeOfProps<P>;
      const problems = crossCheck(value);
      if (problems.length === 0) return t.success(value);
      return t.failures(
        problems.map((p) => ({
          value: value[p.field],
          context: t.appendContext(c, p.field, props[p.field] ?? t.never, value[p.field]),
          message: p.message,
        })),
      );
    },
    (a) => {
      const out: Record<string, unknown> = {};
      for (const key of known) out[key] = props[key]!.encode(a[key]);
      return out as OutputOfProps<P>;
    },
  );
}

// ---------------------------------------------------------------------------------------------------------
// The config codec

export const dataSources = ['deadleaves', 'fmnist-mosaic', 'folder'] as const;
export const backendNames = ['auto', ...BACKEND_ORDER] as const;

const dataCodec = strictObject(
  'the data section',
  {
    source: oneOfCodec(dataSources),
    path: stringOrNull,
    poolSize: integerCodec(1),
  },
  // A folder dataset without a folder cannot run; catching it here beats a failure minutes into setup.
  (data) =>
    data.source === 'folder' && (data.path === null || data.path === '')
      ? [{ field: 'path', message: `expected a directory path when data.source is 'folder', got ${describeValue(data.path)}` }]
      : [],
);

const viewsCodec = strictObject('the views section', {
  channels: oneOfCodec([1, 3] as const),
  globalSize: integerCodec(1),
  localSize: integerCodec(1),
  nLocal: integerCodec(0),
  globalScale: scaleRange,
  localScale: scaleRange,
});

const modelCodec = strictObject('the model section', {
  encoder: strictObject('the encoder section', {
    name: nonEmptyString,
    depth: oneOfCodec([18, 34, 50] as const),
    width: integerCodec(1),
    stem: oneOfCodec(['imagenet', 'small', 'compact'] as const),
  }),
  projector: strictObject('the projector section', {
    // Configs and checkpoints from before projectors were named hold the paper's MLP head.
    name: withDefault(nonEmptyString, 'mlp'),
    hidden: integerCodec(1),
    out: integerCodec(1),
  }),
  predictor: strictObject('the predictor section', {
    name: nonEmptyString,
    heads: integerCodec(1),
    // Only the cosine-attention predictor divides by it; it must still be positive so switching is safe.
    temperature: numberCodec({ min: 0, minOpen: true }),
  }),
});

const lossCodec = strictObject('the loss section', {
  // A registered loss (built in: 'official', 'per-pair'); the step refuses names that are not registered.
  variant: nonEmptyString,
  tPos: numberCodec({ min: 0, minOpen: true }),
  lambda: numberCodec(),
  margin: numberCodec(),
  k: integerCodec(2),
  negativePool: oneOfCodec(['unmatched', 'all'] as const),
  reduction: oneOfCodec(['mean', 'sum'] as const),
  coords: oneOfCodec(['normalized', 'pixel'] as const),
});

const optimCodec = strictObject(
  'the optim section',
  {
    name: oneOfCodec(['sgd', 'lars'] as const),
    baseLr: numberCodec({ min: 0, minOpen: true }),
    momentum: numberCodec({ min: 0, max: 1, maxOpen: true }),
    weightDecay: numberCodec({ min: 0 }),
    trust: numberCodec({ min: 0, minOpen: true }),
    warmupSteps: integerCodec(0),
    steps: integerCodec(1),
    batchSize: integerCodec(1),
  },
  // The schedule would otherwise never leave warm-up, which silently changes the run.
  (optim) =>
    optim.warmupSteps > optim.steps
      ? [{ field: 'warmupSteps', message: `expected an integer in [0, optim.steps = ${optim.steps}], got ${optim.warmupSteps}` }]
      : [],
);

const emaCodec = strictObject('the ema section', {
  base: numberCodec({ min: 0, max: 1 }),
});

const runCodec = strictObject('the run section', {
  outDir: nonEmptyString,
  backend: oneOfCodec(backendNames),
  logEvery: integerCodec(1),
  metricsEvery: integerCodec(1),
  checkpointEvery: integerCodec(1),
  picturesEvery: integerCodec(1),
});

/** The full pretraining config; exported for the checkpoint manifest. */
export const configCodec = strictObject('a config object', {
  seed: integerCodec(Number.MIN_SAFE_INTEGER),
  data: dataCodec,
  views: viewsCodec,
  model: modelCodec,
  loss: lossCodec,
  optim: optimCodec,
  ema: emaCodec,
  run: runCodec,
});

export type Config = t.TypeOf<typeof configCodec>;
export type DataSource = Config['data']['source'];
export type BackendName = Config['run']['backend'];

// ---------------------------------------------------------------------------------------------------------
// Presets

/** Shared defaults from CLOVE_SPEC.md §8 (the official code's values). */
const officialLoss: Config['loss'] = {
  variant: 'official',
  tPos: 0.7,
  lambda: 2,
  margin: 100,
  k: 10,
  negativePool: 'unmatched',
  reduction: 'mean',
  coords: 'normalized',
};
const officialScales = { globalScale: [0.2, 1] as [number, number], localScale: [0.08, 0.3] as [number, number] };
const larsDefaults = { name: 'lars' as const, baseLr: 1.0, momentum: 0.9, weightDecay: 2e-5, trust: 0.001 };
// The predictor's temperature is read only by the cosine-attention variant; 0.2 is the unused `--attn-temp`
// default of the official code (CLOVE_SPEC.md §c), so switching predictors starts from that value.
const nmhsa = (heads: number): Config['model']['predictor'] => ({ name: 'nmhsa', heads, temperature: 0.2 });

/**
 * Steps of the default CPU run, sized so that `npm ci && npm run pretrain` fits in 15 minutes on 2 cores: the
 * cpu-small step (ResNet-18 at width 32, compact stem, batch 16, 2×64 px + 6×32 px views) takes 2.67 s on the wasm
 * backend (6.0 img/s, quiet machine, 2026-12-07), so 280 steps train in ~12.5 min, plus ~10 s of data and compile.
 */
export const CPU_SMALL_STEPS = 280;

/** ImageNet-1k train has 1,281,167 images; at batch 64 an epoch is this many steps (drop_last). */
const IMAGENET_STEPS_PER_EPOCH_AT_64 = Math.floor(1_281_167 / 64);

const tiny: Config = {
  seed: 0,
  data: { source: 'deadleaves', path: null, poolSize: 16 },
  views: { channels: 3, globalSize: 32, localSize: 16, nLocal: 2, ...officialScales },
  model: {
    encoder: { name: 'resnet', depth: 18, width: 8, stem: 'small' },
    projector: { name: 'mlp', hidden: 32, out: 16 },
    predictor: nmhsa(2),
  },
  loss: officialLoss,
  optim: { ...larsDefaults, warmupSteps: 1, steps: 6, batchSize: 2 },
  ema: { base: 0.99 },
  // Every periodic action fires within the 6 steps, so a CI smoke run exercises all of them.
  run: { outDir: 'runs/tiny', backend: 'auto', logEvery: 1, metricsEvery: 2, checkpointEvery: 3, picturesEvery: 3 },
};

// cpu-small keeps its name (the README, tests and users' scripts refer to it): it is still the preset sized for a CPU,
// now at W1's model since the wasm back end made it 5× cheaper per image than the old width-8 model on gpu.js.
const cpuSmall: Config = {
  seed: 0,
  data: { source: 'deadleaves', path: null, poolSize: 1024 },
  // 64-px global views give an 8×8 teacher grid (64 cells), so the official k = 10 is valid for every row; the
  // spec's six local views, at 32 px (a 4×4 grid; the spec's 96/224 ≈ 0.43 of the global size, here 0.5).
  views: { channels: 3, globalSize: 64, localSize: 32, nLocal: 6, ...officialScales },
  model: {
    // W1's widths (32/64/128/256). The compact stem keeps the stride-8 grid at 2.2× fewer conv FLOPs than the
    // small stem (1.82 s per step against 4.0 s with two local views).
    encoder: { name: 'resnet', depth: 18, width: 32, stem: 'compact' },
    projector: { name: 'mlp', hidden: 256, out: 128 },
    predictor: nmhsa(4),
  },
  loss: officialLoss,
  // LARS scales each update to lr·trust·‖w‖. The paper's peak lr (1.0 × 2048/256 = 8) moves weights by ~0.8% per
  // step; at batch 16 the linear scaling rule would give lr 0.06 (0.006%), too slow to learn anything in 280 steps.
  // baseLr 160 keeps the peak relative step of the earlier width-8 preset (lr 10, here at batch 16), which raised
  // every protocol over its initial weights (README); the warm-up stays a tenth of the run.
  optim: { ...larsDefaults, baseLr: 160, warmupSteps: Math.round(CPU_SMALL_STEPS / 10), steps: CPU_SMALL_STEPS, batchSize: 16 },
  ema: { base: 0.99 },
  run: { outDir: 'runs/cpu-small', backend: 'auto', logEvery: 10, metricsEvery: 25, checkpointEvery: 100, picturesEvery: 50 },
};

// r18-96: the STL-10 / ImageNet-100-at-96px regime. Global views at 96 px keep a 3×3 C5 grid under the
// ImageNet stem (stride 32); local views at 48 px give 2×2, the same local/global size ratio (~0.5) the paper
// uses (96/224 ≈ 0.43). Four local views instead of six keep the local-view compute at one global view's worth
// (4·48² = 96²), which is what makes this a cheap single-GPU preset (batch and steps: see `optim` below).
const r18x96: Config = {
  seed: 0,
  data: { source: 'deadleaves', path: null, poolSize: 10_000 },
  views: { channels: 3, globalSize: 96, localSize: 48, nLocal: 4, ...officialScales },
  model: {
    encoder: { name: 'resnet', depth: 18, width: 64, stem: 'imagenet' },
    projector: { name: 'mlp', hidden: 2048, out: 256 },
    predictor: nmhsa(8),
  },
  // A 3×3 teacher grid has 9 cells, fewer than the official k = 10 (which would zero every image's loss); each
  // row also loses its 1–2 matched cells, so k = 5 keeps 4 hard negatives per row.
  loss: { ...officialLoss, k: 5 },
  // Batch 48 keeps the step's memory plan at 1.6 GiB, within reach of a CPU machine; on a GPU,
  // `--optim.batchSize 256` plans at 7.5 GiB. 200k steps at 48 keep ~100 epochs of STL-10's 100k unlabeled
  // images, with the same 5% warm-up.
  optim: { ...larsDefaults, warmupSteps: 10_000, steps: 200_000, batchSize: 48 },
  ema: { base: 0.99 },
  run: { outDir: 'runs/r18-96', backend: 'auto', logEvery: 50, metricsEvery: 200, checkpointEvery: 2000, picturesEvery: 1000 },
};

// r50-224: the paper's setting (CLOVE_SPEC.md §8) at batch 64: 200 epochs of ImageNet-1k with 5 warm-up
// epochs. The data source stays procedural so the preset is valid on any machine; `--data <imagenet dir>`
// switches it to the real folder.
const r50x224: Config = {
  seed: 0,
  data: { source: 'deadleaves', path: null, poolSize: 10_000 },
  views: { channels: 3, globalSize: 224, localSize: 96, nLocal: 6, ...officialScales },
  model: {
    encoder: { name: 'resnet', depth: 50, width: 64, stem: 'imagenet' },
    projector: { name: 'mlp', hidden: 4096, out: 256 },
    predictor: nmhsa(8),
  },
  loss: officialLoss,
  optim: {
    ...larsDefaults,
    warmupSteps: 5 * IMAGENET_STEPS_PER_EPOCH_AT_64,
    steps: 200 * IMAGENET_STEPS_PER_EPOCH_AT_64,
    batchSize: 64,
  },
  ema: { base: 0.99 },
  run: { outDir: 'runs/r50-224', backend: 'auto', logEvery: 100, metricsEvery: 500, checkpointEvery: 5000, picturesEvery: 2500 },
};

export const presetNames = ['tiny', 'cpu-small', 'r18-96', 'r50-224'] as const;
export type PresetName = (typeof presetNames)[number];
export const defaultPresetName: PresetName = 'cpu-small';

export const presets: Readonly<Record<PresetName, Config>> = {
  tiny,
  'cpu-small': cpuSmall,
  'r18-96': r18x96,
  'r50-224': r50x224,
};

export function isPresetName(name: string): name is PresetName {
  return (presetNames as readonly string[]).includes(name);
}

/** The preset of that name, or a message listing the known ones. */
export function presetNamed(name: string): E.Either<string, Config> {
  return isPresetName(name)
    ? E.right(cloneConfig(presets[name]))
    : E.left(`unknown preset '${name}' (known presets: ${presetNames.join(', ')})`);
}

/** The peak learning rate of the linear scaling rule: lr = baseLr · batchSize / 256 (CLOVE_SPEC.md §g). */
export function peakLearningRate(optim: Config['optim']): number {
  return (optim.baseLr * optim.batchSize) / 256;
}

// ---------------------------------------------------------------------------------------------------------
// Parsing, merging and overrides

function cloneConfig(config: Config): Config {
  return structuredClone(config);
}

/** Objects merge key by key; anything else (arrays, scalars, null) in `patch` replaces the base value. */
export function deepMerge(base: unknown, patch: unknown): unknown {
  if (patch === undefined) return structuredClone(base);
  if (isPlainObject(base) && isPlainObject(patch)) {
    const merged: Record<string, unknown> = structuredClone(base);
    for (const [key, value] of Object.entries(patch)) merged[key] = deepMerge(base[key], value);
    return merged;
  }
  return structuredClone(patch);
}

/** Validates an already complete config object; every invalid field is listed. */
export function validateConfig(value: unknown): E.Either<string[], Config> {
  return E.mapLeft(describeErrors)(configCodec.decode(value));
}

/**
 * Deep-merges user JSON onto a preset and validates the result, reporting every invalid or unknown field.
 * `json` is usually the parsed content of a config file; `undefined` means "the preset as is".
 */
export function parseConfig(json: unknown, preset: PresetName | Config = defaultPresetName): E.Either<string[], Config> {
  const base = typeof preset === 'string' ? presets[preset] : preset;
  if (json !== undefined && !isPlainObject(json)) {
    return E.left([`(root): expected a config object (partial JSON merged onto the preset), got ${describeValue(json)}`]);
  }
  return validateConfig(deepMerge(base, json));
}

/** Reads a JSON config file and parses it onto the preset; file and JSON problems name the file. */
export function readConfigFile(path: string, preset: PresetName | Config = defaultPresetName): E.Either<string[], Config> {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (error) {
    return E.left([`config file ${path}: cannot be read (${(error as Error).message})`]);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return E.left([`config file ${path}: is not valid JSON (${(error as Error).message})`]);
  }
  return E.mapLeft((messages: string[]) => messages.map((m) => `config file ${path}: ${m}`))(parseConfig(json, preset));
}

/** Short flags for the fields changed most often. `--data` is special: it also selects the folder source. */
export const flagAliases: Readonly<Record<string, string>> = {
  steps: 'optim.steps',
  batch: 'optim.batchSize',
  backend: 'run.backend',
  out: 'run.outDir',
  seed: 'seed',
};

/** Text fields that may also be null; `--data.path=null` clears them. */
const nullableTextFields: ReadonlySet<string> = new Set(['data.path']);

/** Flag text → value: JSON when it parses (numbers, booleans, null, arrays, objects), the raw text otherwise. */
export function parseFlagValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function getPath(root: unknown, path: readonly string[]): { found: boolean; value: unknown } {
  let node: unknown = root;
  for (const key of path) {
    if (!isPlainObject(node) || !Object.prototype.hasOwnProperty.call(node, key)) return { found: false, value: undefined };
    node = node[key];
  }
  return { found: true, value: node };
}

function setPath(root: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node: Record<string, unknown> = root;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string, unknown>;
  node[path[path.length - 1]!] = value;
}

/** Names every settable dotted path, for "did you mean" style error messages. */
function leafPaths(node: unknown, prefix = ''): string[] {
  if (!isPlainObject(node)) return [prefix];
  return Object.entries(node).flatMap(([key, value]) => leafPaths(value, prefix === '' ? key : `${prefix}.${key}`));
}

/**
 * Applies CLI flags (`--optim.steps=100`, `--backend cpu`, `--data /images`, ...) to a config and re-validates it.
 * Flag problems (unknown field, missing value, stray argument) and validation problems are all reported together.
 */
export function applyOverrides(config: Config, args: readonly string[]): E.Either<string[], Config> {
  const draft = cloneConfig(config) as unknown as Record<string, unknown>;
  const problems: string[] = [];
  // Which flag set each field, so two flags that set one field to different values are reported, not
  // resolved silently by their order (`--steps 5 --optim.steps 7`, `--data dir --data.source deadleaves`).
  const setBy = new Map<string, { flag: string; value: unknown }>();
  const set = (dotted: string, value: unknown, flagText: string): void => {
    const earlier = setBy.get(dotted);
    if (earlier !== undefined && JSON.stringify(earlier.value) !== JSON.stringify(value)) {
      problems.push(`conflicting flags: ${earlier.flag} and ${flagText} both set ${dotted} (to ${describeValue(earlier.value)} and ${describeValue(value)}); give only one`);
    }
    setBy.set(dotted, { flag: flagText, value });
    setPath(draft, dotted.split('.'), value);
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('--') || arg.length === 2) {
      problems.push(`argument ${JSON.stringify(arg)}: expected a flag of the form --field=value or --field value`);
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    let text: string;
    if (eq >= 0) {
      text = arg.slice(eq + 1);
    } else if (i + 1 < args.length && !args[i + 1]!.startsWith('--')) {
      text = args[++i]!;
    } else {
      problems.push(`flag --${flag}: expected a value after it, got nothing`);
      continue;
    }
    const flagText = `--${flag} ${text}`;
    if (flag === 'data') {
      set('data.source', 'folder', flagText);
      set('data.path', text, flagText);
      continue;
    }
    const dotted = flagAliases[flag] ?? flag;
    const path = dotted.split('.');
    const current = getPath(draft, path);
    if (!current.found || path.some((key) => key === '')) {
      problems.push(`flag --${flag}: no config field '${dotted}' (fields: ${leafPaths(draft).join(', ')})`);
      continue;
    }
    // Text fields take the flag text verbatim (`--out 2024` is a directory, not a number); `null` clears a
    // nullable text field. Every other field reads the text as JSON.
    const holdsText = typeof current.value === 'string' || current.value === null;
    const value = holdsText ? (text === 'null' && nullableTextFields.has(dotted) ? null : text) : parseFlagValue(text);
    set(dotted, value, flagText);
  }
  const validated = validateConfig(draft);
  if (problems.length === 0) return validated;
  return E.left([...problems, ...(E.isLeft(validated) ? validated.left : [])]);
}

// ---------------------------------------------------------------------------------------------------------
// Resume: which config changes keep a run's meaning

/**
 * Fields a resumed run may change: its length (`--steps`; `--until` is not in the config), the logging,
 * metrics, checkpoint and picture cadence, the backend and how the output directory is spelled. Anything else
 * (seed, data, batch, model, loss, optimizer, EMA) would make the checkpoint's first steps and the rest two
 * different runs.
 */
export const resumableFields: ReadonlySet<string> = new Set(['optim.steps', 'run.logEvery', 'run.metricsEvery', 'run.checkpointEvery', 'run.picturesEvery', 'run.backend', 'run.outDir']);

/** Every leaf field whose value differs, as `[path, checkpoint value, new value]`. */
export function configDifferences(before: Config, after: Config): { path: string; before: unknown; after: unknown }[] {
  const out: { path: string; before: unknown; after: unknown }[] = [];
  for (const p of leafPaths(before)) {
    const keys = p.split('.');
    const a = getPath(before, keys).value;
    const b = getPath(after, keys).value;
    if (JSON.stringify(a) !== JSON.stringify(b)) out.push({ path: p, before: a, after: b });
  }
  return out;
}

/** The presets whose model and views equal `config`'s, to name them when a resume mixes models. */
function presetsWithModelOf(config: Config): PresetName[] {
  return presetNames.filter((n) => JSON.stringify(presets[n].model) === JSON.stringify(config.model) && JSON.stringify(presets[n].views) === JSON.stringify(config.views));
}

/**
 * Compares the config of a resumed run with its checkpoint's. Right: the accepted changes (`optim.steps: 6 → 12`),
 * to record in the manifest's history. Left: one message listing every field that would change the run's meaning.
 */
export function compareResumeConfig(checkpoint: Config, now: Config): E.Either<string, string[]> {
  const diffs = configDifferences(checkpoint, now);
  const refused = diffs.filter((d) => !resumableFields.has(d.path));
  const accepted = diffs.filter((d) => resumableFields.has(d.path) && d.path !== 'run.outDir');
  if (refused.length === 0) return E.right(accepted.map((d) => `${d.path}: ${describeValue(d.before)} → ${describeValue(d.after)}`));
  const lines = refused.map((d) => `${d.path}: ${describeValue(d.before)} in the checkpoint, ${describeValue(d.after)} now`);
  if (refused.some((d) => d.path.startsWith('model.') || d.path.startsWith('views.'))) {
    const name = (ns: PresetName[]): string => (ns.length === 0 ? 'no preset (a custom one)' : `preset ${ns.map((n) => `'${n}'`).join(' / ')}`);
    lines.push(`the checkpoint's model and views are those of ${name(presetsWithModelOf(checkpoint))}; this command's are those of ${name(presetsWithModelOf(now))}`);
  }
  return E.left(
    `the config differs from the checkpoint's in ${refused.length} field${refused.length === 1 ? '' : 's'} that change the run:\n  ${lines.join('\n  ')}\n` +
      `resume with the flags the run was started with (only ${[...resumableFields].filter((f) => f !== 'run.outDir').join(', ')} and --until may change), or start a new run with another --out`,
  );
}

// Checkpoints: a directory `ckpt-<step, 8 digits>/` holding `state.safetensors` (tensors named by group:
// `params/…`, `opt/…`, `teacher/…`, `bn/…`) and `manifest.json` (io-ts validated: step, epoch, RNG state,
// config, backend, time, tensor list, and the sha256 of the state file). A run directory also holds `latest`,
// naming the newest checkpoint. Writes are atomic at every level: a checkpoint directory appears complete or
// not at all, and `latest` is replaced in one rename, so a crash at any instant leaves the previous checkpoint
// loadable and `latest` pointing at a complete one.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import * as t from 'io-ts';
import * as E from 'fp-ts/lib/Either.js';
import { configCodec, describeErrors, describeValue, integerCodec, oneOfCodec, strictObject, type Config } from './config.ts';
import { decodeSafetensors, encodeSafetensors } from './safetensors.ts';
import {
  isTemporaryName,
  removeDirAtomic,
  writeDirAtomic,
  writeFileAtomic,
  writeFileDurable,
  type CrashPoints,
} from './atomic.ts';

export const CHECKPOINT_FORMAT = 'clove-ts-checkpoint';
export const CHECKPOINT_VERSION = 1;
export const STATE_FILE = 'state.safetensors';
export const MANIFEST_FILE = 'manifest.json';
export const LATEST_FILE = 'latest';

/** The groups a tensor name must start with (`params/conv1.weight`, `opt/momentum/…`, …). */
export const tensorGroups = ['params', 'opt', 'teacher', 'bn'] as const;
export type TensorGroup = (typeof tensorGroups)[number];

export interface CheckpointTensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

export interface CheckpointInput {
  readonly step: number;
  readonly epoch: number;
  /** The training RNG's state words, so a resumed run draws the same augmentations. */
  readonly rngState: readonly number[];
  readonly config: Config;
  readonly backend: string;
  readonly tensors: Readonly<Record<string, CheckpointTensor>>;
  /** Config changes accepted on resume (oldest first), carried from checkpoint to checkpoint. */
  readonly history?: readonly HistoryEntry[];
}

/** One resume that changed an allowed field (`--steps`, logging cadence, backend, ...). */
export interface HistoryEntry {
  readonly step: number;
  readonly changes: readonly string[];
}

// ---------------------------------------------------------------------------------------------------------
// Manifest

const finiteNumberList = new t.Type<number[], number[], unknown>(
  'a list of finite numbers',
  (u): u is number[] => Array.isArray(u) && u.every((x) => typeof x === 'number' && Number.isFinite(x)),
  (u, c) =>
    Array.isArray(u) && u.every((x) => typeof x === 'number' && Number.isFinite(x))
      ? t.success(u as number[])
      : t.failure(u, c, `expected a list of finite numbers, got ${describeValue(u)}`),
  (a) => a,
);

const textCodec = (name: string, accepts: (s: string) => boolean) =>
  new t.Type<string, string, unknown>(
    name,
    (u): u is string => typeof u === 'string' && accepts(u),
    (u, c) => (typeof u === 'string' && accepts(u) ? t.success(u) : t.failure(u, c, `expected ${name}, got ${describeValue(u)}`)),
    (a) => a,
  );

const shapeCodec = new t.Type<number[], number[], unknown>(
  'a shape (list of non-negative integers)',
  (u): u is number[] => Array.isArray(u) && u.every((d) => Number.isSafeInteger(d) && (d as number) >= 0),
  (u, c) =>
    Array.isArray(u) && u.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)
      ? t.success(u as number[])
      : t.failure(u, c, `expected a shape (list of non-negative integers), got ${describeValue(u)}`),
  (a) => a,
);

const tensorEntryCodec = strictObject('a tensor entry', {
  name: textCodec('a grouped tensor name (params/…, opt/…, teacher/…, bn/…)', (s) => groupOf(s) !== undefined),
  shape: shapeCodec,
  dtype: oneOfCodec(['F32'] as const),
});

const historyCodec = t.union([
  t.undefined,
  t.array(strictObject('a history entry', { step: integerCodec(0), changes: t.array(t.string) })),
]);

export const manifestCodec = strictObject('a checkpoint manifest', {
  format: oneOfCodec([CHECKPOINT_FORMAT] as const),
  version: oneOfCodec([CHECKPOINT_VERSION] as const),
  step: integerCodec(0),
  epoch: integerCodec(0),
  rngState: finiteNumberList,
  config: configCodec,
  backend: textCodec('a non-empty string', (s) => s.length > 0),
  createdAt: textCodec('an ISO-8601 time', (s) => !Number.isNaN(Date.parse(s))),
  stateFile: oneOfCodec([STATE_FILE] as const),
  stateBytes: integerCodec(0),
  stateSha256: textCodec('a sha256 hex digest', (s) => /^[0-9a-f]{64}$/.test(s)),
  tensors: t.array(tensorEntryCodec),
  history: historyCodec,
});

export type Manifest = t.TypeOf<typeof manifestCodec>;

/** What was saved, plus where it was read from and its validated manifest. */
export interface LoadedCheckpoint extends CheckpointInput {
  /** The checkpoint directory that was read. */
  readonly path: string;
  readonly manifest: Manifest;
}

export interface CheckpointEntry {
  readonly step: number;
  readonly name: string;
  readonly path: string;
}

// ---------------------------------------------------------------------------------------------------------
// Names

const CHECKPOINT_NAME = /^ckpt-(\d{8,})$/;

export function checkpointName(step: number): string {
  return `ckpt-${String(step).padStart(8, '0')}`;
}

export function groupOf(name: string): TensorGroup | undefined {
  const slash = name.indexOf('/');
  if (slash <= 0 || slash === name.length - 1) return undefined;
  const group = name.slice(0, slash);
  return (tensorGroups as readonly string[]).includes(group) ? (group as TensorGroup) : undefined;
}

/** `prefixTensors('params', { 'conv1.w': t })` → `{ 'params/conv1.w': t }`. */
export function prefixTensors(group: TensorGroup, tensors: Readonly<Record<string, CheckpointTensor>>): Record<string, CheckpointTensor> {
  return Object.fromEntries(Object.entries(tensors).map(([name, tensor]) => [`${group}/${name}`, tensor]));
}

/** The tensors of one group with the group prefix removed (the inverse of `prefixTensors`). */
export function tensorGroup(tensors: Readonly<Record<string, CheckpointTensor>>, group: TensorGroup): Record<string, CheckpointTensor> {
  const prefix = `${group}/`;
  return Object.fromEntries(
    Object.entries(tensors)
      .filter(([name]) => name.startsWith(prefix))
      .map(([name, tensor]) => [name.slice(prefix.length), tensor]),
  );
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
const describe = (error: unknown): string => (error instanceof Error ? error.message : String(error));

// ---------------------------------------------------------------------------------------------------------
// Listing

/** The checkpoints of a run directory, oldest step first; temporary leftovers of crashed writes are ignored. */
export function listCheckpoints(runDir: string): E.Either<string, CheckpointEntry[]> {
  let names: fs.Dirent[];
  try {
    names = fs.readdirSync(runDir, { withFileTypes: true });
  } catch (error) {
    return E.left(`cannot list checkpoints in ${runDir}: ${describe(error)}`);
  }
  const entries: CheckpointEntry[] = [];
  for (const dirent of names) {
    const match = CHECKPOINT_NAME.exec(dirent.name);
    if (match === null || !dirent.isDirectory()) continue;
    entries.push({ step: Number(match[1]), name: dirent.name, path: path.join(runDir, dirent.name) });
  }
  return E.right(entries.sort((a, b) => a.step - b.step));
}

// ---------------------------------------------------------------------------------------------------------
// Saving

export interface SaveOptions {
  /** How many checkpoints to keep (newest steps, plus always the one just written). Default 3. */
  readonly keep?: number;
  /** Creation time recorded in the manifest (injected for reproducible tests). */
  readonly now?: Date;
  /** Crash-simulation hooks for tests; see `atomic.ts`. */
  readonly crash?: {
    readonly beforeCheckpointRename?: CrashPoints['beforeRename'];
    readonly beforeLatestRename?: CrashPoints['beforeRename'];
  };
}

function checkInput(input: CheckpointInput, keep: number): void {
  if (!Number.isSafeInteger(input.step) || input.step < 0) throw new Error(`saveCheckpoint: step must be a non-negative integer, got ${input.step}`);
  if (!Number.isSafeInteger(input.epoch) || input.epoch < 0) throw new Error(`saveCheckpoint: epoch must be a non-negative integer, got ${input.epoch}`);
  if (!Number.isSafeInteger(keep) || keep < 1) throw new Error(`saveCheckpoint: keep must be an integer >= 1, got ${keep}`);
  if (!input.rngState.every(Number.isFinite)) throw new Error(`saveCheckpoint: rngState must hold finite numbers, got ${describeValue(input.rngState)}`);
  if (input.backend.length === 0) throw new Error('saveCheckpoint: backend must be named');
  const config = configCodec.decode(input.config);
  if (E.isLeft(config)) throw new Error(`saveCheckpoint: the config is invalid: ${describeErrors(config.left).join('; ')}`);
  for (const [name, tensor] of Object.entries(input.tensors)) {
    if (groupOf(name) === undefined) throw new Error(`saveCheckpoint: tensor '${name}' must be named <group>/<name> with group one of ${tensorGroups.join(', ')}`);
    if (!(tensor.data instanceof Float32Array)) throw new Error(`saveCheckpoint: tensor '${name}' must hold a Float32Array`);
  }
}

/** Removes what crashed writers left behind (temporary checkpoint directories and `latest` files). */
function removeLeftovers(runDir: string): void {
  for (const name of fs.readdirSync(runDir)) {
    if (isTemporaryName(name)) fs.rmSync(path.join(runDir, name), { recursive: true, force: true });
  }
}

/**
 * Saves a checkpoint under `runDir` atomically, points `latest` at it, and prunes old checkpoints.
 * Returns the checkpoint directory. A checkpoint of the same step is replaced. Invalid input (bad tensor
 * names, shape/length mismatch, invalid config) is a programmer error and throws; I/O failures are Lefts.
 * Assumes a single writer per run directory (stale temporaries are removed on save).
 */
export function saveCheckpoint(runDir: string, input: CheckpointInput, options: SaveOptions = {}): E.Either<string, string> {
  const keep = options.keep ?? 3;
  checkInput(input, keep);
  try {
    fs.mkdirSync(runDir, { recursive: true });
    removeLeftovers(runDir);
  } catch (error) {
    return E.left(`cannot prepare run directory ${runDir}: ${describe(error)}`);
  }
  const names = Object.keys(input.tensors).sort();
  const state = encodeSafetensors(input.tensors, { format: CHECKPOINT_FORMAT, step: String(input.step) });
  const manifest: Manifest = {
    format: CHECKPOINT_FORMAT,
    version: CHECKPOINT_VERSION,
    step: input.step,
    epoch: input.epoch,
    rngState: [...input.rngState],
    config: input.config,
    backend: input.backend,
    createdAt: (options.now ?? new Date()).toISOString(),
    stateFile: STATE_FILE,
    stateBytes: state.byteLength,
    stateSha256: sha256(state),
    tensors: names.map((name) => ({ name, shape: [...input.tensors[name]!.shape], dtype: 'F32' as const })),
    history: input.history === undefined || input.history.length === 0 ? undefined : input.history.map((h) => ({ step: h.step, changes: [...h.changes] })),
  };
  const name = checkpointName(input.step);
  const finalDir = path.join(runDir, name);
  const written = writeDirAtomic(
    finalDir,
    (dir) =>
      E.flatMap(writeFileDurable(path.join(dir, STATE_FILE), state), () =>
        writeFileDurable(path.join(dir, MANIFEST_FILE), `${JSON.stringify(manifestCodec.encode(manifest), null, 2)}\n`),
      ),
    { replace: true, beforeRename: options.crash?.beforeCheckpointRename },
  );
  if (E.isLeft(written)) return written;
  const pointed = writeFileAtomic(path.join(runDir, LATEST_FILE), `${name}\n`, { beforeRename: options.crash?.beforeLatestRename });
  if (E.isLeft(pointed)) return pointed;
  const pruned = pruneCheckpoints(runDir, keep, name);
  return E.map(() => finalDir)(pruned);
}

/** Deletes all but the newest `keep` checkpoints, never the one named `protect` (the one `latest` names). */
function pruneCheckpoints(runDir: string, keep: number, protect: string): E.Either<string, void> {
  const listed = listCheckpoints(runDir);
  if (E.isLeft(listed)) return listed;
  const doomed = listed.right.slice(0, Math.max(0, listed.right.length - keep)).filter((entry) => entry.name !== protect);
  for (const entry of doomed) {
    const removed = removeDirAtomic(entry.path);
    if (E.isLeft(removed)) return removed;
  }
  return E.right(undefined);
}

// ---------------------------------------------------------------------------------------------------------
// Loading

/** A checkpoint directory (has manifest.json) or a run directory (has `latest`) → the checkpoint directory. */
export function resolveCheckpointDir(target: string): E.Either<string, string> {
  if (!fs.existsSync(target)) return E.left(`no checkpoint at ${target}: the path does not exist`);
  if (fs.existsSync(path.join(target, MANIFEST_FILE))) return E.right(target);
  const latestPath = path.join(target, LATEST_FILE);
  if (!fs.existsSync(latestPath)) {
    return E.left(`no checkpoint at ${target}: it has neither ${MANIFEST_FILE} (a checkpoint directory) nor '${LATEST_FILE}' (a run directory)`);
  }
  let pointer: string;
  try {
    pointer = fs.readFileSync(latestPath, 'utf8').trim();
  } catch (error) {
    return E.left(`cannot read ${latestPath}: ${describe(error)}`);
  }
  if (!CHECKPOINT_NAME.test(pointer)) return E.left(`${latestPath} is corrupt: expected a name like ckpt-00000100, got ${describeValue(pointer)}`);
  const dir = path.join(target, pointer);
  if (!fs.existsSync(path.join(dir, MANIFEST_FILE))) return E.left(`${latestPath} names ${pointer}, but ${dir} holds no ${MANIFEST_FILE}`);
  return E.right(dir);
}

function readManifest(dir: string): E.Either<string, Manifest> {
  const file = path.join(dir, MANIFEST_FILE);
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    return E.left(`${file} cannot be read as JSON: ${describe(error)}`);
  }
  return E.mapLeft((errors: t.Errors) => `${file} is invalid: ${describeErrors(errors).join('; ')}`)(manifestCodec.decode(json));
}

/**
 * Loads a checkpoint from its directory, or the latest one of a run directory. Verifies the manifest, that the
 * directory name matches its step, the state file's size and sha256, and that the tensors match the manifest.
 */
export function loadCheckpoint(target: string): E.Either<string, LoadedCheckpoint> {
  const resolved = resolveCheckpointDir(target);
  if (E.isLeft(resolved)) return resolved;
  const dir = resolved.right;
  const manifestResult = readManifest(dir);
  if (E.isLeft(manifestResult)) return manifestResult;
  const manifest = manifestResult.right;
  const dirName = path.basename(path.resolve(dir));
  if (CHECKPOINT_NAME.test(dirName) && dirName !== checkpointName(manifest.step)) {
    return E.left(`${dir}: the directory name says step ${Number(dirName.slice(5))} but the manifest says step ${manifest.step}`);
  }
  const stateFile = path.join(dir, manifest.stateFile);
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(stateFile);
  } catch (error) {
    return E.left(`${stateFile} cannot be read: ${describe(error)}`);
  }
  if (bytes.byteLength !== manifest.stateBytes) {
    return E.left(`${stateFile} is ${bytes.byteLength} bytes but the manifest recorded ${manifest.stateBytes} (truncated or replaced)`);
  }
  const digest = sha256(bytes);
  if (digest !== manifest.stateSha256) {
    return E.left(`${stateFile} is corrupt: its sha256 is ${digest} but the manifest recorded ${manifest.stateSha256}`);
  }
  const content = decodeSafetensors(bytes);
  if (E.isLeft(content)) return E.left(`${stateFile}: ${content.left}`);
  const stored = content.right.tensors;
  const tensors: Record<string, CheckpointTensor> = {};
  for (const entry of manifest.tensors) {
    const tensor = stored[entry.name];
    if (tensor === undefined) return E.left(`${stateFile}: tensor '${entry.name}' listed in the manifest is missing`);
    if (tensor.dtype !== 'F32') return E.left(`${stateFile}: tensor '${entry.name}' is ${tensor.dtype}, expected F32`);
    if (tensor.shape.length !== entry.shape.length || tensor.shape.some((d, i) => d !== entry.shape[i])) {
      return E.left(`${stateFile}: tensor '${entry.name}' has shape [${tensor.shape.join(', ')}] but the manifest says [${entry.shape.join(', ')}]`);
    }
    tensors[entry.name] = { shape: tensor.shape, data: tensor.data };
  }
  const listed = new Set(manifest.tensors.map((entry) => entry.name));
  const unlisted = Object.keys(stored).filter((name) => !listed.has(name));
  if (unlisted.length > 0) return E.left(`${stateFile}: tensors not listed in the manifest: ${unlisted.join(', ')}`);
  return E.right({
    path: dir,
    manifest,
    step: manifest.step,
    epoch: manifest.epoch,
    rngState: manifest.rngState,
    config: manifest.config,
    backend: manifest.backend,
    tensors,
    history: manifest.history ?? [],
  });
}

/** The first non-finite value of a tensor set (name, flat index, value), if any: such a state is never "good". */
export function nonFiniteValue(tensors: Readonly<Record<string, CheckpointTensor>>): { name: string; index: number; value: number } | undefined {
  for (const name of Object.keys(tensors).sort()) {
    const data = tensors[name]!.data;
    for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i])) return { name, index: i, value: data[i]! };
  }
  return undefined;
}

/**
 * The checkpoint directory that `target` lies in or is (a directory named ckpt-… or holding a checkpoint
 * manifest), if any. User output (exports, reports) must never be written there.
 */
export function enclosingCheckpointDir(target: string): string | undefined {
  let dir = path.resolve(target);
  for (;;) {
    if (CHECKPOINT_NAME.test(path.basename(dir)) || fs.existsSync(path.join(dir, MANIFEST_FILE))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

export interface GoodCheckpoint {
  readonly checkpoint: LoadedCheckpoint;
  /** Newer checkpoints that could not be used, newest first, each with the reason. */
  readonly skipped: readonly { readonly path: string; readonly reason: string }[];
}

/** Loads a checkpoint and also rejects one whose tensors are not all finite. */
export function loadFiniteCheckpoint(target: string): E.Either<string, LoadedCheckpoint> {
  return E.flatMap((ck: LoadedCheckpoint) => {
    const bad = nonFiniteValue(ck.tensors);
    return bad === undefined ? E.right(ck) : E.left(`${ck.path} holds non-finite values (${bad.name}[${bad.index}] = ${bad.value})`);
  })(loadCheckpoint(target));
}

/**
 * The newest usable (loadable and finite) checkpoint of a run directory, falling back past corrupt ones: the
 * one `latest` names first, then every checkpoint newest first. A checkpoint directory is tried alone, then
 * its run directory's older checkpoints. Left when none is usable, listing why each failed.
 */
export function loadNewestGoodCheckpoint(target: string): E.Either<string, GoodCheckpoint> {
  const first = loadFiniteCheckpoint(target);
  if (E.isRight(first)) return E.right({ checkpoint: first.right, skipped: [] });
  const isCheckpointDir = fs.existsSync(path.join(target, MANIFEST_FILE)) || CHECKPOINT_NAME.test(path.basename(path.resolve(target)));
  const runDir = isCheckpointDir ? path.dirname(path.resolve(target)) : target;
  const failedStep = isCheckpointDir ? Number(CHECKPOINT_NAME.exec(path.basename(path.resolve(target)))?.[1] ?? Infinity) : Infinity;
  const listed = listCheckpoints(runDir);
  if (E.isLeft(listed)) return E.left(first.left);
  const firstDir = resolveCheckpointDir(target);
  const firstPath = E.isRight(firstDir) ? firstDir.right : target;
  const skipped: { path: string; reason: string }[] = [{ path: firstPath, reason: first.left }];
  for (const entry of [...listed.right].reverse()) {
    if (entry.step >= failedStep || path.resolve(entry.path) === path.resolve(firstPath)) continue;
    const ck = loadFiniteCheckpoint(entry.path);
    if (E.isRight(ck)) return E.right({ checkpoint: ck.right, skipped });
    skipped.push({ path: entry.path, reason: ck.left });
  }
  return E.left(skipped.length === 1 ? first.left : `no usable checkpoint in ${runDir}: ${skipped.map((s) => s.reason).join('; ')}`);
}

/**
 * Loads a checkpoint for reading (eval, export): it must load and be finite. When it does not, the message names
 * the newest usable checkpoint of the same run to pass instead (never used silently: the user chose a target).
 */
export function loadCheckpointOrSuggest(target: string): E.Either<string, LoadedCheckpoint> {
  const ck = loadFiniteCheckpoint(target);
  if (E.isRight(ck)) return ck;
  const fallback = loadNewestGoodCheckpoint(target);
  return E.left(E.isRight(fallback) ? `${ck.left}\n  the newest usable checkpoint of that run is ${fallback.right.checkpoint.path} (step ${fallback.right.checkpoint.step}): pass --checkpoint ${fallback.right.checkpoint.path}` : ck.left);
}

// The pretraining runtime (effects live here): data and views on the host, ONE compiled training step on the
// device with every state tensor resident between steps, metrics read back every `metricsEvery` steps,
// pictures, atomic checkpoints, exact resume, Ctrl-C and non-finite-loss handling.
import { gpujsTarget } from '../compiler/targets/gpujs/target.ts';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import * as O from 'fp-ts/lib/Option.js';
import { compile, plan, type Executable } from '../compiler/compile.ts';
import { contractionShare, StepProfiler, timeByOp } from '../compiler/profile.ts';
import { describeOversize, describeTensor } from '../compiler/memplan.ts';
import { bufferBytes } from '../compiler/schedule.ts';
import { makeGraph } from '../compiler/ir.ts';
import type { DeviceHandle } from '../compiler/runtime/device.ts';
import { freeSpaceNote, makeDirectories, removeDirAtomic, writeFailure, writeFileAtomic } from './atomic.ts';
import {
  checkpointName,
  enclosingCheckpointDir,
  groupOf,
  LATEST_FILE,
  listCheckpoints,
  loadNewestGoodCheckpoint,
  nonFiniteValue,
  prefixTensors,
  saveCheckpoint,
  type CheckpointTensor,
  type HistoryEntry,
  type TensorGroup,
} from './checkpoint.ts';
import { compareResumeConfig, peakLearningRate, type Config } from './config.ts';
import { deadLeavesPool, DEADLEAVES_VERSION } from './data/deadleaves.ts';
import { loadFashionMnist } from './data/fmnist.ts';
import { openImageFolder } from './data/folder.ts';
import type { Image } from './data/image.ts';
import { pretrainingMosaics } from './data/mosaic.ts';
import { createRng } from './data/rng.ts';
import { sampleViews, type MultiCropConfig, type View } from './data/views.ts';
import { matchCells, positiveMask, type Grid } from './geometry.ts';
import { maskInputName } from './loss.ts';
import { drawAttention, drawCurves, drawMatches, stackImages, upscale, viewToRgb, writePng } from './pictures.ts';
import { emaMomentumAt, learningRateAt } from './schedules.ts';
import { describeModules, type Variants } from './models/registry.ts';
import { ATTENTION_OUTPUT, buildTrainStep, INPUT, initTrainState, METRIC_NAMES, metricOutputName, stepShapesOf, trainStateRecord, type TrainStep } from './step.ts';

export interface Logger {
  readonly info: (line: string) => void;
  readonly warn: (line: string) => void;
}

// ---- data ---------------------------------------------------------------------------------------------------

export interface PretrainData {
  readonly size: number;
  readonly description: string;
  /** The image at `index`, or none when it could not be decoded (already warned about and counted). */
  image(index: number): O.Option<Image>;
}

/** Open the configured pretraining source; every problem (missing folder, no images, no dataset) is a Left. */
export function openPretrainData(config: Config, log: Logger, maxImagePixels?: number): E.Either<string, PretrainData> {
  const { source, path: dir, poolSize } = config.data;
  if (source === 'folder') {
    if (dir === null) return E.left('data.source is "folder" but data.path is not set (use --data <dir>)');
    // Every file is checked when the folder is indexed, so an unusable one never stops a run mid-way.
    const folder = openImageFolder(dir, log.warn, { index: { maxPixels: maxImagePixels } });
    if (E.isLeft(folder)) return folder;
    return E.right({ size: folder.right.paths.length, description: `image folder ${dir} (${folder.right.paths.length} files)`, image: (i) => folder.right.load(i) });
  }
  if (source === 'fmnist-mosaic') {
    const fm = loadFashionMnist('train');
    if (E.isLeft(fm)) return E.left(`fmnist-mosaic needs Fashion-MNIST (apt-get install dataset-fashion-mnist): ${fm.left}`);
    // Unlabelled canvases from train indices [0, 50 000) with seeds ≥ 100 (EVAL_PROTOCOLS §3b): never the
    // validation or test pools.
    const mosaics = pretrainingMosaics(fm.right, poolSize, 100 + Math.abs(config.seed));
    if (E.isLeft(mosaics)) return mosaics;
    const m = mosaics.right;
    return E.right({
      size: m.count,
      description: `${m.count} unlabelled FMNIST-Mosaic-64 canvases`,
      image: (i) => O.some({ width: 64, height: 64, channels: 1, data: m.canvases.subarray(i * 4096, (i + 1) * 4096) }),
    });
  }
  let lastShown = -1;
  const pool = deadLeavesPool(config.seed, poolSize, DEADLEAVES_VERSION, {
    warn: log.warn,
    onProgress: (done, total) => {
      const pct = Math.floor((100 * done) / total);
      if (pct >= lastShown + 25 || done === total) {
        lastShown = pct;
        log.info(`generating DeadLeaves-64 pool: ${done}/${total}`);
      }
    },
  });
  if (E.isLeft(pool)) return pool;
  return E.right({ size: pool.right.count, description: `DeadLeaves-64 (seed ${config.seed}, ${pool.right.count} images, cached)`, image: (i) => O.some(pool.right.image(i)) });
}

/** Sample `s` of the run (s = step·batch + b) → (epoch, dataset index): a fresh permutation per epoch. */
export function makeSampler(seed: number, size: number): (s: number) => { epoch: number; index: number } {
  let cached = { epoch: -1, perm: new Uint32Array(0) };
  return (s) => {
    const epoch = Math.floor(s / size);
    if (cached.epoch !== epoch) {
      const rng = createRng(seed).fork(0x5a3, epoch);
      const perm = Uint32Array.from({ length: size }, (_v, i) => i);
      for (let i = size - 1; i > 0; i--) {
        const j = rng.int(0, i + 1);
        [perm[i], perm[j]] = [perm[j], perm[i]];
      }
      cached = { epoch, perm };
    }
    return { epoch, index: cached.perm[s % size] };
  };
}

export const multiCropOf = (config: Config): MultiCropConfig => ({
  globalSize: config.views.globalSize,
  localSize: config.views.localSize,
  nLocal: config.views.nLocal,
  globalScale: config.views.globalScale,
  localScale: config.views.localScale,
  channels: config.views.channels,
  coordMode: config.loss.coords,
});

export interface Batch {
  readonly inputs: Record<string, Float32Array>;
  /** views[n][v]: the views of image n (globals first). */
  readonly views: readonly (readonly View[])[];
  readonly epoch: number;
}

/** The per-step inputs of step `step`: a pure function of (config, step), which is what makes resume exact. */
export function makeBatch(config: Config, step: TrainStep, data: PretrainData, sampler: ReturnType<typeof makeSampler>, stepIndex: number): E.Either<string, Batch> {
  const N = config.optim.batchSize;
  const mc = multiCropOf(config);
  const views: View[][] = [];
  let epoch = 0;
  for (let n = 0; n < N; n++) {
    const s = stepIndex * N + n;
    const pick = sampler(s);
    epoch = pick.epoch;
    // An undecodable file (warned once by the folder) is replaced by the next decodable one, deterministically.
    let img: O.Option<Image> = O.none;
    for (let k = 0; k < data.size && O.isNone(img); k++) img = data.image((pick.index + k) % data.size);
    if (O.isNone(img)) return E.left(`step ${stepIndex}: no image of the dataset (${data.description}) decodes any more (each was named in a warning)`);
    views.push(sampleViews(img.value, config.seed, pick.epoch, pick.index, mc));
  }
  const C = config.views.channels;
  const stack = (first: number, count: number, size: number): Float32Array => {
    const per = C * size * size;
    const out = new Float32Array(count * N * per);
    for (let v = 0; v < count; v++) for (let n = 0; n < N; n++) out.set(views[n][first + v].pixels, (v * N + n) * per);
    return out;
  };
  const inputs: Record<string, Float32Array> = { [INPUT.globalViews]: stack(0, 2, config.views.globalSize) };
  if (config.views.nLocal > 0) inputs[INPUT.localViews] = stack(2, config.views.nLocal, config.views.localSize);
  for (const pair of step.pairs) {
    const q = pair.query.kind === 'global' ? pair.query.index : 2 + pair.query.index;
    const gridQ: Grid = pair.query.kind === 'global' ? step.grids.global : step.grids.local;
    inputs[maskInputName(pair)] = positiveMask(
      views.map((vs) => vs[q].coords),
      views.map((vs) => vs[pair.key].coords),
      gridQ,
      step.grids.global,
      config.loss.tPos,
    );
  }
  return E.right({ inputs, views, epoch });
}

// ---- state --------------------------------------------------------------------------------------------------

/**
 * A scored image's loss minus the margin μ while the hinge is inactive, i.e. what the student minimises
 * (CLOVE_SPEC §e): official 2·c̄_neg − 2λ·c̄_pos, per-pair c_neg − λ·c_pos. The loss itself also
 * averages in images that score exactly 0 (a row short of k negatives), whose share varies from step to step by
 * more than the whole training signal, so progress is shown with this value.
 */
export function objectiveOf(loss: Config['loss'], posCos: number, negCos: number): number {
  const scale = loss.variant === 'official' ? 2 : 1;
  return scale * (negCos - loss.lambda * posCos);
}

/** Checkpoint group of a state tensor: student → params, teacher → teacher, optimizer → opt, BN statistics → bn. */
export const groupOfState = (name: string): TensorGroup =>
  name.startsWith('student.') ? 'params' : name.startsWith('teacher.') ? 'teacher' : name.startsWith('optim.') ? 'opt' : 'bn';

export interface RunResult {
  /** Steps run by this call, and the run's step count after them and in all. */
  readonly steps: number;
  readonly lastStep: number;
  readonly totalSteps: number;
  readonly lastLoss: number;
  readonly firstLoss: number;
  /** `objective` averaged over the first and the last tenth of the logged steps (at least one each). */
  readonly objectiveStart: number;
  readonly objectiveEnd: number;
  readonly checkpoint: string;
  readonly backend: string;
  readonly interrupted: boolean;
}

export interface PretrainOptions {
  readonly config: Config;
  /** Only build, fuse and plan the step (no device, no data): report kernels and the memory plan. */
  readonly planOnly?: boolean;
  readonly resume: boolean;
  readonly log: Logger;
  /** Set (e.g. by SIGINT) to stop after the current step with a checkpoint. */
  readonly stopRequested?: () => boolean;
  /** Stop after this step (exclusive) even if config.optim.steps is larger; the schedule still spans all steps. */
  readonly untilStep?: number;
  /**
   * Profile the third step of this run kernel by kernel (the second builds the probes; compiler/profile.ts): print
   * where the time goes and write `profile.json` in the run folder. Training itself is unchanged.
   */
  readonly profile?: boolean;
  /** Start over in a directory that holds a run: delete its checkpoints, metrics and pictures first. */
  readonly overwrite?: boolean;
  /** The cap on decoded image pixels for folder data (default DEFAULT_MAX_IMAGE_PIXELS). */
  readonly maxImagePixels?: number;
  /**
   * Where the config's encoder, projector, predictor and loss names are looked up: the built-in variants, or
   * `withVariants({ encoders: { mine: … } })` for a model of the caller's own.
   */
  readonly variants?: Variants;
}

const fmtDuration = (s: number): string => (s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m` : s >= 60 ? `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${s.toFixed(1)}s`);

/** The profiled step's summary on the log (by op, then the costliest kernels) and in full in `profile.json`. */
function reportProfile(profiler: StepProfiler, stepDone: number, outDir: string, log: Logger): void {
  const r = profiler.result();
  if (E.isLeft(r)) {
    log.warn(r.left);
    return;
  }
  const p = r.right;
  const total = p.rows.reduce((a, x) => a + x.ms, 0);
  const pct = (ms: number) => `${((100 * ms) / total).toFixed(1)}%`;
  const file = path.join(outDir, 'profile.json');
  const wrote = writeFileAtomic(file, `${JSON.stringify({ step: stepDone, ...p }, null, 1)}\n`);
  if (E.isLeft(wrote)) log.warn(`the profile was not saved: ${wrote.left}`);
  log.info(`profile of step ${stepDone} (synchronized after every kernel, the probe's ${p.syncMs.toFixed(3)} ms subtracted per launch): kernels ${total.toFixed(0)} ms of ${p.stepMs.toFixed(0)} ms; all ${p.rows.length} kernel kinds in ${file}`);
  const c = contractionShare(p);
  log.info(`  contractions ${pct(c.contractionMs)} at ${c.gflops.toFixed(1)} GFLOP/s, the rest ${pct(c.otherMs)}`);
  log.info(`  by op: ${timeByOp(p).map(([op, ms]) => `${op} ${pct(ms)}`).join(', ')}`);
  for (const x of p.rows.slice(0, 10)) log.info(`  ${pct(x.ms).padStart(6)}  ${x.ms.toFixed(1).padStart(9)} ms  ×${x.launches} (slowest ${x.maxMs.toFixed(1)} ms)  ${x.kernel}`);
}

/** The files a run writes in its directory (besides `ckpt-*` and `latest`). */
export const METRICS_FILE = 'metrics.jsonl';
export const RUN_FILES = [METRICS_FILE, 'profile.json', 'pictures', 'clove-error.log'] as const;

/**
 * The output directory, checked before anything costly: it is created (one level at a time), must not lie inside
 * a checkpoint, must take a probe file, and must not hold another run unless resuming it (or `overwrite`, which
 * deletes that run's checkpoints, metrics and pictures first).
 */
export function prepareRunDir(outDir: string, resume: boolean, overwrite: boolean, log: Logger): E.Either<string, void> {
  const inside = enclosingCheckpointDir(outDir);
  if (inside !== undefined) return E.left(`--out ${outDir}: that is inside the checkpoint ${inside}; choose a run directory of its own`);
  const made = makeDirectories(outDir);
  if (E.isLeft(made)) return E.left(`--out ${outDir}: ${made.left}`);
  const probe = path.join(outDir, `.clove-probe-${process.pid}`);
  try {
    fs.writeFileSync(probe, 'probe');
    fs.rmSync(probe);
  } catch (error) {
    return E.left(`--out ${outDir}: the directory is not writable (${error instanceof Error ? error.message : String(error)})`);
  }
  if (resume) return E.right(undefined);
  const listed = listCheckpoints(outDir);
  if (E.isLeft(listed)) return listed;
  const held = [...listed.right.map((c) => c.name), ...[LATEST_FILE, METRICS_FILE].filter((f) => fs.existsSync(path.join(outDir, f)))];
  if (held.length === 0) return E.right(undefined);
  if (!overwrite) {
    const newest = listed.right[listed.right.length - 1];
    return E.left(
      `--out ${outDir} already holds a run (${newest === undefined ? held.join(', ') : `checkpoints up to step ${newest.step}`}): ` +
        'add --resume to continue it, choose a new --out, or pass --overwrite to delete its checkpoints, metrics and pictures and start over',
    );
  }
  for (const c of listed.right) {
    const removed = removeDirAtomic(c.path);
    if (E.isLeft(removed)) return E.left(`--overwrite: ${removed.left}`);
  }
  try {
    const setAside = fs.readdirSync(outDir).filter((f) => /^unusable-ckpt-\d+$/.test(f));
    for (const f of [LATEST_FILE, ...RUN_FILES, ...setAside]) fs.rmSync(path.join(outDir, f), { recursive: true, force: true });
  } catch (error) {
    return E.left(`--overwrite: cannot delete the previous run's files in ${outDir}: ${error instanceof Error ? error.message : String(error)}`);
  }
  log.info(`--overwrite: deleted the previous run in ${outDir} (${held.length} checkpoints and files)`);
  return E.right(undefined);
}

/**
 * Drops the metrics lines of steps after `step` (computed after the checkpoint a run resumes from, so they will
 * be computed again) and any partial last line a killed writer left; atomically.
 */
export function truncateMetrics(outDir: string, step: number): E.Either<string, number> {
  const file = path.join(outDir, METRICS_FILE);
  if (!fs.existsSync(file)) return E.right(0);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    return E.left(`cannot read ${file}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const lines = text.split('\n').filter((l) => l !== '');
  const kept = lines.filter((l) => {
    try {
      const r = JSON.parse(l) as { step?: unknown };
      return typeof r.step === 'number' && r.step <= step;
    } catch {
      return false;
    }
  });
  if (kept.length === lines.length && (text === '' || text.endsWith('\n'))) return E.right(0);
  const wrote = writeFileAtomic(file, kept.map((l) => `${l}\n`).join(''));
  return E.isLeft(wrote) ? wrote : E.right(lines.length - kept.length);
}

/**
 * Why a checkpoint's state cannot feed this run's step, naming both variants and the first tensors that differ, or
 * undefined when every state tensor is there with its shape. (A renamed variant is caught earlier, as a config
 * difference; this catches the same name built differently, e.g. a user's encoder whose code changed.)
 */
export function variantMismatch(
  held: Config,
  tensors: Readonly<Record<string, CheckpointTensor>>,
  now: Config,
  needed: Readonly<Record<string, readonly number[]>>,
): string | undefined {
  const shape = (s: readonly number[]): string => `[${s.join(',')}]`;
  const differences: string[] = [];
  for (const [name, s] of Object.entries(needed)) {
    const t = tensors[name];
    if (t === undefined) differences.push(`${name} ${shape(s)} is not in the checkpoint`);
    else if (shape(t.shape) !== shape(s)) differences.push(`${name} is ${shape(t.shape)} there and ${shape(s)} here`);
  }
  for (const [name, t] of Object.entries(tensors)) if (!(name in needed)) differences.push(`${name} ${shape(t.shape)} is not in this run`);
  if (differences.length === 0) return undefined;
  const shown = differences.slice(0, 4).join('; ') + (differences.length > 4 ? `; and ${differences.length - 4} more` : '');
  return `it holds ${describeModules(held)} and this run builds ${describeModules(now)}, whose state tensors differ (${shown})`;
}

const stoppedBeforeStart = (checkpoint: string, backend: string): E.Either<string, RunResult> =>
  E.right({ steps: 0, lastStep: 0, totalSteps: 0, firstLoss: NaN, lastLoss: NaN, objectiveStart: NaN, objectiveEnd: NaN, checkpoint, backend, interrupted: true });

/** Pretrain: compile once, run `config.optim.steps` steps with the state on the device. */
export async function pretrain(o: PretrainOptions): Promise<E.Either<string, RunResult>> {
  const { config, log } = o;
  const outDir = config.run.outDir;
  if (o.planOnly === true) return planStep(config, log, o.variants);
  const stopped = (): boolean => o.stopRequested?.() === true;
  // Building the data and compiling hold the event loop, so a signal's handler only runs once they return: a short
  // timer lets the loop poll (and the handler acknowledge the signal) before each check.
  const stoppedAtSafePoint = async (): Promise<boolean> => {
    await new Promise<void>((resolve) => setTimeout(resolve, 20));
    return stopped();
  };
  // Cheap checks first (the output directory, the step, the checkpoint and its config: seconds), then the data
  // (minutes for a large pool), then the compile.
  const step = buildTrainStep(config, stepShapesOf(config), o.variants);
  if (E.isLeft(step)) return E.left(`the config does not give a valid training step: ${step.left}`);
  const dir = prepareRunDir(outDir, o.resume, o.overwrite === true, log);
  if (E.isLeft(dir)) return dir;
  let startStep = 0;
  let state: Record<string, Float32Array>;
  let resumedFrom = '';
  let history: HistoryEntry[] = [];
  if (o.resume) {
    const good = loadNewestGoodCheckpoint(outDir);
    if (E.isLeft(good)) return E.left(`cannot resume from ${outDir}: ${good.left}`);
    const ck = good.right.checkpoint;
    const compared = compareResumeConfig(ck.config, config);
    if (E.isLeft(compared)) return E.left(`cannot resume from ${ck.path}: ${compared.left}`);
    for (const s of good.right.skipped) log.warn(`not resuming from ${s.path}: ${s.reason}`);
    // Newer checkpoints that cannot be used are set aside (kept, renamed), so they neither count toward the
    // number kept nor get named by `latest` again.
    for (const s of good.right.skipped) {
      const base = path.basename(path.resolve(s.path));
      if (/^ckpt-\d+$/.test(base) && fs.existsSync(s.path)) {
        const aside = path.join(path.dirname(path.resolve(s.path)), `unusable-${base}`);
        try {
          fs.rmSync(aside, { recursive: true, force: true });
          fs.renameSync(s.path, aside);
          log.warn(`moved the unusable ${s.path} to ${aside}`);
        } catch (error) {
          return E.left(`cannot set the unusable checkpoint ${s.path} aside: ${error instanceof Error ? error.message : String(error)}`);
        }
      }
    }
    const held: Record<string, CheckpointTensor> = {};
    for (const [name, t] of Object.entries(ck.tensors)) {
      const group = groupOf(name);
      if (group === undefined) return E.left(`checkpoint tensor '${name}' has no group`);
      held[name.slice(group.length + 1)] = t;
    }
    const mismatch = variantMismatch(ck.config, held, config, step.right.state);
    if (mismatch !== undefined) return E.left(`cannot resume from ${ck.path}: ${mismatch}`);
    state = Object.fromEntries(Object.entries(held).map(([name, t]) => [name, t.data]));
    startStep = ck.step;
    resumedFrom = ck.path;
    history = [...(ck.history ?? [])];
    if (compared.right.length > 0) {
      history.push({ step: startStep, changes: compared.right });
      log.info(`resuming with ${compared.right.join(', ')} (recorded in the manifest's history)`);
    }
    const dropped = truncateMetrics(outDir, startStep);
    if (E.isLeft(dropped)) return dropped;
    if (dropped.right > 0) log.info(`${METRICS_FILE}: dropped ${dropped.right} lines after step ${startStep} (they will be computed again)`);
    log.info(`resuming from ${ck.path} at step ${startStep}${good.right.skipped.length > 0 ? ' (the newest usable checkpoint)' : ''}`);
  } else {
    const init = initTrainState(config, config.seed, o.variants);
    if (E.isLeft(init)) return init;
    state = trainStateRecord(init.right);
  }
  const until = Math.min(config.optim.steps, o.untilStep ?? config.optim.steps);
  if (startStep >= until) return E.left(`nothing to do: the checkpoint is at step ${startStep} and the run has ${until} steps (raise --steps to extend it)`);
  // A resumed state was checked against the step above; this catches an initialiser that disagrees with its own
  // module's declared shapes (a user's variant, say), before anything is compiled.
  for (const [name, shape] of Object.entries(step.right.state)) {
    const v = state[name];
    const n = shape.reduce((a, c) => a * c, 1);
    if (v === undefined || v.length !== n) {
      return E.left(`the initial state of ${describeModules(config)} does not match its declared shapes: '${name}' is ${v === undefined ? 'missing' : `of size ${v.length}`}, the step needs [${shape.join(',')}]`);
    }
  }
  if (stopped()) return stoppedBeforeStart(resumedFrom, 'none');
  const data = openPretrainData(config, log, o.maxImagePixels);
  if (E.isLeft(data)) return data;
  log.info(`data: ${data.right.description}`);
  if (await stoppedAtSafePoint()) return stoppedBeforeStart(resumedFrom, 'none');
  const t0 = performance.now();
  let lastPct = -1;
  const exe = await compile(makeGraph(step.right.outputs), {
    backend: config.run.backend,
    sourceCacheDir: path.join('.cache', 'kernels'),
    log: log.info,
    onProgress: (done, total) => {
      const pct = Math.floor((100 * done) / total);
      if (pct >= lastPct + 10 || done === total) {
        lastPct = pct;
        log.info(`compiling: ${done}/${total} kernels (${fmtDuration((performance.now() - t0) / 1000)})`);
      }
    },
  });
  if (E.isLeft(exe)) return E.left(`compiling the training step failed: ${exe.left}`);
  const mem = exe.right.plan.memory;
  log.info(
    `compiled ${exe.right.plan.kernels.length} kernels (${exe.right.builtKernels} distinct) on ${exe.right.backend} in ${fmtDuration((performance.now() - t0) / 1000)}; ` +
      `memory plan: peak ${(mem.peakBytes / 2 ** 20).toFixed(1)} MiB (state ${(mem.inputBytes / 2 ** 20).toFixed(1)} MiB, no-reuse ${(mem.noReuseBytes / 2 ** 20).toFixed(1)} MiB)`,
  );
  try {
    // A signal during the compile is honoured here, before the first step (nothing new to save yet).
    if (await stoppedAtSafePoint()) return stoppedBeforeStart(resumedFrom, exe.right.backend);
    return await runLoop(o, exe.right, step.right, data.right, state, startStep, resumedFrom, history);
  } finally {
    await exe.right.dispose();
  }
}

/** Build and plan the step without running it: what `--plan` prints, even for configs too big for this machine. */
function planStep(config: Config, log: Logger, variants?: Variants): E.Either<string, RunResult> {
  const step = buildTrainStep(config, stepShapesOf(config), variants);
  if (E.isLeft(step)) return E.left(`the config does not give a valid training step: ${step.left}`);
  const graph = makeGraph(step.right.outputs);
  log.info(`step graph: ${graph.nodes.length} nodes, ${Object.keys(step.right.state).length} state tensors`);
  const limits = { maxBufferBytes: 2 ** 31 };
  const planned = plan(graph, limits, { allowOversize: true });
  if (E.isLeft(planned)) return E.left(planned.left);
  const p = planned.right;
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  const largest = [...p.kernels].sort((a, c) => bufferBytes(c.root) - bufferBytes(a.root))[0];
  log.info(`plan: ${p.kernels.length} kernels (${new Set(p.sources).size} distinct sources)`);
  log.info(`memory plan: peak ${mib(p.memory.peakBytes)} (state and inputs ${mib(p.memory.inputBytes)}, no-reuse ${mib(p.memory.noReuseBytes)}); largest tensor ${describeTensor(largest.root)} = ${mib(bufferBytes(largest.root))}`);
  if (p.oversize.length > 0) log.info(`this step cannot run with these sizes: ${describeOversize(p.oversize, gpujsTarget.limitsText(limits))}`);
  return E.right({ steps: 0, lastStep: 0, totalSteps: 0, firstLoss: NaN, lastLoss: NaN, objectiveStart: NaN, objectiveEnd: NaN, checkpoint: '', backend: 'none (plan only)', interrupted: false });
}

async function runLoop(
  o: PretrainOptions,
  exe: Executable,
  step: TrainStep,
  data: PretrainData,
  init: Record<string, Float32Array>,
  startStep: number,
  resumedFrom: string,
  history: readonly HistoryEntry[],
): Promise<E.Either<string, RunResult>> {
  const { config, log } = o;
  const outDir = config.run.outDir;
  const madePictures = makeDirectories(path.join(outDir, 'pictures'));
  if (E.isLeft(madePictures)) return madePictures;
  const metricsFile = path.join(outDir, METRICS_FILE);
  const dev = exe.device;
  const handles: Record<string, DeviceHandle> = {};
  for (const name of Object.keys(step.state)) {
    const h = await exe.upload(name, init[name]);
    if (E.isLeft(h)) return h;
    handles[name] = h.right;
  }
  const freeState = (): void => {
    for (const h of Object.values(handles)) dev.free(h);
  };
  const sampler = makeSampler(config.seed, data.size);
  const total = config.optim.steps;
  const until = Math.min(total, o.untilStep ?? total);
  const schedule = { peak: peakLearningRate(config.optim), warmupSteps: config.optim.warmupSteps, totalSteps: total };
  const readState = async (): Promise<E.Either<string, Record<string, CheckpointTensor>>> => {
    const tensors: Record<string, CheckpointTensor> = {};
    for (const [name, shape] of Object.entries(step.state)) {
      const r = await exe.read(handles[name]);
      if (E.isLeft(r)) return E.left(`reading state tensor '${name}' back from the device failed: ${r.left}`);
      Object.assign(tensors, prefixTensors(groupOfState(name), { [name]: { shape: [...shape], data: r.right } }));
    }
    return E.right(tensors);
  };
  // "Last good" means written by this run or resumed from, loaded or checked finite: never a NaN state.
  let lastCheckpoint = resumedFrom;
  const lastGood = (): string => (lastCheckpoint === '' ? 'none written yet' : lastCheckpoint);
  const checkpoint = async (stepDone: number, epoch: number): Promise<E.Either<string, void>> => {
    const tensors = await readState();
    if (E.isLeft(tensors)) return tensors;
    // The state is read back anyway: a non-finite value anywhere means the run diverged, whatever the loss
    // looked like on the last logged step, and such a state must never replace a good checkpoint.
    const bad = nonFiniteValue(tensors.right);
    if (bad !== undefined) {
      return E.left(
        `the training state became non-finite (${bad.value} in ${bad.name}) by step ${stepDone}; training stopped without writing that checkpoint. Last good checkpoint: ${lastGood()}`,
      );
    }
    const saved = saveCheckpoint(outDir, { step: stepDone, epoch, rngState: [config.seed, stepDone], config, backend: exe.backend, tensors: tensors.right, history });
    if (E.isLeft(saved)) {
      return E.left(`writing the checkpoint of step ${stepDone} (${path.join(outDir, checkpointName(stepDone))}) failed: ${saved.left}${freeSpaceNote(outDir)}; last good checkpoint: ${lastGood()}`);
    }
    lastCheckpoint = saved.right;
    log.info(`checkpoint: ${saved.right}`);
    return E.right(undefined);
  };
  const pictures = (batch: Batch, attention: Float32Array | undefined, stepDone: number): void => {
    const mean = config.views.channels === 3 ? [0.485, 0.456, 0.406] : [0.449];
    const std = config.views.channels === 3 ? [0.229, 0.224, 0.225] : [0.226];
    const C = config.views.channels as 1 | 3;
    const [g0, g1] = batch.views[0];
    const rgb = (v: View) => viewToRgb(v.pixels, C, v.size, mean, std);
    const grid = { rows: step.grids.global[0], cols: step.grids.global[1] };
    const pairs = matchCells(g0.coords, g1.coords, step.grids.global, step.grids.global, config.loss.tPos);
    const tag = `step-${String(stepDone).padStart(6, '0')}`;
    const files: string[] = [];
    const matches = drawMatches(rgb(g0), rgb(g1), grid, grid, pairs);
    const wrote = writePng(path.join(outDir, 'pictures', `${tag}-matches.png`), matches);
    if (E.isRight(wrote)) files.push(`${tag}-matches.png`);
    else log.warn(`picture not written: ${wrote.left}`);
    if (attention !== undefined) {
      const L = grid.rows * grid.cols;
      const cell = Math.floor(grid.rows / 2) * grid.cols + Math.floor(grid.cols / 2);
      const heat = drawAttention(rgb(g0), grid, cell, attention.subarray(cell * L, (cell + 1) * L));
      // The view beside its heat map, at the same scale.
      const img = stackImages([upscale(rgb(g0), Math.max(1, Math.round(heat.width / g0.size))), heat], 'horizontal');
      const w2 = writePng(path.join(outDir, 'pictures', `${tag}-attention.png`), img);
      if (E.isRight(w2)) files.push(`${tag}-attention.png`);
      else log.warn(`picture not written: ${w2.left}`);
    }
    if (files.length > 0) log.info(`pictures: ${files.map((f) => path.join(outDir, 'pictures', f)).join(', ')}`);
  };
  /** The run's loss and objective curves so far (every line of metrics.jsonl, earlier sessions included). */
  const curves = (): void => {
    const file = path.join(outDir, 'pictures', 'curves.png');
    const records = fs.readFileSync(metricsFile, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as { step: number; loss: number; objective: number });
    const wrote = writePng(file, drawCurves([
      { title: 'loss', points: records.map((r) => [r.step, r.loss] as const) },
      { title: 'objective (lower is better)', points: records.map((r) => [r.step, r.objective] as const) },
    ]));
    if (E.isLeft(wrote)) log.warn(`curves not written: ${wrote.left}`);
  };

  let firstLoss = NaN;
  let lastLoss = NaN;
  const objectives: number[] = [];
  let interrupted = false;
  let epoch = 0;
  const started = performance.now();
  let timedSteps = 0;
  const profiler = o.profile === true ? new StepProfiler(exe) : null;
  if (profiler !== null && until - startStep < 3) log.warn(`--profile needs 3 steps of this run (it has ${until - startStep}): not profiling`);
  let stepsDone = startStep;
  for (let t = startStep; t < until; t++) {
    const tStep = performance.now();
    const made = makeBatch(config, step, data, sampler, t);
    if (E.isLeft(made)) {
      freeState();
      return E.left(`${made.left}; last good checkpoint: ${lastGood()}`);
    }
    const batch = made.right;
    epoch = batch.epoch;
    const lr = learningRateAt(t, schedule);
    const m = emaMomentumAt(t, config.ema.base, total);
    // --profile: the second step of the run builds the probes, the third is timed kernel by kernel.
    const warming = profiler !== null && t === startStep + 1;
    const timing = profiler !== null && t === startStep + 2;
    if (timing) await profiler.calibrate();
    const hook = warming ? profiler.warm : timing ? profiler.timed : undefined;
    const stepDone = t + 1;
    const isLast = stepDone === until;
    const wantMetrics = stepDone % config.run.metricsEvery === 0 || stepDone % config.run.logEvery === 0 || isLast || t === startStep;
    const wantPictures = stepDone % config.run.picturesEvery === 0 || isLast;
    const read = [...(wantMetrics ? METRIC_NAMES.map(metricOutputName) : []), ...(wantPictures ? [ATTENTION_OUTPUT] : [])];
    const inputs = { ...batch.inputs, [INPUT.learningRate]: new Float32Array([lr]), [INPUT.emaMomentum]: new Float32Array([m]) };
    const out = await exe.step(handles, inputs, read, hook);
    if (timing) reportProfile(profiler, stepDone, outDir, log);
    if (E.isLeft(out)) {
      freeState();
      return E.left(`step ${stepDone}: ${out.left}; last good checkpoint: ${lastGood()}`);
    }
    Object.assign(handles, out.right.state);
    stepsDone = stepDone;
    const metrics = wantMetrics ? Object.fromEntries(METRIC_NAMES.map((name) => [name, out.right.values[metricOutputName(name)][0]])) : undefined;
    const attention = wantPictures ? out.right.values[ATTENTION_OUTPUT] : undefined;
    const stepMs = performance.now() - tStep;
    if (t > startStep) timedSteps++;
    if (metrics !== undefined) {
      if (!Number.isFinite(metrics.loss)) {
        freeState();
        return E.left(`the loss became non-finite (${metrics.loss}) at step ${stepDone}; training stopped. Last good checkpoint: ${lastGood()}`);
      }
      if (Number.isNaN(firstLoss)) firstLoss = metrics.loss;
      lastLoss = metrics.loss;
      const objective = objectiveOf(config.loss, metrics.posCos, metrics.negCos);
      objectives.push(objective);
      const elapsed = (performance.now() - started) / 1000;
      const perStep = timedSteps > 0 ? elapsed / (stepDone - startStep) : stepMs / 1000;
      const ips = config.optim.batchSize / perStep;
      const record = { step: stepDone, ...metrics, objective, lr, emaMomentum: m, stepMs: Math.round(stepMs), imagesPerSec: Number(ips.toFixed(2)), backend: exe.backend, epoch };
      try {
        fs.appendFileSync(metricsFile, `${JSON.stringify(record)}\n`);
      } catch (error) {
        freeState();
        return E.left(`${writeFailure(metricsFile, error)}; training stopped after step ${stepDone}. Last good checkpoint: ${lastGood()}`);
      }
      if (stepDone % config.run.logEvery === 0 || isLast || t === startStep) {
        log.info(
          `step ${stepDone}/${total}  loss ${metrics.loss.toFixed(4)}  objective ${objective.toFixed(3)}  pos ${metrics.posCos.toFixed(3)}  neg ${metrics.negCos.toFixed(3)}  ` +
            `matched ${(100 * metrics.matchedFraction).toFixed(1)}%  lr ${lr.toExponential(2)}  ${ips.toFixed(1)} img/s  ETA ${fmtDuration(perStep * (until - stepDone))}`,
        );
      }
    }
    if (wantPictures) {
      pictures(batch, attention, stepDone);
      curves();
    }
    // Kernel launches resolve as microtasks on the CPU backends: yield one macrotask turn per step so signals
    // (Ctrl-C) and I/O callbacks get to run.
    await new Promise<void>((resolve) => setImmediate(resolve));
    interrupted = o.stopRequested?.() === true;
    if (stepDone % config.run.checkpointEvery === 0 || isLast || interrupted) {
      const saved = await checkpoint(stepDone, epoch);
      if (E.isLeft(saved)) {
        freeState();
        return saved;
      }
    }
    if (interrupted) {
      if (!wantPictures) curves();
      log.info(`interrupted: stopped after step ${stepDone}; resume with --resume`);
      break;
    }
  }
  freeState();
  if (startStep >= until) return E.left(`nothing to do: the checkpoint is at step ${startStep} and the run has ${until} steps`);
  const tenth = Math.max(1, Math.floor(objectives.length / 10));
  const mean = (xs: readonly number[]): number => (xs.length === 0 ? NaN : xs.reduce((a, c) => a + c, 0) / xs.length);
  return E.right({
    steps: stepsDone - startStep,
    lastStep: stepsDone,
    totalSteps: total,
    firstLoss,
    lastLoss,
    objectiveStart: mean(objectives.slice(0, tenth)),
    objectiveEnd: mean(objectives.slice(-tenth)),
    checkpoint: lastCheckpoint,
    backend: exe.backend,
    interrupted,
  });
}


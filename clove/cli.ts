// The command line: `clove pretrain | eval | export`. Effects (files, signals, exit codes) live here; every
// error is printed as one clear message and a non-zero exit, never a stack trace: an unexpected exception is
// reported in one line and its trace goes to a log file (in the run directory when there is one).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { applyOverrides, isPresetName, presetNames, readConfigFile, presetNamed, type Config } from './config.ts';
import { DEFAULT_MAX_IMAGE_PIXELS } from './data/image.ts';
import { pretrain, type Logger } from './train.ts';
import { loadVariantsModule } from './variants-module.ts';

const USAGE = `usage:
  clove pretrain [--preset ${presetNames.join('|')}] [--config file.json] [--resume] [--overwrite] [--until STEP] [--plan] [--profile] [--max-image-pixels N] [--variants module.js] [--<field>=<value> ...]
        e.g. --data ./images  --steps 100  --backend webasm  --out runs/x  --batch 8  --seed 1
  clove eval --checkpoint <run dir or checkpoint dir> [--tier ci|report] [--backend B] [--batch N] [--json] [--out file] [--variants module.js]
  clove export --checkpoint <run dir or checkpoint dir> --out backbone.safetensors [--force]

Config fields can be overridden by their dotted path (--optim.steps=100, --loss.variant=per-pair, ...).
--variants names a module exporting \`variants\` (what withVariants returns), so configs can name your own encoders,
projectors, predictors and losses (--model.encoder.name=mine).`;

const log: Logger = {
  info: (line) => process.stdout.write(`${line}\n`),
  warn: (line) => process.stderr.write(`warning: ${line}\n`),
};

/** Exit statuses: 1 for an error, 128 + the signal number for a run stopped by a signal (as a shell reports it). */
const SIGNAL_NUMBERS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const;
type StopSignal = keyof typeof SIGNAL_NUMBERS;

/** Where an internal error's stack trace is written: the run directory once it is known. */
let errorLogDir: string | undefined;

function fail(message: string): never {
  process.stderr.write(`clove: ${message}\n`);
  process.exit(1);
}

/** An exception that escaped every Either: one line for the user, the trace in a log file. */
function internalError(error: unknown): never {
  const message = error instanceof Error ? error.message : String(error);
  const trace = error instanceof Error ? (error.stack ?? message) : message;
  const candidates = [...(errorLogDir === undefined ? [] : [path.join(errorLogDir, 'clove-error.log')]), path.join(os.tmpdir(), `clove-error-${process.pid}.log`)];
  let written: string | undefined;
  for (const file of candidates) {
    try {
      fs.appendFileSync(file, `${new Date().toISOString()} clove ${process.argv.slice(2).join(' ')}\n${trace}\n\n`);
      written = file;
      break;
    } catch {
      // try the next place
    }
  }
  fail(`internal error: ${message.split('\n')[0]}\n  This is a bug in clove: please report it with the command line${written === undefined ? '' : ` and ${written} (the details)`}.`);
}

interface PretrainArgs {
  readonly config: Config;
  readonly resume: boolean;
  readonly overwrite: boolean;
  readonly until: number | undefined;
  readonly planOnly: boolean;
  readonly profile: boolean;
  readonly maxImagePixels: number;
  readonly variantsModule: string | undefined;
}

/** Split our own flags (preset, config, resume, ...) from config-field overrides; a flag given twice with two values is an error. */
function parsePretrainArgs(args: readonly string[]): E.Either<string[], PretrainArgs> {
  const own = new Map<string, string>();
  const problems: string[] = [];
  let resume = false;
  let overwrite = false;
  let planOnly = false;
  let profile = false;
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const named = ['--preset', '--config', '--until', '--max-image-pixels', '--variants'].find((f) => a === f || a.startsWith(`${f}=`));
    if (a === '--resume') resume = true;
    else if (a === '--overwrite') overwrite = true;
    else if (a === '--plan') planOnly = true;
    else if (a === '--profile') profile = true;
    else if (named !== undefined) {
      const v = a.startsWith(`${named}=`) ? a.slice(named.length + 1) : args[++i];
      if (v === undefined || v.startsWith('--')) {
        problems.push(`flag ${named}: expected a value after it`);
        if (v !== undefined) i--;
        continue;
      }
      const earlier = own.get(named);
      if (earlier !== undefined && earlier !== v) problems.push(`conflicting flags: ${named} ${earlier} and ${named} ${v}; give only one`);
      own.set(named, v);
    } else rest.push(a);
  }
  if (resume && overwrite) problems.push('conflicting flags: --resume continues the run in --out, --overwrite deletes it; give only one');
  const until = own.has('--until') ? Number(own.get('--until')) : undefined;
  if (until !== undefined && !(Number.isInteger(until) && until > 0)) problems.push(`--until: expected a positive integer step, got ${own.get('--until')}`);
  const maxImagePixels = own.has('--max-image-pixels') ? Number(own.get('--max-image-pixels')) : DEFAULT_MAX_IMAGE_PIXELS;
  if (!(Number.isSafeInteger(maxImagePixels) && maxImagePixels >= 4)) problems.push(`--max-image-pixels: expected an integer >= 4, got ${own.get('--max-image-pixels')}`);
  const preset = own.get('--preset') ?? 'cpu-small';
  if (!isPresetName(preset)) problems.push(`--preset: unknown preset '${preset}' (known: ${presetNames.join(', ')})`);
  if (problems.length > 0 || !isPresetName(preset)) return E.left(problems);
  const file = own.get('--config');
  const base = file === undefined ? E.mapLeft((m: string) => [m])(presetNamed(preset)) : readConfigFile(file, preset);
  if (E.isLeft(base)) return base;
  const config = applyOverrides(base.right, rest);
  return E.isLeft(config) ? config : E.right({ config: config.right, resume, overwrite, until, planOnly, profile, maxImagePixels, variantsModule: own.get('--variants') });
}

async function main(argv: readonly string[]): Promise<void> {
  const [command, ...args] = argv;
  if (command === undefined || command === '--help' || command === '-h' || args.includes('--help')) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (command === 'pretrain') {
    const parsed = parsePretrainArgs(args);
    if (E.isLeft(parsed)) fail(`invalid configuration:\n  ${parsed.left.join('\n  ')}`);
    const { config, resume, overwrite, until, planOnly, profile, maxImagePixels, variantsModule } = parsed.right;
    const variants = variantsModule === undefined ? undefined : await loadVariantsModule(variantsModule);
    if (variants !== undefined && E.isLeft(variants)) fail(variants.left);
    // SIGINT (Ctrl-C), SIGTERM (schedulers, `docker stop`) and SIGHUP (a closed terminal) all finish the current
    // step, write a checkpoint and exit with 128 + the signal's number; a second signal quits at once.
    let stopSignal: StopSignal | undefined;
    for (const signal of Object.keys(SIGNAL_NUMBERS) as StopSignal[]) {
      process.on(signal, () => {
        if (stopSignal !== undefined) {
          process.stderr.write(`clove: ${signal} again: quitting at once, without a checkpoint\n`);
          process.exit(128 + SIGNAL_NUMBERS[signal]);
        }
        stopSignal = signal;
        log.info(`${signal === 'SIGINT' ? 'Ctrl-C' : signal}: stopping at the next safe point (after the current step, with a checkpoint); send it again to quit at once`);
      });
    }
    if (!planOnly) errorLogDir = config.run.outDir;
    const result = await pretrain({ config, variants: variants?.right, resume, overwrite, log, stopRequested: () => stopSignal !== undefined, untilStep: until, planOnly, profile, maxImagePixels });
    if (E.isLeft(result)) fail(result.left);
    const r = result.right;
    if (planOnly) return;
    if (r.interrupted && r.steps === 0) log.info(`stopped before the first step${r.checkpoint === '' ? '; nothing to save' : `; the checkpoint ${r.checkpoint} is unchanged`}`);
    else {
      log.info(
        `${r.interrupted ? `stopped at step ${r.lastStep} of ${r.totalSteps}` : 'done'}: ${r.steps} steps on ${r.backend}; loss ${r.firstLoss.toFixed(4)} → ${r.lastLoss.toFixed(4)}; ` +
          `objective (mean of the first/last tenth of logged steps) ${r.objectiveStart.toFixed(3)} → ${r.objectiveEnd.toFixed(3)}`,
      );
      const dir = config.run.outDir;
      log.info(`checkpoint: ${r.checkpoint}; curves: ${path.join(dir, 'pictures', 'curves.png')}`);
      if (!r.interrupted) {
        log.info(`next: npx clove eval --checkpoint ${dir} --tier ci`);
        log.info(`      npx clove export --checkpoint ${dir} --out ${path.basename(dir)}-resnet.safetensors`);
      }
    }
    // Non-zero so that `clove pretrain && clove eval` does not go on with an unfinished run.
    if (r.interrupted) process.exit(128 + SIGNAL_NUMBERS[stopSignal ?? 'SIGINT']);
    return;
  }
  if (command === 'eval' || command === 'export') {
    // Loaded on demand: evaluation pulls in datasets and probes that pretraining never needs.
    const run: (args: readonly string[], log: Logger) => Promise<E.Either<string, void>> =
      command === 'eval' ? (await import('./eval/cli.ts')).main : (await import('./export.ts')).main;
    const result = await run(args, log);
    if (E.isLeft(result)) fail(result.left);
    return;
  }
  fail(`unknown command '${command}'\n${USAGE}`);
}

process.on('uncaughtException', internalError);
process.on('unhandledRejection', internalError);
main(process.argv.slice(2)).catch(internalError);

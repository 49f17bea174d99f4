// The command line: `clove pretrain | eval | export`. Effects (files, signals, exit codes) live here; every
// error is printed as one clear message and a non-zero exit, never a bare stack trace.
import * as E from 'fp-ts/lib/Either.js';
import { applyOverrides, isPresetName, presetNames, readConfigFile, presetNamed, type Config } from './config.ts';
import { pretrain, type Logger } from './train.ts';

const USAGE = `usage:
  clove pretrain [--preset ${presetNames.join('|')}] [--config file.json] [--resume] [--until STEP] [--plan] [--profile] [--<field>=<value> ...]
        e.g. --data ./images  --steps 100  --backend webasm  --out runs/x  --batch 8  --seed 1
  clove eval --checkpoint <run dir or checkpoint dir> [--tier ci|report] [--backend B] [--batch N] [--json] [--out file]
  clove export --checkpoint <run dir or checkpoint dir> --out backbone.safetensors

Config fields can be overridden by their dotted path (--optim.steps=100, --loss.variant=per-pair, ...).`;

const log: Logger = {
  info: (line) => process.stdout.write(`${line}\n`),
  warn: (line) => process.stderr.write(`warning: ${line}\n`),
};

function fail(message: string): never {
  process.stderr.write(`clove: ${message}\n`);
  process.exit(1);
}

/** Split our own flags (preset, config, resume) from config-field overrides. */
function parsePretrainArgs(args: readonly string[]): E.Either<string[], { config: Config; resume: boolean; until: number | undefined; planOnly: boolean; profile: boolean }> {
  let preset = 'cpu-small';
  let file: string | undefined;
  let resume = false;
  let until: number | undefined;
  let planOnly = false;
  let profile = false;
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const value = (flag: string): string | undefined => (a.startsWith(`${flag}=`) ? a.slice(flag.length + 1) : a === flag ? args[++i] : undefined);
    if (a === '--resume') resume = true;
    else if (a === '--plan') planOnly = true;
    else if (a === '--profile') profile = true;
    else if (a === '--preset' || a.startsWith('--preset=')) preset = value('--preset') ?? '';
    else if (a === '--config' || a.startsWith('--config=')) file = value('--config');
    else if (a === '--until' || a.startsWith('--until=')) until = Number(value('--until'));
    else rest.push(a);
  }
  if (until !== undefined && !(Number.isInteger(until) && until > 0)) return E.left([`--until: expected a positive integer step, got ${until}`]);
  if (!isPresetName(preset)) return E.left([`--preset: unknown preset '${preset}' (known: ${presetNames.join(', ')})`]);
  const base = file === undefined ? E.mapLeft((m: string) => [m])(presetNamed(preset)) : readConfigFile(file, preset);
  if (E.isLeft(base)) return base;
  const config = applyOverrides(base.right, rest);
  return E.isLeft(config) ? config : E.right({ config: config.right, resume, until, planOnly, profile });
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
    const { config, resume, until, planOnly, profile } = parsed.right;
    let stop = false;
    process.on('SIGINT', () => {
      if (stop) process.exit(130);
      stop = true;
      log.info('Ctrl-C: finishing the current step and saving a checkpoint (press again to quit at once)');
    });
    const result = await pretrain({ config, resume, log, stopRequested: () => stop, untilStep: until, planOnly, profile });
    if (E.isLeft(result)) fail(result.left);
    const r = result.right;
    if (planOnly) return;
    log.info(
      `${r.interrupted ? 'stopped' : 'done'}: ${r.steps} steps on ${r.backend}; loss ${r.firstLoss.toFixed(4)} → ${r.lastLoss.toFixed(4)}; ` +
        `objective (mean of the first/last tenth of logged steps) ${r.objectiveStart.toFixed(3)} → ${r.objectiveEnd.toFixed(3)}; checkpoint ${r.checkpoint}`,
    );
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

main(process.argv.slice(2)).catch((e: unknown) => fail(e instanceof Error ? `internal error: ${e.message}\n${e.stack ?? ''}` : String(e)));

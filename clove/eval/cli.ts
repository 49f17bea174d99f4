// `clove eval`: load a checkpoint, run the frozen-feature protocols (run.ts) and print ONE table (or JSON).
// Every failure the user can cause (flags, a missing or corrupt checkpoint, missing data) comes back as a
// Left with a message; clove/cli.ts prints it and exits non-zero.
import * as E from 'fp-ts/lib/Either.js';
import { writeFileAtomic } from '../atomic.ts';
import { enclosingCheckpointDir, loadCheckpointOrSuggest } from '../checkpoint.ts';
import { FASHION_MNIST_DIR } from '../data/fmnist.ts';
import { backendNames, type BackendName } from '../config.ts';
import { loadVariantsModule } from '../variants-module.ts';
import { DEFAULT_BATCH, DEFAULT_OTHER_INITS, evaluate, tierNames, type EvalLog, type EvalReport, type ResultRow, type Tier } from './run.ts';

export const EVAL_USAGE = `usage: clove eval --checkpoint <run dir or checkpoint dir> [--tier ci|report] [--backend ${backendNames.join('|')}] [--batch N] [--init-seeds N] [--fashion-mnist dir] [--json] [--out file] [--variants module.js]
  --tier ci      P1/P2 400/100/200 canvases, P3 2000/1000/2000 images, P4 100 canvases, P5 100 images, BN recalibration on 100 (default)
  --tier report  P1/P2 2000/500/1000, P3 10000/2000/10000, P4 300, P5 500, BN recalibration on 500
  (P4 needs gimp-data's patterns in /usr/share/gimp/2.0/patterns; without them it is skipped with the reason)
  --batch N      images per extractor run at 64×64 (default ${DEFAULT_BATCH}); P3's 32×32 runs take 4N
  --init-seeds N extra random inits (seeds seed+1 … seed+N) scored to show init variance (default ${DEFAULT_OTHER_INITS}, §3d.1)
  --fashion-mnist dir  where the Fashion-MNIST idx files are (default ${FASHION_MNIST_DIR}); without them P1–P3 are skipped
  --variants m.js  a module exporting \`variants\` (what withVariants returns): for checkpoints of your own variants
  --json         print machine-readable results (progress then goes to stderr)
  --out file     also write what is printed to this file`;

export interface EvalArgs {
  readonly checkpoint: string;
  readonly tier: Tier;
  readonly backend: BackendName;
  readonly batch: number;
  readonly otherInits: number;
  readonly json: boolean;
  readonly out: string | undefined;
  readonly fashionMnistDir: string;
  /** A module exporting `variants`, for checkpoints of the user's own variants. */
  readonly variantsModule: string | undefined;
}

const isTier = (v: string): v is Tier => (tierNames as readonly string[]).includes(v);
const isBackend = (v: string): v is BackendName => (backendNames as readonly string[]).includes(v);

/** Parse the flags of `clove eval` (both `--flag value` and `--flag=value`). */
export function parseEvalArgs(args: readonly string[]): E.Either<string, EvalArgs> {
  let checkpoint: string | undefined;
  let tier: Tier = 'ci';
  let backend: BackendName = 'auto';
  let batch = DEFAULT_BATCH;
  let otherInits = DEFAULT_OTHER_INITS;
  let json = false;
  let out: string | undefined;
  let fashionMnistDir = FASHION_MNIST_DIR;
  let variantsModule: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const eq = arg.indexOf('=');
    const flag = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    const inline = arg.startsWith('--') && eq > 0 ? arg.slice(eq + 1) : undefined;
    const value = (): E.Either<string, string> => {
      if (inline !== undefined) return E.right(inline);
      const next = args[i + 1];
      if (next === undefined || next.startsWith('--')) return E.left(`${flag} needs a value`);
      i++;
      return E.right(next);
    };
    if (flag === '--json') {
      if (inline !== undefined) return E.left(`--json takes no value, got '${inline}'`);
      json = true;
      continue;
    }
    if (!['--checkpoint', '--tier', '--backend', '--batch', '--init-seeds', '--out', '--fashion-mnist', '--variants'].includes(flag)) return E.left(`unknown argument '${arg}'\n${EVAL_USAGE}`);
    const v = value();
    if (E.isLeft(v)) return v;
    if (flag === '--checkpoint') checkpoint = v.right;
    else if (flag === '--out') out = v.right;
    else if (flag === '--fashion-mnist') fashionMnistDir = v.right;
    else if (flag === '--variants') variantsModule = v.right;
    else if (flag === '--tier') {
      if (!isTier(v.right)) return E.left(`--tier: '${v.right}' is not one of ${tierNames.join(', ')}`);
      tier = v.right;
    } else if (flag === '--backend') {
      if (!isBackend(v.right)) return E.left(`--backend: '${v.right}' is not one of ${backendNames.join(', ')}`);
      backend = v.right;
    } else if (flag === '--init-seeds') {
      const n = Number(v.right);
      if (!(Number.isInteger(n) && n >= 0)) return E.left(`--init-seeds: '${v.right}' is not a non-negative integer`);
      otherInits = n;
    } else {
      const n = Number(v.right);
      if (!(Number.isInteger(n) && n >= 1)) return E.left(`--batch: '${v.right}' is not a positive integer`);
      batch = n;
    }
  }
  if (checkpoint === undefined) return E.left(`--checkpoint is required\n${EVAL_USAGE}`);
  return E.right({ checkpoint, tier, backend, batch, otherInits, json, out, fashionMnistDir, variantsModule });
}

// ---------------------------------------------------------------------------------------------- output

const fixed = (v: number): string => (Number.isNaN(v) ? 'n/a' : v.toFixed(3));
const signed = (v: number): string => (Number.isNaN(v) ? 'n/a' : `${v >= 0 ? '+' : ''}${v.toFixed(3)}`);

export const TABLE_HEADER = ['protocol', 'metric', 'raw-pixel floor', 'random init', 'other inits', 'pretrained', 'Δ [95% CI]', 'gain'] as const;

/** The table's cells: one row per (protocol, metric). */
export function tableCells(rows: readonly ResultRow[]): string[][] {
  return rows.map((r) => [
    `${r.protocol} ${r.task}`,
    r.metric,
    fixed(r.floor),
    fixed(r.randomInit),
    r.otherInits.length === 0 ? '–' : r.otherInits.map(fixed).join(' '),
    fixed(r.pretrained),
    `${signed(r.delta.delta)} [${signed(r.delta.lo)}, ${signed(r.delta.hi)}]`,
    r.verdict === 'none' ? '' : r.verdict,
  ]);
}

/** The whole human-readable report: a heading, the one table, what the floors are, skips and timings. */
export function formatReport(report: EvalReport): string {
  const cells = [TABLE_HEADER.slice(), ...tableCells(report.rows)];
  const widths = TABLE_HEADER.map((_h, c) => Math.max(...cells.map((row) => row[c].length)));
  const line = (row: readonly string[]): string => row.map((cell, c) => cell.padEnd(widths[c])).join('  ').trimEnd();
  const s = report.seconds;
  const secs = (keys: readonly string[]): string => `${keys.reduce((a, k) => a + (s[k] ?? 0), 0).toFixed(1)} s`;
  const has = (p: string): boolean => report.rows.some((r) => r.protocol === p);
  const prefixed = (prefix: string): string[] => Object.keys(s).filter((k) => k.startsWith(prefix));
  const probes = (p: string): string => secs(prefixed(`probe.${p}.`));
  const features = (p: string): string => secs(prefixed(`features.${p}.`));
  const perProtocol = [
    ...(has('P1') ? [`P1+P2 features ${features('P1P2')} (all models), probes P1 ${probes('P1')}, P2 ${probes('P2')} (floor and all models)`] : []),
    ...(has('P3') ? [`P3 features ${features('P3')}, probes ${probes('P3')}`] : []),
    ...(has('P4') ? [`P4 features ${features('P4')}, k-means ${probes('P4')}`] : []),
    ...(has('P5') ? [`P5 features ${features('P5')}, probes ${probes('P5')}`] : []),
  ];
  const out = [
    `clove eval: ${report.checkpoint} (step ${report.step}), tier ${report.tier}, backend ${report.backend}`,
    `encoder ${report.encoder}; features ${report.grid.side}×${report.grid.side}×${report.grid.dim} at 64×64; BN recalibrated on ${report.recalibration.images} images (${report.recalibration.source})`,
    '',
    line(cells[0]),
    line(widths.map((w) => '-'.repeat(w))),
    ...cells.slice(1).map(line),
    '',
    `floors: ${[...new Set(report.rows.map((r) => r.protocol))].map((p) => `${p} ${report.floors[p]}`).join('; ')}`,
    'Δ = pretrained − random init (the run\'s exact initial weights), 95% paired bootstrap; "gain"/"loss" only when the CI excludes 0',
    ...(report.otherInitSeeds.length === 0 ? [] : [`other inits: the same architecture from init seeds ${report.otherInitSeeds.join(', ')}, BN recalibrated alike (init variance, §3d.1)`]),
    ...report.skipped.map((k) => `skipped ${k.protocol}: ${k.reason}`),
    `time: total ${secs(['total'])}; data ${secs(['data'])}, compile ${secs(['compile'])}, BN recalibration ${secs(prefixed('recalibration.'))}, floor features ${secs(['features.floor'])}, bootstrap ${secs(['bootstrap'])}`,
    ...perProtocol.map((p) => `  ${p}`),
  ];
  return out.join('\n');
}

/** JSON of the report (NaN metrics become null). */
export const formatJson = (report: EvalReport): string => JSON.stringify(report, null, 2);

// ---------------------------------------------------------------------------------------------- command

export async function main(args: readonly string[], log: EvalLog): Promise<E.Either<string, void>> {
  const parsed = parseEvalArgs(args);
  if (E.isLeft(parsed)) return parsed;
  const a = parsed.right;
  const inside = a.out === undefined ? undefined : enclosingCheckpointDir(a.out);
  if (inside !== undefined) return E.left(`--out ${a.out}: refusing to write inside the checkpoint ${inside}; choose a path outside it`);
  const variants = a.variantsModule === undefined ? undefined : await loadVariantsModule(a.variantsModule);
  if (variants !== undefined && E.isLeft(variants)) return variants;
  const checkpoint = loadCheckpointOrSuggest(a.checkpoint);
  if (E.isLeft(checkpoint)) return E.left(`cannot load the checkpoint ${a.checkpoint}: ${checkpoint.left}`);
  // With --json, stdout carries only the JSON document, so progress goes to stderr.
  const progress: EvalLog = a.json ? { info: (l) => process.stderr.write(`${l}\n`), warn: (l) => process.stderr.write(`warning: ${l}\n`) } : log;
  progress.info(`evaluating ${checkpoint.right.path} (step ${checkpoint.right.step}), tier ${a.tier}`);
  const report = await evaluate(checkpoint.right, a.tier, a.backend, { log: progress, batch: a.batch, otherInits: a.otherInits, fashionMnistDir: a.fashionMnistDir, variants: variants?.right });
  if (E.isLeft(report)) return E.left(`evaluation of ${checkpoint.right.path} failed: ${report.left}`);
  const text = a.json ? formatJson(report.right) : formatReport(report.right);
  log.info(text);
  if (a.out !== undefined) {
    const written = writeFileAtomic(a.out, `${text}\n`);
    if (E.isLeft(written)) return E.left(`writing ${a.out}: ${written.left}`);
  }
  return E.right(undefined);
}

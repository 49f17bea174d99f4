// The results of one bench run as data (the JSON), and the tables printed from it (Markdown, which reads fine
// in a terminal too). Pure: formatting never measures anything.
import { contractionShare, timeByOp, type KernelProfileRow, type StepProfile } from '../compiler/profile.ts';
import { GFLOPS, type Timing } from './timing.ts';

export type RowStatus = 'ok' | 'failed' | 'skipped';

export interface Row {
  /** Workload key (matmul, convForward, …, W1). */
  readonly workload: string;
  readonly title: string;
  /** Analytic FLOPs of the workload (flops.ts). */
  readonly flops: number;
  /** Who ran it: `ours`, `gpu.js naive`, `tfjs` or `pytorch` (peers measured in the same run). */
  readonly system: 'ours' | 'gpu.js naive' | 'tfjs' | 'pytorch';
  /** Backend within the system (cpu, webasm, webgpu; tfjs: cpu, wasm). */
  readonly backend: string;
  readonly status: RowStatus;
  /** Why it failed or was skipped (the error message verbatim). */
  readonly reason?: string;
  readonly timing?: Timing;
  readonly firstRunMs?: number;
  readonly compileMs?: number;
  readonly kernels?: number;
  readonly builtKernels?: number;
  readonly peakBytes?: number;
  /** W1: images per step (both views of each count as one image, as the peers count). */
  readonly imagesPerStep?: number;
  readonly losses?: readonly number[];
  /** W1 with --profile: one step synchronized after every kernel (ours only). */
  readonly profile?: StepProfile;
  readonly notes: readonly string[];
}

export interface BenchReport {
  readonly kind: 'micro' | 'step';
  readonly date: string;
  readonly command: string;
  readonly node: string;
  readonly cpus: number;
  /** /proc/loadavg (1, 5, 15 min) when the run started and ended. */
  readonly loadStart: string;
  readonly loadEnd: string;
  /** One line per backend of ours: used, or why skipped. */
  readonly backends: readonly string[];
  readonly rows: readonly Row[];
  readonly notes: readonly string[];
  readonly totalSeconds: number;
}

export const rowLabel = (r: Row): string =>
  r.system === 'ours' ? `ours (${r.backend})` : r.system === 'tfjs' ? `tfjs-${r.backend}` : r.system === 'gpu.js naive' ? `gpu.js naive (${r.backend})` : r.backend;

const fmt = (x: number | undefined, digits = 3): string => {
  if (x === undefined || !Number.isFinite(x)) return '–';
  if (Math.abs(x) >= 100) return x.toFixed(0);
  return x.toPrecision(digits);
};
const seconds = (ms: number | undefined): string => (ms === undefined ? '–' : (ms / 1000).toFixed(1));
const mib = (bytes: number | undefined): string => (bytes === undefined ? '–' : (bytes / 2 ** 20).toFixed(0));

/** "5" or "1 (no warm-up)": what the median is a median of. */
const runs = (t: Timing | undefined): string => (t === undefined ? '–' : `${t.iterations}${t.warmup === 0 ? ' (no warm-up)' : ''}`);

/** The gpu.js backend whose naive kernels are the reference for ours on `backend` (wasm has no gpu.js mode). */
export const naiveBackend = <B extends string>(backend: B): B | 'webasm' => (backend === 'wasm' ? 'webasm' : backend);

/** ours ÷ peer on the same workload (×: how many times slower we are; < 1: faster). */
export function ratio(ours: Row, peer: Row | undefined): string {
  if (peer === undefined || peer.status !== 'ok' || ours.status !== 'ok' || ours.timing === undefined || peer.timing === undefined) return '–';
  return `${fmt(ours.timing.medianMs / peer.timing.medianMs)}×`;
}

const statusCell = (r: Row): string => (r.status === 'ok' ? '' : `${r.status.toUpperCase()}: ${r.reason ?? ''}`);

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const esc = (c: string) => c.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`)].join('\n');
}

export function microTable(report: BenchReport): string {
  const isPeer = (r: Row) => r.system === 'tfjs' || r.system === 'pytorch';
  const peers = (workload: string) => report.rows.filter((r) => r.workload === workload && isPeer(r));
  const peerNames = [...new Set(report.rows.filter(isPeer).map(rowLabel))];
  const header = ['workload', 'system', 'median ms', 'GFLOP/s', 'timed runs', 'first run ms', 'compile ms', 'kernels (built)', ...peerNames.map((p) => `ours ÷ ${p}`), 'ours ÷ naive gpu.js', 'notes'];
  const body = report.rows.map((r) => {
    const naive = report.rows.find((x) => x.workload === r.workload && x.system === 'gpu.js naive' && x.backend === naiveBackend(r.backend));
    const ratios = peerNames.map((p) => (r.system === 'ours' ? ratio(r, peers(r.workload).find((x) => rowLabel(x) === p)) : ''));
    return [
      r.title,
      rowLabel(r),
      fmt(r.timing?.medianMs),
      r.timing === undefined ? '–' : fmt(GFLOPS(r.flops, r.timing.medianMs)),
      runs(r.timing),
      fmt(r.firstRunMs),
      fmt(r.compileMs),
      r.kernels === undefined ? '' : `${r.kernels} (${r.builtKernels ?? '?'})`,
      ...ratios,
      r.system === 'ours' ? ratio(r, naive) : '',
      [statusCell(r), ...r.notes].filter((x) => x !== '').join('; '),
    ];
  });
  return table(header, body);
}

export function stepTable(report: BenchReport): string {
  const peerNames = [...new Set(report.rows.filter((r) => r.system === 'tfjs' || r.system === 'pytorch').map(rowLabel))];
  const header = ['system', 'median ms/step', 'images/s', 'GFLOP/s', 'timed steps', 'first step s', 'compile s', 'kernels (built)', 'peak MiB (plan)', 'loss first → last', ...peerNames.map((p) => `ours ÷ ${p}`), 'notes'];
  const body = report.rows.map((r) => {
    const ms = r.timing?.medianMs;
    const losses = r.losses === undefined || r.losses.length === 0 ? '–' : `${r.losses[0].toFixed(4)} → ${r.losses[r.losses.length - 1].toFixed(4)}`;
    return [
      rowLabel(r),
      fmt(ms),
      ms === undefined || r.imagesPerStep === undefined ? '–' : fmt(r.imagesPerStep / (ms / 1000)),
      ms === undefined ? '–' : fmt(GFLOPS(r.flops, ms)),
      runs(r.timing),
      seconds(r.firstRunMs),
      seconds(r.compileMs),
      r.kernels === undefined ? '' : `${r.kernels} (${r.builtKernels ?? '?'})`,
      mib(r.peakBytes),
      losses,
      ...peerNames.map((p) => (r.system === 'ours' ? ratio(r, report.rows.find((x) => rowLabel(x) === p)) : '')),
      [statusCell(r), ...r.notes].filter((x) => x !== '').join('; '),
    ];
  });
  return table(header, body);
}

/** Where one synchronized step spends its time: totals per op, then the `top` costliest kernel kinds. */
export function profileTable(r: Row, top = 20): string {
  const p = r.profile;
  if (p === undefined) return '';
  const total = p.rows.reduce((a, x) => a + x.ms, 0);
  const share = (ms: number) => `${((100 * ms) / total).toFixed(1)}%`;
  const ops = timeByOp(p).map(([op, ms]) => `${op} ${fmt(ms)} ms (${share(ms)})`);
  const c = contractionShare(p);
  const rate = (x: KernelProfileRow) => (x.flops > 0 && x.ms > 0 ? fmt(x.flops / x.ms / 1e6) : '');
  return [
    `#### Profile: ${rowLabel(r)}, one step synchronized after every kernel`,
    '',
    `- ${fmt(p.stepMs)} ms for the step with its probes; kernels ${fmt(total)} ms after subtracting the probe's ${fmt(p.syncMs)} ms per launch`,
    `- contractions: ${fmt(c.contractionMs)} ms (${share(c.contractionMs)}) at ${fmt(c.gflops)} GFLOP/s; outside them ${fmt(c.otherMs)} ms (${share(c.otherMs)})`,
    `- by op: ${ops.join(', ')}`,
    '',
    table(
      ['kernel (op, output shape)', 'launches', 'ms', 'share', 'GFLOP/s', 'slowest launch ms'],
      p.rows.slice(0, top).map((x) => [x.kernel, String(x.launches), fmt(x.ms), share(x.ms), rate(x), fmt(x.maxMs)]),
    ),
  ].join('\n');
}

export function markdown(report: BenchReport): string {
  const lines = [
    `### ${report.kind === 'micro' ? 'Micro-benchmarks' : 'W1 training step'} — ${report.date}`,
    '',
    `- command: \`${report.command}\``,
    `- node ${report.node}, ${report.cpus} CPUs; load average (1/5/15 min) at start ${report.loadStart}, at end ${report.loadEnd}; total ${report.totalSeconds.toFixed(0)} s`,
    ...report.backends.map((b) => `- ${b}`),
    ...report.notes.map((n) => `- ${n}`),
    '',
    report.kind === 'micro' ? microTable(report) : stepTable(report),
    '',
    ...report.rows.filter((r) => r.profile !== undefined).flatMap((r) => [profileTable(r), '']),
  ];
  return lines.join('\n');
}

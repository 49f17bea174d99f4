// `npm run bench -- gemm`: the contraction kernels alone, as a fraction of the GPU's fp32 peak. Matmul n³ (4096 by
// default) and every distinct conv of W1's encoder (forward, and forward + both gradients), ours and tfjs-webgpu on
// the same adapter in the same process, as TFLOP/s and as a fraction of the adapter's fp32 (non-tensor-core) peak
// where the adapter is one we know (or --peak-tflops gives it). This is what bench/gpu-check.sh runs on a GPU box.
import { vjp } from '../compiler/autodiff.ts';
import * as b from '../compiler/build.ts';
import { makeGraph, type Graph } from '../compiler/ir.ts';
import { probeBackend } from '../compiler/runtime/backend.ts';
import { createRng } from '../clove/data/rng.ts';
import { convFlops, w1EncoderLayers, type W1Shape } from './flops.ts';
import { benchGraph } from './ours.ts';
import { setupTfjs, tfjsConv, tfjsMicro } from './tfjs.ts';
import type { IterationPolicy, Timing } from './timing.ts';

/**
 * fp32 peaks (TFLOP/s, FMA on the CUDA cores, no tensor cores) of the GPUs the team's box may have, by a pattern of
 * the adapter's name: NVIDIA's H100 datasheet (SXM5 66.9, PCIe 51.2) and H200 datasheet (SXM 66.9; the H200 NVL
 * card 60). The first match wins, so the specific names come first.
 */
export const FP32_PEAKS: ReadonlyArray<{ readonly pattern: RegExp; readonly name: string; readonly tflops: number }> = [
  { pattern: /H200\s*NVL/i, name: 'H200 NVL', tflops: 60 },
  { pattern: /H200/i, name: 'H200 SXM', tflops: 66.9 },
  { pattern: /H100.*PCIe/i, name: 'H100 PCIe', tflops: 51.2 },
  { pattern: /H100\s*NVL/i, name: 'H100 NVL', tflops: 60 },
  { pattern: /H100/i, name: 'H100 SXM', tflops: 66.9 },
];

export function fp32Peak(adapter: string, override?: number): { readonly name: string; readonly tflops: number } | null {
  if (override !== undefined) return { name: 'given by --peak-tflops', tflops: override };
  return FP32_PEAKS.find((p) => p.pattern.test(adapter)) ?? null;
}

/** One conv of W1's encoder, per the whole batch (both views). */
export interface ConvShape {
  readonly name: string;
  readonly x: readonly [number, number, number, number];
  readonly cOut: number;
  readonly kernel: number;
  readonly stride: number;
  readonly padding: number;
}

/** The distinct convs of W1's encoder (same shapes and parameters once), with the layers that have them. */
export function w1ConvShapes(s: W1Shape): ConvShape[] {
  const n = 2 * s.batch;
  const all: ConvShape[] = w1EncoderLayers(s).map((l) => ({ name: l.name, x: [n, l.cIn, l.inSize, l.inSize], cOut: l.cOut, kernel: l.kernel, stride: l.stride, padding: l.padding }));
  const distinct = new Map<string, ConvShape>();
  for (const c of all) {
    const key = JSON.stringify([c.x, c.cOut, c.kernel, c.stride, c.padding]);
    const seen = distinct.get(key);
    distinct.set(key, seen === undefined ? c : { ...seen, name: `${seen.name}, ${c.name}` });
  }
  return [...distinct.values()];
}

const outSide = (c: ConvShape): number => Math.floor((c.x[2] + 2 * c.padding - c.kernel) / c.stride) + 1;
export const convShapeFlops = (c: ConvShape): number => convFlops(c.x[0], outSide(c), outSide(c), c.cOut, c.x[1], c.kernel);

function normal(n: number, std: number, seed: number): Float32Array {
  const rng = createRng(seed);
  return Float32Array.from({ length: n }, () => rng.normal() * std);
}

/** Our graphs for one conv: the forward, and the forward with dX and dW (the VJP of Σ y·dY). */
function convGraphs(c: ConvShape): { readonly fwd: Graph; readonly bwd: Graph; readonly inputs: Record<string, Float32Array> } {
  const x = b.input('x', c.x);
  const w = b.input('w', [c.cOut, c.x[1], c.kernel, c.kernel]);
  const y = b.conv2d(x, w, { stride: [c.stride, c.stride], padding: [c.padding, c.padding] });
  const gy = b.input('dy', y.shape);
  const [dx, dw] = vjp(b.sum(b.mul(y, gy), [0, 1, 2, 3]), [x, w]);
  const size = (s: readonly number[]) => s.reduce((p, d) => p * d, 1);
  return {
    fwd: makeGraph({ y }),
    bwd: makeGraph({ y, dx, dw }),
    inputs: { x: normal(size(c.x), 1, 1), w: normal(size(w.shape), Math.sqrt(2 / (c.x[1] * c.kernel ** 2)), 2), dy: normal(size(y.shape), 1, 3) },
  };
}

export interface ContractionRow {
  readonly workload: string;
  readonly flops: number;
  readonly ours: Timing | string;
  readonly tfjs: Timing | string;
}

export interface ContractionReport {
  readonly adapter: string;
  readonly peak: { readonly name: string; readonly tflops: number } | null;
  readonly rows: readonly ContractionRow[];
}

const why = (e: unknown): string => (e instanceof Error ? e.message.split('\n')[0] : String(e));

/** Runs the contraction benchmarks: matmul n³, then each W1 conv forward and forward + backward. */
export async function runContractions(
  opts: { readonly matmul: number; readonly w1: W1Shape; readonly peers: boolean; readonly policy: IterationPolicy; readonly peakTflops?: number },
  log: (line: string) => void,
): Promise<ContractionReport> {
  const probe = await probeBackend('webgpu');
  if (!probe.available) throw new Error(`gemm: webgpu is unavailable: ${probe.reason}`);
  const adapter = probe.detail;
  const tf = opts.peers ? await setupTfjs('webgpu') : null;
  const rows: ContractionRow[] = [];
  const work: { name: string; flops: number; ours: () => Promise<Timing>; tfjs: (() => Promise<Timing>) | null }[] = [];
  const n = opts.matmul;
  const a = b.input('a', [n, n]);
  const c = b.input('b', [n, n]);
  work.push({
    name: `matmul ${n}³`,
    flops: 2 * n ** 3,
    ours: async () => (await benchGraph(makeGraph({ c: b.dot(a, c) }), { a: normal(n * n, 1, 1), b: normal(n * n, 1, 2) }, 'webgpu', opts.policy, log)).timing,
    tfjs: tf !== null && tf.ok ? async () => (await tfjsMicro(tf.setup, { matmul: n, convBatch: 1, convChannels: 1, convSize: 1 }, 'matmul', opts.policy)).timing : null,
  });
  for (const conv of w1ConvShapes(opts.w1)) {
    const g = convGraphs(conv);
    const title = `conv ${conv.x[1]}→${conv.cOut} ${conv.kernel}×${conv.kernel}/${conv.stride} on ${conv.x[0]}×${conv.x[2]}² → ${outSide(conv)}² (${conv.name})`;
    const flops = convShapeFlops(conv);
    work.push({
      name: `${title} fwd`,
      flops,
      ours: async () => (await benchGraph(g.fwd, { x: g.inputs.x, w: g.inputs.w }, 'webgpu', opts.policy, log)).timing,
      tfjs: tf !== null && tf.ok ? async () => (await tfjsConv(tf.setup, conv, false, opts.policy)).timing : null,
    });
    work.push({
      name: `${title} fwd+dX+dW`,
      flops: 3 * flops,
      ours: async () => (await benchGraph(g.bwd, g.inputs, 'webgpu', opts.policy, log)).timing,
      tfjs: tf !== null && tf.ok ? async () => (await tfjsConv(tf.setup, conv, true, opts.policy)).timing : null,
    });
  }
  for (const w of work) {
    log(`${w.name}: ours …`);
    let ours: Timing | string;
    try {
      ours = await w.ours();
    } catch (error) {
      ours = `failed: ${why(error)}`;
    }
    let tfjs: Timing | string = tf === null ? 'not run (--no-peers)' : tf.ok ? 'failed' : `unavailable: ${tf.reason}`;
    if (w.tfjs !== null) {
      log(`${w.name}: tfjs-webgpu …`);
      try {
        tfjs = await w.tfjs();
      } catch (error) {
        tfjs = `failed: ${why(error)}`;
      }
    }
    rows.push({ workload: w.name, flops: w.flops, ours, tfjs });
  }
  return { adapter, peak: fp32Peak(adapter, opts.peakTflops), rows };
}

/** The report as a Markdown table: ms, TFLOP/s and fraction of peak for both systems, and ours ÷ tfjs. */
export function contractionMarkdown(r: ContractionReport, header: readonly string[]): string {
  const tflops = (t: Timing | string, flops: number): number | null => (typeof t === 'string' ? null : flops / 1e12 / (t.medianMs / 1e3));
  const cell = (t: Timing | string, flops: number): string[] => {
    if (typeof t === 'string') return [t, '', ''];
    const tf = tflops(t, flops) as number;
    return [t.medianMs.toPrecision(3), tf.toPrecision(3), r.peak === null ? '–' : `${((100 * tf) / r.peak.tflops).toFixed(1)}%`];
  };
  const lines = [
    ...header.map((h) => `- ${h}`),
    `- ours on ${r.adapter}`,
    `- fp32 peak used: ${r.peak === null ? 'unknown adapter (give --peak-tflops)' : `${r.peak.tflops} TFLOP/s (${r.peak.name}: FMA on the CUDA cores, no tensor cores)`}`,
    '- TFLOP/s = analytic FLOPs (2 per multiply-add; fwd+dX+dW counts 3× the forward) ÷ median time; inputs uploaded once, each run synchronized by a 1-cell readback (ours) or a read of the smallest output (tfjs)',
    '',
    '| workload | ours ms | ours TFLOP/s | ours % of peak | tfjs-webgpu ms | tfjs TFLOP/s | tfjs % of peak | ours ÷ tfjs |',
    '|---|---|---|---|---|---|---|---|',
    ...r.rows.map((row) => {
      const ratio = typeof row.ours === 'string' || typeof row.tfjs === 'string' ? '' : `${(row.ours.medianMs / row.tfjs.medianMs).toFixed(2)}×`;
      return `| ${row.workload} | ${[...cell(row.ours, row.flops), ...cell(row.tfjs, row.flops), ratio].join(' | ')} |`;
    }),
  ];
  return lines.join('\n');
}

// PyTorch as a peer in the same run: the peers' own script (../shared/peers/torch_bench.py: W1 and the matmul and
// conv micro-benchmarks) run with the system Python, where Debian's `python3-torch` is installed. The script
// writes its results next to itself, and shared/ is read-only, so it runs from a temporary copy.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Timing } from './timing.ts';

/** Where the peers' PyTorch script lives: the shared folder beside the repository. */
export const TORCH_SCRIPT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../shared/peers/torch_bench.py');
const PYTHON = '/usr/bin/python3';

/** torch_bench.py's result keys for our micro workloads. */
export const TORCH_MICRO = { matmul: 'matmul512', convForward: 'conv3x3Fwd', convForwardBackward: 'conv3x3FwdBwd' } as const;

export interface TorchRun {
  /** `PyTorch <version>`: the row's name. */
  readonly label: string;
  /** Threads and the BLAS libtorch loaded. */
  readonly detail: string;
  readonly results: Readonly<Record<string, Timing & { readonly lossFirstLast?: readonly [number, number] }>>;
}

interface ScriptTiming {
  readonly median_ms: number;
  readonly min_ms: number;
  readonly max_ms: number;
  readonly samples_ms: readonly number[];
  readonly loss_first_last?: readonly [number, number];
}

/** Runs torch_bench.py (`only`: w1 or micro) with 2 threads; a Left says why PyTorch is not in this run. */
export function runTorch(only: 'w1' | 'micro', warmup: number, iters: number): { ok: true; run: TorchRun } | { ok: false; reason: string } {
  if (!existsSync(TORCH_SCRIPT)) return { ok: false, reason: `the peers' script is not at ${TORCH_SCRIPT}` };
  const probe = spawnSync(PYTHON, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
  if (probe.status !== 0) return { ok: false, reason: 'no PyTorch for /usr/bin/python3 (apt-get install python3-torch)' };
  const dir = mkdtempSync(path.join(tmpdir(), 'clove-torch-'));
  try {
    copyFileSync(TORCH_SCRIPT, path.join(dir, 'torch_bench.py'));
    const run = spawnSync(PYTHON, [path.join(dir, 'torch_bench.py'), '--tag', 'run', '--only', only, '--threads', '2', '--warmup', String(warmup), '--iters', String(iters)], { encoding: 'utf8' });
    if (run.status !== 0) return { ok: false, reason: `torch_bench.py exited ${run.status}: ${(run.stderr || run.stdout).trim().split('\n').slice(-1)[0]}` };
    const json = JSON.parse(readFileSync(path.join(dir, 'results', 'run.json'), 'utf8')) as { torch: string; threads: number; results: Record<string, ScriptTiming>; blas_libs_loaded?: readonly string[] };
    const results = Object.fromEntries(
      Object.entries(json.results).map(([k, t]) => [
        k,
        { warmup, iterations: t.samples_ms.length, medianMs: t.median_ms, minMs: t.min_ms, maxMs: t.max_ms, samplesMs: t.samples_ms, ...(t.loss_first_last === undefined ? {} : { lossFirstLast: t.loss_first_last }) },
      ]),
    );
    const blas = (json.blas_libs_loaded ?? []).map((l) => path.basename(l)).join(', ');
    return { ok: true, run: { label: `PyTorch ${json.torch.replace(/a0$/, '')}`, detail: `${json.threads} threads${blas === '' ? '' : `; BLAS ${blas}`}`, results } };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

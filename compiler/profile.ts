// Where a compiled step spends its time, kernel by kernel. Launches only queue work on webgpu, so a profiled step
// synchronizes after every kernel: a 1-cell probe reading the kernel's output, then a 4-byte readback. Used by
// `npm run bench -- step --profile` and `clove pretrain --profile`.
import * as E from 'fp-ts/lib/Either.js';
import type { AfterLaunch, Executable } from './compile.ts';
import { flopsOf } from './facts.ts';
import { showShape } from './ir.ts';
import type { DeviceHandle } from './runtime/device.ts';

/** Time spent in the kernels of one kind (same op, output shape and tiling) during the profiled step. */
export interface KernelProfileRow {
  readonly kernel: string;
  readonly op: string;
  readonly launches: number;
  readonly ms: number;
  /** The slowest single launch: a stall (a driver compiling, a collection) shows here. */
  readonly maxMs: number;
  /** FLOPs of all its launches in the FLOP model (contractions only; 0 for every other op). */
  readonly flops: number;
}

export interface StepProfile {
  /** Wall time of the profiled step, probes included. */
  readonly stepMs: number;
  /** The probe's own cost (median of 20 on an idle queue), subtracted from every launch. */
  readonly syncMs: number;
  /** Costliest first. */
  readonly rows: readonly KernelProfileRow[];
}

export type { AfterLaunch } from './compile.ts';

/**
 * Profiles one step of `exe` in two passes of the caller's step function: `warm` (builds a probe per output size:
 * gpu.js specializes a kernel to its first arguments' sizes), then `calibrate`, then `timed`; `result` gives the
 * profile, or the first probe failure.
 */
export class StepProfiler {
  private readonly kinds = new Map<string, Omit<KernelProfileRow, 'kernel'>>();
  private failure: string | null = null;
  private syncMs = 0;
  private start = 0;
  private last = 0;

  constructor(private readonly exe: Executable) {}

  readonly warm: AfterLaunch = async (k, output) => {
    await this.sync(output);
  };

  /** Measures the probe on a 1-element buffer and starts the clock for `timed`. */
  async calibrate(): Promise<void> {
    const tiny = await this.exe.upload('profile-probe', new Float32Array(1));
    if (E.isLeft(tiny)) {
      this.failure ??= tiny.left;
      return;
    }
    const samples: number[] = [];
    for (let r = 0; r < 20; r++) {
      const t0 = performance.now();
      await this.sync(tiny.right);
      samples.push(performance.now() - t0);
    }
    this.exe.device.free(tiny.right);
    this.syncMs = samples.sort((a, b) => a - b)[samples.length >> 1];
    this.start = this.last = performance.now();
  }

  readonly timed: AfterLaunch = async (k, output) => {
    const kp = this.exe.plan.kernels[k];
    await this.sync(output);
    const now = performance.now();
    const kind = `${kp.root.op} ${showShape(kp.root.shape)}${kp.tile === null ? '' : ' tiled'}`;
    const row = this.kinds.get(kind) ?? { op: kp.root.op, launches: 0, ms: 0, maxMs: 0, flops: 0 };
    const ms = Math.max(0, now - this.last - this.syncMs);
    this.kinds.set(kind, { op: row.op, launches: row.launches + 1, ms: row.ms + ms, maxMs: Math.max(row.maxMs, ms), flops: row.flops + flopsOf(kp.root) });
    this.last = now;
  };

  result(): E.Either<string, StepProfile> {
    if (this.failure !== null) return E.left(`profiling: ${this.failure}`);
    const rows = [...this.kinds.entries()].map(([kernel, r]) => ({ kernel, ...r })).sort((a, b) => b.ms - a.ms);
    return E.right({ stepMs: this.last - this.start, syncMs: this.syncMs, rows });
  }

  private async sync(output: DeviceHandle): Promise<void> {
    const done = await this.exe.synchronize(output);
    if (E.isLeft(done)) this.failure ??= done.left;
  }
}

/** Time and FLOP rate of the contraction kernels (dot, conv2d, its weight gradient), and the time spent outside them. */
export function contractionShare(p: StepProfile): { readonly contractionMs: number; readonly gflops: number; readonly otherMs: number } {
  const contraction = p.rows.filter((x) => x.flops > 0);
  const contractionMs = contraction.reduce((a, x) => a + x.ms, 0);
  const flops = contraction.reduce((a, x) => a + x.flops, 0);
  const otherMs = p.rows.reduce((a, x) => a + x.ms, 0) - contractionMs;
  return { contractionMs, gflops: contractionMs > 0 ? flops / contractionMs / 1e6 : 0, otherMs };
}

/** Milliseconds per op, costliest first. */
export function timeByOp(p: StepProfile): readonly (readonly [string, number])[] {
  const byOp = new Map<string, number>();
  for (const x of p.rows) byOp.set(x.op, (byOp.get(x.op) ?? 0) + x.ms);
  return [...byOp.entries()].sort((a, b) => b[1] - a[1]);
}

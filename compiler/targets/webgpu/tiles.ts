// The webgpu target's tile choice for its GEMM templates: a pure function of the GEMM's sizes and of the adapter
// kind. Sizes of workgroup tiles and register tiles are this target's decision, not the scheduler's.

/** One tiling: a BM × BN output tile per workgroup, BK-deep slices of A and B in workgroup memory, TM × TN per thread. */
export interface Tiling {
  readonly BM: number;
  readonly BN: number;
  readonly BK: number;
  readonly TM: number;
  readonly TN: number;
}

/** Threads of a workgroup along n (x) and m (y). */
export const threadsOf = (t: Tiling): { readonly TX: number; readonly TY: number } => ({ TX: t.BN / t.TN, TY: t.BM / t.TM });

/**
 * Candidates, largest first. 128×128 with 8×8 per thread is the classic shape for a large SGEMM on a GPU (256
 * threads, 64 accumulators each, 16 KiB of workgroup memory at BK = 16); 64×64 with 4×4 (256 threads); 32×32 with
 * 4×4 (64 threads) for small or thin products.
 */
const HARDWARE: readonly Tiling[] = [
  { BM: 128, BN: 128, BK: 16, TM: 8, TN: 8 },
  { BM: 64, BN: 128, BK: 16, TM: 8, TN: 8 },
  { BM: 128, BN: 64, BK: 16, TM: 8, TN: 8 },
  { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 },
  { BM: 32, BN: 32, BK: 16, TM: 4, TN: 4 },
];
/**
 * A software adapter (lavapipe: each invocation a lane of a CPU vector, a workgroup one CPU thread) is bound by its
 * loads from workgroup memory, done lane by lane: bigger register tiles amortize them, spills of the accumulators
 * to the stack cost less. Measured on lavapipe (2 cores, matmul 512³, ms median/min over 6 runs, 2026-12-07):
 * 16×8 per thread 34–40/26–30, 8×8 42–46/34–38, 16×16 40–41/31–34, 8×4 55–62/48–49, 4×4 (64×64) 76–130/60–113.
 * A GPU would spill 128 accumulators per thread to local memory: 16×8 is for software adapters only.
 */
const SOFTWARE_BIG: readonly Tiling[] = [{ BM: 128, BN: 128, BK: 16, TM: 16, TN: 8 }, { BM: 64, BN: 128, BK: 16, TM: 16, TN: 8 }];
const SOFTWARE: readonly Tiling[] = [...SOFTWARE_BIG, ...HARDWARE];
/**
 * Lavapipe compiles a shader at its first dispatch: 3–7 s for a 16×8 template against ~1.5 s for 8×8 (measured with
 * the Mesa shader cache off). The 16×8 tiles are offered only for products of at least this many multiply-adds
 * (matmul 512³ has 2^27), where their ~15% pays for the compile within a few runs.
 */
const SOFTWARE_BIG_MIN_WORK = 2 ** 27;
/** Every tiling the heuristic may choose (the properties run each of them). */
export const TILINGS: readonly Tiling[] = SOFTWARE;

/**
 * Workgroups a launch should have at least before a bigger tile is worth it. On a GPU, about two per streaming
 * multiprocessor (an H100 has 132); on a software adapter, a few per CPU thread of its pool.
 */
const MIN_WORKGROUPS = { hardware: 256, software: 8 } as const;

/** Padded work over useful work a tile may waste at the edges (1.15: up to 15% of the multiply-adds wasted). */
const MAX_WASTE = 1.15;

/**
 * The heuristic: the largest candidate that wastes at most MAX_WASTE of the work at the edges and still gives at
 * least MIN_WORKGROUPS workgroups; failing that, the candidate with the least padded work (ties: more workgroups).
 */
export function chooseTiling(batch: number, M: number, N: number, K: number, software: boolean): Tiling {
  const candidates = !software ? HARDWARE : batch * M * N * K >= SOFTWARE_BIG_MIN_WORK ? SOFTWARE : HARDWARE;
  const padded = (t: Tiling) => Math.ceil(M / t.BM) * t.BM * Math.ceil(N / t.BN) * t.BN;
  const groups = (t: Tiling) => batch * Math.ceil(M / t.BM) * Math.ceil(N / t.BN);
  const min = software ? MIN_WORKGROUPS.software : MIN_WORKGROUPS.hardware;
  const fit = candidates.find((t) => padded(t) <= MAX_WASTE * M * N && groups(t) >= min);
  if (fit !== undefined) return fit;
  return [...candidates].sort((a, c) => padded(a) - padded(c) || groups(c) - groups(a))[0];
}

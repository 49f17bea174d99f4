// Shared helpers for property tests: every property runs through `property`, so a failure always prints
// the fast-check seed and path needed to replay it (`CLOVE_SEED=<seed> npm run test:one -- props/x.test.ts`).
import fc from 'fast-check';
import { BACKEND_ORDER, isBackendName } from '../compiler/runtime/backend.ts';
import type { BackendName } from '../compiler/runtime/errors.ts';

const envSeed = process.env.CLOVE_SEED === undefined ? undefined : Number(process.env.CLOVE_SEED);
/** Number of runs per property; CLOVE_PROP_RUNS scales them (e.g. 10 for a quick pass, 1000 for a soak). */
export const runs = (base: number): number => {
  const scale = process.env.CLOVE_PROP_RUNS === undefined ? 1 : Number(process.env.CLOVE_PROP_RUNS) / 100;
  return Math.max(1, Math.round(base * scale));
};

/** fc.assert with the seed printed on failure (fast-check puts seed and path in the error message). */
export function property<Ts extends [unknown, ...unknown[]]>(
  prop: fc.IProperty<Ts> | fc.IAsyncProperty<Ts>,
  numRuns = 100,
): void | Promise<void> {
  const params: fc.Parameters<Ts> = { numRuns: runs(numRuns), ...(envSeed === undefined ? {} : { seed: envSeed }) };
  return fc.assert(prop as fc.IProperty<Ts>, params) as void | Promise<void>;
}

/**
 * The backends the compiled-vs-interpreter and device properties run on: every one but headlessgl by default
 * (headless-gl has no GL context on these machines, see ENVIRONMENT.md), or the list in
 * CLOVE_TEST_BACKENDS (e.g. `webgpu` on a GPU machine, where only that path is news). Unknown names throw.
 */
export function testedBackends(): readonly BackendName[] {
  const listed = process.env.CLOVE_TEST_BACKENDS;
  if (listed === undefined || listed.trim() === '') return BACKEND_ORDER.filter((b) => b !== 'headlessgl');
  const names = listed.split(',').map((n) => n.trim());
  const unknown = names.filter((n) => !isBackendName(n));
  if (unknown.length > 0) throw new Error(`CLOVE_TEST_BACKENDS: unknown backend(s) ${unknown.join(', ')}`);
  return names.filter(isBackendName);
}

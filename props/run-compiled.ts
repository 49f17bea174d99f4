// Compile a graph, run it once on host inputs, read every output and dispose: the shared harness of the tests
// that compare compiled programs with the interpreter. It also asserts that the run leaked no device buffer.
import assert from 'node:assert/strict';
import * as E from 'fp-ts/lib/Either.js';
import { compile, type CompileOptions } from '../compiler/compile.ts';
import type { Graph } from '../compiler/ir.ts';
import type { BackendName } from '../compiler/runtime/errors.ts';

export async function runCompiled(
  graph: Graph,
  inputs: Readonly<Record<string, Float32Array>>,
  backend: BackendName = 'cpu',
  options: Omit<CompileOptions, 'backend'> = {},
): Promise<Record<string, Float32Array>> {
  const exe = await compile(graph, { ...options, backend });
  if (E.isLeft(exe)) throw new Error(exe.left);
  try {
    const out = await exe.right.run(inputs);
    if (E.isLeft(out)) throw new Error(out.left);
    const values: Record<string, Float32Array> = {};
    for (const [k, h] of Object.entries(out.right)) {
      const r = await exe.right.read(h);
      if (E.isLeft(r)) throw new Error(r.left);
      values[k] = r.right;
    }
    // Outputs that are the same node share one handle.
    for (const h of new Set(Object.values(out.right))) exe.right.device.free(h);
    assert.equal(exe.right.device.liveHandles().count, 0, 'a run must not leak device buffers');
    return values;
  } finally {
    await exe.right.dispose();
  }
}

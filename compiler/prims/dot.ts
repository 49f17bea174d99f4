import * as b from '../build.ts';
import { fail, numel, ok, showShape, type Node } from '../ir.ts';
import { fadd, fconst, fmul, fref, iadd, iconst, imul, type F, type I } from '../kernel/ir.ts';
import type { LowerCtx } from '../lowering.ts';
import type { Prim } from '../prim.ts';

const swapLast = (r: number): number[] => [...Array(r - 2).keys(), r - 1, r - 2];

/** Batched matrix product: [...B, M, K] · [...B, K, N] → [...B, M, N] (batch dims equal; the DSL broadcasts). */
export const dot: Prim<'dot'> = {
  name: 'dot',
  arity: 2,
  kind: 'contraction',
  multiplyAdds: (node) => numel(node.shape) * node.inputs[0].shape[node.inputs[0].shape.length - 1],
  shape: (_p, [a, c]) => {
    const r = a.shape.length;
    const msg = `cannot multiply ${showShape(a.shape)} by ${showShape(c.shape)}`;
    if (r < 2 || c.shape.length !== r) return fail(`${msg} (operands need equal rank ≥ 2)`);
    if (a.shape[r - 1] !== c.shape[r - 2]) return fail(`${msg} (inner dims ${a.shape[r - 1]} and ${c.shape[r - 2]} differ)`);
    if (!a.shape.slice(0, r - 2).every((d, i) => d === c.shape[i])) return fail(`${msg} (batch dims differ)`);
    if (a.dtype !== 'f32' || c.dtype !== 'f32') return fail(`${msg} (needs f32 operands)`);
    return ok([...a.shape.slice(0, r - 1), c.shape[r - 1]], 'f32');
  },
  vjp: (node, g) => {
    const [a, c] = node.inputs;
    const p = swapLast(a.shape.length);
    return [b.dot(g, b.permute(c, p)), b.dot(b.permute(a, p), g)];
  },
  interp: (_p, [a, c], out, ctx) => {
    const r = a.shape.length;
    const [M, K, N] = [a.shape[r - 2], a.shape[r - 1], c.shape[r - 1]];
    const batch = numel(a.shape.slice(0, r - 2));
    const o = ctx.alloc(numel(out.shape));
    for (let bi = 0; bi < batch; bi++) {
      const ao = bi * M * K;
      const co = bi * K * N;
      const oo = bi * M * N;
      for (let m = 0; m < M; m++)
        for (let k = 0; k < K; k++) {
          const av = a.data[ao + m * K + k];
          for (let n = 0; n < N; n++) o[oo + m * N + n] += av * c.data[co + k * N + n];
        }
    }
    return o;
  },
  lower: (node, idx, ctx) => lowerDot(node, [idx], ctx)[0],
  // A thread computes TILE rows of one column: each column element of B it reads serves all of them.
  tile: { axis: (node) => node.shape.length - 2, lower: (node, idxs, ctx) => lowerDot(node, idxs, ctx) },
  linearIn: [0, 1],
};

/** One K-loop accumulating the outputs at flat indices `idxs` (rows of one column when several). */
function lowerDot(node: Node<'dot'>, idxs: readonly I[], ctx: LowerCtx): F[] {
  const [a, c] = node.inputs;
  const r = a.shape.length;
  const [M, K, N] = [a.shape[r - 2], a.shape[r - 1], c.shape[r - 1]];
  const outs = idxs.map((idx) => {
    const o = ctx.coords(node.shape, idx);
    const batchCoords = o.slice(0, r - 2);
    // Row and column bases are hoisted out of the K loop; large operands are indexed by coordinates instead.
    const batch = ctx.large(a.shape) && ctx.large(c.shape) ? iconst(0) : ctx.flat(batchCoords, node.shape.slice(0, r - 2));
    const aBase = ctx.large(a.shape) ? iconst(0) : ctx.bindIndex(iadd(imul(batch, iconst(M * K)), imul(o[r - 2], iconst(K))));
    const cBase = ctx.large(c.shape) ? iconst(0) : ctx.bindIndex(iadd(imul(batch, iconst(K * N)), o[r - 1]));
    return {
      aAt: (k: I) => (ctx.large(a.shape) ? ctx.flat([...batchCoords, o[r - 2], k], a.shape) : iadd(aBase, k)),
      cAt: (k: I) => (ctx.large(c.shape) ? ctx.flat([...batchCoords, k, o[r - 1]], c.shape) : iadd(cBase, imul(k, iconst(N)))),
      acc: ctx.variable(fconst(0)),
    };
  });
  ctx.accumulate(
    K,
    outs.map((o) => o.acc),
    (k) => outs.map(({ aAt, cAt }) => ctx.bind(fmul(ctx.input(0, aAt(k)), ctx.input(1, cAt(k))))),
    fadd,
  );
  return outs.map((o) => fref(o.acc));
}

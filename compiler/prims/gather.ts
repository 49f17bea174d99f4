import * as b from '../build.ts';
import { fail, numel, ok, showShape, stridesOf } from '../ir.ts';
import { iclamp, ifloor } from '../kernel/ir.ts';
import type { Prim } from '../prim.ts';
import { forEachIndex } from './checks.ts';

/**
 * Take along an axis (torch.gather / np.take_along_axis): out[..., i, ...] = x[..., idx[..., i, ...], ...].
 * Indices are clamped into range (GPU kernels cannot raise). The gradient is a one-hot contraction
 * (no scatter): dx[..., j, ...] = Σ_i g[..., i, ...]·[idx[..., i, ...] = j].
 */
export const gather: Prim<'gather'> = {
  name: 'gather',
  arity: 2,
  kind: 'indexing',
  rereads: [0],
  shape: (p, [x, idx]) => {
    const r = x.shape.length;
    const msg = `cannot gather ${showShape(x.shape)} with indices ${showShape(idx.shape)} along axis ${p.axis}`;
    if (!Number.isInteger(p.axis) || p.axis < 0 || p.axis >= r) return fail(`${msg} (axis out of range)`);
    if (idx.dtype !== 'i32') return fail(`${msg} (indices must be i32, got ${idx.dtype})`);
    if (idx.shape.length !== r || !idx.shape.every((d, i) => i === p.axis || d === x.shape[i])) return fail(`${msg} (dims must agree off the axis)`);
    return ok(idx.shape, x.dtype);
  },
  vjp: (node, g) => {
    const [x, idx] = node.inputs;
    const a = node.params.axis;
    const n = x.shape[a];
    const wide = [...idx.shape.slice(0, a + 1), n, ...idx.shape.slice(a + 1)];
    const withAxis = (t: typeof g) => b.expand(b.reshape(t, [...t.shape.slice(0, a + 1), 1, ...t.shape.slice(a + 1)]), wide);
    const onehot = b.cast(b.eq(withAxis(idx), b.iota(a + 1, wide, 'i32')), 'f32');
    return [b.sum(b.mul(withAxis(g), onehot), [a]), null];
  },
  interp: (p, [x, idx], out, ctx) => {
    const r = ctx.alloc(numel(out.shape));
    const xs = stridesOf(x.shape);
    const n = x.shape[p.axis];
    forEachIndex(out.shape, (ix, flat) => {
      let o = 0;
      for (let k = 0; k < ix.length; k++) o += (k === p.axis ? Math.min(n - 1, Math.max(0, idx.data[flat])) : ix[k]) * xs[k];
      r[flat] = x.data[o];
    });
    return r;
  },
  lower: (node, idx, ctx) => {
    const a = node.params.axis;
    const n = node.inputs[0].shape[a];
    const c = ctx.coords(node.shape, idx);
    const j = ctx.bindIndex(iclamp(ifloor(ctx.input(1, idx)), 0, n - 1));
    return ctx.input(0, ctx.flat(c.map((v, k) => (k === a ? j : v)), node.inputs[0].shape));
  },
  linearIn: [0],
};

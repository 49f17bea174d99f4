import { all, fadd, fconst, fdiv, fmax, fref, guard, iadd, iclamp, iconst, imul, inRange, isub, type B } from '../kernel/ir.ts';
import * as b from '../build.ts';
import { fail, numel, ok, showShape, type Node } from '../ir.ts';
import type { Prim } from '../prim.ts';
import { windowOut } from './conv2d.ts';

/** The most negative finite f32: max pooling pads with it (no ±Inf on GPU paths). */
export const NEG_SENTINEL = -3.4028234663852886e38;

/**
 * Max or average pooling over NCHW (PyTorch semantics; average counts padded zeros, like
 * `count_include_pad=True`). The gradient is a sum over the kernel offsets of interior-padded cotangents,
 * so it only gathers. Max pooling sends the whole cotangent of a window to its FIRST maximum in scan order
 * (kernel rows, then columns), as PyTorch does: max_pool2d records one index per window, updating it only on
 * `val > maxval`, and its backward puts the gradient there. (JAX's reduce_window max shares it among ties
 * instead; the ResNet stem's max pool is the authors' nn.MaxPool2d, so PyTorch's convention is the one kept.)
 */
export const pool2d: Prim<'pool2d'> = {
  name: 'pool2d',
  arity: 1,
  kind: 'window',
  shape: (p, [x]) => {
    if (x.shape.length !== 4) return fail(`expects NCHW input, got ${showShape(x.shape)}`);
    const ints = [...p.kernel, ...p.stride].every((v) => Number.isInteger(v) && v >= 1);
    if (!ints || !p.padding.every((v, i) => Number.isInteger(v) && v >= 0 && 2 * v <= p.kernel[i]))
      return fail(`invalid kernel/stride/padding ${JSON.stringify(p)} (padding must be at most half the kernel)`);
    const Ho = windowOut(x.shape[2], p.kernel[0], p.stride[0], p.padding[0]);
    const Wo = windowOut(x.shape[3], p.kernel[1], p.stride[1], p.padding[1]);
    if (Ho < 1 || Wo < 1) return fail(`window ${p.kernel} does not fit ${showShape(x.shape)}`);
    if (x.dtype !== 'f32') return fail('needs an f32 input');
    return ok([x.shape[0], x.shape[1], Ho, Wo], 'f32');
  },
  vjp: (node, g) => [poolGrad(node, g)],
  interp: (p, [x], out, ctx) => {
    const [N, C, H, W] = x.shape;
    const [, , Ho, Wo] = out.shape;
    const r = ctx.alloc(numel(out.shape));
    const area = p.kernel[0] * p.kernel[1];
    for (let nc = 0; nc < N * C; nc++)
      for (let i = 0; i < Ho; i++)
        for (let j = 0; j < Wo; j++) {
          let acc = p.mode === 'max' ? NEG_SENTINEL : 0;
          for (let a = 0; a < p.kernel[0]; a++)
            for (let c = 0; c < p.kernel[1]; c++) {
              const y = i * p.stride[0] - p.padding[0] + a;
              const xx = j * p.stride[1] - p.padding[1] + c;
              const v = y < 0 || y >= H || xx < 0 || xx >= W ? (p.mode === 'max' ? NEG_SENTINEL : 0) : x.data[(nc * H + y) * W + xx];
              acc = p.mode === 'max' ? Math.max(acc, v) : acc + v;
            }
          r[(nc * Ho + i) * Wo + j] = p.mode === 'max' ? acc : acc / area;
        }
    return r;
  },
  lower: (node, idx, ctx) => {
    const x = node.inputs[0];
    const [, C, H, W] = x.shape;
    const { mode, kernel, stride, padding } = node.params;
    const [n, c, i, j] = ctx.coords(node.shape, idx);
    const base = ctx.large(x.shape) ? iconst(0) : ctx.bindIndex(imul(iadd(imul(n, iconst(C)), c), iconst(H * W)));
    const pad = fconst(mode === 'max' ? NEG_SENTINEL : 0);
    const acc = ctx.variable(pad);
    ctx.loop(kernel[0], (a) => {
      const y = ctx.bindIndex(isub(iadd(imul(i, iconst(stride[0])), a), iconst(padding[0])));
      ctx.loop(kernel[1], (e) => {
        const xx = ctx.bindIndex(isub(iadd(imul(j, iconst(stride[1])), e), iconst(padding[1])));
        const inside: B | null = all([inRange(y, 0, H), inRange(xx, 0, W)].filter((b): b is B => b !== null));
        const [cy, cx] = [ctx.bindIndex(iclamp(y, 0, H - 1)), ctx.bindIndex(iclamp(xx, 0, W - 1))];
        const v = ctx.input(0, ctx.large(x.shape) ? ctx.flat([n, c, cy, cx], x.shape) : iadd(iadd(base, imul(cy, iconst(W))), cx));
        const val = guard(inside, v, pad);
        ctx.set(acc, mode === 'max' ? fmax(fref(acc), val) : fadd(fref(acc), val));
      });
    });
    return mode === 'max' ? fref(acc) : fdiv(fref(acc), fconst(kernel[0] * kernel[1]));
  },
  linearIn: [],
};

function poolGrad(node: Node<'pool2d'>, g: Node): Node {
  const x = node.inputs[0];
  const { mode, kernel, stride, padding } = node.params;
  const [, , Ho, Wo] = g.shape;
  const Hp = x.shape[2] + 2 * padding[0];
  const Wp = x.shape[3] + 2 * padding[1];
  const offsets: [number, number][] = [];
  for (let a = 0; a < kernel[0]; a++) for (let c = 0; c < kernel[1]; c++) offsets.push([a, c]);
  const window = (a: number, c: number, xp: Node) =>
    b.slice(xp, [0, 0, a, c], [x.shape[0], x.shape[1], a + (Ho - 1) * stride[0] + 1, c + (Wo - 1) * stride[1] + 1], [1, 1, stride[0], stride[1]]);
  let weights: Node[];
  if (mode === 'avg') {
    weights = offsets.map(() => b.scalar(1 / (kernel[0] * kernel[1]), g));
  } else {
    const xp = b.pad(x, [0, 0, padding[0], padding[1]], [0, 0, padding[0], padding[1]], [0, 0, 0, 0], NEG_SENTINEL);
    const hits = offsets.map(([a, c]) => b.cast(b.eq(window(a, c, xp), node), 'f32'));
    // First maximum in scan order, without a scatter: offset k takes the cotangent iff it hits the maximum
    // and no earlier offset took it, first_k = hit_k·(1 − Σ_{j<k} first_j) (the sum is 0 or 1). The padding
    // holds the most negative finite f32, so it can only tie where the whole window is that value.
    weights = [];
    let taken: Node | undefined;
    for (const hit of hits) {
      const first = taken === undefined ? hit : b.mul(hit, b.sub(b.scalar(1, hit), taken));
      weights.push(first);
      taken = taken === undefined ? first : b.add(taken, first);
    }
  }
  // Each offset's cotangent goes back to input position (a + s·i − p, c + s·j − p).
  const parts: Node[] = offsets.map(([a, c], k) =>
    b.pad(
      b.mul(g, weights[k]),
      [0, 0, a - padding[0], c - padding[1]],
      [0, 0, Hp - (a + (Ho - 1) * stride[0] + 1) - padding[0], Wp - (c + (Wo - 1) * stride[1] + 1) - padding[1]],
      [0, 0, stride[0] - 1, stride[1] - 1],
    ),
  );
  return parts.reduce((acc: Node, p: Node) => b.add(acc, p));
}

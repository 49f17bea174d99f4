// A ConvNeXt-style encoder (Liu et al. 2022), written against clove-ts's public API only: a 4×4 stride-4 patch
// stem, then stages of blocks (7×7 depthwise conv → channel LayerNorm → 1×1 conv to 4C → GELU → 1×1 conv back →
// layer scale → residual), with a LayerNorm + 2×2 stride-2 conv between stages. It has no batch norm, so it keeps
// no running statistics: its state tree is empty.
import * as E from 'fp-ts/lib/Either.js';
import * as C from 'clove-ts';
import { normalValues, ranked, subtreeAt, tensorAt, type Encoder, type EncoderBuilder, type HostTree, type Rng, type ShapeTree } from 'clove-ts/clove';

export interface ConvNextOptions {
  /** Blocks per stage; stage s has width·2^s channels. */
  readonly depths: readonly number[];
  /** Side of the depthwise kernel (odd, so 'same' padding keeps the grid). */
  readonly kernel: number;
  /**
   * Initial layer scale γ. ConvNeXt uses 1e-6 at ImageNet depth; a network of a few blocks trained for minutes needs
   * its residual branches to matter from the start, and a branch scaled by 1e-6 would also leave its gradient below
   * what a finite-difference check can see.
   */
  readonly layerScale: number;
}

export const defaultConvNextOptions: ConvNextOptions = { depths: [1, 1], kernel: 7, layerScale: 0.1 };

const STEM = 4;
const EXPANSION = 4;
const EPS = 1e-6;

const channelsOf = (width: number, stage: number): number => width * 2 ** stage;

/** Every parameter's shape, as a tree: `stem.weight`, `stages.0.0.dwconv.weight`, `down.1.conv.weight`, ... */
function paramShapes(o: ConvNextOptions, width: number, inChannels: number): ShapeTree {
  const norm = (c: number): ShapeTree => ({ weight: [c], bias: [c] });
  const block = (c: number): ShapeTree => ({
    dwconv: { weight: [c, 1, o.kernel, o.kernel], bias: [c] },
    norm: norm(c),
    pwconv1: { weight: [EXPANSION * c, c, 1, 1], bias: [EXPANSION * c] },
    pwconv2: { weight: [c, EXPANSION * c, 1, 1], bias: [c] },
    gamma: [c],
  });
  const c0 = channelsOf(width, 0);
  return {
    stem: { weight: [c0, inChannels, STEM, STEM], bias: [c0], norm: norm(c0) },
    stages: Object.fromEntries(o.depths.map((d, s) => [String(s), Object.fromEntries(Array.from({ length: d }, (_v, b) => [String(b), block(channelsOf(width, s))]))])),
    down: Object.fromEntries(
      o.depths.slice(1).map((_d, k) => {
        const s = k + 1;
        return [String(s), { norm: norm(channelsOf(width, s - 1)), conv: { weight: [channelsOf(width, s), channelsOf(width, s - 1), 2, 2], bias: [channelsOf(width, s)] } }];
      }),
    ),
  };
}

/** Initial values: conv weights N(0, 1/fan-in), biases 0, norms (1, 0), layer scales `o.layerScale`. */
function initValues(shapes: ShapeTree, rng: Rng, o: ConvNextOptions): HostTree {
  const out: Record<string, HostTree | Float32Array> = {};
  for (const [key, value] of Object.entries(shapes)) {
    if (!Array.isArray(value)) {
      out[key] = initValues(value as ShapeTree, rng, o);
      continue;
    }
    const shape = value as readonly number[];
    const size = shape.reduce((a, c) => a * c, 1);
    if (key === 'weight' && shape.length === 4) out[key] = normalValues(rng, shape, 1 / Math.sqrt(shape.slice(1).reduce((a, c) => a * c, 1)));
    else if (key === 'weight') out[key] = new Float32Array(size).fill(1);
    else if (key === 'gamma') out[key] = new Float32Array(size).fill(o.layerScale);
    else out[key] = new Float32Array(size);
  }
  return out;
}

/** GELU, tanh approximation: ½x(1 + tanh(√(2/π)(x + 0.044715x³))). */
const gelu = (x: C.Tensor<4>): C.Tensor<4> =>
  C.mul(C.mul(x, 0.5), C.add(C.tanh(C.mul(C.add(x, C.mul(C.mul(C.mul(x, x), x), 0.044715)), Math.sqrt(2 / Math.PI))), 1));

const perChannel = (v: C.Tensor<1>): C.Tensor<4> => C.reshape(v, [1, v.shape[0], 1, 1]);

/** LayerNorm over the channel axis of NCHW (ConvNeXt's channels_first LayerNorm). */
function channelNorm(x: C.Tensor<4>, p: C.ParamTree, where: string): C.Tensor<4> {
  const mean = C.meanKeep(x, [1]);
  const centred = C.sub(x, mean);
  const variance = C.meanKeep(C.mul(centred, centred), [1]);
  const normalised = C.mul(centred, C.rsqrt(C.add(variance, EPS)));
  return C.add(C.mul(normalised, perChannel(ranked(tensorAt(p, 'weight', where), 1, where))), perChannel(ranked(tensorAt(p, 'bias', where), 1, where)));
}

function conv(x: C.Tensor<4>, p: C.ParamTree, where: string, o: C.ConvOptions = {}): C.Tensor<4> {
  return C.add(C.conv2d(x, ranked(tensorAt(p, 'weight', where), 4, where), o), perChannel(ranked(tensorAt(p, 'bias', where), 1, where)));
}

function block(x: C.Tensor<4>, p: C.ParamTree, o: ConvNextOptions, where: string): C.Tensor<4> {
  const channels = x.shape[1];
  const mixed = C.withScope('dwconv', () => conv(x, subtreeAt(p, 'dwconv', where), where, { padding: (o.kernel - 1) / 2, groups: channels }));
  const normed = C.withScope('norm', () => channelNorm(mixed, subtreeAt(p, 'norm', where), where));
  const expanded = C.withScope('pwconv1', () => gelu(conv(normed, subtreeAt(p, 'pwconv1', where), where)));
  const projected = C.withScope('pwconv2', () => conv(expanded, subtreeAt(p, 'pwconv2', where), where));
  return C.add(x, C.mul(projected, perChannel(ranked(tensorAt(p, 'gamma', where), 1, where))));
}

/** The builder to register: `withVariants({ encoders: { convnext: convNextEncoder() } })`; the config's width sets stage 0's channels. */
export const convNextEncoder =
  (o: ConvNextOptions = defaultConvNextOptions): EncoderBuilder =>
  (cfg, inChannels) => {
    if (o.depths.length === 0 || o.depths.some((d) => !Number.isInteger(d) || d < 0)) return E.left(`convnext: depths ${JSON.stringify(o.depths)} must be a non-empty list of block counts`);
    if (!(Number.isInteger(o.kernel) && o.kernel % 2 === 1)) return E.left(`convnext: kernel = ${o.kernel} must be an odd integer`);
    const stride = STEM * 2 ** (o.depths.length - 1);
    const shapes = paramShapes(o, cfg.width, inChannels);
    const encoder: Encoder = {
      outChannels: channelsOf(cfg.width, o.depths.length - 1),
      stride,
      gridSide: (size) => o.depths.slice(1).reduce((side) => Math.floor(side / 2), Math.floor(size / STEM)),
      paramShapes: shapes,
      stateShapes: {},
      init: (rng) => ({ params: initValues(shapes, rng, o), state: {} }),
      forward: (params, state, x) => {
        const where = 'convnext';
        let h = C.withScope('stem', () => {
          const stem = subtreeAt(params, 'stem', where);
          return channelNorm(conv(x, stem, where, { stride: STEM }), subtreeAt(stem, 'norm', where), where);
        });
        o.depths.forEach((depth, s) => {
          if (s > 0) {
            h = C.withScope(`down.${s}`, () => {
              const down = subtreeAt(subtreeAt(params, 'down', where), String(s), where);
              return conv(channelNorm(h, subtreeAt(down, 'norm', where), where), subtreeAt(down, 'conv', where), where, { stride: 2 });
            });
          }
          for (let b = 0; b < depth; b++) {
            h = C.withScope(`stages.${s}.${b}`, () => block(h, subtreeAt(subtreeAt(subtreeAt(params, 'stages', where), String(s), where), String(b), where), o, where));
          }
        });
        return { y: h, state };
      },
    };
    return E.right(encoder);
  };

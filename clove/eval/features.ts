// Frozen-feature extraction for the evaluation protocols (EVAL_PROTOCOLS §3c–§3e): the configured encoder is
// compiled ONCE per (mode, batch, input size) with its weights as bound parameters, so the random-init and the
// pretrained model run through the very same kernels and differ only in the buffers bound to them. Images are
// normalised exactly as pretraining normalises its views (withChannels, /255, ImageNet constants); features
// come back NHWC [N, h, w, D] as the protocols expect. BatchNorm statistics are recalibrated per model before
// extraction (§3d.2), and the raw-pixel floors of §3e live here too, on the same grid as the model.
import * as E from 'fp-ts/lib/Either.js';
import * as T from '../../dsl/tensor.ts';
import type { Tensor } from '../../dsl/tensor.ts';
import { flatten, isTensor, unflatten, type ParamTree } from '../../dsl/tree.ts';
import { compile, type Executable } from '../../compiler/compile.ts';
import { makeGraph, type Shape } from '../../compiler/ir.ts';
import type { DeviceHandle } from '../../compiler/runtime/device.ts';
import type { BackendName } from '../../compiler/runtime/errors.ts';
import type { Config } from '../config.ts';
import { normalize, withChannels } from '../data/augment.ts';
import type { Image } from '../data/image.ts';
import { buildModel, builtinVariants, type Encoder, type Variants } from '../models/registry.ts';
import { isHostLeaf, isShape, symbolicParams, type HostTree, type ShapeTree } from '../models/init.ts';
import type { DenseFeatures } from './protocols.ts';

/** Graph input holding a batch of normalised images [B, C, S, S]. */
export const IMAGES_INPUT = 'images';
/** Graph output of an eval-mode extractor: features [B, h, w, D]. */
export const FEATURES_OUTPUT = 'features';
/** Prefix of the encoder's parameters in the graph (`encoder.layer1.0.conv1.weight`). */
export const PARAM_PREFIX = 'encoder';
/** Prefix of the BN running statistics in the graph and of the recalibration outputs (`bn.bn1.running_mean`). */
export const BN_PREFIX = 'bn';
/**
 * The running-average momentum of `batchNorm` in dsl/nn.ts, which `resnetForward` uses without overriding.
 * A train-mode forward from zero running statistics returns momentum × (batch statistic), so dividing by it
 * recovers the batch statistic itself; props/eval-cli.test.ts checks the result against a direct computation.
 */
export const BN_MOMENTUM = 0.1;

/** Host weights of an encoder, keyed by torchvision name without any prefix. */
export interface EncoderWeights {
  /** Trainable parameters: `conv1.weight`, `layer1.0.bn1.bias`, ... */
  readonly params: Readonly<Record<string, Float32Array>>;
  /** BN running statistics: `bn1.running_mean`, `layer1.0.bn1.running_var`, ... */
  readonly bn: Readonly<Record<string, Float32Array>>;
}

/** The encoder of a config, built for the config's input channels. */
export function encoderOf(config: Config, variants: Variants = builtinVariants): E.Either<string, Encoder> {
  return E.map((m: { readonly encoder: Encoder }) => m.encoder)(buildModel(config.model, config.views.channels, variants));
}

const sizeOf = (shape: Shape): number => shape.reduce((a, c) => a * c, 1);

/** Every expected tensor present with the expected size, or a message naming the first few that are not. */
function checkRecord(what: string, shapes: Readonly<Record<string, Shape>>, values: Readonly<Record<string, Float32Array>>): E.Either<string, void> {
  const problems: string[] = [];
  for (const [name, shape] of Object.entries(shapes)) {
    const v = values[name];
    if (v === undefined) problems.push(`${what} '${name}' is missing`);
    else if (v.length !== sizeOf(shape)) problems.push(`${what} '${name}' has ${v.length} values, the encoder needs [${shape.join(',')}] = ${sizeOf(shape)}`);
  }
  const unknown = Object.keys(values).filter((name) => !(name in shapes));
  if (unknown.length > 0) problems.push(`unexpected ${what} tensors: ${unknown.slice(0, 3).join(', ')}${unknown.length > 3 ? ` and ${unknown.length - 3} more` : ''}`);
  if (problems.length === 0) return E.right(undefined);
  return E.left(`${problems.slice(0, 4).join('; ')}${problems.length > 4 ? `; and ${problems.length - 4} more problems` : ''}`);
}

const shapeEntries = (tree: ShapeTree): Record<string, Shape> => Object.fromEntries(flatten(tree, isShape));

/** Check host weights against the encoder's parameter and BN shapes. */
export function checkEncoderWeights(encoder: Encoder, weights: EncoderWeights): E.Either<string, EncoderWeights> {
  const params = checkRecord('parameter', shapeEntries(encoder.paramShapes), weights.params);
  if (E.isLeft(params)) return params;
  const bn = checkRecord('BN statistic', shapeEntries(encoder.stateShapes), weights.bn);
  if (E.isLeft(bn)) return bn;
  return E.right(weights);
}

/** Flat host records from the host trees `init`/`initTrainState` produce. */
export function weightsFromTrees(params: HostTree, bn: HostTree): EncoderWeights {
  return { params: Object.fromEntries(flatten(params, isHostLeaf)), bn: Object.fromEntries(flatten(bn, isHostLeaf)) };
}

// ---------------------------------------------------------------------------------------------- graphs

export type ExtractorMode = 'eval' | 'recalibrate';

export interface ExtractorSpec {
  readonly mode: ExtractorMode;
  /** Images per run: the last batch of a dataset is padded up to it (eval) or dropped (recalibrate). */
  readonly batch: number;
  /** Square input side in pixels (64 for the dense protocols, 32 for P3). */
  readonly size: number;
}

export interface ExtractorGraph {
  readonly spec: ExtractorSpec;
  readonly channels: 1 | 3;
  readonly outputs: Readonly<Record<string, Tensor>>;
  /** Feature grid side h = w and width D of the encoder output at this input size. */
  readonly side: number;
  readonly dim: number;
  /** Parameter names the graph binds, without prefix. */
  readonly paramNames: readonly string[];
  /** BN statistic names, without prefix: bound in eval mode, returned in recalibrate mode. */
  readonly bnNames: readonly string[];
}

/** Name under which a BN statistic is bound (eval) or returned (recalibrate). */
export const bnBinding = (name: string): string => `${BN_PREFIX}.${name}`;
/** Name under which a parameter is bound. */
export const paramBinding = (name: string): string => `${PARAM_PREFIX}.${name}`;

/**
 * The extractor graph. Eval mode: BN normalises with the bound running statistics; the output `features` is
 * [B, h, w, D] (NCHW transposed in the graph, so readback is already in the protocols' layout). Recalibrate
 * mode: BN uses batch statistics starting from zero running statistics (constants, nothing to bind), so each
 * BN's returned running statistic is BN_MOMENTUM × its batch statistic; no gradient is built.
 */
export function extractorGraph(config: Config, spec: ExtractorSpec, variants: Variants = builtinVariants): E.Either<string, ExtractorGraph> {
  if (!(Number.isInteger(spec.batch) && spec.batch >= 1)) return E.left(`extractor batch ${spec.batch} must be a positive integer`);
  if (!(Number.isInteger(spec.size) && spec.size >= 1)) return E.left(`extractor input size ${spec.size} must be a positive integer`);
  const encoder = encoderOf(config, variants);
  if (E.isLeft(encoder)) return encoder;
  const enc = encoder.right;
  const channels = config.views.channels;
  const bnShapes = shapeEntries(enc.stateShapes);
  const params = symbolicParams(enc.paramShapes, PARAM_PREFIX);
  const state: ParamTree =
    spec.mode === 'eval'
      ? symbolicParams(enc.stateShapes, BN_PREFIX)
      : (unflatten(Object.entries(bnShapes).map(([name, shape]) => [name, T.full(shape, 0)] as const)) as ParamTree);
  const x = T.input(IMAGES_INPUT, [spec.batch, channels, spec.size, spec.size]) as Tensor<4>;
  const out = enc.forward(params, state, x, spec.mode === 'recalibrate');
  const [, dim, side] = out.y.shape;
  const common = { spec, channels, side, dim, paramNames: Object.keys(shapeEntries(enc.paramShapes)), bnNames: Object.keys(bnShapes) };
  if (spec.mode === 'eval') return E.right({ ...common, outputs: { [FEATURES_OUTPUT]: T.permute(out.y, [0, 2, 3, 1]) } });
  return E.right({ ...common, outputs: Object.fromEntries(flatten(out.state, isTensor).map(([name, t]) => [bnBinding(name), t])) });
}

/** Bindings of a model's weights for an extractor graph (parameters always, BN statistics in eval mode). */
export function weightBindings(graph: ExtractorGraph, weights: EncoderWeights): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  for (const name of graph.paramNames) out[paramBinding(name)] = weights.params[name];
  if (graph.spec.mode === 'eval') for (const name of graph.bnNames) out[bnBinding(name)] = weights.bn[name];
  return out;
}

// ---------------------------------------------------------------------------------------------- images

/** A dataset of square 8-bit images (HWC), read one at a time so nothing is held twice. */
export interface ImageSet {
  readonly count: number;
  /** Image k; width = height = the extractor's input size. */
  image(k: number): Image;
}

/**
 * Normalised input batch [B, C, S, S] of images [first, first + B): the pretraining views' normalisation
 * (channel replication or luma, /255, ImageNet mean/std or their averages for one channel). Rows past the end
 * of the set stay zero: they pad the last batch and their features are discarded.
 */
export function normalisedBatch(images: ImageSet, first: number, batch: number, channels: 1 | 3, size: number): Float32Array {
  const per = channels * size * size;
  const out = new Float32Array(batch * per);
  for (let b = 0; b < batch && first + b < images.count; b++) {
    const img = withChannels(images.image(first + b), channels);
    if (img.width !== size || img.height !== size) {
      throw new Error(`normalisedBatch: image ${first + b} is ${img.width}×${img.height}, the extractor takes ${size}×${size}`);
    }
    const planar = new Float32Array(per);
    const plane = size * size;
    for (let p = 0; p < plane; p++) for (let c = 0; c < channels; c++) planar[c * plane + p] = img.data[p * channels + c] / 255;
    out.set(normalize({ channels, height: size, width: size, data: planar }).data, b * per);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------- compiled runs

export interface CompiledExtractor {
  readonly graph: ExtractorGraph;
  readonly backend: BackendName;
  /** Upload a model's weights once; the handles are reused by every batch until `free`. */
  bind(weights: EncoderWeights): Promise<E.Either<string, BoundModel>>;
  dispose(): Promise<void>;
}

export interface BoundModel {
  run(batch: Float32Array): Promise<E.Either<string, Record<string, Float32Array>>>;
  free(): void;
}

export interface CompileExtractorOptions {
  readonly backend: BackendName | 'auto';
  readonly log?: (line: string) => void;
  /** Where the config's encoder name is looked up (the built-in variants by default). */
  readonly variants?: Variants;
}

/** Compile an extractor graph for a backend (one warm-up; progress is left to the caller's log). */
export async function compileExtractor(config: Config, spec: ExtractorSpec, options: CompileExtractorOptions): Promise<E.Either<string, CompiledExtractor>> {
  const graph = extractorGraph(config, spec, options.variants);
  if (E.isLeft(graph)) return graph;
  const g = graph.right;
  const exe = await compile(makeGraph(g.outputs), { backend: options.backend, log: options.log });
  if (E.isLeft(exe)) return E.left(`compiling the ${spec.mode} extractor (batch ${spec.batch}, ${spec.size}×${spec.size}) failed: ${exe.left}`);
  const ex: Executable = exe.right;
  return E.right({
    graph: g,
    backend: ex.backend,
    dispose: () => ex.dispose(),
    bind: async (weights) => {
      const handles: Record<string, DeviceHandle> = {};
      const free = (): void => {
        for (const h of Object.values(handles)) ex.device.free(h);
      };
      for (const [name, data] of Object.entries(weightBindings(g, weights))) {
        const h = await ex.upload(name, data);
        if (E.isLeft(h)) {
          free();
          return E.left(`uploading '${name}': ${h.left}`);
        }
        handles[name] = h.right;
      }
      return E.right({
        free,
        // No state: the weights stay bound, every output is read and freed.
        run: async (batch) => {
          const out = await ex.step({}, { ...handles, [IMAGES_INPUT]: batch }, Object.keys(g.outputs));
          return E.isLeft(out) ? out : E.right(out.right.values);
        },
      });
    },
  });
}

export type Progress = (done: number, total: number) => void;

/** Dense features [N, h, w, D] of every image of the set, in batches (the last one padded). */
export async function extractFeatures(model: BoundModel, graph: ExtractorGraph, images: ImageSet, onProgress?: Progress): Promise<E.Either<string, DenseFeatures>> {
  if (graph.spec.mode !== 'eval') throw new Error('extractFeatures needs an eval-mode extractor');
  const { batch, size } = graph.spec;
  const per = graph.side * graph.side * graph.dim;
  const feats = new Float32Array(images.count * per);
  for (let first = 0; first < images.count; first += batch) {
    const out = await model.run(normalisedBatch(images, first, batch, graph.channels, size));
    if (E.isLeft(out)) return E.left(`extracting features of images ${first}..${first + batch - 1}: ${out.left}`);
    const kept = Math.min(batch, images.count - first);
    feats.set(out.right[FEATURES_OUTPUT].subarray(0, kept * per), first * per);
    onProgress?.(first + kept, images.count);
  }
  return E.right({ feats, h: graph.side, w: graph.side, D: graph.dim });
}

export interface Recalibration {
  /** New running statistics by name (`bn1.running_mean`, ...). */
  readonly bn: Record<string, Float32Array>;
  /** Images whose batch statistics were averaged (whole batches only: padding would bias the statistics). */
  readonly imagesUsed: number;
}

/**
 * BN recalibration (§3d.2): train-mode forwards without gradient over whole batches of the set, each BN's
 * running mean and (unbiased) running variance set to the average of its batch statistics, i.e. PyTorch's
 * cumulative average (momentum = None).
 */
export async function recalibrateBn(model: BoundModel, graph: ExtractorGraph, images: ImageSet, onProgress?: Progress): Promise<E.Either<string, Recalibration>> {
  if (graph.spec.mode !== 'recalibrate') throw new Error('recalibrateBn needs a recalibrate-mode extractor');
  const { batch, size } = graph.spec;
  const batches = Math.floor(images.count / batch);
  if (batches < 1) return E.left(`BN recalibration needs at least one whole batch of ${batch} images, got ${images.count}`);
  const sums: Record<string, Float64Array> = {};
  for (let k = 0; k < batches; k++) {
    const out = await model.run(normalisedBatch(images, k * batch, batch, graph.channels, size));
    if (E.isLeft(out)) return E.left(`BN recalibration batch ${k + 1}/${batches}: ${out.left}`);
    for (const name of graph.bnNames) {
      const v = out.right[bnBinding(name)];
      const s = (sums[name] ??= new Float64Array(v.length));
      for (let c = 0; c < v.length; c++) s[c] += v[c];
    }
    onProgress?.((k + 1) * batch, batches * batch);
  }
  const bn: Record<string, Float32Array> = {};
  for (const name of graph.bnNames) bn[name] = Float32Array.from(sums[name], (s) => s / (BN_MOMENTUM * batches));
  return E.right({ bn, imagesUsed: batches * batch });
}

// ---------------------------------------------------------------------------------------------- pixel floors

/** Cell centre in pixels of cell i on a grid of `side` cells over `size` pixels (stride·i + stride/2). */
const cellCentre = (size: number, side: number, i: number): number => Math.floor((size / side) * i + size / side / 2);

/**
 * The `pixels20` floor of §3e generalised to any grid: the grey value (channel mean / 255) of a window×window
 * pixel window centred on each cell centre, zero outside the image. At stride 4 this is exactly the
 * reference's window [4i − 8, 4i + 12); here it is taken on the model's own grid so the floor is scored on
 * the same cells (and, for P5, the same pairs) as the models.
 */
export function pixelWindowFeatures(images: ImageSet, size: number, side: number, window = 20): DenseFeatures {
  const D = window * window;
  const feats = new Float32Array(images.count * side * side * D);
  const half = window / 2;
  for (let n = 0; n < images.count; n++) {
    const img = images.image(n);
    const C = img.channels;
    const grey = new Float32Array(size * size);
    for (let p = 0; p < size * size; p++) {
      let s = 0;
      for (let c = 0; c < C; c++) s += img.data[p * C + c];
      grey[p] = s / C / 255;
    }
    for (let i = 0; i < side; i++) {
      for (let j = 0; j < side; j++) {
        const y0 = cellCentre(size, side, i) - half;
        const x0 = cellCentre(size, side, j) - half;
        const base = ((n * side + i) * side + j) * D;
        for (let dy = 0; dy < window; dy++) {
          const y = y0 + dy;
          if (y < 0 || y >= size) continue;
          for (let dx = 0; dx < window; dx++) {
            const x = x0 + dx;
            if (x >= 0 && x < size) feats[base + dy * window + dx] = grey[y * size + x];
          }
        }
      }
    }
  }
  return { feats, h: side, w: side, D };
}

/** The colour-at-the-cell floor of P5: the image's channels / 255 at each cell centre pixel. */
export function cellColourFeatures(images: ImageSet, size: number, side: number): DenseFeatures {
  const C = images.count > 0 ? images.image(0).channels : 3;
  const feats = new Float32Array(images.count * side * side * C);
  for (let n = 0; n < images.count; n++) {
    const img = images.image(n);
    for (let i = 0; i < side; i++) {
      for (let j = 0; j < side; j++) {
        const p = cellCentre(size, side, i) * size + cellCentre(size, side, j);
        for (let c = 0; c < C; c++) feats[((n * side + i) * side + j) * C + c] = img.data[p * C + c] / 255;
      }
    }
  }
  return { feats, h: side, w: side, D: C };
}

/** Mean over the grid: [N, h, w, D] → [N, D] (P3's global pooling). */
export function meanPool(f: DenseFeatures): Float32Array {
  const cells = f.h * f.w;
  const count = f.feats.length / (cells * f.D);
  const out = new Float32Array(count * f.D);
  for (let n = 0; n < count; n++) {
    const acc = new Float64Array(f.D);
    for (let c = 0; c < cells; c++) {
      const off = (n * cells + c) * f.D;
      for (let d = 0; d < f.D; d++) acc[d] += f.feats[off + d];
    }
    for (let d = 0; d < f.D; d++) out[n * f.D + d] = acc[d] / cells;
  }
  return out;
}

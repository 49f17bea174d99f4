// Multi-crop views for CLoVE (CLOVE_SPEC (a)): 2 global views (T1, T2) and nLocal local views (T3), each with
// the coordinates the matcher needs. View v of a sample is drawn from rng.fork(v), and a sample's rng is
// createRng(seed).fork(epoch, index), so (seed, epoch, index) alone fixes every view.
import { type CoordMode, type CropBox, type ViewCoords, viewCoords } from '../geometry.ts';
import { CLOVE_JITTER, CROP_RATIO, type Interpolation, type Range, type ViewTransform, applyViewTransform, withChannels } from './augment.ts';
import type { Image } from './image.ts';
import { createRng, type Rng } from './rng.ts';

export interface MultiCropConfig {
  readonly globalSize: number;
  readonly localSize: number;
  readonly nLocal: number;
  readonly globalScale: Range;
  readonly localScale: Range;
  /** Model input channels: grey inputs are replicated to 3, colour inputs reduced to luma for 1. */
  readonly channels: 1 | 3;
  /** 'bicubic' (the spec) by default. */
  readonly interpolation?: Interpolation;
  /** 'normalized' (the official code) by default; 'pixel' is the poster's pixel space. */
  readonly coordMode?: CoordMode;
  /** Blur σ range in view pixels; (0.1, 2) by default. */
  readonly blurSigma?: Range;
}

/** The official setting: 2×224 (scale 0.2–1) + 6×96 (scale 0.08–0.3), RGB. */
export const CLOVE_MULTICROP: MultiCropConfig = {
  globalSize: 224, localSize: 96, nLocal: 6, globalScale: [0.2, 1], localScale: [0.08, 0.3], channels: 3,
};

export type TransformName = 'T1' | 'T2' | 'T3';

export interface View {
  readonly kind: 'global' | 'local';
  readonly transform: TransformName;
  /** C×S×S, channels first, ImageNet-normalised. */
  readonly pixels: Float32Array;
  readonly channels: 1 | 3;
  readonly size: number;
  readonly coords: ViewCoords;
  readonly box: CropBox;
  readonly flipped: boolean;
  /** The crop sampler fell back to the clamped centre crop. */
  readonly cropFallback: boolean;
}

/** T1/T2/T3 of the spec table: blur p 1.0 / 0.1 / 0.5, solarize p 0 / 0.2 / 0. */
export function cloveTransforms(cfg: MultiCropConfig): Readonly<Record<TransformName, ViewTransform>> {
  const shared = {
    ratio: CROP_RATIO, interpolation: cfg.interpolation ?? 'bicubic', flipP: 0.5, jitterP: 0.8, jitter: CLOVE_JITTER,
    grayscaleP: 0.2, blurSigma: cfg.blurSigma ?? ([0.1, 2] as const),
  };
  return {
    T1: { ...shared, outputSize: cfg.globalSize, scale: cfg.globalScale, blurP: 1, solarizeP: 0 },
    T2: { ...shared, outputSize: cfg.globalSize, scale: cfg.globalScale, blurP: 0.1, solarizeP: 0.2 },
    T3: { ...shared, outputSize: cfg.localSize, scale: cfg.localScale, blurP: 0.5, solarizeP: 0 },
  };
}

export function makeView(img: Image, rng: Rng, transform: ViewTransform, name: TransformName, coordMode: CoordMode): View {
  const view = applyViewTransform(img, rng, transform);
  return {
    kind: name === 'T3' ? 'local' : 'global',
    transform: name,
    pixels: view.pixels.data,
    channels: view.pixels.channels,
    size: transform.outputSize,
    coords: viewCoords(view.box, img.width, img.height, view.flipped, coordMode),
    box: view.box,
    flipped: view.flipped,
    cropFallback: view.cropFallback,
  };
}

/** [T1 global, T2 global, nLocal × T3 local]; view v uses rng.fork(v). */
export function makeViews(img: Image, rng: Rng, cfg: MultiCropConfig): View[] {
  if (!(Number.isInteger(cfg.nLocal) && cfg.nLocal >= 0 && cfg.globalSize > 0 && cfg.localSize > 0)) {
    throw new Error(`makeViews: bad multi-crop config ${JSON.stringify(cfg)}`);
  }
  const input = withChannels(img, cfg.channels);
  const transforms = cloveTransforms(cfg);
  const names: TransformName[] = ['T1', 'T2', ...Array.from({ length: cfg.nLocal }, () => 'T3' as const)];
  return names.map((name, v) => makeView(input, rng.fork(v), transforms[name], name, cfg.coordMode ?? 'normalized'));
}

/** The views of sample `index` in `epoch` of a run seeded with `seed`. */
export function sampleViews(img: Image, seed: number, epoch: number, index: number, cfg: MultiCropConfig): View[] {
  return makeViews(img, createRng(seed).fork(epoch, index), cfg);
}

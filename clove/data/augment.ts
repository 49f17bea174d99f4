// View augmentations of CLOVE_SPEC (a), on planar float images in [0, 1]. Torchvision semantics throughout;
// the crop sampler records its box so that the matcher can place every view in the original image.
import type { CropBox } from '../geometry.ts';
import type { Image } from './image.ts';
import type { Rng } from './rng.ts';

/** Channels-first float image (C×H×W), values in [0, 1] until normalisation. */
export interface Planar {
  readonly channels: 1 | 3;
  readonly height: number;
  readonly width: number;
  readonly data: Float32Array;
}

export type Range = readonly [number, number];

export const CROP_RATIO: Range = [3 / 4, 4 / 3];
export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;
/** One-channel inputs are normalised with the mean of the three ImageNet constants. */
export const GREY_MEAN = (IMAGENET_MEAN[0] + IMAGENET_MEAN[1] + IMAGENET_MEAN[2]) / 3;
export const GREY_STD = (IMAGENET_STD[0] + IMAGENET_STD[1] + IMAGENET_STD[2]) / 3;

// ------------------------------------------------------------------------------------------ channels

/** 1→3 replicates grey; 3→1 uses PIL's 'L' weights (ITU-R 601-2). */
export function withChannels(img: Image, channels: 1 | 3): Image {
  if (img.channels === channels) return img;
  const pixels = img.width * img.height;
  const data = new Uint8Array(pixels * channels);
  for (let p = 0; p < pixels; p++) {
    if (channels === 3) {
      data[p * 3] = data[p * 3 + 1] = data[p * 3 + 2] = img.data[p];
    } else {
      const r = img.data[p * 3];
      const g = img.data[p * 3 + 1];
      const b = img.data[p * 3 + 2];
      data[p] = Math.round((r * 299 + g * 587 + b * 114) / 1000);
    }
  }
  return { width: img.width, height: img.height, channels, data };
}

// ------------------------------------------------------------------------------------------ crop

export interface CropSample {
  readonly box: CropBox;
  /** True when 10 tries failed and the clamped centre crop was used. */
  readonly fallback: boolean;
}

/** torchvision RandomResizedCrop.get_params: 10 tries of (area scale, log-uniform ratio), then a centre crop. */
export function sampleResizedCrop(rng: Rng, width: number, height: number, scale: Range, ratio: Range = CROP_RATIO): CropSample {
  if (!(scale[0] > 0 && scale[0] <= scale[1] && ratio[0] > 0 && ratio[0] <= ratio[1])) {
    throw new Error(`sampleResizedCrop: bad scale [${scale}] or ratio [${ratio}]`);
  }
  const area = width * height;
  const logRatio: Range = [Math.log(ratio[0]), Math.log(ratio[1])];
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * rng.uniformIn(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniformIn(logRatio[0], logRatio[1]));
    const w = Math.round(Math.sqrt(targetArea * aspect));
    const h = Math.round(Math.sqrt(targetArea / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const i = rng.int(0, height - h + 1);
      const j = rng.int(0, width - w + 1);
      return { box: { i, j, h, w }, fallback: false };
    }
  }
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < ratio[0]) h = Math.round(w / ratio[0]);
  else if (inRatio > ratio[1]) w = Math.round(h * ratio[1]);
  return { box: { i: Math.floor((height - h) / 2), j: Math.floor((width - w) / 2), h, w }, fallback: true };
}

export type Interpolation = 'bicubic' | 'bilinear';

const bicubic = (x: number): number => {
  const a = -0.5; // PIL's bicubic
  const t = Math.abs(x);
  if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
  return 0;
};
const bilinear = (x: number): number => Math.max(0, 1 - Math.abs(x));

interface AxisWeights {
  readonly start: Int32Array;
  readonly count: Int32Array;
  /** Row k holds the weights of output k, `taps` slots each. */
  readonly weights: Float64Array;
  readonly taps: number;
}

/**
 * PIL's resampling weights for one axis: output pixel k is centred at input (k+½)·in/out (pixel-centre
 * convention); when shrinking the kernel is stretched by the scale (anti-aliasing); taps outside the crop are
 * dropped and the rest renormalised.
 */
function axisWeights(inSize: number, outSize: number, interpolation: Interpolation): AxisWeights {
  const filter = interpolation === 'bicubic' ? bicubic : bilinear;
  const support = interpolation === 'bicubic' ? 2 : 1;
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const reach = support * filterScale;
  const taps = Math.ceil(reach) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float64Array(outSize * taps);
  for (let k = 0; k < outSize; k++) {
    const centre = (k + 0.5) * scale;
    const lo = Math.max(Math.trunc(centre - reach + 0.5), 0);
    const hi = Math.min(Math.trunc(centre + reach + 0.5), inSize);
    let total = 0;
    for (let x = lo; x < hi; x++) {
      const w = filter((x - centre + 0.5) / filterScale);
      weights[k * taps + (x - lo)] = w;
      total += w;
    }
    for (let x = lo; x < hi; x++) weights[k * taps + (x - lo)] /= total === 0 ? 1 : total;
    start[k] = lo;
    count[k] = hi - lo;
  }
  return { start, count, weights, taps };
}

/** Crop `box` out of `img` and resize it to size×size (separable PIL-style filter), as floats in [0, 1]. */
export function resizedCrop(img: Image, box: CropBox, size: number, interpolation: Interpolation = 'bicubic'): Planar {
  if (!(box.i >= 0 && box.j >= 0 && box.h > 0 && box.w > 0 && box.i + box.h <= img.height && box.j + box.w <= img.width)) {
    throw new Error(`resizedCrop: box ${JSON.stringify(box)} is not inside the ${img.width}×${img.height} image`);
  }
  const channels = img.channels;
  const xs = axisWeights(box.w, size, interpolation);
  const ys = axisWeights(box.h, size, interpolation);
  // Horizontal pass over the crop's rows, then vertical pass: C × box.h × size, then C × size × size.
  const wide = new Float64Array(channels * box.h * size);
  for (let y = 0; y < box.h; y++) {
    const rowBase = ((box.i + y) * img.width + box.j) * channels;
    for (let u = 0; u < size; u++) {
      const lo = xs.start[u];
      for (let c = 0; c < channels; c++) {
        let acc = 0;
        for (let t = 0; t < xs.count[u]; t++) acc += xs.weights[u * xs.taps + t] * img.data[rowBase + (lo + t) * channels + c];
        wide[(c * box.h + y) * size + u] = acc;
      }
    }
  }
  const data = new Float32Array(channels * size * size);
  for (let c = 0; c < channels; c++) {
    for (let v = 0; v < size; v++) {
      const lo = ys.start[v];
      for (let u = 0; u < size; u++) {
        let acc = 0;
        for (let t = 0; t < ys.count[v]; t++) acc += ys.weights[v * ys.taps + t] * wide[(c * box.h + lo + t) * size + u];
        data[(c * size + v) * size + u] = Math.min(1, Math.max(0, acc / 255));
      }
    }
  }
  return { channels, height: size, width: size, data };
}

export function flipHorizontal(img: Planar): Planar {
  const data = new Float32Array(img.data.length);
  for (let c = 0; c < img.channels; c++) {
    for (let y = 0; y < img.height; y++) {
      const row = (c * img.height + y) * img.width;
      for (let x = 0; x < img.width; x++) data[row + x] = img.data[row + img.width - 1 - x];
    }
  }
  return { ...img, data };
}

// ------------------------------------------------------------------------------------------ colour

const clamp01 = (v: number): number => Math.min(1, Math.max(0, v));
const planeSize = (img: Planar): number => img.height * img.width;

/** torchvision rgb_to_grayscale weights (0.2989, 0.587, 0.114); the image itself when it is grey. */
function greyPlane(img: Planar): Float64Array {
  const n = planeSize(img);
  const grey = new Float64Array(n);
  for (let p = 0; p < n; p++) {
    grey[p] = img.channels === 1 ? img.data[p] : 0.2989 * img.data[p] + 0.587 * img.data[n + p] + 0.114 * img.data[2 * n + p];
  }
  return grey;
}

const mapValues = (img: Planar, f: (v: number, index: number) => number): Planar =>
  ({ ...img, data: img.data.map((v, k) => f(v, k)) });

export function adjustBrightness(img: Planar, factor: number): Planar {
  return mapValues(img, (v) => clamp01(v * factor));
}

/** Blend with the mean grey level of the whole image. */
export function adjustContrast(img: Planar, factor: number): Planar {
  const grey = greyPlane(img);
  let mean = 0;
  for (const v of grey) mean += v;
  mean /= grey.length;
  return mapValues(img, (v) => clamp01(factor * v + (1 - factor) * mean));
}

/** Blend with the per-pixel grey image; a no-op on one channel, as in torchvision. */
export function adjustSaturation(img: Planar, factor: number): Planar {
  if (img.channels === 1) return img;
  const grey = greyPlane(img);
  const n = planeSize(img);
  return mapValues(img, (v, k) => clamp01(factor * v + (1 - factor) * grey[k % n]));
}

export function rgbToHsv(r: number, g: number, b: number): [number, number, number] {
  const max = Math.max(r, g, b);
  const min = Math.min(r, g, b);
  const chroma = max - min;
  const s = max === min ? 0 : chroma / max;
  if (chroma === 0) return [0, s, max];
  const rc = (max - r) / chroma;
  const gc = (max - g) / chroma;
  const bc = (max - b) / chroma;
  const h = max === r ? bc - gc : max === g ? 2 + rc - bc : 4 + gc - rc;
  return [(((h / 6) % 1) + 1) % 1, s, max];
}

export function hsvToRgb(h: number, s: number, v: number): [number, number, number] {
  const sector = Math.floor(h * 6);
  const f = h * 6 - sector;
  const p = clamp01(v * (1 - s));
  const q = clamp01(v * (1 - s * f));
  const t = clamp01(v * (1 - s * (1 - f)));
  switch (((sector % 6) + 6) % 6) {
    case 0: return [v, t, p];
    case 1: return [q, v, p];
    case 2: return [p, v, t];
    case 3: return [p, q, v];
    case 4: return [t, p, v];
    default: return [v, p, q];
  }
}

/** Rotate hue by `shift` turns (in [−0.5, 0.5]); a no-op on one channel, as in torchvision. */
export function adjustHue(img: Planar, shift: number): Planar {
  if (img.channels === 1) return img;
  const n = planeSize(img);
  const data = new Float32Array(img.data.length);
  for (let p = 0; p < n; p++) {
    const [h, s, v] = rgbToHsv(img.data[p], img.data[n + p], img.data[2 * n + p]);
    const [r, g, b] = hsvToRgb((((h + shift) % 1) + 1) % 1, s, v);
    data[p] = r;
    data[n + p] = g;
    data[2 * n + p] = b;
  }
  return { ...img, data };
}

export interface JitterStrength {
  readonly brightness: number;
  readonly contrast: number;
  readonly saturation: number;
  readonly hue: number;
}

export const CLOVE_JITTER: JitterStrength = { brightness: 0.4, contrast: 0.4, saturation: 0.2, hue: 0.1 };

/** torchvision ColorJitter: factors from [max(0, 1−s), 1+s] (hue from [−h, h]) applied in a random order. */
export function colorJitter(img: Planar, rng: Rng, strength: JitterStrength): Planar {
  const order = [0, 1, 2, 3];
  for (let k = order.length - 1; k > 0; k--) {
    const other = rng.int(0, k + 1);
    [order[k], order[other]] = [order[other], order[k]];
  }
  const factor = (s: number): number => rng.uniformIn(Math.max(0, 1 - s), 1 + s);
  const brightness = factor(strength.brightness);
  const contrast = factor(strength.contrast);
  const saturation = factor(strength.saturation);
  const hue = rng.uniformIn(-strength.hue, strength.hue);
  return order.reduce((acc, op) => {
    if (op === 0) return adjustBrightness(acc, brightness);
    if (op === 1) return adjustContrast(acc, contrast);
    if (op === 2) return adjustSaturation(acc, saturation);
    return adjustHue(acc, hue);
  }, img);
}

/** Grey in every channel (channel count kept). */
export function grayscale(img: Planar): Planar {
  if (img.channels === 1) return img;
  const grey = greyPlane(img);
  const n = planeSize(img);
  return mapValues(img, (_, k) => grey[k % n]);
}

/**
 * Gaussian blur with standard deviation `sigma` pixels (PIL's GaussianBlur radius), a sampled kernel of
 * half-width ceil(3σ), edges extended. PIL approximates the same Gaussian with repeated box blurs.
 */
export function gaussianBlur(img: Planar, sigma: number): Planar {
  const half = Math.max(1, Math.ceil(3 * sigma));
  const kernel = new Float64Array(2 * half + 1);
  let total = 0;
  for (let t = -half; t <= half; t++) total += kernel[t + half] = Math.exp(-(t * t) / (2 * sigma * sigma));
  for (let t = 0; t < kernel.length; t++) kernel[t] /= total;
  const { width, height, channels } = img;
  const pass = (src: Float32Array, horizontal: boolean): Float32Array => {
    const out = new Float32Array(src.length);
    for (let c = 0; c < channels; c++) {
      for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
          let acc = 0;
          for (let t = -half; t <= half; t++) {
            const sx = horizontal ? Math.min(width - 1, Math.max(0, x + t)) : x;
            const sy = horizontal ? y : Math.min(height - 1, Math.max(0, y + t));
            acc += kernel[t + half] * src[(c * height + sy) * width + sx];
          }
          out[(c * height + y) * width + x] = acc;
        }
      }
    }
    return out;
  };
  return { ...img, data: pass(pass(img.data, true), false) };
}

/** PIL ImageOps.solarize(threshold 128): values at or above 128/255 are inverted. */
export function solarize(img: Planar, threshold = 128 / 255): Planar {
  return mapValues(img, (v) => (v >= threshold ? 1 - v : v));
}

/** (v − mean_c) / std_c with ImageNet constants (their averages for one channel). */
export function normalize(img: Planar): Planar {
  const n = planeSize(img);
  return mapValues(img, (v, k) => {
    const c = Math.floor(k / n);
    return img.channels === 1 ? (v - GREY_MEAN) / GREY_STD : (v - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
  });
}

// ------------------------------------------------------------------------------------------ one view

/** One of the spec's transforms T1/T2/T3 (probabilities per view). */
export interface ViewTransform {
  readonly outputSize: number;
  readonly scale: Range;
  readonly ratio: Range;
  readonly interpolation: Interpolation;
  readonly flipP: number;
  readonly jitterP: number;
  readonly jitter: JitterStrength;
  readonly grayscaleP: number;
  readonly blurP: number;
  readonly blurSigma: Range;
  readonly solarizeP: number;
}

export interface AugmentedView {
  /** Normalised C×S×S. */
  readonly pixels: Planar;
  readonly box: CropBox;
  readonly flipped: boolean;
  readonly cropFallback: boolean;
}

/**
 * Crop (recording the box) → flip → ColorJitter → RandomGrayscale → blur → solarize → normalise, the order of
 * the official BYOL-style transforms.
 */
export function applyViewTransform(img: Image, rng: Rng, t: ViewTransform): AugmentedView {
  const crop = sampleResizedCrop(rng, img.width, img.height, t.scale, t.ratio);
  let pixels = resizedCrop(img, crop.box, t.outputSize, t.interpolation);
  const flipped = rng.uniform() < t.flipP;
  if (flipped) pixels = flipHorizontal(pixels);
  if (rng.uniform() < t.jitterP) pixels = colorJitter(pixels, rng, t.jitter);
  if (rng.uniform() < t.grayscaleP) pixels = grayscale(pixels);
  if (rng.uniform() < t.blurP) pixels = gaussianBlur(pixels, rng.uniformIn(t.blurSigma[0], t.blurSigma[1]));
  if (rng.uniform() < t.solarizeP) pixels = solarize(pixels);
  return { pixels: normalize(pixels), box: crop.box, flipped, cropFallback: crop.fallback };
}

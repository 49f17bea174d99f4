// Pictures for humans: pure image composition (RGB, HWC, 8-bit) of augmented views, their cell grids, the
// matched cell pairs and one cell's attention, plus PNG encoding. No model code: callers pass plain arrays.
// Everything but `writePng` is pure: each drawing function returns a fresh image and never changes its inputs.
import pngjs from 'pngjs';
import * as E from 'fp-ts/lib/Either.js';
import { writeFileAtomic } from './atomic.ts';

const { PNG } = pngjs;

export interface RgbImage {
  readonly width: number;
  readonly height: number;
  readonly channels: 3;
  /** Row-major HWC bytes, length width·height·3. */
  readonly data: Uint8Array;
}

export type Rgb = readonly [number, number, number];

/** A feature grid over a square view: `rows × cols` cells, flattened row-major (index = r·cols + c). */
export interface CellGrid {
  readonly rows: number;
  readonly cols: number;
}

const BACKGROUND: Rgb = [24, 24, 24];
const GRID_COLOUR: Rgb = [255, 255, 255];
/** Grid lines are blended, not opaque, so the view stays readable under them. */
const GRID_OPACITY = 0.45;
const CHOSEN_CELL_COLOUR: Rgb = [0, 255, 64];
/** Default width of one displayed view: two side by side make a match picture ≥ 512 px wide. */
const VIEW_DISPLAY_WIDTH = 256;
/** Default width of an attention picture (one view). */
const ATTENTION_DISPLAY_WIDTH = 512;

// ---------------------------------------------------------------------------------------------------------
// Basic images (the mutating helpers below only ever touch images created inside this module's functions)

export function blankImage(width: number, height: number, fill: Rgb = BACKGROUND): RgbImage {
  if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width < 1 || height < 1) {
    throw new Error(`blankImage: width and height must be positive integers, got ${width}×${height}`);
  }
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i += 3) data.set(fill, i);
  return { width, height, channels: 3, data };
}

export function pixelAt(img: RgbImage, x: number, y: number): Rgb {
  const i = (y * img.width + x) * 3;
  return [img.data[i]!, img.data[i + 1]!, img.data[i + 2]!];
}

function setPixel(img: RgbImage, x: number, y: number, colour: Rgb): void {
  if (x < 0 || y < 0 || x >= img.width || y >= img.height) return;
  img.data.set(colour, (y * img.width + x) * 3);
}

function blendPixel(img: RgbImage, x: number, y: number, colour: Rgb, opacity: number): void {
  if (x < 0 || y < 0 || x >= img.width || y >= img.height) return;
  const i = (y * img.width + x) * 3;
  for (let c = 0; c < 3; c++) img.data[i + c] = Math.round((1 - opacity) * img.data[i + c]! + opacity * colour[c]!);
}

function paste(target: RgbImage, source: RgbImage, left: number, top: number): void {
  for (let y = 0; y < source.height; y++) {
    const from = y * source.width * 3;
    target.data.set(source.data.subarray(from, from + source.width * 3), ((top + y) * target.width + left) * 3);
  }
}

/** Nearest-neighbour upscaling by an integer factor, so each view pixel becomes a visible factor×factor block. */
export function upscale(img: RgbImage, factor: number): RgbImage {
  if (!Number.isSafeInteger(factor) || factor < 1) throw new Error(`upscale: factor must be a positive integer, got ${factor}`);
  const out = blankImage(img.width * factor, img.height * factor);
  for (let y = 0; y < out.height; y++) {
    for (let x = 0; x < out.width; x++) {
      const i = (Math.floor(y / factor) * img.width + Math.floor(x / factor)) * 3;
      out.data.set(img.data.subarray(i, i + 3), (y * out.width + x) * 3);
    }
  }
  return out;
}

/** Images in a row (or column), separated by `gap` pixels of background, aligned top (or left). */
export function stackImages(images: readonly RgbImage[], direction: 'horizontal' | 'vertical', gap = 4): RgbImage {
  if (images.length === 0) throw new Error('stackImages: needs at least one image');
  const horizontal = direction === 'horizontal';
  const along = images.reduce((sum, img) => sum + (horizontal ? img.width : img.height), 0) + gap * (images.length - 1);
  const across = Math.max(...images.map((img) => (horizontal ? img.height : img.width)));
  const out = horizontal ? blankImage(along, across) : blankImage(across, along);
  let offset = 0;
  for (const img of images) {
    if (horizontal) paste(out, img, offset, 0);
    else paste(out, img, 0, offset);
    offset += (horizontal ? img.width : img.height) + gap;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Views

/**
 * Un-normalises a view (CHW floats after `(x − mean) / std`) back to displayable RGB bytes.
 * Grayscale views (channels = 1) are replicated into the three colour channels.
 */
export function viewToRgb(pixels: Float32Array, channels: 1 | 3, size: number, mean: readonly number[], std: readonly number[]): RgbImage {
  if (pixels.length !== channels * size * size) {
    throw new Error(`viewToRgb: ${pixels.length} values do not form a ${channels}×${size}×${size} view`);
  }
  if (mean.length !== channels || std.length !== channels) {
    throw new Error(`viewToRgb: mean (${mean.length}) and std (${std.length}) need one value per channel (${channels})`);
  }
  const out = blankImage(size, size);
  const plane = size * size;
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) {
      const source = channels === 1 ? 0 : c;
      const value = (pixels[source * plane + p]! * std[source]! + mean[source]!) * 255;
      out.data[p * 3 + c] = Number.isFinite(value) ? Math.min(255, Math.max(0, Math.round(value))) : 0;
    }
  }
  return out;
}

function checkGrid(grid: CellGrid, what: string): void {
  if (!Number.isSafeInteger(grid.rows) || !Number.isSafeInteger(grid.cols) || grid.rows < 1 || grid.cols < 1) {
    throw new Error(`${what}: grid must have positive integer rows and cols, got ${grid.rows}×${grid.cols}`);
  }
}

/**
 * The pixel at the centre of a cell in an image of `width × height` split into the grid: cell (r, c) covers
 * [c·W/cols, (c+1)·W/cols) horizontally, the same convention as the cell centres of the matching geometry.
 */
export function cellCentre(grid: CellGrid, cell: number, width: number, height: number): [number, number] {
  const r = Math.floor(cell / grid.cols);
  const c = cell % grid.cols;
  return [Math.floor(((c + 0.5) * width) / grid.cols), Math.floor(((r + 0.5) * height) / grid.rows)];
}

/** The pixel rectangle [x0, x1) × [y0, y1) of a cell. */
export function cellBounds(grid: CellGrid, cell: number, width: number, height: number): { x0: number; x1: number; y0: number; y1: number } {
  const r = Math.floor(cell / grid.cols);
  const c = cell % grid.cols;
  return {
    x0: Math.round((c * width) / grid.cols),
    x1: Math.round(((c + 1) * width) / grid.cols),
    y0: Math.round((r * height) / grid.rows),
    y1: Math.round(((r + 1) * height) / grid.rows),
  };
}

/** Draws the cell borders (outer frame included) of `grid` over the image region at (left, top). */
function drawGrid(img: RgbImage, grid: CellGrid, left: number, top: number, width: number, height: number): void {
  const xs = new Set<number>([width - 1]);
  const ys = new Set<number>([height - 1]);
  for (let c = 0; c < grid.cols; c++) xs.add(Math.round((c * width) / grid.cols));
  for (let r = 0; r < grid.rows; r++) ys.add(Math.round((r * height) / grid.rows));
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (xs.has(x) || ys.has(y)) blendPixel(img, left + x, top + y, GRID_COLOUR, GRID_OPACITY);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Matches

/** Bresenham's line, both end points included. */
export function linePixels(x0: number, y0: number, x1: number, y1: number): Array<[number, number]> {
  const points: Array<[number, number]> = [];
  const dx = Math.abs(x1 - x0);
  const dy = -Math.abs(y1 - y0);
  const sx = x0 < x1 ? 1 : -1;
  const sy = y0 < y1 ? 1 : -1;
  let err = dx + dy;
  let x = x0;
  let y = y0;
  for (;;) {
    points.push([x, y]);
    if (x === x1 && y === y1) return points;
    const e2 = 2 * err;
    if (e2 >= dy) {
      err += dy;
      x += sx;
    }
    if (e2 <= dx) {
      err += dx;
      y += sy;
    }
  }
}

function hsvToRgb(h: number, s: number, v: number): Rgb {
  const f = (n: number) => {
    const k = (n + h * 6) % 6;
    return Math.round(255 * (v - v * s * Math.max(0, Math.min(k, 4 - k, 1))));
  };
  return [f(5), f(3), f(1)];
}

/**
 * The colour of the k-th match line: hues stepped by the golden ratio, so consecutive lines differ strongly and
 * any few dozen are distinct; brightness alternates so neighbours in hue still differ.
 */
export function matchColour(k: number): Rgb {
  const hue = (k * 0.6180339887498949) % 1;
  return hsvToRgb(hue, 1, k % 2 === 0 ? 1 : 0.7);
}

export interface MatchDrawing {
  /** Integer nearest-neighbour up-scaling of both views (default: enough for the larger view to be ≥ 256 px wide). */
  readonly scale?: number;
  /** Background pixels between the two views. */
  readonly gap?: number;
}

/** The layout drawMatches uses; exported so callers (and tests) can find the cell centres in the output. */
export function matchLayout(viewA: RgbImage, viewB: RgbImage, options: MatchDrawing = {}): { scale: number; gap: number; offsetB: number } {
  const scale = options.scale ?? Math.max(1, Math.ceil(VIEW_DISPLAY_WIDTH / Math.max(viewA.width, viewB.width)));
  const gap = options.gap ?? 8;
  return { scale, gap, offsetB: viewA.width * scale + gap };
}

/**
 * Two views side by side (scaled up), each with its cell grid, and one coloured line per matched pair (i, j)
 * from the centre of cell i of A to the centre of cell j of B, with a small dot at each end.
 */
export function drawMatches(
  viewA: RgbImage,
  viewB: RgbImage,
  gridA: CellGrid,
  gridB: CellGrid,
  pairs: ReadonlyArray<readonly [number, number]>,
  options: MatchDrawing = {},
): RgbImage {
  checkGrid(gridA, 'drawMatches (view A)');
  checkGrid(gridB, 'drawMatches (view B)');
  const { scale, offsetB } = matchLayout(viewA, viewB, options);
  const a = upscale(viewA, scale);
  const b = upscale(viewB, scale);
  const out = stackImages([a, b], 'horizontal', offsetB - a.width);
  drawGrid(out, gridA, 0, 0, a.width, a.height);
  drawGrid(out, gridB, offsetB, 0, b.width, b.height);
  pairs.forEach(([i, j], k) => {
    if (!Number.isSafeInteger(i) || i < 0 || i >= gridA.rows * gridA.cols || !Number.isSafeInteger(j) || j < 0 || j >= gridB.rows * gridB.cols) {
      throw new Error(`drawMatches: pair ${k} (${i}, ${j}) is outside the grids (${gridA.rows}×${gridA.cols}, ${gridB.rows}×${gridB.cols})`);
    }
    const colour = matchColour(k);
    const [xa, ya] = cellCentre(gridA, i, a.width, a.height);
    const [xb, yb] = cellCentre(gridB, j, b.width, b.height);
    // Two pixels thick, so a line stays visible at the display size; a 5×5 dot at each end.
    for (const [x, y] of linePixels(xa, ya, offsetB + xb, yb)) for (const [dx, dy] of [[0, 0], [1, 0], [0, 1]] as const) setPixel(out, x + dx, y + dy, colour);
    for (const [cx, cy] of [[xa, ya], [offsetB + xb, yb]] as const) {
      for (let dy = -2; dy <= 2; dy++) for (let dx = -2; dx <= 2; dx++) setPixel(out, cx + dx, cy + dy, colour);
    }
  });
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Attention

/** Colour stops of a perceptually ordered heat map (dark → bright), like matplotlib's "inferno". */
const HEAT_STOPS: readonly Rgb[] = [
  [0, 0, 4],
  [87, 16, 110],
  [188, 55, 84],
  [249, 142, 9],
  [252, 255, 164],
];

/** Heat colour for t in [0, 1]; brightness increases with t. */
export function heatColour(t: number): Rgb {
  const clamped = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0));
  const position = clamped * (HEAT_STOPS.length - 1);
  const lower = Math.min(HEAT_STOPS.length - 2, Math.floor(position));
  const f = position - lower;
  const from = HEAT_STOPS[lower]!;
  const to = HEAT_STOPS[lower + 1]!;
  return [0, 1, 2].map((c) => Math.round(from[c]! + f * (to[c]! - from[c]!))) as unknown as Rgb;
}

export interface AttentionDrawing {
  readonly scale?: number;
  /** Opacity of the heat map over the view, in [0, 1]. */
  readonly opacity?: number;
}

/**
 * Overlays one query cell's attention over the view's cells as a heat map (weights rescaled to their own
 * min..max so the pattern is visible whatever its absolute scale) and outlines the query cell.
 */
export function drawAttention(view: RgbImage, grid: CellGrid, cell: number, weights: Float32Array, options: AttentionDrawing = {}): RgbImage {
  checkGrid(grid, 'drawAttention');
  const cells = grid.rows * grid.cols;
  if (weights.length !== cells) throw new Error(`drawAttention: ${weights.length} weights for a ${grid.rows}×${grid.cols} grid (${cells} cells)`);
  if (!Number.isSafeInteger(cell) || cell < 0 || cell >= cells) throw new Error(`drawAttention: cell ${cell} is outside the ${grid.rows}×${grid.cols} grid`);
  const opacity = options.opacity ?? 0.6;
  const scale = options.scale ?? Math.max(1, Math.ceil(ATTENTION_DISPLAY_WIDTH / view.width));
  const out = upscale(view, scale);
  const finite = Array.from(weights).filter(Number.isFinite);
  const lo = finite.length > 0 ? Math.min(...finite) : 0;
  const hi = finite.length > 0 ? Math.max(...finite) : 0;
  for (let k = 0; k < cells; k++) {
    const t = hi > lo ? (weights[k]! - lo) / (hi - lo) : 0.5;
    const colour = heatColour(t);
    const { x0, x1, y0, y1 } = cellBounds(grid, k, out.width, out.height);
    for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) blendPixel(out, x, y, colour, opacity);
  }
  drawGrid(out, grid, 0, 0, out.width, out.height);
  // A two-pixel frame just inside the chosen cell, drawn last so nothing covers it.
  const { x0, x1, y0, y1 } = cellBounds(grid, cell, out.width, out.height);
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      if (x - x0 < 2 || x1 - 1 - x < 2 || y - y0 < 2 || y1 - 1 - y < 2) setPixel(out, x, y, CHOSEN_CELL_COLOUR);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Curves

/** 3×5 glyphs (rows top to bottom, 3 bits each, MSB left) for the characters axis labels need. */
const GLYPHS: Readonly<Record<string, readonly number[]>> = {
  '0': [7, 5, 5, 5, 7], '1': [2, 6, 2, 2, 7], '2': [7, 1, 7, 4, 7], '3': [7, 1, 7, 1, 7], '4': [5, 5, 7, 1, 1],
  '5': [7, 4, 7, 1, 7], '6': [7, 4, 7, 5, 7], '7': [7, 1, 1, 2, 2], '8': [7, 5, 7, 5, 7], '9': [7, 5, 7, 1, 7],
  '.': [0, 0, 0, 0, 2], '-': [0, 0, 7, 0, 0], '+': [0, 2, 7, 2, 0], ' ': [0, 0, 0, 0, 0], '(': [1, 2, 2, 2, 1], ')': [4, 2, 2, 2, 4],
  '/': [1, 1, 2, 4, 4], ',': [0, 0, 0, 2, 4], ':': [0, 2, 0, 2, 0],
  a: [0, 6, 3, 5, 7], b: [4, 4, 6, 5, 6], c: [0, 3, 4, 4, 3], d: [1, 1, 3, 5, 3], e: [0, 2, 7, 4, 3], f: [1, 2, 7, 2, 2],
  g: [3, 5, 3, 1, 6], h: [4, 4, 6, 5, 5], i: [2, 0, 2, 2, 2], j: [1, 0, 1, 5, 2], k: [4, 5, 6, 5, 5], l: [6, 2, 2, 2, 7],
  m: [0, 7, 7, 5, 5], n: [0, 6, 5, 5, 5], o: [0, 2, 5, 5, 2], p: [0, 6, 5, 6, 4], q: [0, 3, 5, 3, 1], r: [0, 3, 4, 4, 4],
  s: [0, 3, 6, 1, 6], t: [2, 7, 2, 2, 1], u: [0, 5, 5, 5, 3], v: [0, 5, 5, 5, 2], w: [0, 5, 5, 7, 7], x: [0, 5, 2, 2, 5],
  y: [5, 5, 3, 1, 6], z: [0, 7, 1, 4, 7],
};
const TEXT_COLOUR: Rgb = [220, 220, 220];
const AXIS_COLOUR: Rgb = [90, 90, 90];

/** Writes `text` with its top-left corner at (left, top), each glyph pixel a `size`×`size` square. */
function drawText(img: RgbImage, text: string, left: number, top: number, colour: Rgb = TEXT_COLOUR, size = 2): void {
  [...text.toLowerCase()].forEach((ch, k) => {
    const rows = GLYPHS[ch] ?? GLYPHS[' ']!;
    rows.forEach((bits, r) => {
      for (let c = 0; c < 3; c++) {
        if ((bits >> (2 - c)) & 1) for (let dy = 0; dy < size; dy++) for (let dx = 0; dx < size; dx++) setPixel(img, left + k * 4 * size + c * size + dx, top + r * size + dy, colour);
      }
    });
  });
}

/** A compact label for an axis value: 3 significant digits, exponent notation outside [1e-3, 1e5). */
export function axisLabel(v: number): string {
  if (v === 0 || !Number.isFinite(v)) return String(v === 0 ? 0 : v);
  const a = Math.abs(v);
  return a >= 1e5 || a < 1e-3 ? v.toExponential(1) : String(Number(v.toPrecision(3)));
}

export interface Curve {
  readonly title: string;
  /** Points in step order. */
  readonly points: ReadonlyArray<readonly [number, number]>;
}

/**
 * One panel per curve, stacked: the raw values in a dim colour and their running mean over a window of about a
 * twentieth of the points in a bright one (per-step values jump a lot), the value range and the step range
 * written on the axes. Non-finite points are left out.
 */
export function drawCurves(curves: readonly Curve[], width = 640, panelHeight = 200): RgbImage {
  const margin = { left: 64, right: 16, top: 22, bottom: 20 };
  const panels = curves.map((curve, n) => {
    const img = blankImage(width, panelHeight);
    const points = curve.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    drawText(img, curve.title, margin.left, 6);
    const [x0, x1, y0, y1] = [margin.left, width - margin.right, margin.top, panelHeight - margin.bottom];
    for (let x = x0; x <= x1; x++) setPixel(img, x, y1, AXIS_COLOUR);
    for (let y = y0; y <= y1; y++) setPixel(img, x0, y, AXIS_COLOUR);
    if (points.length === 0) return img;
    const xs = points.map((p) => p[0]);
    const ys = points.map((p) => p[1]);
    const [xMin, xMax] = [Math.min(...xs), Math.max(...xs)];
    const [yMin, yMax] = [Math.min(...ys), Math.max(...ys)];
    const px = (x: number) => Math.round(x0 + (xMax > xMin ? ((x - xMin) / (xMax - xMin)) * (x1 - x0) : (x1 - x0) / 2));
    const py = (y: number) => Math.round(y1 - (yMax > yMin ? ((y - yMin) / (yMax - yMin)) * (y1 - y0) : (y1 - y0) / 2));
    drawText(img, axisLabel(yMax), 4, y0);
    drawText(img, axisLabel(yMin), 4, y1 - 10);
    drawText(img, axisLabel(xMin), x0, y1 + 6);
    const last = axisLabel(xMax);
    drawText(img, last, x1 - last.length * 8, y1 + 6);
    const window = Math.max(1, Math.round(points.length / 20));
    const smooth = ys.map((_y, k) => {
      const from = Math.max(0, k - window + 1);
      return ys.slice(from, k + 1).reduce((a, c) => a + c, 0) / (k + 1 - from);
    });
    const hue = matchColour(n);
    const dim: Rgb = [hue[0] >> 2, hue[1] >> 2, hue[2] >> 2];
    for (const [line, colour] of [[ys, dim], [smooth, hue]] as const) {
      for (let k = 1; k < points.length; k++) {
        for (const [x, y] of linePixels(px(xs[k - 1]!), py(line[k - 1]!), px(xs[k]!), py(line[k]!))) setPixel(img, x, y, colour);
      }
      if (points.length === 1) setPixel(img, px(xs[0]!), py(line[0]!), colour);
    }
    return img;
  });
  return stackImages(panels, 'vertical', 0);
}

// ---------------------------------------------------------------------------------------------------------
// PNG

/** Encodes an image as an 8-bit RGB PNG. */
export function encodePng(img: RgbImage): Uint8Array {
  if (img.data.length !== img.width * img.height * 3) {
    throw new Error(`encodePng: ${img.data.length} bytes do not form a ${img.width}×${img.height} RGB image`);
  }
  const png = new PNG({ width: img.width, height: img.height });
  for (let p = 0, q = 0; p < img.data.length; p += 3, q += 4) {
    png.data[q] = img.data[p]!;
    png.data[q + 1] = img.data[p + 1]!;
    png.data[q + 2] = img.data[p + 2]!;
    png.data[q + 3] = 255;
  }
  return PNG.sync.write(png, { colorType: 2 });
}

/** Decodes a PNG into RGB (alpha dropped); a corrupt file is a Left. */
export function decodePng(bytes: Uint8Array): E.Either<string, RgbImage> {
  try {
    const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    const out = blankImage(png.width, png.height);
    for (let p = 0, q = 0; p < out.data.length; p += 3, q += 4) {
      out.data[p] = png.data[q]!;
      out.data[p + 1] = png.data[q + 1]!;
      out.data[p + 2] = png.data[q + 2]!;
    }
    return E.right(out);
  } catch (error) {
    return E.left(`not a readable PNG: ${(error as Error).message}`);
  }
}

/** Writes an image as a PNG file atomically (a viewer never sees half a picture). */
export function writePng(path: string, img: RgbImage): E.Either<string, void> {
  return writeFileAtomic(path, encodePng(img));
}

// The CLoVE/PixPro cell matcher (CLOVE_SPEC §b): view coordinates from crop boxes, feature-cell centres,
// normalised centre distances and the positive mask the loss consumes. Pure functions on numbers.

/** A crop in pixels of the original image: top row i, left column j, height h, width w. */
export interface CropBox {
  readonly i: number;
  readonly j: number;
  readonly h: number;
  readonly w: number;
}

/**
 * A view's extent as the centres of its first and last pixels. In 'normalized' mode x is divided by W−1 and
 * y by H−1 (the official code); in 'pixel' mode they are raw pixel indices. A flipped view has x0 > x1.
 */
export interface ViewCoords {
  readonly x0: number;
  readonly y0: number;
  readonly x1: number;
  readonly y1: number;
}

export type CoordMode = 'normalized' | 'pixel';

/** Feature grid as [rows, cols]. */
export type Grid = readonly [number, number];

export function viewCoords(box: CropBox, imageW: number, imageH: number, flipped: boolean, mode: CoordMode): ViewCoords {
  if (mode === 'normalized' && (imageW < 2 || imageH < 2)) {
    throw new Error(`viewCoords: normalized mode divides by W−1 and H−1, so the image must be at least 2×2, got ${imageW}×${imageH}`);
  }
  const sx = mode === 'normalized' ? imageW - 1 : 1;
  const sy = mode === 'normalized' ? imageH - 1 : 1;
  const left = box.j / sx;
  const right = (box.j + box.w - 1) / sx;
  return {
    x0: flipped ? right : left,
    y0: box.i / sy,
    x1: flipped ? left : right,
    y1: (box.i + box.h - 1) / sy,
  };
}

function checkGrid(grid: Grid, what: string): void {
  const [rows, cols] = grid;
  if (!(Number.isInteger(rows) && rows > 0 && Number.isInteger(cols) && cols > 0)) {
    throw new Error(`${what}: grid must be positive integers [rows, cols], got [${rows}, ${cols}]`);
  }
}

export interface CellCenters {
  /** Length rows·cols, row-major (index r·cols + c). */
  readonly x: Float64Array;
  readonly y: Float64Array;
}

/** Centres cx = x0 + (c+½)·binW, cy = y0 + (r+½)·binH; binW is negative for a flipped view. */
export function cellCenters(c: ViewCoords, grid: Grid): CellCenters {
  checkGrid(grid, 'cellCenters');
  const [rows, cols] = grid;
  const binW = (c.x1 - c.x0) / cols;
  const binH = (c.y1 - c.y0) / rows;
  const x = new Float64Array(rows * cols);
  const y = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let col = 0; col < cols; col++) {
      x[r * cols + col] = c.x0 + (col + 0.5) * binW;
      y[r * cols + col] = c.y0 + (r + 0.5) * binH;
    }
  }
  return { x, y };
}

/** Length of one cell's diagonal, sqrt(binW² + binH²). */
export function binDiagonal(c: ViewCoords, grid: Grid): number {
  checkGrid(grid, 'binDiagonal');
  return Math.hypot((c.x1 - c.x0) / grid[1], (c.y1 - c.y0) / grid[0]);
}

/**
 * d[i·Lb + j] = ‖centre_i(a) − centre_j(b)‖ / max(diagA, diagB). Two one-pixel crops give 0/0 = NaN, which
 * never passes `d < tPos`, as in the official code.
 */
export function cellDistances(a: ViewCoords, b: ViewCoords, gridA: Grid, gridB: Grid): Float64Array {
  const ca = cellCenters(a, gridA);
  const cb = cellCenters(b, gridB);
  const scale = Math.max(binDiagonal(a, gridA), binDiagonal(b, gridB));
  const la = ca.x.length;
  const lb = cb.x.length;
  const d = new Float64Array(la * lb);
  for (let i = 0; i < la; i++) {
    for (let j = 0; j < lb; j++) d[i * lb + j] = Math.hypot(ca.x[i] - cb.x[j], ca.y[i] - cb.y[j]) / scale;
  }
  return d;
}

/** Many-to-many positives: every (i, j) with d < tPos (strict), sorted by i then j. */
export function matchCells(
  a: ViewCoords,
  b: ViewCoords,
  gridA: readonly [number, number],
  gridB: readonly [number, number],
  tPos: number,
): Array<[number, number]> {
  const d = cellDistances(a, b, gridA, gridB);
  const lb = gridB[0] * gridB[1];
  const pairs: Array<[number, number]> = [];
  for (let k = 0; k < d.length; k++) {
    if (d[k] < tPos) pairs.push([Math.floor(k / lb), k % lb]);
  }
  return pairs;
}

/** Dense 0/1 mask [N, La, Lb] from per-image pair lists. */
export function pairsToMask(pairsPerImage: ReadonlyArray<ReadonlyArray<readonly [number, number]>>, la: number, lb: number): Float32Array {
  const mask = new Float32Array(pairsPerImage.length * la * lb);
  pairsPerImage.forEach((pairs, n) => {
    for (const [i, j] of pairs) {
      if (!(Number.isInteger(i) && i >= 0 && i < la && Number.isInteger(j) && j >= 0 && j < lb)) {
        throw new Error(`pairsToMask: pair (${i}, ${j}) of image ${n} is outside ${la}×${lb}`);
      }
      mask[(n * la + i) * lb + j] = 1;
    }
  });
  return mask;
}

/** The positive mask [N, La, Lb] for N images, query view coordsA[n] against key view coordsB[n]. */
export function positiveMask(
  coordsA: readonly ViewCoords[],
  coordsB: readonly ViewCoords[],
  gridA: Grid,
  gridB: Grid,
  tPos: number,
): Float32Array {
  if (coordsA.length !== coordsB.length) {
    throw new Error(`positiveMask: ${coordsA.length} query views but ${coordsB.length} key views`);
  }
  const pairs = coordsA.map((a, n) => matchCells(a, coordsB[n], gridA, gridB, tPos));
  return pairsToMask(pairs, gridA[0] * gridA[1], gridB[0] * gridB[1]);
}

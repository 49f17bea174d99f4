// Dense float64 helpers for the closed-form probes. Features arrive as Float32 rows; everything that is
// summed over many rows (the normal equations) is accumulated in float64, because a probe sums up to
// ~500 000 rows and float32 accumulation would lose the small eigen-directions the ridge is meant to keep.

/** The normal equations AᵀA W = AᵀT of a least-squares fit, accumulated row block by row block. */
export interface NormalEquations {
  /** Number of columns of the design matrix (features + bias). */
  readonly dim: number;
  /** Number of target columns. */
  readonly targets: number;
  /** Rows accumulated so far. */
  rows: number;
  /** Upper triangle (and, after `symmetrise`, all) of AᵀA, row-major [dim, dim]. */
  readonly gram: Float64Array;
  /** AᵀT, row-major [dim, targets]. */
  readonly cross: Float64Array;
}

export function createNormalEquations(dim: number, targets: number): NormalEquations {
  if (!Number.isInteger(dim) || dim < 1 || !Number.isInteger(targets) || targets < 1) {
    throw new Error(`createNormalEquations: dim (${dim}) and targets (${targets}) must be positive integers`);
  }
  return { dim, targets, rows: 0, gram: new Float64Array(dim * dim), cross: new Float64Array(dim * targets) };
}

/**
 * Adds `count` design rows to the normal equations. `design` holds the rows column-major
 * ([dim, count], column c of the block at c*count), so each Gram entry is one contiguous dot product:
 * a block of a few hundred rows stays in cache while all dim² products are formed.
 * `targetRows` is row-major [count, targets].
 */
export function accumulateBlock(
  eq: NormalEquations,
  design: Float64Array,
  targetRows: Float64Array,
  count: number,
): void {
  const { dim, targets, gram, cross } = eq;
  if (design.length < dim * count || targetRows.length < targets * count) {
    throw new Error(
      `accumulateBlock: block of ${count} rows needs design ≥ ${dim * count} and targets ≥ ${targets * count} values, ` +
        `got ${design.length} and ${targetRows.length}`,
    );
  }
  for (let a = 0; a < dim; a++) {
    const offA = a * count;
    for (let b = a; b < dim; b++) {
      const offB = b * count;
      let s0 = 0;
      let s1 = 0;
      let r = 0;
      // Two independent partial sums let the JIT overlap the multiply-adds.
      for (; r + 1 < count; r += 2) {
        s0 += design[offA + r] * design[offB + r];
        s1 += design[offA + r + 1] * design[offB + r + 1];
      }
      if (r < count) s0 += design[offA + r] * design[offB + r];
      gram[a * dim + b] += s0 + s1;
    }
    for (let r = 0; r < count; r++) {
      const x = design[offA + r];
      if (x === 0) continue;
      const tOff = r * targets;
      const cOff = a * targets;
      for (let t = 0; t < targets; t++) cross[cOff + t] += x * targetRows[tOff + t];
    }
  }
  eq.rows += count;
}

/** Copies the accumulated upper triangle into the lower one, giving the full symmetric AᵀA. */
export function symmetrise(eq: NormalEquations): void {
  const { dim, gram } = eq;
  for (let a = 0; a < dim; a++) for (let b = a + 1; b < dim; b++) gram[b * dim + a] = gram[a * dim + b];
}

/**
 * In-place Cholesky factorisation of a symmetric positive-definite matrix (row-major [n, n]);
 * the lower triangle receives L with A = L Lᵀ. Returns the index of the first non-positive pivot,
 * or -1 when the factorisation succeeded.
 */
export function choleskyInPlace(matrix: Float64Array, n: number): number {
  for (let j = 0; j < n; j++) {
    const rowJ = j * n;
    let diag = matrix[rowJ + j];
    for (let k = 0; k < j; k++) diag -= matrix[rowJ + k] * matrix[rowJ + k];
    if (!(diag > 0)) return j;
    const ljj = Math.sqrt(diag);
    matrix[rowJ + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      const rowI = i * n;
      let s = matrix[rowI + j];
      for (let k = 0; k < j; k++) s -= matrix[rowI + k] * matrix[rowJ + k];
      matrix[rowI + j] = s / ljj;
    }
  }
  return -1;
}

/** Solves L Lᵀ X = B for X given the Cholesky factor in the lower triangle of `factor`; B is [n, m] row-major. */
export function choleskySolve(factor: Float64Array, n: number, rhs: Float64Array, m: number): Float64Array {
  const x = Float64Array.from(rhs);
  // Forward substitution L Y = B.
  for (let i = 0; i < n; i++) {
    const rowI = i * n;
    for (let k = 0; k < i; k++) {
      const l = factor[rowI + k];
      if (l === 0) continue;
      for (let c = 0; c < m; c++) x[i * m + c] -= l * x[k * m + c];
    }
    const d = factor[rowI + i];
    for (let c = 0; c < m; c++) x[i * m + c] /= d;
  }
  // Back substitution Lᵀ X = Y.
  for (let i = n - 1; i >= 0; i--) {
    for (let k = i + 1; k < n; k++) {
      const l = factor[k * n + i];
      if (l === 0) continue;
      for (let c = 0; c < m; c++) x[i * m + c] -= l * x[k * m + c];
    }
    const d = factor[i * n + i];
    for (let c = 0; c < m; c++) x[i * m + c] /= d;
  }
  return x;
}

/**
 * Solves (AᵀA + ridge·I′) W = AᵀT, where I′ is the identity with zeros at the `unregularised` indices
 * (the bias column: shrinking the intercept towards 0 would bias every prediction). The normal
 * equations must be symmetrised. Throws if the regularised matrix is not positive definite, which
 * for ridge > 0 means the inputs were not finite.
 */
export function solveRidgeSystem(
  eq: NormalEquations,
  ridge: number,
  unregularised: readonly number[],
): Float64Array {
  const { dim, targets } = eq;
  const a = Float64Array.from(eq.gram);
  const skip = new Set(unregularised);
  for (let d = 0; d < dim; d++) if (!skip.has(d)) a[d * dim + d] += ridge;
  const failedPivot = choleskyInPlace(a, dim);
  if (failedPivot >= 0) {
    throw new Error(
      `solveRidgeSystem: (AᵀA + ${ridge}·I′) of size ${dim}×${dim} is not positive definite at pivot ${failedPivot} ` +
        `(non-finite features, or ridge 0 on rank-deficient features)`,
    );
  }
  return choleskySolve(a, dim, eq.cross, targets);
}

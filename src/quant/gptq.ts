/**
 * GPTQ (Frantar et al. 2022): round each weight column in turn and push its rounding error onto
 * the columns not yet rounded, weighted by the inverse Hessian of the layer's squared output
 * error, H = 2 X^T X (from calibration: src/ops/calib-stats.ts).
 *
 * For W [N, K] (y = x W^T), as AutoGPTQ's `fasterquant` does it:
 *
 *   H += damp * mean(diag H) * I                 (dampening; raised x10 if H is still not PD)
 *   U = upper Cholesky factor of H^-1            (H^-1 = U^T U; row i of U is what the OBQ update
 *                                                 of column i needs once columns < i are fixed)
 *   for blocks of B = 128 columns [i1, i2):
 *     for i in [i1, i2):
 *       q_i = round(w_i) with the group's scale (taken when the group starts, from the current,
 *             already-updated weights)
 *       e = (w_i - q_i) / U[i, i]
 *       w_j -= e * U[i, j]   for j in (i, i2)        (inside the block, at once)
 *     w_j -= E_block U[i1:i2, j]   for j >= i2       (the rest, once per block: "lazy batch")
 *
 * With act-order, columns go in order of decreasing H[i, i] (the most active inputs first, while
 * the most columns remain to absorb their error). Groups stay the stored layout's contiguous
 * groups of K, so their scales are fixed before any update ("static groups"); only the order of
 * rounding changes. src/reference/gptq.ts is the same method without blocks or Cholesky.
 * Everything is f64; H's scale does not matter (only its ratios and the relative damping).
 */
import { ShapeError, WebqError } from '../errors.ts';
import { layoutFor, type QuantizedWeight, type QuantSpec } from './layout.ts';
import { codeOf, packQuantized, searchedGroupParams, valueOf } from './rtn.ts';

export interface GptqOptions {
  /** Columns per lazy-update block (default 128). */
  blockSize?: number;
  /** Dampening as a fraction of the mean diagonal (default 0.01). */
  damp?: number;
  /** Quantize columns in order of decreasing H[i, i] (default false). */
  actOrder?: boolean;
}

/** Lower Cholesky factor of a symmetric [n, n] matrix, in place; false if it is not positive definite. */
export function choleskyInPlace(a: Float64Array, n: number): boolean {
  for (let j = 0; j < n; j++) {
    let d = a[j * n + j];
    for (let k = 0; k < j; k++) d -= a[j * n + k] * a[j * n + k];
    if (!(d > 0)) return false;
    const ljj = Math.sqrt(d);
    a[j * n + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      let s = a[i * n + j];
      for (let k = 0; k < j; k++) s -= a[i * n + k] * a[j * n + k];
      a[i * n + j] = s / ljj;
    }
    for (let k = j + 1; k < n; k++) a[j * n + k] = 0;
  }
  return true;
}

/** U, upper triangular with H^-1 = U^T U, for symmetric positive definite H [n, n]; null if H is not PD. */
export function inverseCholeskyUpper(h: Float64Array, n: number): Float64Array | null {
  const L = Float64Array.from(h);
  if (!choleskyInPlace(L, n)) return null;
  // Li = L^-1 (lower), by forward substitution, column by column.
  const Li = new Float64Array(n * n);
  for (let c = 0; c < n; c++) {
    Li[c * n + c] = 1 / L[c * n + c];
    for (let i = c + 1; i < n; i++) {
      let s = 0;
      for (let k = c; k < i; k++) s -= L[i * n + k] * Li[k * n + c];
      Li[i * n + c] = s / L[i * n + i];
    }
  }
  // H^-1 = Li^T Li, then its lower Cholesky factor C; U = C^T.
  const inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = i; k < n; k++) s += Li[k * n + i] * Li[k * n + j];
      inv[i * n + j] = s;
      inv[j * n + i] = s;
    }
  }
  if (!choleskyInPlace(inv, n)) return null;
  const U = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) U[i * n + j] = inv[j * n + i];
  return U;
}

/** The Hessian made ready: dead inputs (never active) get H[i, i] = 1, then dampening; returns U or throws. */
export function dampedInverseCholesky(gram: ArrayLike<number>, K: number, damp: number): Float64Array {
  const H = Float64Array.from(gram);
  let mean = 0;
  for (let i = 0; i < K; i++) {
    if (H[i * K + i] === 0) H[i * K + i] = 1;
    mean += H[i * K + i] / K;
  }
  for (let tries = 0, d = damp; tries < 6; tries++, d *= 10) {
    const Hd = Float64Array.from(H);
    for (let i = 0; i < K; i++) Hd[i * K + i] += d * mean;
    const U = inverseCholeskyUpper(Hd, K);
    if (U) return U;
  }
  throw new WebqError('GPTQ_HESSIAN', `gptq: the calibration Hessian (${K} inputs) is not positive definite even with heavy dampening; use more calibration text`);
}

/** Quantizes W [N, K] with GPTQ given X^T X [K, K] of its calibration inputs. */
export function gptqQuantize(w: Float32Array, N: number, K: number, spec: QuantSpec, gram: ArrayLike<number>, opts: GptqOptions = {}): QuantizedWeight {
  if (w.length !== N * K) throw new ShapeError(`gptqQuantize: weight has ${w.length} elements, expected ${N}*${K}`);
  if (gram.length !== K * K) throw new ShapeError(`gptqQuantize: X^T X has ${gram.length} elements, expected ${K}*${K}`);
  const B = opts.blockSize ?? 128;
  const { groupSize: G, groups } = layoutFor(K, spec);
  // Column order: act-order sorts by decreasing H[i, i] (stable), else the natural order.
  const perm = Array.from({ length: K }, (_, i) => i);
  if (opts.actOrder) perm.sort((a, b) => gram[b * K + b] - gram[a * K + a] || a - b);
  const Hp = new Float64Array(K * K);
  for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) Hp[i * K + j] = gram[perm[i] * K + perm[j]];
  const U = dampedInverseCholesky(Hp, K, opts.damp ?? 0.01);

  // W in the working order, f64, row-major [N, K].
  const W = new Float64Array(N * K);
  for (let n = 0; n < N; n++) for (let i = 0; i < K; i++) W[n * K + i] = w[n * K + perm[i]];
  const scales = new Float32Array(N * groups);
  const zeros = spec.symmetric ? null : new Float32Array(N * groups);
  const codes = new Int32Array(N * K);
  const group = new Float32Array(G);
  const setGroup = (n: number, g: number, col: (k: number) => number) => {
    const k1 = Math.min(g * G + G, K);
    for (let k = g * G; k < k1; k++) {
      const v = col(k);
      if (!Number.isFinite(v)) throw new WebqError('QUANT_NONFINITE', `gptqQuantize: weight[${n}][${k}] is ${v}; all weights must be finite`);
      group[k - g * G] = v;
    }
    // The group's range as round-to-nearest would choose it (searched when spec.clipSearch).
    const p = searchedGroupParams(group, 0, k1 - g * G, spec);
    scales[n * groups + g] = p.scale;
    if (zeros) zeros[n * groups + g] = p.zero;
  };
  // Static groups (act-order): every scale from the original weights, before any update.
  if (opts.actOrder) for (let n = 0; n < N; n++) for (let g = 0; g < groups; g++) setGroup(n, g, (k) => w[n * K + k]);
  const inv = new Int32Array(K);
  perm.forEach((p, i) => (inv[p] = i));

  const err = new Float64Array(N * B); // E of the current block, [N, B]
  for (let i1 = 0; i1 < K; i1 += B) {
    const i2 = Math.min(i1 + B, K);
    for (let i = i1; i < i2; i++) {
      const col = perm[i];
      const g = Math.floor(col / G);
      // In natural order a group starts at its first column, after every update it will get from
      // earlier blocks and from this block's earlier columns (G divides B, or G >= K).
      if (!opts.actOrder && col % G === 0) for (let n = 0; n < N; n++) setGroup(n, g, (k) => W[n * K + inv[k]]);
      const d = U[i * K + i];
      for (let n = 0; n < N; n++) {
        const v = W[n * K + i];
        const s = scales[n * groups + g];
        const z = zeros ? zeros[n * groups + g] : 0;
        const c = codeOf(v, s, z, spec);
        codes[n * K + col] = c;
        const e = (v - valueOf(c, s, z, spec.symmetric)) / d;
        err[n * B + (i - i1)] = e;
        for (let j = i + 1; j < i2; j++) W[n * K + j] -= e * U[i * K + j];
      }
    }
    for (let n = 0; n < N; n++) {
      for (let j = i2; j < K; j++) {
        let s = 0;
        for (let t = 0; t < i2 - i1; t++) s += err[n * B + t] * U[(i1 + t) * K + j];
        W[n * K + j] -= s;
      }
    }
  }
  return packQuantized(N, K, spec, codes, scales, zeros);
}

/**
 * A weight error's cost on the layer's output over the calibration rows: sum_n d_n^T G d_n =
 * ||X D^T||^2 for D = Wq - W [N, K] and G = X^T X [K, K].
 */
export function outputError(d: ArrayLike<number>, N: number, K: number, gram: ArrayLike<number>): number {
  let total = 0;
  const gd = new Float64Array(K);
  for (let n = 0; n < N; n++) {
    const row = n * K;
    for (let i = 0; i < K; i++) {
      let s = 0;
      for (let j = 0; j < K; j++) s += gram[i * K + j] * d[row + j];
      gd[i] = s;
    }
    for (let i = 0; i < K; i++) total += d[row + i] * gd[i];
  }
  return total;
}

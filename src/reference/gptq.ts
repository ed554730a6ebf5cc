/**
 * GPTQ as the OBQ update it is derived from (Frantar et al. 2022, eq. 2-3), written plainly: no
 * blocks, no Cholesky. With F the columns not yet rounded and Hinv = (H_F)^-1,
 *
 *   e   = (w_i - q_i) / Hinv[i, i]
 *   w_j -= e * Hinv[i, j]                        for the other columns j in F
 *   Hinv -= Hinv[:, i] Hinv[i, :] / Hinv[i, i]   (Gaussian elimination of i: the inverse over F \ {i})
 *
 * src/quant/gptq.ts reaches the same numbers through the Cholesky factor of H^-1 and lazy block
 * updates; tests compare the two. Same dampening (1% of the mean diagonal, dead inputs -> 1) and
 * the same group parameters (natural order: at a group's first column, from the current weights).
 */
import { layoutFor, type QuantizedWeight, type QuantSpec } from '../quant/layout.ts';
import { codeOf, groupParams, packQuantized, valueOf } from '../quant/rtn.ts';

/** Inverse of a symmetric positive definite [n, n] matrix by Gauss-Jordan elimination (f64). */
function invert(a: Float64Array, n: number): Float64Array {
  const m = Float64Array.from(a);
  const inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) inv[i * n + i] = 1;
  for (let c = 0; c < n; c++) {
    const p = m[c * n + c];
    for (let j = 0; j < n; j++) {
      m[c * n + j] /= p;
      inv[c * n + j] /= p;
    }
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = m[r * n + c];
      if (f === 0) continue;
      for (let j = 0; j < n; j++) {
        m[r * n + j] -= f * m[c * n + j];
        inv[r * n + j] -= f * inv[c * n + j];
      }
    }
  }
  return inv;
}

export function refGptq(w: Float32Array, N: number, K: number, spec: QuantSpec, gram: ArrayLike<number>, damp = 0.01): QuantizedWeight {
  const { groupSize: G, groups } = layoutFor(K, spec);
  const H = Float64Array.from(gram);
  let mean = 0;
  for (let i = 0; i < K; i++) {
    if (H[i * K + i] === 0) H[i * K + i] = 1;
    mean += H[i * K + i] / K;
  }
  for (let i = 0; i < K; i++) H[i * K + i] += damp * mean;
  const Hinv = invert(H, K);
  const W = Float64Array.from(w);
  const codes = new Int32Array(N * K);
  const scales = new Float32Array(N * groups);
  const zeros = spec.symmetric ? null : new Float32Array(N * groups);
  for (let i = 0; i < K; i++) {
    const g = Math.floor(i / G);
    if (i % G === 0) {
      for (let n = 0; n < N; n++) {
        let lo = 0;
        let hi = 0;
        for (let k = i; k < Math.min(i + G, K); k++) [lo, hi] = [Math.min(lo, W[n * K + k]), Math.max(hi, W[n * K + k])];
        const p = groupParams(lo, hi, spec);
        scales[n * groups + g] = p.scale;
        if (zeros) zeros[n * groups + g] = p.zero;
      }
    }
    const d = Hinv[i * K + i];
    for (let n = 0; n < N; n++) {
      const s = scales[n * groups + g];
      const z = zeros ? zeros[n * groups + g] : 0;
      const c = codeOf(W[n * K + i], s, z, spec);
      codes[n * K + i] = c;
      const e = (W[n * K + i] - valueOf(c, s, z, spec.symmetric)) / d;
      for (let j = i + 1; j < K; j++) W[n * K + j] -= e * Hinv[i * K + j];
    }
    // Eliminate column i: what remains is the inverse Hessian of the columns after i.
    const row = Hinv.slice(i * K, i * K + K);
    for (let a = i + 1; a < K; a++) {
      const f = Hinv[a * K + i] / d;
      for (let b = i + 1; b < K; b++) Hinv[a * K + b] -= f * row[b];
    }
  }
  return packQuantized(N, K, spec, codes, scales, zeros);
}

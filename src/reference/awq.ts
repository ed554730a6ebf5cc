/**
 * AWQ's scale search as the paper states it, on the calibration activations themselves: for each
 * alpha on the grid, s = mean|x|^alpha (normalized), W' = Q(W diag s) diag(s)^-1, and the error
 * sum over rows m and outputs n of ((W' - W) x_m)_n^2. src/quant/awq.ts gets the same numbers
 * from X^T X; tests compare the two.
 */
import type { QuantSpec } from '../quant/layout.ts';
import { awqScales, scaleColumns } from '../quant/awq.ts';
import { dequantizeWeight, quantizeWeight } from '../quant/rtn.ts';

export function refAwqSearch(w: Float32Array, N: number, K: number, spec: QuantSpec, x: Float32Array, M: number, grid = 20): { alpha: number; errors: number[] } {
  const meanAbs = new Float64Array(K);
  for (let m = 0; m < M; m++) for (let k = 0; k < K; k++) meanAbs[k] += Math.abs(x[m * K + k]) / M;
  const errors: number[] = [];
  for (let i = 0; i <= grid; i++) {
    const s = awqScales(meanAbs, i / grid);
    const deq = dequantizeWeight(quantizeWeight(scaleColumns(w, N, K, s), N, K, spec));
    let err = 0;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let d = 0;
        for (let k = 0; k < K; k++) d += (deq[n * K + k] / s[k] - w[n * K + k]) * x[m * K + k];
        err += d * d;
      }
    }
    errors.push(err);
  }
  const best = errors.reduce((b, e, i) => (e < errors[b] ? i : b), 0);
  return { alpha: best / grid, errors };
}

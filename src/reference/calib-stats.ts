/**
 * CPU reference for the calibration statistics of shaders/calib_stats.wgsl: plain loops over
 * x [M, K] (rows whose mask is 0 skipped), f64 sums.
 */
import { HIST_BINS, type InputStats } from '../ops/calib-stats.ts';

export function refInputStats(x: Float32Array, M: number, K: number, opts: { mask?: ArrayLike<number>; histWidth?: number } = {}): InputStats {
  const absMax = new Float32Array(K);
  const sumAbs = new Float64Array(K);
  const sum = new Float64Array(K);
  const gram = new Float64Array(K * K);
  const hist = opts.histWidth !== undefined ? new Float64Array(HIST_BINS) : null;
  let rows = 0;
  for (let m = 0; m < M; m++) {
    if (opts.mask && !opts.mask[m]) continue;
    rows++;
    for (let i = 0; i < K; i++) {
      const v = x[m * K + i];
      absMax[i] = Math.max(absMax[i], Math.abs(v));
      sumAbs[i] += Math.abs(v);
      sum[i] += v;
      for (let j = 0; j < K; j++) gram[i * K + j] += v * x[m * K + j];
      if (hist) hist[Math.min(Math.floor(Math.abs(v) / opts.histWidth!), HIST_BINS - 1)]++;
    }
  }
  return { K, rows, absMax, sumAbs: Float32Array.from(sumAbs), sum: Float32Array.from(sum), gram: Float32Array.from(gram), hist, histWidth: opts.histWidth ?? 1 };
}

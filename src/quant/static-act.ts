/**
 * Static activation scales (w8a8-static): one int8 scale per Linear input, fixed from calibration,
 * so the runtime rounds x / scale without looking for each token's maximum. The scale is a
 * threshold / 127; values past the threshold clamp to +-127. Three ways to pick the threshold,
 * from the calibration totals (src/ops/calib-stats.ts):
 *
 *   minmax      the largest |x| seen: nothing clips, everything rounds coarsely
 *   percentile  the |x| below which `percentile`% of the values fall (from the 2048-bin histogram)
 *   kl          TensorRT's entropy calibration: for each cut i in 128..2048 bins, P = the histogram's
 *               first i bins with the tail folded into bin i-1, Q = the same bins merged into 128
 *               levels and spread back evenly over the non-empty bins; the cut with least KL(P||Q)
 *               wins, threshold (i + 0.5) * bin width
 */
import { WebqError } from '../errors.ts';

export type ActCalibration = 'minmax' | 'percentile' | 'kl';
export const ACT_CALIBRATIONS: readonly ActCalibration[] = ['minmax', 'percentile', 'kl'];
const LEVELS = 128;

/** The |x| below which `percentile`% of the histogram's count lies (upper edge of that bin). */
export function percentileThreshold(hist: ArrayLike<number>, width: number, percentile = 99.99): number {
  let total = 0;
  for (let i = 0; i < hist.length; i++) total += hist[i];
  if (total === 0) return 0;
  const target = (percentile / 100) * total;
  let c = 0;
  for (let i = 0; i < hist.length; i++) {
    c += hist[i];
    if (c >= target) return (i + 1) * width;
  }
  return hist.length * width;
}

/** KL(P || Q) of two unnormalized distributions over the same bins; Q's empty bins where P is not get a tiny mass. */
function divergence(p: Float64Array, q: Float64Array): number {
  let sp = 0;
  let sq = 0;
  for (let j = 0; j < p.length; j++) [sp, sq] = [sp + p[j], sq + q[j]];
  let kl = 0;
  for (let j = 0; j < p.length; j++) {
    if (p[j] === 0) continue;
    const pj = p[j] / sp;
    const qj = q[j] > 0 ? q[j] / sq : 1e-12;
    kl += pj * Math.log(pj / qj);
  }
  return kl;
}

/** TensorRT-style entropy calibration over a histogram of |x| (normally 2048 bins). */
export function klThreshold(hist: ArrayLike<number>, width: number): number {
  const bins = hist.length;
  let total = 0;
  for (let i = 0; i < bins; i++) total += hist[i];
  if (total === 0) return 0;
  let best = bins;
  let bestKl = Infinity;
  for (let i = LEVELS; i <= bins; i++) {
    const p = new Float64Array(i);
    for (let j = 0; j < i; j++) p[j] = hist[j];
    for (let j = i; j < bins; j++) p[i - 1] += hist[j];
    // Q: the unfolded first i bins merged into 128 levels, each level spread over its non-empty bins.
    const q = new Float64Array(i);
    for (let l = 0; l < LEVELS; l++) {
      const a = Math.floor((l * i) / LEVELS);
      const b = l === LEVELS - 1 ? i : Math.floor(((l + 1) * i) / LEVELS);
      let sum = 0;
      let nonzero = 0;
      for (let j = a; j < b; j++) {
        sum += hist[j];
        if (hist[j] > 0) nonzero++;
      }
      if (nonzero) for (let j = a; j < b; j++) if (hist[j] > 0) q[j] = sum / nonzero;
    }
    const kl = divergence(p, q);
    if (kl < bestKl) [best, bestKl] = [i, kl];
  }
  return (best + 0.5) * width;
}

/** The int8 scale for one Linear input: threshold / 127. */
export function staticActivationScale(how: ActCalibration, stats: { absMax: number; hist?: ArrayLike<number> | null; histWidth?: number }, percentile = 99.99): number {
  let t: number;
  if (how === 'minmax') t = stats.absMax;
  else {
    if (!stats.hist || stats.histWidth === undefined) throw new WebqError('CALIBRATION', `static activations by ${how} need a histogram`);
    t = how === 'kl' ? klThreshold(stats.hist, stats.histWidth) : percentileThreshold(stats.hist, stats.histWidth, percentile);
    t = Math.min(t, stats.absMax); // a threshold past every value only coarsens the rounding
  }
  // An input that was always 0 still needs a usable scale.
  return t > 0 ? t / 127 : 1 / 127;
}

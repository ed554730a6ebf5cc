/**
 * SmoothQuant (Xiao et al. 2022): move the difficulty of quantizing activations with outlier
 * channels onto the weights. Per input channel j of a Linear,
 *
 *   s_j = max|X_j|^alpha / max|W_:,j|^(1 - alpha)        (alpha 0.5 by default; 0.8-0.9 for Llama)
 *
 * then the input is divided by s (folded into the preceding norm's weight and bias, or the rows
 * of the Linear before: src/quantize/units.ts) and the weight's columns multiplied by s. The
 * product is unchanged in exact arithmetic; per-tensor or per-token int8 activations lose much less.
 */
import { ShapeError } from '../errors.ts';

/** Largest |w| of each column of W [N, K] (over every row of every stacked part). */
export function columnAbsMax(w: Float32Array, N: number, K: number): Float32Array {
  const out = new Float32Array(K);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) out[k] = Math.max(out[k], Math.abs(w[n * K + k]));
  return out;
}

export function smoothScales(actAbsMax: ArrayLike<number>, weightAbsMax: ArrayLike<number>, alpha: number): Float32Array {
  if (actAbsMax.length !== weightAbsMax.length) throw new ShapeError(`smoothScales: ${actAbsMax.length} activation maxima but ${weightAbsMax.length} weight columns`);
  if (!(alpha >= 0 && alpha <= 1)) throw new RangeError(`smoothScales: alpha must be in [0, 1], got ${alpha}`);
  // SmoothQuant clamps both maxima at 1e-5; a channel never active keeps s = 1.
  return Float32Array.from(actAbsMax, (a, j) => (a > 0 ? Math.max(a, 1e-5) ** alpha / Math.max(weightAbsMax[j], 1e-5) ** (1 - alpha) : 1));
}

/**
 * AWQ (Lin et al. 2023), activation-aware weight quantization, computed from calibration totals:
 *
 * 1. Scales. Input channels that carry large activations matter most; multiplying their weight
 *    columns by s > 1 before rounding (and dividing the input by s, folded into the op before:
 *    src/models/linear-units.ts) rounds them more finely. AWQ takes s_k = mean|x_k|^alpha,
 *    normalized by sqrt(max s * min s), and searches alpha on a grid over [0, 1] (alpha = 0 is
 *    plain round-to-nearest) for the least output error of the layer on the calibration inputs.
 * 2. Clipping. Per row and group, the range [lo, hi] shrunk by r in 1, 0.95, .. 0.55 (AWQ's
 *    auto_clip: 20 steps, down to half), keeping the r with the least output error of that group.
 *    AWQ leaves q and k alone (the softmax is not linear in them); so does this (`noClipRows`).
 *
 * AWQ measures errors on a sample of calibration activations; here the Gram matrix G = X^T X of
 * all of them gives the same quantity exactly: ||X (Wq - W)^T||^2 = sum_n d_n^T G d_n (outputError).
 * src/reference/awq.ts computes it from the activations themselves, for the tests.
 */
import { ShapeError } from '../errors.ts';
import { outputError } from './gptq.ts';
import { layoutFor, type QuantizedWeight, type QuantSpec } from './layout.ts';
import { codeOf, dequantizeWeight, groupParams, groupRanges, quantizeWeight, quantizeWeightRanges, valueOf } from './rtn.ts';

export interface AwqOptions {
  /** Grid steps for alpha over [0, 1] (default 20: 0, 0.05, .., 1). */
  grid?: number;
  /** Clipping: shrink steps of 1/clipGrid (default 20), down to 1 - maxShrink (default 0.5). */
  clipGrid?: number;
  maxShrink?: number;
  /** Rows the clipping search leaves unclipped (q and k). */
  noClipRows?: (n: number) => boolean;
}

export interface AwqResult {
  q: QuantizedWeight;
  /** Per input channel: the columns of the stored weight are W's times s; the input must be divided by s. */
  scales: Float32Array;
  alpha: number;
  /** Output error (sum over rows of d^T G d) of plain RTN and of the result. */
  rtnError: number;
  error: number;
}

/** s_k = max(m_k, 1e-4)^alpha, normalized so that max s * min s = 1. */
export function awqScales(meanAbs: ArrayLike<number>, alpha: number): Float32Array {
  const K = meanAbs.length;
  const s = new Float64Array(K);
  let lo = Infinity;
  let hi = 0;
  for (let k = 0; k < K; k++) {
    s[k] = Math.max(meanAbs[k], 1e-4) ** alpha;
    lo = Math.min(lo, s[k]);
    hi = Math.max(hi, s[k]);
  }
  const norm = Math.sqrt(hi * lo);
  return Float32Array.from(s, (v) => v / norm);
}

/** W with column k multiplied by s[k]. */
export function scaleColumns(w: Float32Array, N: number, K: number, s: ArrayLike<number>): Float32Array {
  const out = new Float32Array(N * K);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) out[n * K + k] = w[n * K + k] * s[k];
  return out;
}

/** G of the input divided by s: G_ij / (s_i s_j). */
export function scaleGram(gram: ArrayLike<number>, K: number, s: ArrayLike<number>): Float64Array {
  const out = new Float64Array(K * K);
  for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) out[i * K + j] = gram[i * K + j] / (s[i] * s[j]);
  return out;
}

/** Output error of round-to-nearest on W diag(s), measured in the original basis. */
function scaledRtnError(w: Float32Array, N: number, K: number, spec: QuantSpec, s: Float32Array, gram: ArrayLike<number>): number {
  const deq = dequantizeWeight(quantizeWeight(scaleColumns(w, N, K, s), N, K, spec));
  const d = new Float64Array(N * K);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) d[n * K + k] = deq[n * K + k] / s[k] - w[n * K + k];
  return outputError(d, N, K, gram);
}

/** Per row and group, the clipped range with the least output error of that group (G's diagonal block). */
export function awqClipRanges(w: Float32Array, N: number, K: number, spec: QuantSpec, gram: ArrayLike<number>, opts: AwqOptions = {}): { lo: Float32Array; hi: Float32Array } {
  const { groupSize: G, groups } = layoutFor(K, spec);
  const { lo, hi } = groupRanges(w, N, K, spec);
  const steps = Math.round((opts.maxShrink ?? 0.5) * (opts.clipGrid ?? 20));
  const d = new Float64Array(G);
  for (let n = 0; n < N; n++) {
    if (opts.noClipRows?.(n)) continue;
    for (let g = 0; g < groups; g++) {
      const k0 = g * G;
      const k1 = Math.min(k0 + G, K);
      const [a, b] = [lo[n * groups + g], hi[n * groups + g]];
      let best = 1;
      let bestErr = Infinity;
      for (let i = 0; i < steps; i++) {
        const r = 1 - i / (opts.clipGrid ?? 20);
        const { scale, zero } = groupParams(a * r, b * r, spec);
        for (let k = k0; k < k1; k++) d[k - k0] = valueOf(codeOf(w[n * K + k], scale, zero, spec), scale, zero, spec.symmetric) - w[n * K + k];
        let err = 0;
        for (let i2 = k0; i2 < k1; i2++) {
          let s = 0;
          for (let j = k0; j < k1; j++) s += gram[i2 * K + j] * d[j - k0];
          err += d[i2 - k0] * s;
        }
        if (err < bestErr) [best, bestErr] = [r, err];
      }
      lo[n * groups + g] = a * best;
      hi[n * groups + g] = b * best;
    }
  }
  return { lo, hi };
}

/** Step 1: the scales, alpha searched on the grid (grid 0: alpha = 0, s = 1, for a unit with nowhere to fold s). */
export function awqSearchScales(w: Float32Array, N: number, K: number, spec: QuantSpec, meanAbs: ArrayLike<number>, gram: ArrayLike<number>, grid = 20): { scales: Float32Array; alpha: number; rtnError: number; error: number } {
  if (w.length !== N * K || meanAbs.length !== K || gram.length !== K * K) throw new ShapeError(`awqSearchScales: expected W [${N}, ${K}], ${K} channel means and a [${K}, ${K}] Gram matrix`);
  let best = { alpha: 0, scales: awqScales(meanAbs, 0), error: Infinity };
  let rtnError = 0;
  for (let i = 0; i <= grid; i++) {
    const alpha = grid ? i / grid : 0;
    const s = awqScales(meanAbs, alpha);
    const err = scaledRtnError(w, N, K, spec, s, gram);
    if (i === 0) rtnError = err;
    if (err < best.error) best = { alpha, scales: s, error: err };
  }
  return { ...best, rtnError };
}

/** Step 2: clipping search and rounding of the scaled weight Ws = W diag(s), given the scaled input's Gram matrix. */
export function awqQuantizeScaled(ws: Float32Array, N: number, K: number, spec: QuantSpec, gramScaled: ArrayLike<number>, opts: AwqOptions = {}): { q: QuantizedWeight; error: number } {
  const { lo, hi } = awqClipRanges(ws, N, K, spec, gramScaled, opts);
  const q = quantizeWeightRanges(ws, N, K, spec, lo, hi);
  const deq = dequantizeWeight(q);
  const d = new Float64Array(N * K);
  for (let j = 0; j < N * K; j++) d[j] = deq[j] - ws[j];
  return { q, error: outputError(d, N, K, gramScaled) };
}

/** AWQ for W [N, K] given its inputs' mean |x| per channel and X^T X: both steps. */
export function awqQuantize(w: Float32Array, N: number, K: number, spec: QuantSpec, meanAbs: ArrayLike<number>, gram: ArrayLike<number>, opts: AwqOptions = {}): AwqResult {
  const found = awqSearchScales(w, N, K, spec, meanAbs, gram, opts.grid ?? 20);
  const ws = scaleColumns(w, N, K, found.scales);
  const { q, error } = awqQuantizeScaled(ws, N, K, spec, scaleGram(gram, K, found.scales), opts);
  return { q, scales: found.scales, alpha: found.alpha, rtnError: found.rtnError, error };
}

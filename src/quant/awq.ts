/**
 * AWQ (Lin et al. 2023), activation-aware weight quantization, computed from calibration totals:
 *
 * 1. Scales. Input channels that carry large activations matter most; multiplying their weight
 *    columns by s > 1 before rounding (and dividing the input by s, folded into the op before:
 *    src/quantize/units.ts) rounds them more finely. AWQ takes s_k = mean|x_k|^alpha,
 *    normalized by sqrt(max s * min s), and searches alpha on a grid over [0, 1] (alpha = 0 is
 *    plain round-to-nearest) for the least output error of the layer on the calibration inputs.
 *    The grid is scored with round-to-nearest; the four best alphas are then clipped (step 2)
 *    and scored again, since the clipping changes which scales win (on trained weights the
 *    alpha chosen by round-to-nearest alone was often not the best once clipped).
 * 2. Clipping. Per row and group, the scale and zero point with the least output error of that
 *    group (the Gram matrix's diagonal block), among round-to-nearest's own (searched for the
 *    least weight error at 4 bits, src/quant/range-search.ts), AWQ's auto_clip ranges (shrunk by
 *    r = 1, 0.95, .. 0.55) and the output-weighted least-squares refit of the best (refitParams).
 *    Round-to-nearest's parameters are a candidate, so no group loses to them, which AWQ's plain
 *    shrink search did not ensure once round-to-nearest searches its own ranges. AWQ leaves q and
 *    k unclipped (the softmax is not linear in them); so does this (`noClipRows`).
 *
 * AWQ measures errors on a sample of calibration activations; here the Gram matrix G = X^T X of
 * all of them gives the same quantity exactly: ||X (Wq - W)^T||^2 = sum_n d_n^T G d_n (outputError).
 * src/reference/awq.ts computes both steps from the activations themselves, for the tests.
 */
import { ShapeError } from '../errors.ts';
import { outputError } from './gptq.ts';
import { layoutFor, type QuantizedWeight, type QuantSpec } from './layout.ts';
import { codeOf, dequantizeWeight, f16Scale, groupParams, groupRanges, quantizeWeight, quantizeWithParams, roundHalfAway, searchedGroupParams, valueOf } from './rtn.ts';

export interface AwqOptions {
  /** Grid steps for alpha over [0, 1] (default 20: 0, 0.05, .., 1). */
  grid?: number;
  /** Clipping: shrink steps of 1/clipGrid (default 20), down to 1 - maxShrink (default 0.5). */
  clipGrid?: number;
  maxShrink?: number;
  /** Rows the clipping search leaves unclipped (q and k). */
  noClipRows?: (n: number) => boolean;
  /** Alphas (the best by round-to-nearest's error) that are clipped and compared again (default 4). */
  finalists?: number;
}

/** Step 1's result: the chosen scales, and the errors that chose them. */
export interface AwqSearch {
  scales: Float32Array;
  alpha: number;
  /** Output error (sum over rows of d^T G d) of plain round-to-nearest (alpha 0), and of the result (clipped). */
  rtnError: number;
  error: number;
  /** Round-to-nearest's error at every alpha of the grid; the finalists' errors after clipping. */
  rtnErrors: number[];
  finalists: { alpha: number; error: number }[];
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

/** A group's output error d^T A d, A its [n, n] block of the Gram matrix (row stride K, from `at`). */
function blockError(d: Float64Array, n: number, gram: ArrayLike<number>, at: number, K: number): number {
  let err = 0;
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < n; j++) s += gram[at + i * K + j] * d[j];
    err += d[i] * s;
  }
  return err;
}

/**
 * The scale and zero point that minimize the group's output error for fixed codes u (logical):
 * weighted least squares of w ~ s u - m (m = s z; symmetric: m = 0) under the Gram block A, the
 * 2x2 normal equations solved in f64, then the nearest f16 scale and integer zero point. Null
 * when the system is singular or the scale comes out non-positive.
 */
export function refitParams(w: ArrayLike<number>, u: ArrayLike<number>, n: number, gram: ArrayLike<number>, at: number, K: number, spec: Pick<QuantSpec, 'bits' | 'symmetric'>): { scale: number; zero: number } | null {
  // a = u.A.u, b = u.A.1, c = 1.A.1, e = u.A.w, f = 1.A.w
  let [a, b, c, e, f] = [0, 0, 0, 0, 0];
  for (let i = 0; i < n; i++) {
    let au = 0;
    let a1 = 0;
    let aw = 0;
    for (let j = 0; j < n; j++) {
      const g = gram[at + i * K + j];
      au += g * u[j];
      a1 += g;
      aw += g * w[j];
    }
    a += u[i] * au;
    b += u[i] * a1;
    c += a1;
    e += u[i] * aw;
    f += aw;
  }
  if (spec.symmetric) {
    const scale = a > 0 ? e / a : 0;
    return scale > 0 ? { scale: f16Scale(scale), zero: 0 } : null;
  }
  const det = a * c - b * b;
  if (!(det > 0)) return null;
  const scale = (c * e - b * f) / det;
  if (!(scale > 0)) return null;
  const s16 = f16Scale(scale);
  const umax = spec.bits === 8 ? 255 : 15;
  return { scale: s16, zero: Math.min(umax, Math.max(0, roundHalfAway((b * e - a * f) / det / s16))) };
}

/**
 * Per row and group, the scale and zero point with the least output error of that group (the
 * Gram matrix's diagonal block): the candidates are round-to-nearest's own (searched for the
 * least weight error when spec.clipSearch), AWQ's clipped ranges (shrunk by r = 1, 0.95, ..), and
 * the output-weighted least-squares refit (refitParams) of the best, twice. Round-to-nearest's
 * parameters are among the candidates, so no group ends with more output error than it would
 * have. Rows in `noClipRows` (q and k: attention is not linear in them) keep round-to-nearest's.
 */
export function awqClipParams(w: Float32Array, N: number, K: number, spec: QuantSpec, gram: ArrayLike<number>, opts: AwqOptions = {}): { scales: Float32Array; zeros: Float32Array | null } {
  const { groupSize: G, groups } = layoutFor(K, spec);
  const { lo, hi } = groupRanges(w, N, K, spec);
  const steps = Math.round((opts.maxShrink ?? 0.5) * (opts.clipGrid ?? 20));
  const scales = new Float32Array(N * groups);
  const zeros = spec.symmetric ? null : new Float32Array(N * groups);
  const d = new Float64Array(G);
  const u = new Float64Array(G);
  for (let n = 0; n < N; n++) {
    for (let g = 0; g < groups; g++) {
      const k0 = g * G;
      const k1 = Math.min(k0 + G, K);
      const m = k1 - k0;
      const at = k0 * K + k0;
      const wg = w.subarray(n * K + k0, n * K + k1);
      const errorOf = (p: { scale: number; zero: number }, codes?: Float64Array) => {
        for (let k = 0; k < m; k++) {
          const c = codeOf(wg[k], p.scale, p.zero, spec);
          if (codes) codes[k] = c;
          d[k] = valueOf(c, p.scale, p.zero, spec.symmetric) - wg[k];
        }
        return blockError(d, m, gram, at, K);
      };
      let best = searchedGroupParams(w, n * K + k0, n * K + k1, spec);
      if (!opts.noClipRows?.(n) && best.scale > 0) {
        let bestErr = errorOf(best);
        const [a, b] = [lo[n * groups + g], hi[n * groups + g]];
        for (let i = 0; i < steps; i++) {
          const r = 1 - i / (opts.clipGrid ?? 20);
          const p = groupParams(a * r, b * r, spec);
          const err = p.scale > 0 ? errorOf(p) : Infinity;
          if (err < bestErr) [best, bestErr] = [p, err];
        }
        for (let it = 0; it < 2; it++) {
          errorOf(best, u);
          const p = refitParams(wg, u, m, gram, at, K, spec);
          const err = p ? errorOf(p) : Infinity;
          if (!(err < bestErr)) break;
          [best, bestErr] = [p!, err];
        }
      }
      scales[n * groups + g] = best.scale;
      if (zeros) zeros[n * groups + g] = best.zero;
    }
  }
  return { scales, zeros };
}

/** Step 1: the scales, alpha searched on the grid (grid 0: alpha = 0, s = 1, for a unit with nowhere to fold s). */
export function awqSearchScales(w: Float32Array, N: number, K: number, spec: QuantSpec, meanAbs: ArrayLike<number>, gram: ArrayLike<number>, opts: AwqOptions = {}): AwqSearch {
  if (w.length !== N * K || meanAbs.length !== K || gram.length !== K * K) throw new ShapeError(`awqSearchScales: expected W [${N}, ${K}], ${K} channel means and a [${K}, ${K}] Gram matrix`);
  const grid = opts.grid ?? 20;
  const tried = Array.from({ length: grid + 1 }, (_, i) => {
    const alpha = grid ? i / grid : 0;
    const scales = awqScales(meanAbs, alpha);
    return { alpha, scales, rtnError: scaledRtnError(w, N, K, spec, scales, gram), error: Infinity };
  });
  const rtnErrors = tried.map((t) => t.rtnError);
  // The finalists: the alphas whose round-to-nearest does best, each then clipped as step 2 will.
  const finalists = [...tried].sort((a, b) => a.rtnError - b.rtnError || a.alpha - b.alpha).slice(0, Math.max(1, opts.finalists ?? 4));
  for (const t of finalists) t.error = awqQuantizeScaled(scaleColumns(w, N, K, t.scales), N, K, spec, scaleGram(gram, K, t.scales), opts).error;
  const best = finalists.reduce((b, t) => (t.error < b.error || (t.error === b.error && t.alpha < b.alpha) ? t : b));
  return { scales: best.scales, alpha: best.alpha, rtnError: rtnErrors[0], error: best.error, rtnErrors, finalists: finalists.map((t) => ({ alpha: t.alpha, error: t.error })) };
}

/** Step 2: clipping search and rounding of the scaled weight Ws = W diag(s), given the scaled input's Gram matrix. */
export function awqQuantizeScaled(ws: Float32Array, N: number, K: number, spec: QuantSpec, gramScaled: ArrayLike<number>, opts: AwqOptions = {}): { q: QuantizedWeight; error: number } {
  const { scales, zeros } = awqClipParams(ws, N, K, spec, gramScaled, opts);
  const q = quantizeWithParams(ws, N, K, spec, scales, zeros);
  const deq = dequantizeWeight(q);
  const d = new Float64Array(N * K);
  for (let j = 0; j < N * K; j++) d[j] = deq[j] - ws[j];
  return { q, error: outputError(d, N, K, gramScaled) };
}

/** AWQ for W [N, K] given its inputs' mean |x| per channel and X^T X: both steps. */
export function awqQuantize(w: Float32Array, N: number, K: number, spec: QuantSpec, meanAbs: ArrayLike<number>, gram: ArrayLike<number>, opts: AwqOptions = {}): AwqResult {
  const found = awqSearchScales(w, N, K, spec, meanAbs, gram, opts);
  const ws = scaleColumns(w, N, K, found.scales);
  const { q, error } = awqQuantizeScaled(ws, N, K, spec, scaleGram(gram, K, found.scales), opts);
  return { q, scales: found.scales, alpha: found.alpha, rtnError: found.rtnError, error };
}

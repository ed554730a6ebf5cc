/**
 * AWQ's scale search as the paper states it, on the calibration activations themselves: for each
 * alpha on the grid, s = mean|x|^alpha (normalized), W' = Q(W diag s) diag(s)^-1, and the error
 * sum over rows m and outputs n of ((W' - W) x_m)_n^2. src/quant/awq.ts gets the same numbers
 * from X^T X; tests compare the two.
 */
import { layoutFor, type QuantSpec } from '../quant/layout.ts';
import { awqScales, scaleColumns } from '../quant/awq.ts';
import { codeOf, dequantizeWeight, f16Scale, groupParams, quantizeWeight, roundHalfAway, searchedGroupParams, valueOf } from '../quant/rtn.ts';

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

/**
 * AWQ's per-group choice of scale and zero point (src/quant/awq.ts awqClipParams) measured on the
 * activations x [M, K] themselves instead of X^T X: each candidate (round-to-nearest's own, the
 * shrunk ranges r = 1, 0.95, ..) is scored by sum over m of (x_m,g . d_g)^2, and the refit is the
 * regression of X_g w on X_g u and X_g 1 (symmetric: on X_g q alone), solved by its normal
 * equations. Same candidates, other arithmetic: the tests expect the same choices.
 */
export function refAwqClip(w: Float32Array, N: number, K: number, spec: QuantSpec, x: Float32Array, M: number, opts: { noClipRows?: (n: number) => boolean; clipGrid?: number; maxShrink?: number } = {}): { scales: Float32Array; zeros: Float32Array | null } {
  const { groupSize: G, groups } = layoutFor(K, spec);
  const grid = opts.clipGrid ?? 20;
  const steps = Math.round((opts.maxShrink ?? 0.5) * grid);
  const scales = new Float32Array(N * groups);
  const zeros = spec.symmetric ? null : new Float32Array(N * groups);
  const umax = spec.bits === 8 ? 255 : 15;
  for (let n = 0; n < N; n++) {
    for (let g = 0; g < groups; g++) {
      const [k0, k1] = [g * G, Math.min(g * G + G, K)];
      const codes = (p: { scale: number; zero: number }) => Array.from({ length: k1 - k0 }, (_, j) => codeOf(w[n * K + k0 + j], p.scale, p.zero, spec));
      // X_g v for a vector v over the group's columns.
      const project = (v: (j: number) => number) => Float64Array.from({ length: M }, (_, m) => {
        let s = 0;
        for (let k = k0; k < k1; k++) s += x[m * K + k] * v(k - k0);
        return s;
      });
      const error = (p: { scale: number; zero: number }) => {
        const c = codes(p);
        const e = project((j) => valueOf(c[j], p.scale, p.zero, spec.symmetric) - w[n * K + k0 + j]);
        return e.reduce((s, v) => s + v * v, 0);
      };
      const refit = (p: { scale: number; zero: number }) => {
        const c = codes(p);
        const [pu, p1, pw] = [project((j) => c[j]), project(() => 1), project((j) => w[n * K + k0 + j])];
        const dot = (a: Float64Array, b: Float64Array) => a.reduce((s, v, i) => s + v * b[i], 0);
        if (spec.symmetric) {
          const s = dot(pu, pw) / dot(pu, pu);
          return s > 0 ? { scale: f16Scale(s), zero: 0 } : null;
        }
        // Minimize |s pu - t p1 - pw|^2 over (s, t), t = s z.
        const [a, b, c2, e, f] = [dot(pu, pu), dot(pu, p1), dot(p1, p1), dot(pu, pw), dot(p1, pw)];
        const det = a * c2 - b * b;
        const s = (c2 * e - b * f) / det;
        if (!(det > 0 && s > 0)) return null;
        const s16 = f16Scale(s);
        return { scale: s16, zero: Math.min(umax, Math.max(0, roundHalfAway((b * e - a * f) / det / s16))) };
      };
      let best = searchedGroupParams(w, n * K + k0, n * K + k1, spec);
      if (!opts.noClipRows?.(n) && best.scale > 0) {
        let bestErr = error(best);
        let [lo, hi] = [0, 0];
        for (let k = k0; k < k1; k++) [lo, hi] = [Math.min(lo, w[n * K + k]), Math.max(hi, w[n * K + k])];
        for (let i = 0; i < steps; i++) {
          const r = 1 - i / grid;
          const p = groupParams(lo * r, hi * r, spec);
          const err = p.scale > 0 ? error(p) : Infinity;
          if (err < bestErr) [best, bestErr] = [p, err];
        }
        for (let it = 0; it < 2; it++) {
          const p = refit(best);
          const err = p ? error(p) : Infinity;
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

/**
 * Calibration-free choice of a group's range (QuantSpec.clipSearch): the scale (and zero point)
 * with the least squared weight error instead of the group's min-max. A 4-bit group rounds its
 * many small weights coarsely to cover a few large ones; a slightly narrower range clips those few
 * a little and rounds every other weight finer, which on trained weights lowers the squared error
 * by about 10% and the model's output error with it. The codes stay round-to-nearest for the
 * chosen range, so the kernels and the file format are unchanged.
 *
 *   symmetric   max|w|/qmax shrunk by up to 36% (10 ratios), each ratio's codes given their
 *               least-squares scale, then two refits of the best (llama.cpp's and AWQ-style
 *               quantizers run this search)
 *   asymmetric  codes from five grid scales around umax / range, each refitted by least squares
 *               (the line w ~ A u + C through codes and weights, then the nearest f16 scale and
 *               integer zero point), then two refits of the best (llama.cpp's k-quants)
 *
 * A candidate's squared error comes in closed form from sums over its codes (one pass each, so
 * the search costs a few round-to-nearest passes; load-time quantization runs it), with the stored
 * values (f16 scale, integer zero point). A grid candidate is scored on its grid codes, an upper
 * bound of its error once re-rounded. The min-max parameters are a candidate, so no group ends
 * with a larger squared error. src/reference/range-search.ts searches a dense grid instead.
 */
import type { QuantSpec } from './layout.ts';
import { clamp, f16Scale, groupParams, roundHalfAway } from './rounding.ts';

/**
 * The scale and logical zero point (symmetric: 0) quantizeWeight gives the group w[a..b): min-max,
 * or searched when spec.clipSearch. For quantizers that choose among candidates (AWQ's clipping).
 */
export function searchedGroupParams(w: Float32Array, a: number, b: number, spec: Pick<QuantSpec, 'bits' | 'symmetric' | 'clipSearch'>): { scale: number; zero: number } {
  let lo = 0;
  let hi = 0;
  for (let i = a; i < b; i++) {
    if (w[i] < lo) lo = w[i];
    if (w[i] > hi) hi = w[i];
  }
  const p = groupParams(lo, hi, spec);
  if (!spec.clipSearch || p.scale === 0) return p;
  if (spec.symmetric) return { scale: searchScale(w, a, b, p.scale, spec.bits === 8 ? 127 : 7), zero: 0 };
  return searchRange(w, a, b, lo, hi, p.scale, p.zero, spec.bits === 8 ? 255 : 15);
}

/**
 * Weighted sums over one group under a candidate, each weight w_i counting h_i = rms + |w_i| (as
 * llama.cpp's k-quants weigh theirs): a large weight is usually a salient one, and a plain squared
 * error would clip it to round the many small ones finer. [sum h, sum h u, sum h u^2, sum h u w].
 */
const sums = new Float64Array(4);

/** Codes round((w - off) * inv) clamped to [lo, hi] (round half up: the search's fast rounding), summed into `sums`. */
function codeSums(w: Float32Array, a: number, b: number, rms: number, off: number, inv: number, lo: number, hi: number): void {
  let sh = 0;
  let su = 0;
  let suu = 0;
  let suw = 0;
  for (let i = a; i < b; i++) {
    const x = w[i];
    const h = rms + (x < 0 ? -x : x);
    let u = Math.floor((x - off) * inv + 0.5);
    u = u < lo ? lo : u > hi ? hi : u;
    sh += h;
    su += h * u;
    suu += h * u * u;
    suw += h * u * x;
  }
  sums[0] = sh;
  sums[1] = su;
  sums[2] = suu;
  sums[3] = suw;
}

/** sum h (w - s (u - z))^2 over a group, from the weighted sums of w (sw = sum h w, sww = sum h w^2) and of the codes. */
function errorFromSums(sw: number, sww: number, s: number, z: number): number {
  const [sh, su, suu, suw] = sums;
  return sww - 2 * s * (suw - z * sw) + s * s * (suu - 2 * z * su + z * z * sh);
}

/** The group's weighted sums of w: [rms, sum h w, sum h w^2]. */
function weightSums(w: Float32Array, a: number, b: number): [number, number, number] {
  let sq = 0;
  for (let i = a; i < b; i++) sq += w[i] * w[i];
  const rms = Math.sqrt(sq / (b - a));
  let sw = 0;
  let sww = 0;
  for (let i = a; i < b; i++) {
    const h = rms + Math.abs(w[i]);
    sw += h * w[i];
    sww += h * w[i] * w[i];
  }
  return [rms, sw, sww];
}

/** Candidate clipping ratios of the symmetric search (1 = no clipping): 1 .. 0.64 in steps of 0.04. */
const CLIP_RATIOS = Array.from({ length: 10 }, (_, i) => 1 - 0.04 * i);

/**
 * Symmetric scale with the least squared error over w[a..b): each clipped scale's codes get their
 * least-squares scale sum(w q) / sum(q q); the best is refitted twice more. `full` is max|w|/qmax.
 */
export function searchScale(w: Float32Array, a: number, b: number, full: number, qmax: number): number {
  const [rms, , sww] = weightSums(w, a, b);
  codeSums(w, a, b, rms, 0, 1 / full, -qmax, qmax);
  let best = full;
  let bestErr = errorFromSums(0, sww, full, 0);
  const fit = (): number => (sums[2] > 0 && sums[3] > 0 ? f16Scale(sums[3] / sums[2]) : 0);
  for (const r of CLIP_RATIOS) {
    codeSums(w, a, b, rms, 0, 1 / (full * r), -qmax, qmax);
    const s = fit();
    // These codes are not yet the nearest for s: the true error is at most this.
    const err = s > 0 ? errorFromSums(0, sww, s, 0) : Infinity;
    if (err < bestErr) [best, bestErr] = [s, err];
  }
  for (let it = 0; it < 2; it++) {
    codeSums(w, a, b, rms, 0, 1 / best, -qmax, qmax);
    bestErr = Math.min(bestErr, errorFromSums(0, sww, best, 0));
    const s = fit();
    const err = s > 0 ? errorFromSums(0, sww, s, 0) : Infinity;
    if (!(err < bestErr)) break;
    [best, bestErr] = [s, err];
  }
  return best;
}

/** Grid of the asymmetric search: code steps added to umax over the group's range (-1 .. +1). */
const RANGE_STEPS = [-1, -0.5, 0, 0.5, 1];

/**
 * Asymmetric scale and zero point with the least squared error over w[a..b) (the group's range is
 * [lo, hi]; `scale`, `zero` are its min-max parameters), as llama.cpp's k-quants choose theirs:
 * codes from a few grid scales around umax / range, each refitted by least squares (the line
 * w ~ A u + C through codes and weights, then the nearest f16 scale and integer zero point), then
 * two more refits of the best. The search keeps min-max when nothing beats it.
 */
export function searchRange(w: Float32Array, a: number, b: number, lo: number, hi: number, scale: number, zero: number, umax: number): { scale: number; zero: number } {
  const [rms, sw, sww] = weightSums(w, a, b);
  // Weighted least squares of w ~ A u + C for the codes in `sums`, as a stored (f16 scale, integer zero).
  const fit = (): { scale: number; zero: number } | null => {
    const [sh, su, suu, suw] = sums;
    const den = sh * suu - su * su;
    const A = den > 0 ? (sh * suw - su * sw) / den : 0;
    if (!(A > 0)) return null;
    const s = f16Scale(A);
    return { scale: s, zero: clamp(roundHalfAway(-(sw - A * su) / sh / s), 0, umax) };
  };
  let best = { scale, zero };
  codeSums(w, a, b, rms, -zero * scale, 1 / scale, 0, umax);
  let bestErr = errorFromSums(sw, sww, scale, zero);
  for (const step of RANGE_STEPS) {
    codeSums(w, a, b, rms, lo, (umax + step) / (hi - lo), 0, umax);
    const p = fit();
    const err = p ? errorFromSums(sw, sww, p.scale, p.zero) : Infinity;
    if (err < bestErr) [best, bestErr] = [p!, err];
  }
  for (let it = 0; it < 2; it++) {
    codeSums(w, a, b, rms, -best.zero * best.scale, 1 / best.scale, 0, umax);
    bestErr = Math.min(bestErr, errorFromSums(sw, sww, best.scale, best.zero));
    const p = fit();
    const err = p ? errorFromSums(sw, sww, p.scale, p.zero) : Infinity;
    if (!(err < bestErr)) break;
    [best, bestErr] = [p!, err];
  }
  return best;
}

/**
 * The least weighted squared error (each weight counting rms + |w|, the search's objective) a
 * 4-bit (or 8-bit) group can reach with round-to-nearest codes, found by brute force: every
 * integer zero point, and scales on a dense grid (f16-rounded) from a third to 1.2 times the
 * min-max scale, each measured with the exact codes and stored values. The fast
 * search of src/quant/range-search.ts tries a handful of candidates; tests measure how much of
 * the gap between min-max and this optimum it closes.
 */
import type { QuantSpec } from '../quant/layout.ts';
import { codeOf, f16Scale, groupParams, valueOf } from '../quant/rounding.ts';

/** The search's objective: sum of h_i (w_i - q_i)^2 with h_i = rms + |w_i| (k-quants' weights). */
export function weightedGroupError(w: ArrayLike<number>, a: number, b: number, scale: number, zero: number, spec: Pick<QuantSpec, 'bits' | 'symmetric'>): number {
  let sq = 0;
  for (let i = a; i < b; i++) sq += w[i] * w[i];
  const rms = Math.sqrt(sq / (b - a));
  let err = 0;
  for (let i = a; i < b; i++) err += (rms + Math.abs(w[i])) * (w[i] - valueOf(codeOf(w[i], scale, zero, spec), scale, zero, spec.symmetric)) ** 2;
  return err;
}

/** The dense grid's best (scale, zero) for w[a..b), and its squared error. */
export function refBestGroupParams(w: ArrayLike<number>, a: number, b: number, spec: Pick<QuantSpec, 'bits' | 'symmetric'>, steps = 400): { scale: number; zero: number; error: number } {
  let lo = 0;
  let hi = 0;
  for (let i = a; i < b; i++) [lo, hi] = [Math.min(lo, w[i]), Math.max(hi, w[i])];
  const mm = groupParams(lo, hi, spec);
  let best = { ...mm, error: weightedGroupError(w, a, b, mm.scale, mm.zero, spec) };
  if (mm.scale === 0) return best;
  const umax = spec.bits === 8 ? 255 : 15;
  const zeros = spec.symmetric ? [0] : Array.from({ length: umax + 1 }, (_, z) => z);
  for (let i = 0; i <= steps; i++) {
    const scale = f16Scale(mm.scale * (1 / 3 + ((1.2 - 1 / 3) * i) / steps));
    for (const zero of zeros) {
      const error = weightedGroupError(w, a, b, scale, zero, spec);
      if (error < best.error) best = { scale, zero, error };
    }
  }
  return best;
}

/**
 * The rounding rules every CPU quantizer shares (rtn.ts, range-search.ts, GPTQ, AWQ): f16 group
 * scales, round-half-away-from-zero, and group parameters and codes on "logical" codes
 *
 *   symmetric   q in -qmax..qmax          w ~ q * scale
 *   asymmetric  u in 0..umax, zero z      w ~ (u - z) * scale
 *
 * (rtn.ts's packQuantized stores them in the layout of layout.ts).
 */
import { WebqError } from '../errors.ts';
import { f16BitsToF32, f32ToF16Bits } from '../io/safetensors/half.ts';
import type { QuantSpec } from './layout.ts';

/** Smallest normal f16: scales stay at least this, so no group's scale flushes to a subnormal or 0. */
const F16_MIN_NORMAL = 2 ** -14;

/**
 * A group scale as stored: the f16 value nearest x (`up`: the nearest at or above x, so a scale
 * meant to cover the group's range still does and no code clamps), at least the smallest normal.
 */
export function f16Scale(x: number, up = false): number {
  if (x === 0) return 0;
  let bits = f32ToF16Bits(x);
  if (up && f16BitsToF32(bits) < x) bits++; // positive f16s are ordered like their bit patterns
  const s = Math.max(F16_MIN_NORMAL, f16BitsToF32(bits));
  if (!Number.isFinite(s)) throw new WebqError('QUANT_RANGE', `quantizeWeight: a group scale of ${x} does not fit f16 (weights up to about 8e6 in magnitude)`);
  return s;
}

/** Rounds to the nearest integer, ties away from zero (2.5 -> 3, -2.5 -> -3). */
export function roundHalfAway(v: number): number {
  const a = Math.abs(v);
  const f = Math.floor(a);
  // `a - f` is exact, unlike `a + 0.5`, which rounds 0.49999999999999994 up to 1.
  const r = a - f >= 0.5 ? f + 1 : f;
  return v < 0 ? -r : r;
}

export function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}


/** Scale and zero point of a group whose values lie in [lo, hi], as quantizeWeight computes them (no clipping search). */
export function groupParams(lo: number, hi: number, spec: Pick<QuantSpec, 'bits' | 'symmetric'>): { scale: number; zero: number } {
  const qmax = spec.bits === 8 ? 127 : 7;
  const umax = spec.bits === 8 ? 255 : 15;
  lo = Math.min(lo, 0);
  hi = Math.max(hi, 0);
  if (spec.symmetric) return { scale: f16Scale(Math.max(hi, -lo) / qmax, true), zero: 0 };
  const scale = f16Scale((hi - lo) / umax, true);
  return { scale, zero: scale === 0 ? (umax + 1) / 2 : clamp(roundHalfAway(-lo / scale), 0, umax) };
}

/** The logical code of v under (scale, zero). */
export function codeOf(v: number, scale: number, zero: number, spec: Pick<QuantSpec, 'bits' | 'symmetric'>): number {
  if (spec.symmetric) {
    const qmax = spec.bits === 8 ? 127 : 7;
    return scale === 0 ? 0 : clamp(roundHalfAway(v / scale), -qmax, qmax);
  }
  return scale === 0 ? zero : clamp(roundHalfAway(v / scale) + zero, 0, spec.bits === 8 ? 255 : 15);
}

/** The value a logical code stands for (f32, as a kernel dequantizing in f32 sees it). */
export function valueOf(code: number, scale: number, zero: number, symmetric: boolean): number {
  return Math.fround((symmetric ? code : code - zero) * scale);
}

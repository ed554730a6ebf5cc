/**
 * Dynamic per-token int8 activation quantization for W8A8 / W4A8 matmuls (CPU version; the GPU
 * kernel computes the same thing).
 *
 * For each row (token) t of X [M, K]:
 *   s_t = f32(max_k |x_tk| / 127)
 *   q_tk = clamp(roundHalfAway(f32(x_tk * f32(1 / s_t))), -127, 127)  (all-zero row: s_t = 0, q = 0)
 * and x_tk ~= q_tk * s_t with |x_tk - q_tk * s_t| <= s_t / 2 (plus an ulp or so).
 *
 * The product with the f32 reciprocal is exactly what shaders/quantize_act.wgsl computes, so CPU
 * and GPU pick the same code even at ties (f16 inputs make ties common); ties go away from zero
 * like the weight quantizer (WGSL's round() goes to even, so the kernel rounds by hand). A device
 * whose f32 reciprocal is not correctly rounded could still differ by one code at a tie.
 *
 * Codes are packed exactly like int8 weights: word (t, j) at index t*(Kp/4) + j holds k = 4j..4j+3,
 * byte b = element 4j+b. K is padded to Kp with q = 0. Pass the weight's Kp so rows line up with the
 * weight's words (int4 weight word j pairs with activation words 2j and 2j+1).
 *
 *   bit  31      24 23      16 15       8 7        0
 *       +----------+----------+----------+----------+
 *       | q[4j+3]  | q[4j+2]  | q[4j+1]  | q[4j+0]  |
 *       +----------+----------+----------+----------+
 */
import { ShapeError, WebqError } from '../errors.ts';
import { roundUp } from './layout.ts';
import { roundHalfAway } from './rtn.ts';

export interface QuantizedActivations {
  M: number;
  K: number;
  /** Padded row length, a multiple of 4. */
  Kp: number;
  /** [M, Kp/4] packed int8 codes. */
  values: Uint32Array;
  /** [M] per-token scales. */
  scales: Float32Array;
}

/**
 * Quantizes a row-major [M, K] f32 activation per token. `Kp` (default: K rounded up to 4) must be
 * a multiple of 4 and >= K; pass the weight's Kp when the result feeds a quantized matmul.
 */
export function quantizeActivations(x: Float32Array, M: number, K: number, Kp: number = roundUp(K, 4)): QuantizedActivations {
  if (!Number.isInteger(M) || M < 1 || !Number.isInteger(K) || K < 1) {
    throw new ShapeError(`quantizeActivations: M and K must be positive integers, got M=${M}, K=${K}`);
  }
  if (!Number.isInteger(Kp) || Kp < K || Kp % 4 !== 0) {
    throw new ShapeError(`quantizeActivations: Kp must be a multiple of 4 and >= K=${K}, got ${Kp}`);
  }
  if (x.length !== M * K) {
    throw new ShapeError(`quantizeActivations: x has ${x.length} elements, expected M*K = ${M}*${K} = ${M * K}`);
  }
  const wordsPerRow = Kp >> 2;
  const values = new Uint32Array(M * wordsPerRow);
  const scales = new Float32Array(M);
  const codes = new Int32Array(Kp); // one row; the tail K..Kp-1 stays 0 (padding)
  for (let t = 0; t < M; t++) {
    const row = t * K;
    let amax = 0;
    for (let k = 0; k < K; k++) {
      const v = x[row + k];
      if (!Number.isFinite(v)) {
        throw new WebqError('QUANT_NONFINITE', `quantizeActivations: x[${t}][${k}] is ${v}; activations must be finite`);
      }
      const a = Math.abs(v);
      if (a > amax) amax = a;
    }
    const s = Math.fround(amax / 127);
    scales[t] = s;
    // Multiply by the f32 reciprocal, as the GPU kernel does, so both pick the same code at ties.
    const inv = s === 0 ? 0 : Math.fround(1 / s);
    for (let k = 0; k < K; k++) {
      if (s === 0) {
        codes[k] = 0;
        continue;
      }
      const c = roundHalfAway(Math.fround(x[row + k] * inv));
      codes[k] = c < -127 ? -127 : c > 127 ? 127 : c;
    }
    const base = t * wordsPerRow;
    for (let j = 0, k = 0; j < wordsPerRow; j++, k += 4) {
      values[base + j] =
        (codes[k] & 0xff) | ((codes[k + 1] & 0xff) << 8) | ((codes[k + 2] & 0xff) << 16) | ((codes[k + 3] & 0xff) << 24);
    }
  }
  return { M, K, Kp, values, scales };
}

/** Reads int8 code (t, k) from packed activations (or any int8-packed [rows, Kp/4] array). */
export function readActivationCode(a: QuantizedActivations, t: number, k: number): number {
  const shift = (k & 3) << 3;
  return (a.values[t * (a.Kp >> 2) + (k >> 2)] << (24 - shift)) >> 24;
}

/**
 * Per token and per weight group, the sum of the int8 activation codes in that group:
 * sums[t * (Kp/groupSize) + g] = sum_{k in group g} q_tk. A W4A8 / asymmetric kernel needs it to
 * apply the zero point once per group: sum_k q_x (q_w - zero) = dot(q_x, q_w) - zero * sum_k q_x.
 * `groupSize` must divide Kp (use the weight's groupSize; per-channel: groupSize = Kp).
 */
export function groupSums(a: QuantizedActivations, groupSize: number): Int32Array {
  if (!Number.isInteger(groupSize) || groupSize < 4 || a.Kp % groupSize !== 0) {
    throw new ShapeError(`groupSums: groupSize must divide Kp=${a.Kp} (and be >= 4), got ${groupSize}`);
  }
  const groups = a.Kp / groupSize;
  const sums = new Int32Array(a.M * groups);
  for (let t = 0; t < a.M; t++) {
    for (let g = 0; g < groups; g++) {
      let acc = 0;
      for (let k = g * groupSize; k < (g + 1) * groupSize; k++) acc += readActivationCode(a, t, k);
      sums[t * groups + g] = acc;
    }
  }
  return sums;
}

/**
 * Round-to-nearest (RTN) weight quantization into the layout of layout.ts, and its inverse.
 *
 * Rounding is round-half-away-from-zero (roundHalfAway below), computed in f64 against the scale
 * AFTER it has been rounded to f16 (f16Scale), so the codes are exactly right for the scale the GPU
 * reads (f16 on devices with shader-f16) and the files store (F16, as GPTQ, AWQ and llama.cpp do).
 * Everything is deterministic: plain loops, no randomness, no platform-dependent math.
 *
 * Asymmetric groups quantize the range [min(min, 0), max(max, 0)] rather than [min, max]. Including
 * 0 keeps the integer zero point inside 0..255 (0..15) even for all-positive or all-negative groups,
 * and makes weight 0 (hence the K padding) dequantize to exactly 0. This is GPTQ's convention.
 */
import { ShapeError, WebqError } from '../errors.ts';
import { layoutFor, validateQuantizedWeight, type QuantizedWeight, type QuantSpec } from './layout.ts';
import { searchRange, searchScale } from './range-search.ts';
import { clamp as clampImported, codeOf, f16Scale, groupParams, roundHalfAway as roundImported } from './rounding.ts';

// The building blocks live in rounding.ts and range-search.ts; quantizers import them from here too.
export { clamp, codeOf, f16Scale, groupParams, roundHalfAway, valueOf } from './rounding.ts';
export { searchedGroupParams } from './range-search.ts';

// Module-local bindings for the per-weight loops: a module runner (vitest's) turns each use of an
// imported binding into a property read, which kept these calls from being inlined (2-3x slower).
const roundHalfAway = roundImported;
const clamp = clampImported;

/**
 * Quantizes a row-major [N, K] f32 weight (y = x W^T) with round-to-nearest.
 * Throws ShapeError if w.length != N*K, QuantSpecError for a bad spec, and WebqError
 * ('QUANT_NONFINITE') if any weight is NaN or infinite.
 */
export function quantizeWeight(w: Float32Array, N: number, K: number, spec: QuantSpec): QuantizedWeight {
  const { Kp, groupSize: G, groups, wordsPerRow } = layoutFor(K, spec);
  if (!Number.isInteger(N) || N < 1) throw new ShapeError(`quantizeWeight: N must be a positive integer, got ${N}`);
  if (w.length !== N * K) {
    throw new ShapeError(`quantizeWeight: weight has ${w.length} elements, expected N*K = ${N}*${K} = ${N * K}`);
  }
  const bits = spec.bits;
  const sym = spec.symmetric;
  const values = new Uint32Array(N * wordsPerRow);
  const scales = new Float32Array(N * groups);
  const zeros = sym ? null : new Float32Array(N * groups);
  // Codes of one row before packing: int8 values as -128..127, int4 values as nibbles 0..15.
  const codes = new Int32Array(Kp);
  const qmax = bits === 8 ? 127 : 7; // symmetric code range is -qmax..qmax
  const umax = bits === 8 ? 255 : 15; // asymmetric unsigned code range is 0..umax
  const symOffset = bits === 8 ? 0 : 8; // int4 symmetric nibble = code + 8
  const asymOffset = bits === 8 ? 128 : 0; // int8 asymmetric stores u - 128 and z - 128

  for (let n = 0; n < N; n++) {
    const row = n * K;
    for (let g = 0; g < groups; g++) {
      const k0 = g * G;
      const k1 = Math.min(k0 + G, K); // real elements only: padding must not affect the scale
      let lo = 0;
      let hi = 0;
      for (let k = k0; k < k1; k++) {
        const v = w[row + k];
        if (!Number.isFinite(v)) {
          throw new WebqError('QUANT_NONFINITE', `quantizeWeight: weight[${n}][${k}] is ${v}; all weights must be finite`);
        }
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      let scale: number;
      let zero: number; // the code that means 0, in the unsigned convention
      if (sym) {
        scale = f16Scale(Math.max(hi, -lo) / qmax, true);
        if (spec.clipSearch && scale > 0) scale = searchScale(w, row + k0, row + k1, scale, qmax);
        zero = symOffset;
        for (let k = k0; k < k1; k++) {
          codes[k] = scale === 0 ? zero : clamp(roundHalfAway(w[row + k] / scale), -qmax, qmax) + zero;
        }
      } else {
        scale = f16Scale((hi - lo) / umax, true);
        // All-zero group: choose the middle code so the stored bytes read as 0 (int8) / 8 (int4).
        zero = scale === 0 ? (umax + 1) / 2 : clamp(roundHalfAway(-lo / scale), 0, umax);
        if (spec.clipSearch && scale > 0) ({ scale, zero } = searchRange(w, row + k0, row + k1, lo, hi, scale, zero, umax));
        for (let k = k0; k < k1; k++) {
          codes[k] = scale === 0 ? zero : clamp(roundHalfAway(w[row + k] / scale) + zero, 0, umax);
        }
        zeros![n * groups + g] = zero - asymOffset;
        if (asymOffset !== 0) for (let k = k0; k < k1; k++) codes[k] -= asymOffset;
      }
      // Padding dequantizes to exactly 0: store the zero point itself.
      for (let k = k1; k < k0 + G; k++) codes[k] = sym ? zero : zero - asymOffset;
      scales[n * groups + g] = scale;
    }
    packRow(codes, bits, values, n * wordsPerRow, wordsPerRow);
  }
  return { N, K, Kp, groupSize: G, groups, bits, symmetric: sym, values, scales, zeros };
}

/**
 * Packs one row of codes into `words` words of `out` starting at `base`.
 *
 *   int8  word j: [ c[4j+3] | c[4j+2] | c[4j+1] | c[4j] ]                       (byte 3 .. byte 0)
 *   int4  word j: [ c[8j+7] c[8j+3] | c[8j+6] c[8j+2] | c[8j+5] c[8j+1] | c[8j+4] c[8j] ]
 *                  (each byte: high nibble, low nibble)
 */
function packRow(c: Int32Array, bits: number, out: Uint32Array, base: number, words: number): void {
  if (bits === 8) {
    for (let j = 0, k = 0; j < words; j++, k += 4) {
      out[base + j] = (c[k] & 0xff) | ((c[k + 1] & 0xff) << 8) | ((c[k + 2] & 0xff) << 16) | ((c[k + 3] & 0xff) << 24);
    }
    return;
  }
  for (let j = 0, k = 0; j < words; j++, k += 8) {
    let word = 0;
    for (let b = 0; b < 4; b++) word |= ((c[k + b] & 0xf) | ((c[k + 4 + b] & 0xf) << 4)) << (8 * b);
    out[base + j] = word;
  }
}

/**
 * Expands a quantized weight back to a row-major [N, K] f32 array (padding dropped):
 * w[n][k] = f32((code - zero) * scale), the exact value a kernel that dequantizes in f32 sees.
 */
export function dequantizeWeight(q: QuantizedWeight): Float32Array {
  validateQuantizedWeight(q);
  const { N, K, Kp, groupSize: G, groups, bits, values, scales } = q;
  const out = new Float32Array(N * K);
  const wordsPerRow = bits === 8 ? Kp >> 2 : Kp >> 3;
  const implicitZero = bits === 8 ? 0 : 8;
  for (let n = 0; n < N; n++) {
    const base = n * wordsPerRow;
    for (let g = 0; g < groups; g++) {
      const s = scales[n * groups + g];
      const z = q.zeros !== null ? q.zeros[n * groups + g] : implicitZero;
      const k1 = Math.min(g * G + G, K);
      for (let k = g * G; k < k1; k++) {
        let code: number;
        if (bits === 8) {
          code = (values[base + (k >> 2)] << (24 - ((k & 3) << 3))) >> 24; // sign-extend byte k&3
        } else {
          const e = k & 7;
          code = (values[base + (k >> 3)] >>> (((e & 3) << 3) + ((e >> 2) << 2))) & 0xf;
        }
        out[n * K + k] = (code - z) * s;
      }
    }
  }
  return out;
}

/**
 * Packs logical codes [N, K] with their group scales [N, groups] (and, asymmetric, integer zero
 * points [N, groups]) into the layout of layout.ts; padding gets the zero point, as in quantizeWeight.
 */
export function packQuantized(N: number, K: number, spec: QuantSpec, codes: Int32Array, scales: Float32Array, zeros: Float32Array | null): QuantizedWeight {
  const { Kp, groupSize: G, groups, wordsPerRow } = layoutFor(K, spec);
  if (codes.length !== N * K || scales.length !== N * groups || (!spec.symmetric && zeros?.length !== N * groups)) {
    throw new ShapeError(`packQuantized: need ${N * K} codes and ${N * groups} scales${spec.symmetric ? '' : ' and zeros'} for [${N}, ${K}] at group ${spec.group}`);
  }
  const bits = spec.bits;
  const values = new Uint32Array(N * wordsPerRow);
  const row = new Int32Array(Kp);
  const symOffset = bits === 8 ? 0 : 8;
  const asymOffset = bits === 8 ? 128 : 0;
  const storedZeros = spec.symmetric ? null : new Float32Array(N * groups);
  for (let n = 0; n < N; n++) {
    for (let g = 0; g < groups; g++) {
      const z = spec.symmetric ? 0 : zeros![n * groups + g];
      if (storedZeros) storedZeros[n * groups + g] = z - asymOffset;
      for (let k = g * G; k < g * G + G; k++) {
        const c = k < K ? codes[n * K + k] : z; // padding dequantizes to exactly 0
        row[k] = spec.symmetric ? c + symOffset : c - asymOffset;
      }
    }
    packRow(row, bits, values, n * wordsPerRow, wordsPerRow);
  }
  return { N, K, Kp, groupSize: G, groups, bits, symmetric: spec.symmetric, values, scales: Float32Array.from(scales), zeros: storedZeros };
}

/**
 * Round-to-nearest with each group's range given ([lo, hi] per row and group, [N, groups]): a
 * range narrower than the group's values clips them (AWQ's clipping search chooses these).
 */
export function quantizeWeightRanges(w: Float32Array, N: number, K: number, spec: QuantSpec, lo: Float32Array, hi: Float32Array): QuantizedWeight {
  const { groupSize: G, groups } = layoutFor(K, spec);
  if (w.length !== N * K) throw new ShapeError(`quantizeWeightRanges: weight has ${w.length} elements, expected ${N}*${K}`);
  const codes = new Int32Array(N * K);
  const scales = new Float32Array(N * groups);
  const zeros = spec.symmetric ? null : new Float32Array(N * groups);
  for (let n = 0; n < N; n++) {
    for (let g = 0; g < groups; g++) {
      const { scale, zero } = groupParams(lo[n * groups + g], hi[n * groups + g], spec);
      scales[n * groups + g] = scale;
      if (zeros) zeros[n * groups + g] = zero;
      for (let k = g * G; k < Math.min(g * G + G, K); k++) {
        if (!Number.isFinite(w[n * K + k])) throw new WebqError('QUANT_NONFINITE', `quantizeWeightRanges: weight[${n}][${k}] is ${w[n * K + k]}; all weights must be finite`);
        codes[n * K + k] = codeOf(w[n * K + k], scale, zero, spec);
      }
    }
  }
  return packQuantized(N, K, spec, codes, scales, zeros);
}

/** Round-to-nearest with each group's scale and logical zero point given ([N, groups] each; zeros null when symmetric). */
export function quantizeWithParams(w: Float32Array, N: number, K: number, spec: QuantSpec, scales: Float32Array, zeros: Float32Array | null): QuantizedWeight {
  const { groupSize: G, groups } = layoutFor(K, spec);
  if (w.length !== N * K) throw new ShapeError(`quantizeWithParams: weight has ${w.length} elements, expected ${N}*${K}`);
  const codes = new Int32Array(N * K);
  for (let n = 0; n < N; n++) {
    for (let g = 0; g < groups; g++) {
      const [scale, zero] = [scales[n * groups + g], zeros ? zeros[n * groups + g] : 0];
      for (let k = g * G; k < Math.min(g * G + G, K); k++) {
        if (!Number.isFinite(w[n * K + k])) throw new WebqError('QUANT_NONFINITE', `quantizeWithParams: weight[${n}][${k}] is ${w[n * K + k]}; all weights must be finite`);
        codes[n * K + k] = codeOf(w[n * K + k], scale, zero, spec);
      }
    }
  }
  return packQuantized(N, K, spec, codes, scales, zeros);
}

/** Each group's [min, max] ([N, groups] each): the ranges quantizeWeight uses. */
export function groupRanges(w: Float32Array, N: number, K: number, spec: QuantSpec): { lo: Float32Array; hi: Float32Array } {
  const { groupSize: G, groups } = layoutFor(K, spec);
  const lo = new Float32Array(N * groups);
  const hi = new Float32Array(N * groups);
  for (let n = 0; n < N; n++) {
    for (let g = 0; g < groups; g++) {
      let a = 0;
      let b = 0;
      for (let k = g * G; k < Math.min(g * G + G, K); k++) {
        a = Math.min(a, w[n * K + k]);
        b = Math.max(b, w[n * K + k]);
      }
      lo[n * groups + g] = a;
      hi[n * groups + g] = b;
    }
  }
  return { lo, hi };
}

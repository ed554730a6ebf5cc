/**
 * GGUF weights -> webq's packed layout (src/quant/layout.ts), as the three arrays a pre-quantized
 * webq file stores: codes (u32 words), f16 scale bits, and no zero points (every exact mapping is
 * symmetric). One webq group of 32 is one ggml block:
 *
 *   Q8_0  block: d, qs[32] int8         -> int8 symmetric, group 32: the 32 bytes ARE the four
 *                                          words (byte b of word j = element 4j+b), scale = d
 *   Q4_0  block: d, qs[16]              -> int4 symmetric, group 32: the same nibbles (w = (q-8)*d
 *         byte j: elem j low, j+16 high    is webq's symmetric int4), regrouped so word j holds
 *                                          elements 8j..8j+7 (byte b: 8j+b low, 8j+4+b high)
 *   Q5_0  block: d, qh, qs[16]          -> int8 symmetric, group 32: code = q - 16 in -16..15
 *
 * No value changes: dequantizing the result gives ggml's dequantization bit for bit (the scales
 * are the blocks' own f16 d). Every other type is dequantized exactly and re-quantized by webq's
 * round-to-nearest to int8 symmetric, group 32 (REQUANT_SPEC): see ggml-types.ts for why.
 */
import { f32ArrayToF16 } from '../io/half.ts';
import { REQUANT_SPEC } from '../quant/imports/index.ts';
import type { QuantSpec } from '../quant/layout.ts';
import { quantizeWeight } from '../quant/rtn.ts';
import { dequantize } from './dequant.ts';
import type { GgmlType } from './ggml-types.ts';

/** A weight in webq's layout, with scales as f16 bits (what a webq-quant-2 file stores). */
export interface PackedWeight {
  spec: QuantSpec;
  /** [N, K * bits / 32] */
  values: Uint32Array;
  /** [N, K / 32] f16 bits */
  scales: Uint16Array;
  /** The codes and scales are the file's own (false: re-quantized from the exact dequantization). */
  exact: boolean;
}

export const INT8_G32: QuantSpec = { bits: 8, group: 32, symmetric: true };
export const INT4_G32: QuantSpec = { bits: 4, group: 32, symmetric: true };

/** The webq spec a type lands in (exact or re-quantized); null for float types. */
export function packedSpec(t: GgmlType): QuantSpec | null {
  if (t.mapping === 'float') return null;
  return t.name === 'Q4_0' ? INT4_G32 : t.name === 'Q8_0' || t.name === 'Q5_0' ? INT8_G32 : REQUANT_SPEC;
}

/** [N, K] in type `t` (whole rows of raw bytes) -> webq's packed layout. */
export function packWeight(t: GgmlType, bytes: Uint8Array, N: number, K: number): PackedWeight {
  const blocks = (N * K) / 32;
  const scales = new Uint16Array(blocks);
  if (t.name === 'Q8_0') {
    const values = new Uint32Array(blocks * 8);
    const v8 = new Uint8Array(values.buffer);
    for (let i = 0, o = 0; i < blocks; i++, o += 34) {
      scales[i] = bytes[o] | (bytes[o + 1] << 8);
      v8.set(bytes.subarray(o + 2, o + 34), i * 32);
    }
    return { spec: INT8_G32, values, scales, exact: true };
  }
  if (t.name === 'Q4_0') {
    const values = new Uint32Array(blocks * 4);
    for (let i = 0, o = 0; i < blocks; i++, o += 18) {
      scales[i] = bytes[o] | (bytes[o + 1] << 8);
      const nib = (e: number) => (e < 16 ? bytes[o + 2 + e] & 0xf : bytes[o + 2 + e - 16] >> 4);
      for (let j = 0; j < 4; j++) {
        let word = 0;
        for (let b = 0; b < 4; b++) word |= (nib(8 * j + b) | (nib(8 * j + 4 + b) << 4)) << (8 * b);
        values[i * 4 + j] = word >>> 0;
      }
    }
    return { spec: INT4_G32, values, scales, exact: true };
  }
  if (t.name === 'Q5_0') {
    const values = new Uint32Array(blocks * 8);
    const v8 = new Uint8Array(values.buffer);
    for (let i = 0, o = 0; i < blocks; i++, o += 22) {
      scales[i] = bytes[o] | (bytes[o + 1] << 8);
      const qh = (bytes[o + 2] | (bytes[o + 3] << 8) | (bytes[o + 4] << 16) | (bytes[o + 5] << 24)) >>> 0;
      for (let j = 0; j < 16; j++) {
        const q = bytes[o + 6 + j];
        v8[i * 32 + j] = (((q & 0xf) | (((qh >>> j) & 1) << 4)) - 16) & 0xff;
        v8[i * 32 + j + 16] = (((q >> 4) | (((qh >>> (j + 16)) & 1) << 4)) - 16) & 0xff;
      }
    }
    return { spec: INT8_G32, values, scales, exact: true };
  }
  const q = quantizeWeight(dequantize(t, bytes, N * K), N, K, REQUANT_SPEC);
  return { spec: REQUANT_SPEC, values: q.values, scales: f32ArrayToF16(q.scales), exact: false };
}

/**
 * ggml's block formats -> f32, exactly as ggml's dequantize_row_* computes them in f32 (every
 * intermediate product below is exact in f32, so the one rounding when a value is stored into the
 * Float32Array is ggml's own last rounding). Blocks, with d/dmin f16 and element i of a block:
 *
 *   Q8_0   d, qs[32] int8                                 w = qs[i] * d
 *   Q4_0   d, qs[16]: byte j = elem j (low), j+16 (high)  w = (q - 8) * d
 *   Q4_1   d, m, qs[16] as Q4_0                           w = q * d + m
 *   Q5_0   d, qh (u32: bit i = 5th bit of elem i), qs[16] w = (q | h<<4 - 16) * d
 *   Q5_1   d, m, qh, qs[16]                               w = (q | h<<4) * d + m
 *   Q2_K   scales[16] (low 4: scale, high 4: min), qs[64] (2-bit), d, dmin
 *   Q3_K   hmask[32], qs[64] (2-bit + high bit), scales[12] (16 x 6-bit, offset 32), d
 *   Q4_K   d, dmin, scales[12] (8 x 6-bit scale + 8 x 6-bit min), qs[128]   w = d*sc*q - dmin*m
 *   Q5_K   d, dmin, scales[12], qh[32], qs[128]
 *   Q6_K   ql[128], qh[64], scales[16] int8, d            w = d * sc * (q - 32)
 * (super-blocks of 256; sub-blocks of 32 for Q4_K/Q5_K, of 16 for Q2_K/Q3_K/Q6_K).
 */
import { bf16BitsToF32, f16BitsToF32 } from '../io/safetensors/half.ts';
import type { GgmlType } from './ggml-types.ts';

type Row = (b: Uint8Array, o: number, y: Float32Array, at: number) => void;

export const h16 = (b: Uint8Array, o: number) => f16BitsToF32(b[o] | (b[o + 1] << 8));

/** The 6-bit scale and min of sub-block j of a Q4_K/Q5_K super-block (ggml's get_scale_min_k4). */
export function scaleMinK4(j: number, s: Uint8Array, o: number): [number, number] {
  if (j < 4) return [s[o + j] & 63, s[o + j + 4] & 63];
  return [(s[o + j + 4] & 0xf) | ((s[o + j - 4] >> 6) << 4), (s[o + j + 4] >> 4) | ((s[o + j] >> 6) << 4)];
}

const q8_0: Row = (b, o, y, at) => {
  const d = h16(b, o);
  for (let i = 0; i < 32; i++) y[at + i] = ((b[o + 2 + i] << 24) >> 24) * d;
};

const q4_0: Row = (b, o, y, at) => {
  const d = h16(b, o);
  for (let j = 0; j < 16; j++) {
    const q = b[o + 2 + j];
    y[at + j] = ((q & 0xf) - 8) * d;
    y[at + j + 16] = ((q >> 4) - 8) * d;
  }
};

const q4_1: Row = (b, o, y, at) => {
  const d = h16(b, o);
  const m = h16(b, o + 2);
  for (let j = 0; j < 16; j++) {
    const q = b[o + 4 + j];
    y[at + j] = (q & 0xf) * d + m;
    y[at + j + 16] = (q >> 4) * d + m;
  }
};

const qh32 = (b: Uint8Array, o: number) => (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;

const q5_0: Row = (b, o, y, at) => {
  const d = h16(b, o);
  const qh = qh32(b, o + 2);
  for (let j = 0; j < 16; j++) {
    const q = b[o + 6 + j];
    y[at + j] = (((q & 0xf) | (((qh >>> j) & 1) << 4)) - 16) * d;
    y[at + j + 16] = (((q >> 4) | (((qh >>> (j + 16)) & 1) << 4)) - 16) * d;
  }
};

const q5_1: Row = (b, o, y, at) => {
  const d = h16(b, o);
  const m = h16(b, o + 2);
  const qh = qh32(b, o + 4);
  for (let j = 0; j < 16; j++) {
    const q = b[o + 8 + j];
    y[at + j] = ((q & 0xf) | (((qh >>> j) & 1) << 4)) * d + m;
    y[at + j + 16] = ((q >> 4) | (((qh >>> (j + 16)) & 1) << 4)) * d + m;
  }
};

const q2_K: Row = (b, o, y, at) => {
  const d = h16(b, o + 80);
  const min = h16(b, o + 82);
  let is = 0;
  let out = at;
  for (let n = 0; n < 256; n += 128) {
    const q = o + 16 + n / 4;
    for (let shift = 0; shift < 8; shift += 2) {
      for (const half of [0, 16]) {
        const sc = b[o + is++];
        const dl = d * (sc & 0xf);
        const ml = min * (sc >> 4);
        for (let l = 0; l < 16; l++) y[out++] = dl * ((b[q + half + l] >> shift) & 3) - ml;
      }
    }
  }
};

/** Q3_K's 16 scales, 6 bits each, unpacked from 12 bytes (ggml's kmask shuffle), minus 32. */
export function q3kScales(b: Uint8Array, o: number): Int8Array {
  const s = new Int8Array(16);
  for (let j = 0; j < 16; j++) {
    const low = j < 8 ? b[o + j] & 0xf : b[o + j - 8] >> 4;
    const high = (b[o + 8 + (j % 4)] >> (2 * Math.floor(j / 4))) & 3;
    s[j] = (low | (high << 4)) - 32;
  }
  return s;
}

const q3_K: Row = (b, o, y, at) => {
  const hm = o;
  const d = h16(b, o + 108);
  const scales = q3kScales(b, o + 96);
  let is = 0;
  let m = 1;
  let out = at;
  for (let n = 0; n < 256; n += 128) {
    const q = o + 32 + n / 4;
    for (let shift = 0; shift < 8; shift += 2, m <<= 1) {
      for (const half of [0, 16]) {
        const dl = d * scales[is++];
        for (let l = 0; l < 16; l++) y[out++] = dl * (((b[q + half + l] >> shift) & 3) - (b[hm + half + l] & m ? 0 : 4));
      }
    }
  }
};

const q4_K: Row = (b, o, y, at) => {
  const d = h16(b, o);
  const min = h16(b, o + 2);
  let out = at;
  for (let j = 0, is = 0; j < 256; j += 64, is += 2) {
    const q = o + 16 + j / 2;
    const [sc1, m1] = scaleMinK4(is, b, o + 4);
    const [sc2, m2] = scaleMinK4(is + 1, b, o + 4);
    const d1 = d * sc1, mm1 = min * m1, d2 = d * sc2, mm2 = min * m2;
    for (let l = 0; l < 32; l++) y[out++] = d1 * (b[q + l] & 0xf) - mm1;
    for (let l = 0; l < 32; l++) y[out++] = d2 * (b[q + l] >> 4) - mm2;
  }
};

const q5_K: Row = (b, o, y, at) => {
  const d = h16(b, o);
  const min = h16(b, o + 2);
  const qh = o + 16;
  let out = at;
  for (let j = 0, is = 0, u1 = 1, u2 = 2; j < 256; j += 64, is += 2, u1 <<= 2, u2 <<= 2) {
    const ql = o + 48 + j / 2;
    const [sc1, m1] = scaleMinK4(is, b, o + 4);
    const [sc2, m2] = scaleMinK4(is + 1, b, o + 4);
    const d1 = d * sc1, mm1 = min * m1, d2 = d * sc2, mm2 = min * m2;
    for (let l = 0; l < 32; l++) y[out++] = d1 * ((b[ql + l] & 0xf) + (b[qh + l] & u1 ? 16 : 0)) - mm1;
    for (let l = 0; l < 32; l++) y[out++] = d2 * ((b[ql + l] >> 4) + (b[qh + l] & u2 ? 16 : 0)) - mm2;
  }
};

const q6_K: Row = (b, o, y, at) => {
  const d = h16(b, o + 208);
  for (let n = 0; n < 2; n++) {
    const ql = o + 64 * n;
    const qh = o + 128 + 32 * n;
    const sc = o + 192 + 8 * n;
    const base = at + 128 * n;
    for (let half = 0; half < 2; half++) {
      // d * sc is exact in f32 (11 + 8 significant bits); the product with q rounds once, as in ggml.
      const s0 = d * ((b[sc + half] << 24) >> 24);
      const s2 = d * ((b[sc + half + 2] << 24) >> 24);
      const s4 = d * ((b[sc + half + 4] << 24) >> 24);
      const s6 = d * ((b[sc + half + 6] << 24) >> 24);
      for (let l = 16 * half; l < 16 * half + 16; l++) {
        const h = b[qh + l];
        const lo = b[ql + l];
        const hi = b[ql + l + 32];
        y[base + l] = s0 * (((lo & 0xf) | ((h & 3) << 4)) - 32);
        y[base + l + 32] = s2 * (((hi & 0xf) | (((h >> 2) & 3) << 4)) - 32);
        y[base + l + 64] = s4 * (((lo >> 4) | (((h >> 4) & 3) << 4)) - 32);
        y[base + l + 96] = s6 * (((hi >> 4) | (((h >> 6) & 3) << 4)) - 32);
      }
    }
  }
};

const BLOCKS: Record<string, Row> = { Q8_0: q8_0, Q4_0: q4_0, Q4_1: q4_1, Q5_0: q5_0, Q5_1: q5_1, Q2_K: q2_K, Q3_K: q3_K, Q4_K: q4_K, Q5_K: q5_K, Q6_K: q6_K };

/** `bytes` (whole rows of type `t`) -> f32 values, exactly as ggml dequantizes them. */
export function dequantize(t: GgmlType, bytes: Uint8Array, elements: number): Float32Array {
  const y = new Float32Array(elements);
  if (t.name === 'F32') {
    y.set(new Float32Array(bytes.buffer, bytes.byteOffset, elements));
    return y;
  }
  if (t.name === 'F16' || t.name === 'BF16') {
    const bits = new Uint16Array(bytes.buffer, bytes.byteOffset, elements);
    const f = t.name === 'F16' ? f16BitsToF32 : bf16BitsToF32;
    for (let i = 0; i < elements; i++) y[i] = f(bits[i]);
    return y;
  }
  const row = BLOCKS[t.name];
  for (let blk = 0, o = 0; blk < elements / t.blockElems; blk++, o += t.blockBytes) row(bytes, o, y, blk * t.blockElems);
  return y;
}

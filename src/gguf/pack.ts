/**
 * GGUF weights -> webq's packed layout (src/quant/layout.ts): codes (u32 words), scales and, when
 * asymmetric, integer zero points, one webq group of 32 per ggml block or sub-block.
 *
 * copy (exact: the file's codes and f16 scales, dequantization unchanged bit for bit)
 *   Q8_0  d, qs[32] int8        -> int8 symmetric: the 32 bytes ARE four words (byte b of word j is
 *                                  element 4j+b), scale d
 *   Q4_0  d, qs[16]             -> int4 symmetric: the same nibbles (w = (q-8)*d is webq's int4),
 *         byte j: elem j low,      regrouped so word j holds elements 8j..8j+7 (byte b: 8j+b low,
 *         elem j+16 high           8j+4+b high)
 *   Q5_0  d, qh, qs[16]         -> int8 symmetric, code q - 16
 *
 * affine (Q4_1, Q5_1: w = d*q + m; Q4_K, Q5_K sub-blocks of 32: w = D*q - M, D = d*sc, M = dmin*m)
 *   -> int8 asymmetric: scale D/k, code k*q - 128, zero round(k*M/D) - 128, with k (up to
 *   255 / qmax: 17 for 4-bit, 8 for 5-bit codes) picked per group for the smallest zero-point
 *   rounding. The grid is kept; only the group's offset moves, by at most D/(2k) (nothing when
 *   k*M/D is an integer, as when M = 0). webq's zero points are integers (its int8-activation
 *   kernels subtract zero * sum(x) in integer arithmetic), which is why M/D cannot be kept itself.
 *
 * scaled (Q6_K, Q3_K: sub-blocks of 16, w = D_j * q)
 *   -> int8 symmetric: a group of 32 is two sub-blocks with their own scales, which one int8 scale
 *   cannot both hold. Per group, the scale with the least squared error among D_max/k (k up to 4
 *   for Q6_K's |q| <= 32, 32 for Q3_K's 4: the sub-block with the larger scale exact, the other
 *   rounded to its steps) and round-to-nearest's max|w|/127.
 *
 * rtn (Q2_K: sub-blocks of 16 with their own mins)
 *   -> webq's round-to-nearest int8 symmetric of the exact dequantization.
 *
 * Scales are kept as f32 here (a webq-quant file may hold F32 scales), so a device with f32
 * activations multiplies by D/k exactly; an f16 device rounds them to f16 on upload, as it does all
 * scales.
 */
import { REQUANT_SPEC } from '../quant/imports/index.ts';
import type { QuantSpec } from '../quant/layout.ts';
import { f16Scale, quantizeWeight } from '../quant/rtn.ts';
import { dequantize, h16, q3kScales, scaleMinK4 } from './dequant.ts';
import type { GgmlType } from './ggml-types.ts';

export type PackMethod = 'copy' | 'affine' | 'scaled' | 'rtn';

/** A weight in webq's layout ([N, K], groups of 32). */
export interface PackedWeight {
  spec: QuantSpec;
  method: PackMethod;
  /** [N, K * bits / 32] */
  values: Uint32Array;
  /** [N, K / 32] */
  scales: Float32Array;
  /** [N, K / 32], asymmetric only */
  zeros: Float32Array | null;
}

export const INT8_G32: QuantSpec = { bits: 8, group: 32, symmetric: true };
export const INT4_G32: QuantSpec = { bits: 4, group: 32, symmetric: true };
export const INT8_G32_ASYM: QuantSpec = { bits: 8, group: 32, symmetric: false };

const METHOD: Record<string, PackMethod> = {
  Q8_0: 'copy', Q4_0: 'copy', Q5_0: 'copy',
  Q4_1: 'affine', Q5_1: 'affine', Q4_K: 'affine', Q5_K: 'affine',
  Q6_K: 'scaled', Q3_K: 'scaled',
  Q2_K: 'rtn',
};

/** How a type is packed, and into which spec; null for float types. */
export function packPlan(t: GgmlType): { method: PackMethod; spec: QuantSpec } | null {
  const method = METHOD[t.name];
  if (!method) return null;
  const spec = t.name === 'Q4_0' ? INT4_G32 : method === 'affine' ? INT8_G32_ASYM : method === 'rtn' ? REQUANT_SPEC : INT8_G32;
  return { method, spec };
}

/** The webq spec a type lands in; null for float types. */
export function packedSpec(t: GgmlType): QuantSpec | null {
  return packPlan(t)?.spec ?? null;
}

function copyQ8(bytes: Uint8Array, blocks: number): PackedWeight {
  const values = new Uint32Array(blocks * 8);
  const v8 = new Uint8Array(values.buffer);
  const scales = new Float32Array(blocks);
  for (let i = 0, o = 0; i < blocks; i++, o += 34) {
    scales[i] = h16(bytes, o);
    v8.set(bytes.subarray(o + 2, o + 34), i * 32);
  }
  return { spec: INT8_G32, method: 'copy', values, scales, zeros: null };
}

function copyQ4(bytes: Uint8Array, blocks: number): PackedWeight {
  const values = new Uint32Array(blocks * 4);
  const scales = new Float32Array(blocks);
  const u32 = (o: number) => (bytes[o] | (bytes[o + 1] << 8) | (bytes[o + 2] << 16) | (bytes[o + 3] << 24)) >>> 0;
  const LO = 0x0f0f0f0f;
  for (let i = 0, o = 0; i < blocks; i++, o += 18) {
    scales[i] = h16(bytes, o);
    // qs as four words a..d (bytes 0-3, 4-7, 8-11, 12-15): low nibbles hold elements 0-15, high
    // nibbles 16-31. webq word j holds elements 8j..8j+7, 8j+b low and 8j+4+b high in byte b.
    const [a, b, c, d] = [u32(o + 2), u32(o + 6), u32(o + 10), u32(o + 14)];
    values[i * 4] = ((a & LO) | ((b & LO) << 4)) >>> 0;
    values[i * 4 + 1] = ((c & LO) | ((d & LO) << 4)) >>> 0;
    values[i * 4 + 2] = (((a >>> 4) & LO) | (b & ~LO)) >>> 0;
    values[i * 4 + 3] = (((c >>> 4) & LO) | (d & ~LO)) >>> 0;
  }
  return { spec: INT4_G32, method: 'copy', values, scales, zeros: null };
}

function copyQ5(bytes: Uint8Array, blocks: number): PackedWeight {
  const values = new Uint32Array(blocks * 8);
  const v8 = new Uint8Array(values.buffer);
  const scales = new Float32Array(blocks);
  for (let i = 0, o = 0; i < blocks; i++, o += 22) {
    scales[i] = h16(bytes, o);
    const qh = (bytes[o + 2] | (bytes[o + 3] << 8) | (bytes[o + 4] << 16) | (bytes[o + 5] << 24)) >>> 0;
    for (let j = 0; j < 16; j++) {
      const q = bytes[o + 6 + j];
      v8[i * 32 + j] = (((q & 0xf) | (((qh >>> j) & 1) << 4)) - 16) & 0xff;
      v8[i * 32 + j + 16] = (((q >> 4) | (((qh >>> (j + 16)) & 1) << 4)) - 16) & 0xff;
    }
  }
  return { spec: INT8_G32, method: 'copy', values, scales, zeros: null };
}

/**
 * Group g of 32 of an affine type: w = D*q - M for its codes q (read into `q`), as ggml's
 * dequantize_row_* computes D and M (Q4_1/Q5_1: D = d, M = -m; Q4_K/Q5_K: D = d*sc, M = dmin*m).
 */
function affineGroup(t: GgmlType, b: Uint8Array, g: number, q: Uint8Array): { D: number; M: number } {
  if (t.name === 'Q4_1' || t.name === 'Q5_1') {
    const o = g * t.blockBytes;
    const five = t.name === 'Q5_1';
    const qs = o + (five ? 8 : 4);
    const qh = five ? (b[o + 4] | (b[o + 5] << 8) | (b[o + 6] << 16) | (b[o + 7] << 24)) >>> 0 : 0;
    for (let j = 0; j < 16; j++) {
      q[j] = (b[qs + j] & 0xf) | (((qh >>> j) & 1) << 4);
      q[j + 16] = (b[qs + j] >> 4) | (((qh >>> (j + 16)) & 1) << 4);
    }
    return { D: h16(b, o), M: -h16(b, o + 2) };
  }
  const o = (g >> 3) * t.blockBytes;
  const j = g & 7;
  const [sc, m] = scaleMinK4(j, b, o + 4);
  const c = j >> 1;
  const shift = (j & 1) * 4;
  if (t.name === 'Q4_K') {
    for (let l = 0; l < 32; l++) q[l] = (b[o + 16 + 32 * c + l] >> shift) & 0xf;
  } else {
    const bit = 1 << (2 * c + (j & 1));
    for (let l = 0; l < 32; l++) q[l] = ((b[o + 48 + 32 * c + l] >> shift) & 0xf) | (b[o + 16 + l] & bit ? 16 : 0);
  }
  return { D: h16(b, o) * sc, M: h16(b, o + 2) * m };
}

/** Per sub-block of 16: Q6_K's d*sc (int8 sc), Q3_K's d*(sc - 32). */
function subScales(t: GgmlType, bytes: Uint8Array, blocks: number): Float32Array {
  const out = new Float32Array(blocks * 16);
  for (let b = 0, o = 0; b < blocks; b++, o += t.blockBytes) {
    if (t.name === 'Q6_K') {
      const d = h16(bytes, o + 208);
      for (let j = 0; j < 16; j++) out[16 * b + j] = d * ((bytes[o + 192 + j] << 24) >> 24);
    } else {
      const d = h16(bytes, o + 108);
      const s = q3kScales(bytes, o + 96);
      for (let j = 0; j < 16; j++) out[16 * b + j] = d * s[j];
    }
  }
  return out;
}

/** Largest zero point an f16 holds exactly (every integer up to 2^11). */
const MAX_ZERO = 2048;

function affine(t: GgmlType, bytes: Uint8Array, n: number): PackedWeight {
  const groups = n / 32;
  const qmax = t.name === 'Q4_1' || t.name === 'Q4_K' ? 15 : 31;
  const values = new Uint32Array(n / 4);
  const v8 = new Int8Array(values.buffer);
  const scales = new Float32Array(groups);
  const zeros = new Float32Array(groups);
  const q = new Uint8Array(32);
  for (let g = 0; g < groups; g++) {
    const { D: d, M: m } = affineGroup(t, bytes, g, q);
    let bestK = 0;
    let bestZ = 0;
    let bestErr = Infinity;
    for (let k = d === 0 ? 0 : Math.floor(255 / qmax); k >= 1; k--) {
      const zr = (k * m) / d;
      const z = Math.round(zr);
      const err = (Math.abs(zr - z) * Math.abs(d)) / k;
      if (Math.abs(z - 128) <= MAX_ZERO && err < bestErr) (bestK = k), (bestZ = z), (bestErr = err);
      if (err === 0) break;
    }
    if (bestK === 0) {
      // D = 0 (every value -M) or a zero point past what a scale can hold: symmetric in the group,
      // from the values as ggml computes them.
      let amax = 0;
      for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(Math.fround(d * q[i] - m)));
      const s = amax / 127;
      scales[g] = s;
      zeros[g] = 0;
      for (let i = 0; i < 32; i++) v8[32 * g + i] = s ? Math.round(Math.fround(d * q[i] - m) / s) : 0;
      continue;
    }
    scales[g] = d / bestK;
    zeros[g] = bestZ - 128;
    for (let i = 0; i < 32; i++) v8[32 * g + i] = bestK * q[i] - 128;
  }
  return { spec: INT8_G32_ASYM, method: 'affine', values, scales, zeros };
}

function scaled(t: GgmlType, bytes: Uint8Array, n: number): PackedWeight {
  const w = dequantize(t, bytes, n);
  const sub = subScales(t, bytes, n / 256);
  const kmax = t.name === 'Q6_K' ? 4 : 32;
  const values = new Uint32Array(n / 4);
  const v8 = new Int8Array(values.buffer);
  const scales = new Float32Array(n / 32);
  const code = (v: number, s: number) => (s ? Math.max(-128, Math.min(127, Math.round(v / s))) : 0);
  const candidates = new Float64Array(2 + 2 * kmax);
  for (let g = 0; g < n / 32; g++) {
    const at = 32 * g;
    let amax = 0;
    for (let i = at; i < at + 32; i++) amax = Math.max(amax, Math.abs(w[i]));
    // Either sub-block's step divided by k (its values exact), or round-to-nearest's step: the
    // candidate with the least squared error in this group.
    // The likeliest winners first (the larger sub-block's finest step, then round-to-nearest's),
    // so the error loop below stops early on the rest; steps that would clip the group's largest
    // value by more than half of itself are not tried.
    const [d0, d1] = [Math.abs(sub[2 * g]), Math.abs(sub[2 * g + 1])];
    const big = Math.max(d0, d1);
    let count = 0;
    if (big) candidates[count++] = big / kmax;
    candidates[count++] = f16Scale(amax / 127, true);
    for (const d of [d0, d1]) for (let k = 1; k <= kmax && d !== 0; k++) if (d / k >= amax / 192 && !(d === big && k === kmax)) candidates[count++] = d / k;
    let best = 0;
    let bestErr = Infinity;
    for (let c = 0; c < count; c++) {
      const s = candidates[c];
      if (s === 0) continue;
      const inv = 1 / s;
      let err = 0;
      for (let i = at; i < at + 32 && err < bestErr; i++) {
        const q = Math.max(-128, Math.min(127, Math.round(w[i] * inv)));
        err += (q * s - w[i]) ** 2;
      }
      if (err < bestErr) (bestErr = err), (best = s);
    }
    scales[g] = best;
    for (let i = at; i < at + 32; i++) v8[i] = code(w[i], best);
  }
  return { spec: INT8_G32, method: 'scaled', values, scales, zeros: null };
}

/** [N, K] in type `t` (whole rows of raw bytes) -> webq's packed layout. */
export function packWeight(t: GgmlType, bytes: Uint8Array, N: number, K: number): PackedWeight {
  const n = N * K;
  switch (t.name) {
    case 'Q8_0':
      return copyQ8(bytes, n / 32);
    case 'Q4_0':
      return copyQ4(bytes, n / 32);
    case 'Q5_0':
      return copyQ5(bytes, n / 32);
  }
  const method = packPlan(t)?.method;
  if (method === 'affine') return affine(t, bytes, n);
  if (method === 'scaled') return scaled(t, bytes, n);
  const q = quantizeWeight(dequantize(t, bytes, n), N, K, REQUANT_SPEC);
  return { spec: REQUANT_SPEC, method: 'rtn', values: q.values, scales: q.scales, zeros: null };
}

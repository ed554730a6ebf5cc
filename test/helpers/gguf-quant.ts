/**
 * An independent packer of ggml's block formats for tests (written from ggml-common.h's block
 * structs and the dequantize_row_* formulas, not from src/gguf/): each quantizer picks codes and
 * scales by plain round-to-nearest (any valid codes will do: the point is the byte layout), writes
 * the blocks byte by byte, and returns what ggml's dequantization of those blocks is, computed here
 * from the codes it chose. src/gguf/dequant.ts must reproduce `values` from `bytes`.
 */
import { f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from '../../src/io/safetensors/half.ts';

export type GgmlTypeName = 'F32' | 'F16' | 'BF16' | 'Q8_0' | 'Q4_0' | 'Q4_1' | 'Q5_0' | 'Q5_1' | 'Q2_K' | 'Q3_K' | 'Q4_K' | 'Q5_K' | 'Q6_K';

export const GGML_TYPE_ID: Record<GgmlTypeName, number> = { F32: 0, F16: 1, BF16: 30, Q4_0: 2, Q4_1: 3, Q5_0: 6, Q5_1: 7, Q8_0: 8, Q2_K: 10, Q3_K: 11, Q4_K: 12, Q5_K: 13, Q6_K: 14 };
/** [elements per block, bytes per block] */
export const BLOCK: Record<GgmlTypeName, [number, number]> = {
  F32: [1, 4], F16: [1, 2], BF16: [1, 2], Q8_0: [32, 34], Q4_0: [32, 18], Q4_1: [32, 20], Q5_0: [32, 22], Q5_1: [32, 24],
  Q2_K: [256, 84], Q3_K: [256, 110], Q4_K: [256, 144], Q5_K: [256, 176], Q6_K: [256, 210],
};

export interface Quantized {
  bytes: Uint8Array;
  /** ggml's dequantization of `bytes`, element for element. */
  values: Float32Array;
}

const f = Math.fround;
/** The f16 nearest x, as a number, and its bits. */
function half(x: number): [number, number] {
  const bits = f32ToF16Bits(x);
  return [f16BitsToF32(bits), bits];
}
// + 0: Math.round(-0.3) is -0, which a stored code of 0 never dequantizes to.
const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v)) + 0;
const put16 = (b: Uint8Array, o: number, bits: number) => ((b[o] = bits & 0xff), (b[o + 1] = bits >> 8));

type Block = (x: Float32Array, out: Uint8Array, o: number, y: Float32Array) => void;

const q8_0: Block = (x, b, o, y) => {
  const amax = Math.max(...x.map(Math.abs));
  const [d, bits] = half(amax / 127);
  put16(b, o, bits);
  x.forEach((v, i) => {
    const q = d ? clamp(Math.round(v / d), -127, 127) : 0;
    b[o + 2 + i] = q & 0xff;
    y[i] = q * d;
  });
};

/** Q4_0/Q5_0: symmetric around 2^(bits-1); codes stored as nibbles (+ a 5th bit in qh). */
function symmetric(bits: 4 | 5): Block {
  const mid = bits === 4 ? 8 : 16;
  return (x, b, o, y) => {
    let max = 0;
    for (const v of x) if (Math.abs(v) > Math.abs(max)) max = v;
    const [d, dbits] = half(max / -mid);
    put16(b, o, dbits);
    const q = x.map((v) => (d ? clamp(Math.round(v / d) + mid, 0, 2 * mid - 1) : mid));
    const qs = o + (bits === 4 ? 2 : 6);
    let qh = 0;
    for (let j = 0; j < 16; j++) {
      b[qs + j] = (q[j] & 0xf) | ((q[j + 16] & 0xf) << 4);
      qh |= ((q[j] >> 4) & 1) << j;
      qh |= ((q[j + 16] >> 4) & 1) << (j + 16);
    }
    if (bits === 5) for (let k = 0; k < 4; k++) b[o + 2 + k] = (qh >>> (8 * k)) & 0xff;
    q.forEach((c, i) => (y[i] = (c - mid) * d));
  };
}

/** Q4_1/Q5_1: w = q * d + m. */
function affine(bits: 4 | 5): Block {
  const top = (1 << bits) - 1;
  return (x, b, o, y) => {
    const lo = Math.min(...x);
    const hi = Math.max(...x);
    const [d, dbits] = half((hi - lo) / top);
    const [m, mbits] = half(lo);
    put16(b, o, dbits);
    put16(b, o + 2, mbits);
    const q = x.map((v) => (d ? clamp(Math.round((v - m) / d), 0, top) : 0));
    const qs = o + (bits === 4 ? 4 : 8);
    let qh = 0;
    for (let j = 0; j < 16; j++) {
      b[qs + j] = (q[j] & 0xf) | ((q[j + 16] & 0xf) << 4);
      qh |= ((q[j] >> 4) & 1) << j;
      qh |= ((q[j + 16] >> 4) & 1) << (j + 16);
    }
    if (bits === 5) for (let k = 0; k < 4; k++) b[o + 4 + k] = (qh >>> (8 * k)) & 0xff;
    q.forEach((c, i) => (y[i] = f(c * d + m)));
  };
}

/** Q4_K/Q5_K's 8 six-bit scales and mins in 12 bytes. */
function packScalesK4(b: Uint8Array, o: number, ls: number[], lm: number[]): void {
  for (let j = 0; j < 8; j++) {
    if (j < 4) {
      b[o + j] = ls[j];
      b[o + j + 4] = lm[j];
    } else {
      b[o + j + 4] = (ls[j] & 0xf) | ((lm[j] & 0xf) << 4);
      b[o + j - 4] |= (ls[j] >> 4) << 6;
      b[o + j] |= (lm[j] >> 4) << 6;
    }
  }
}

/** Q4_K (5 bits: Q5_K): 8 sub-blocks of 32, w = d*sc*q - dmin*m, sc and m 6-bit. */
function kAffine(bits: 4 | 5): Block {
  const top = (1 << bits) - 1;
  return (x, b, o, y) => {
    const scale: number[] = [];
    const min: number[] = [];
    for (let j = 0; j < 8; j++) {
      const s = x.subarray(32 * j, 32 * j + 32);
      const lo = Math.min(0, ...s);
      scale.push((Math.max(...s) - lo) / top);
      min.push(-lo);
    }
    const [d, dbits] = half(Math.max(...scale) / 63);
    const [dmin, mbits] = half(Math.max(...min) / 63);
    put16(b, o, dbits);
    put16(b, o + 2, mbits);
    const ls = scale.map((s) => (d ? clamp(Math.round(s / d), 0, 63) : 0));
    const lm = min.map((m) => (dmin ? clamp(Math.round(m / dmin), 0, 63) : 0));
    packScalesK4(b, o + 4, ls, lm);
    const L = new Uint8Array(256);
    for (let j = 0; j < 8; j++) {
      const dl = f(d * ls[j]);
      const ml = f(dmin * lm[j]);
      for (let i = 0; i < 32; i++) {
        const e = 32 * j + i;
        L[e] = dl ? clamp(Math.round((x[e] + ml) / dl), 0, top) : 0;
        y[e] = f(dl * L[e] - ml);
      }
    }
    const qs = o + (bits === 4 ? 16 : 48);
    for (let c = 0; c < 4; c++) {
      for (let l = 0; l < 32; l++) {
        const a = L[64 * c + l];
        const z = L[64 * c + l + 32];
        b[qs + 32 * c + l] = (a & 0xf) | ((z & 0xf) << 4);
        if (bits === 5) b[o + 16 + l] |= ((a >> 4) << (2 * c)) | ((z >> 4) << (2 * c + 1));
      }
    }
  };
}

/** Q6_K: 16 sub-blocks of 16, int8 scales, w = d * sc * (q - 32). */
const q6_K: Block = (x, b, o, y) => {
  const scale: number[] = [];
  for (let j = 0; j < 16; j++) scale.push(Math.max(...x.subarray(16 * j, 16 * j + 16).map(Math.abs)) / 31);
  const [d, dbits] = half(Math.max(...scale) / 127);
  put16(b, o + 208, dbits);
  const sc = scale.map((s) => (d ? clamp(Math.round(s / d), -128, 127) : 0));
  const L = new Uint8Array(256);
  for (let e = 0; e < 256; e++) {
    const dl = f(d * sc[e >> 4]);
    L[e] = (dl ? clamp(Math.round(x[e] / dl), -32, 31) : 0) + 32;
    y[e] = f(dl * (L[e] - 32));
  }
  sc.forEach((s, j) => (b[o + 192 + j] = s & 0xff));
  for (let n = 0; n < 2; n++) {
    for (let l = 0; l < 32; l++) {
      const [q1, q2, q3, q4] = [0, 32, 64, 96].map((k) => L[128 * n + l + k]);
      b[o + 64 * n + l] = (q1 & 0xf) | ((q3 & 0xf) << 4);
      b[o + 64 * n + l + 32] = (q2 & 0xf) | ((q4 & 0xf) << 4);
      b[o + 128 + 32 * n + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
    }
  }
};

/** Element e of a Q2_K/Q3_K super-block: its sub-block of 16, and where its 2 bits live. */
function k16Position(e: number): { sub: number; byte: number; shift: number; hmByte: number; hmBit: number } {
  const n = e >> 7; // which 128
  const r = e & 127;
  const s = r >> 5; // which shift (0..3)
  const rest = r & 31; // half (0/16) + l
  return { sub: e >> 4, byte: 32 * n + rest, shift: 2 * s, hmByte: rest, hmBit: 4 * n + s };
}

/** Q2_K: 16 sub-blocks of 16, w = d*(sc & 15)*q - dmin*(sc >> 4), q 2-bit. */
const q2_K: Block = (x, b, o, y) => {
  const scale: number[] = [];
  const min: number[] = [];
  for (let j = 0; j < 16; j++) {
    const s = x.subarray(16 * j, 16 * j + 16);
    const lo = Math.min(0, ...s);
    scale.push((Math.max(...s) - lo) / 3);
    min.push(-lo);
  }
  const [d, dbits] = half(Math.max(...scale) / 15);
  const [dmin, mbits] = half(Math.max(...min) / 15);
  put16(b, o + 80, dbits);
  put16(b, o + 82, mbits);
  const ls = scale.map((s) => (d ? clamp(Math.round(s / d), 0, 15) : 0));
  const lm = min.map((m) => (dmin ? clamp(Math.round(m / dmin), 0, 15) : 0));
  for (let j = 0; j < 16; j++) b[o + j] = ls[j] | (lm[j] << 4);
  for (let e = 0; e < 256; e++) {
    const p = k16Position(e);
    const dl = f(d * ls[p.sub]);
    const ml = f(dmin * lm[p.sub]);
    const q = dl ? clamp(Math.round((x[e] + ml) / dl), 0, 3) : 0;
    b[o + 16 + p.byte] |= q << p.shift;
    y[e] = f(dl * q - ml);
  }
};

/** Q3_K: 16 sub-blocks of 16, w = d * (sc - 32) * (q - 4), q 3-bit (2 low bits + a high bit). */
const q3_K: Block = (x, b, o, y) => {
  const scale: number[] = [];
  for (let j = 0; j < 16; j++) scale.push(Math.max(...x.subarray(16 * j, 16 * j + 16).map(Math.abs)) / 4);
  const [d, dbits] = half(Math.max(...scale) / 31);
  put16(b, o + 108, dbits);
  const sc = scale.map((s) => (d ? clamp(Math.round(s / d), -32, 31) : 0));
  for (let j = 0; j < 16; j++) {
    const u = sc[j] + 32; // 6 bits
    if (j < 8) b[o + 96 + j] |= u & 0xf;
    else b[o + 96 + j - 8] |= (u & 0xf) << 4;
    b[o + 96 + 8 + (j % 4)] |= (u >> 4) << (2 * Math.floor(j / 4));
  }
  for (let e = 0; e < 256; e++) {
    const p = k16Position(e);
    const dl = f(d * sc[p.sub]);
    const q = dl ? clamp(Math.round(x[e] / dl), -4, 3) : 0;
    const u = q + 4; // 0..7
    b[o + 32 + p.byte] |= (u & 3) << p.shift;
    if (u & 4) b[o + p.hmByte] |= 1 << p.hmBit;
    y[e] = f(dl * q);
  }
};

const BLOCKS: Partial<Record<GgmlTypeName, Block>> = {
  Q8_0: q8_0, Q4_0: symmetric(4), Q5_0: symmetric(5), Q4_1: affine(4), Q5_1: affine(5),
  Q2_K: q2_K, Q3_K: q3_K, Q4_K: kAffine(4), Q5_K: kAffine(5), Q6_K: q6_K,
};

/** Values (rows of whole blocks) in `type`: the bytes ggml stores, and their dequantization. */
export function quantizeGgml(type: GgmlTypeName, x: Float32Array): Quantized {
  const [be, bb] = BLOCK[type];
  if (x.length % be !== 0) throw new Error(`gguf-quant: ${x.length} values are not whole ${type} blocks of ${be}`);
  const bytes = new Uint8Array((x.length / be) * bb);
  const values = new Float32Array(x.length);
  if (type === 'F32') {
    values.set(x);
    bytes.set(new Uint8Array(values.buffer));
  } else if (type === 'F16' || type === 'BF16') {
    const bits = new Uint16Array(bytes.buffer);
    x.forEach((v, i) => {
      bits[i] = type === 'F16' ? f32ToF16Bits(v) : f32ToBf16Bits(v);
      values[i] = type === 'F16' ? f16BitsToF32(bits[i]) : new Float32Array(new Uint32Array([bits[i] << 16]).buffer)[0];
    });
  } else {
    const block = BLOCKS[type]!;
    for (let i = 0; i < x.length / be; i++) block(x.subarray(i * be, (i + 1) * be), bytes, i * bb, values.subarray(i * be, (i + 1) * be));
  }
  return { bytes, values };
}

/**
 * Tiny checkpoints in other tools' pre-quantized formats, packed exactly as their reference code
 * packs them, and those formats' reference dequantizers, written after the Python (evaluated in
 * f32). Nothing here imports src/quant/imports: the readers there are checked against this.
 *
 *   GPTQ                AutoGPTQ qlinear_cuda.py QuantLinear.pack (numpy loops; v1 stores zero-1)
 *                       and its torch forward's unpack + scales[g_idx] * (weight - zeros[g_idx])
 *   AWQ (GEMM)          AutoAWQ WQLinear_GEMM.from_linear (order_map [0,2,4,6,1,3,5,7]) and
 *                       packing_utils.dequantize_gemm (unpack_awq, reverse_awq_order)
 *   compressed-tensors  pack_to_int32 / unpack_from_int32 and forward.py _process_quantization
 *   bitsandbytes int8   int8_vectorwise_quant (CB, SCB) and int8_vectorwise_dequant
 *
 * The quantizer itself stands in for GPTQ/AWQ/llm-compressor's search (which only changes which
 * codes and scales are chosen): min/max round-to-nearest per group, as GPTQ's Quantizer sets its
 * grid, scales rounded to f16 (or bf16) before the codes are computed, as the files store them.
 */
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bf16ArrayToF32, f16ArrayToF32, f32ArrayToBf16, f32ArrayToF16 } from '../../src/io/safetensors/half.ts';
import { SafetensorsFile } from '../../src/io/safetensors/reader.ts';
import { writeSafetensorsFile, type TensorToWrite } from '../../src/io/safetensors/writer.ts';
import { rng } from '../kernels/check.ts';

/** What a tool's quantizer decided for one [N, K] Linear (HF orientation). */
export interface IntQuant {
  N: number;
  K: number;
  bits: 4 | 8;
  /** Columns per group (K: one group). */
  G: number;
  groups: number;
  /** [K] group of each column. */
  gIdx: Int32Array;
  /** [N, K] unsigned codes. */
  q: Int32Array;
  /** [N, groups] scales, exactly representable in the file's scale dtype. */
  scale: Float32Array;
  /** [N, groups] unsigned zero points. */
  zero: Int32Array;
}

export type ActOrder = 'none' | 'permuted' | 'shuffled-groups';

/** torch.round: half to even. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function shuffle(n: number, rand: () => number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/** g_idx for K columns in groups of G: column order, act-order (Hessian order: scattered), or whole groups out of order. */
export function makeGIdx(K: number, G: number, order: ActOrder, seed = 5): Int32Array {
  const g = new Int32Array(K);
  const rand = rng(seed);
  if (order === 'permuted') {
    const perm = shuffle(K, rand); // perm[i]: the i-th column GPTQ visits
    for (let i = 0; i < K; i++) g[perm[i]] = Math.floor(i / G);
  } else if (order === 'shuffled-groups') {
    const sigma = shuffle(K / G, rand);
    for (let k = 0; k < K; k++) g[k] = sigma[Math.floor(k / G)];
  } else {
    for (let k = 0; k < K; k++) g[k] = Math.floor(k / G);
  }
  return g;
}

/**
 * Min/max RTN as GPTQ's Quantizer.find_params sets the grid (range including 0; symmetric:
 * zero = 2^(bits-1)), with the scale rounded to the file's dtype first.
 */
export function quantizeInts(w: Float32Array, N: number, K: number, o: { bits: 4 | 8; group: number; sym: boolean; gIdx?: Int32Array; scaleDtype?: 'F16' | 'BF16' | 'F32' }): IntQuant {
  const G = o.group === -1 ? K : o.group;
  const groups = K / G;
  const gIdx = o.gIdx ?? makeGIdx(K, G, 'none');
  const maxq = (1 << o.bits) - 1;
  const round = (x: number) => (o.scaleDtype === 'BF16' ? bf16ArrayToF32(f32ArrayToBf16(Float32Array.of(x)))[0] : o.scaleDtype === 'F32' ? Math.fround(x) : f16ArrayToF32(f32ArrayToF16(Float32Array.of(x)))[0]);
  const q = new Int32Array(N * K);
  const scale = new Float32Array(N * groups);
  const zero = new Int32Array(N * groups);
  const members: number[][] = Array.from({ length: groups }, () => []);
  for (let k = 0; k < K; k++) members[gIdx[k]].push(k);
  for (let n = 0; n < N; n++) {
    for (let g = 0; g < groups; g++) {
      let lo = 0;
      let hi = 0;
      for (const k of members[g]) {
        lo = Math.min(lo, w[n * K + k]);
        hi = Math.max(hi, w[n * K + k]);
      }
      if (o.sym) {
        hi = Math.max(-lo, hi);
        if (lo < 0) lo = -hi;
      }
      if (lo === 0 && hi === 0) [lo, hi] = [-1, 1];
      const s = round((hi - lo) / maxq);
      const z = o.sym ? (maxq + 1) / 2 : Math.min(maxq, Math.max(1, roundHalfEven(-lo / s))); // >= 1: v1 stores z - 1
      scale[n * groups + g] = s;
      zero[n * groups + g] = z;
      for (const k of members[g]) q[n * K + k] = Math.min(maxq, Math.max(0, roundHalfEven(w[n * K + k] / s) + z));
    }
  }
  return { N, K, bits: o.bits, G, groups, gIdx, q, scale, zero };
}

const i32 = (u: Uint32Array) => new Int32Array(u.buffer, u.byteOffset, u.length);

/** [groups, N] f16 bits of an [N, groups] array (GPTQ and AWQ store scales transposed). */
function scalesT(iq: IntQuant, dtype: 'F16' | 'BF16' | 'F32' = 'F16'): TensorToWrite['data'] {
  const t = new Float32Array(iq.groups * iq.N);
  for (let n = 0; n < iq.N; n++) for (let g = 0; g < iq.groups; g++) t[g * iq.N + n] = iq.scale[n * iq.groups + g];
  return dtype === 'F32' ? t : dtype === 'BF16' ? f32ArrayToBf16(t) : f32ArrayToF16(t);
}

// ---------------------------------------------------------------------------------------------
// GPTQ (AutoGPTQ QuantLinear.pack, qlinear_cuda.py)

export function packGptq(base: string, iq: IntQuant, o: { v2?: boolean; gIdx?: boolean } = {}): TensorToWrite[] {
  const { N, K, bits, groups } = iq;
  const pw = 32 / bits;
  // intweight = cat(columns).t(): [K, N]
  const intweight = (k: number, n: number) => iq.q[n * K + k];
  const qweight = new Uint32Array((K / pw) * N);
  let i = 0;
  let row = 0;
  while (row < K / pw) {
    for (let j = i; j < i + pw; j++) for (let n = 0; n < N; n++) qweight[row * N + n] |= intweight(j, n) << (bits * (j - i));
    i += pw;
    row += 1;
  }
  // zeros.t(): [groups, N]; `zeros -= 1` in v1 (GPTQModel's v2 keeps the zero)
  const zeros = (g: number, n: number) => iq.zero[n * groups + g] - (o.v2 ? 0 : 1);
  const qzeros = new Uint32Array(groups * (N / pw));
  i = 0;
  let col = 0;
  while (col < N / pw) {
    for (let j = i; j < i + pw; j++) for (let g = 0; g < groups; g++) qzeros[g * (N / pw) + col] |= zeros(g, j) << (bits * (j - i));
    i += pw;
    col += 1;
  }
  const out: TensorToWrite[] = [
    { name: `${base}.qweight`, dtype: 'I32', shape: [K / pw, N], data: i32(qweight) },
    { name: `${base}.qzeros`, dtype: 'I32', shape: [groups, N / pw], data: i32(qzeros) },
    { name: `${base}.scales`, dtype: 'F16', shape: [groups, N], data: scalesT(iq) },
  ];
  if (o.gIdx ?? true) out.push({ name: `${base}.g_idx`, dtype: 'I32', shape: [K], data: Int32Array.from(iq.gIdx) });
  return out;
}

type Tensors = Map<string, { shape: readonly number[]; data: ArrayBufferView; dtype: string }>;

export function tensorMap(ts: readonly TensorToWrite[]): Tensors {
  return new Map(ts.map((t) => [t.name, { shape: t.shape, data: t.data as ArrayBufferView, dtype: t.dtype }]));
}

function floats(t: { data: ArrayBufferView; dtype: string }): Float32Array {
  const d = t.data as Uint16Array;
  return t.dtype === 'F16' ? f16ArrayToF32(d) : t.dtype === 'BF16' ? bf16ArrayToF32(d) : (t.data as Float32Array);
}

function ints(t: { data: ArrayBufferView }): Int32Array {
  const d = t.data as Int32Array;
  return new Int32Array(d.buffer, d.byteOffset, d.byteLength / 4);
}

/** Transposes a [K, N] reference result into webq's [N, K]. */
function transpose(kn: Float32Array, K: number, N: number): Float32Array {
  const out = new Float32Array(N * K);
  for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) out[n * K + k] = kn[k * N + n];
  return out;
}

/** AutoGPTQ's torch dequantization (qlinear_cuda.py forward, bits 4/8), as [N, K]. */
export function dequantGptqRef(t: Tensors, base: string, bits: 4 | 8, o: { v2?: boolean } = {}): Float32Array {
  const qweight = ints(t.get(`${base}.qweight`)!);
  const qzeros = ints(t.get(`${base}.qzeros`)!);
  const sT = t.get(`${base}.scales`)!;
  const scales = floats(sT); // [groups, N]
  const [groups, N] = sT.shape;
  const K = t.get(`${base}.qweight`)!.shape[0] * (32 / bits);
  const gIdx = t.has(`${base}.g_idx`) ? ints(t.get(`${base}.g_idx`)!) : Int32Array.from({ length: K }, (_, k) => Math.floor(k / (K / groups)));
  const wf = Array.from({ length: 32 / bits }, (_, j) => j * bits);
  const maxq = (1 << bits) - 1;
  // zeros = bitwise_right_shift(qzeros.unsqueeze(2).expand(..., 32 // bits), wf) & maxq; zeros + 1; reshape(scales.shape)
  const zeros = new Int32Array(groups * N);
  for (let g = 0; g < groups; g++) for (let c = 0; c < N / wf.length; c++) for (let j = 0; j < wf.length; j++) zeros[g * N + c * wf.length + j] = ((qzeros[g * (N / wf.length) + c] >> wf[j]) & maxq) + (o.v2 ? 0 : 1);
  // weight = bitwise_right_shift(qweight.unsqueeze(1).expand(-1, 32 // bits, -1), wf.unsqueeze(-1)) & maxq; reshape [K, N]
  const weight = new Int32Array(K * N);
  for (let r = 0; r < K / wf.length; r++) for (let j = 0; j < wf.length; j++) for (let n = 0; n < N; n++) weight[(r * wf.length + j) * N + n] = (qweight[r * N + n] >> wf[j]) & maxq;
  // weights = scales[g_idx] * (weight - zeros[g_idx])
  const kn = new Float32Array(K * N);
  for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) kn[k * N + n] = Math.fround(scales[gIdx[k] * N + n] * (weight[k * N + n] - zeros[gIdx[k] * N + n]));
  return transpose(kn, K, N);
}

// ---------------------------------------------------------------------------------------------
// AWQ GEMM (AutoAWQ WQLinear_GEMM.from_linear, packing_utils.dequantize_gemm)

const AWQ_ORDER_MAP = [0, 2, 4, 6, 1, 3, 5, 7];
const AWQ_REVERSE_ORDER = [0, 4, 1, 5, 2, 6, 3, 7];

export function packAwq(base: string, iq: IntQuant): TensorToWrite[] {
  const { N, K, groups } = iq;
  const packNum = 8;
  // intweight [K, N]
  const qweight = new Uint32Array(K * (N / packNum));
  for (let col = 0; col < N / packNum; col++) {
    for (let i = 0; i < packNum; i++) {
      const c = col * packNum + AWQ_ORDER_MAP[i];
      for (let k = 0; k < K; k++) qweight[k * (N / packNum) + col] |= iq.q[c * K + k] << (i * 4);
    }
  }
  const qzeros = new Uint32Array(groups * (N / packNum));
  for (let col = 0; col < N / packNum; col++) {
    for (let i = 0; i < packNum; i++) {
      const c = col * packNum + AWQ_ORDER_MAP[i];
      for (let g = 0; g < groups; g++) qzeros[g * (N / packNum) + col] |= iq.zero[c * groups + g] << (i * 4);
    }
  }
  return [
    { name: `${base}.qweight`, dtype: 'I32', shape: [K, N / packNum], data: i32(qweight) },
    { name: `${base}.qzeros`, dtype: 'I32', shape: [groups, N / packNum], data: i32(qzeros) },
    { name: `${base}.scales`, dtype: 'F16', shape: [groups, N], data: scalesT(iq) },
  ];
}

export function dequantAwqRef(t: Tensors, base: string, groupSize: number): Float32Array {
  const qweight = ints(t.get(`${base}.qweight`)!);
  const qzeros = ints(t.get(`${base}.qzeros`)!);
  const [K, cols] = t.get(`${base}.qweight`)!.shape;
  const groups = t.get(`${base}.qzeros`)!.shape[0];
  const N = cols * 8;
  const G = groupSize === -1 ? K : groupSize;
  const scales = floats(t.get(`${base}.scales`)!);
  // unpack_awq: iweights[r, c*8 + i] = (qweight[r, c] >> 4i) (to int8, masked later)
  const unpack = (w: Int32Array, rows: number) => {
    const out = new Int32Array(rows * N);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) for (let i = 0; i < 8; i++) out[r * N + c * 8 + i] = w[r * cols + c] >> (4 * i);
    return out;
  };
  // reverse_awq_order: column j <- column (j/8)*8 + AWQ_REVERSE_ORDER[j % 8]; then & 15
  const reorder = (a: Int32Array, rows: number) => {
    const out = new Int32Array(rows * N);
    for (let r = 0; r < rows; r++) for (let j = 0; j < N; j++) out[r * N + j] = a[r * N + Math.floor(j / 8) * 8 + AWQ_REVERSE_ORDER[j % 8]] & 15;
    return out;
  };
  const iweight = reorder(unpack(qweight, K), K);
  const izeros = reorder(unpack(qzeros, groups), groups);
  // scales / izeros repeat_interleave(group_size, dim=0); (iweight - izeros) * scales
  const kn = new Float32Array(K * N);
  for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) kn[k * N + n] = Math.fround((iweight[k * N + n] - izeros[Math.floor(k / G) * N + n]) * scales[Math.floor(k / G) * N + n]);
  return transpose(kn, K, N);
}

// ---------------------------------------------------------------------------------------------
// compressed-tensors (pack_to_int32 / unpack_from_int32, forward.py)

/** pack_to_int32(value int8, num_bits, packed_dim): value + 2^(bits-1), zero-padded, sequential fields. */
export function packToInt32(value: Int32Array, rows: number, cols: number, bits: number, packedDim: 0 | 1 = 1): { data: Int32Array; shape: [number, number] } {
  const offset = 1 << (bits - 1);
  let v = Array.from(value, (x) => (x + offset) & 0xff); // .to(torch.uint8)
  let [r, c] = [rows, cols];
  if (packedDim === 0) {
    const t = new Array<number>(r * c);
    for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) t[j * r + i] = v[i * c + j];
    v = t;
    [r, c] = [c, r];
  }
  const pf = 32 / bits;
  const padded = Math.ceil(c / pf) * pf;
  const packed = new Int32Array(r * (padded / pf));
  for (let i = 0; i < r; i++) {
    for (let g = 0; g < padded / pf; g++) {
      let sum = 0;
      for (let e = 0; e < pf; e++) {
        const col = g * pf + e;
        sum = (sum + ((col < c ? v[i * c + col] : 0) << (e * bits))) | 0; // sum(dtype=int32) wraps
      }
      packed[i * (padded / pf) + g] = sum;
    }
  }
  if (packedDim === 1) return { data: packed, shape: [r, padded / pf] };
  const pc = padded / pf;
  const t = new Int32Array(pc * r);
  for (let i = 0; i < r; i++) for (let j = 0; j < pc; j++) t[j * r + i] = packed[i * pc + j];
  return { data: t, shape: [pc, r] };
}

/** unpack_from_int32: fields in order, padding cut, minus 2^(bits-1) (signed). */
export function unpackFromInt32(value: Int32Array, vshape: readonly number[], bits: number, shape: readonly number[], packedDim: 0 | 1 = 1): Int32Array {
  const pf = 32 / bits;
  const mask = (1 << bits) - 1;
  const offset = 2 ** bits / 2;
  const [vr, vc] = vshape;
  if (packedDim === 1) {
    const out = new Int32Array(vr * shape[1]);
    for (let r = 0; r < vr; r++) for (let i = 0; i < pf; i++) for (let c = 0; c < vc; c++) if (c * pf + i < shape[1]) out[r * shape[1] + c * pf + i] = ((value[r * vc + c] >> (bits * i)) & mask) - offset;
    return out;
  }
  const out = new Int32Array(shape[0] * vc);
  for (let i = 0; i < pf; i++) for (let r = 0; r < vr; r++) for (let c = 0; c < vc; c++) if (r * pf + i < shape[0]) out[(r * pf + i) * vc + c] = ((value[r * vc + c] >> (bits * i)) & mask) - offset;
  return out;
}

export interface CtOptions {
  bits: 4 | 8;
  strategy: 'group' | 'channel';
  sym: boolean;
  /** Save weight_g_idx (actorder "group"). */
  gIdx?: boolean;
  /** int-quantized: the int8 `weight` itself instead of weight_packed. */
  unpacked?: boolean;
  scaleDtype?: 'F16' | 'BF16' | 'F32';
}

export function packCompressed(base: string, iq: IntQuant, o: CtOptions): TensorToWrite[] {
  const { N, K, bits, groups } = iq;
  const offset = 1 << (bits - 1);
  const signed = Int32Array.from(iq.q, (u) => u - offset);
  const out: TensorToWrite[] = [];
  if (o.unpacked) {
    out.push({ name: `${base}.weight`, dtype: 'I8', shape: [N, K], data: Int8Array.from(signed) });
  } else {
    const p = packToInt32(signed, N, K, bits);
    out.push({ name: `${base}.weight_packed`, dtype: 'I32', shape: p.shape, data: p.data });
    out.push({ name: `${base}.weight_shape`, dtype: 'I64', shape: [2], data: BigInt64Array.of(BigInt(N), BigInt(K)) });
  }
  const sc = o.scaleDtype === 'BF16' ? f32ArrayToBf16(iq.scale) : o.scaleDtype === 'F32' ? iq.scale : f32ArrayToF16(iq.scale);
  out.push({ name: `${base}.weight_scale`, dtype: o.scaleDtype ?? 'F16', shape: [N, groups], data: sc });
  if (!o.sym) {
    const zp = Int32Array.from(iq.zero, (z) => z - offset); // [N, groups] signed
    if (o.unpacked) out.push({ name: `${base}.weight_zero_point`, dtype: 'I8', shape: [N, groups], data: Int8Array.from(zp) });
    else {
      const p = packToInt32(zp, N, groups, bits, 0);
      out.push({ name: `${base}.weight_zero_point`, dtype: 'I32', shape: p.shape, data: p.data });
    }
  }
  if (o.gIdx) out.push({ name: `${base}.weight_g_idx`, dtype: 'I32', shape: [K], data: Int32Array.from(iq.gIdx) });
  return out;
}

/** PackedQuantizationCompressor.decompress_weight + dequantize (group / channel, g_idx order). */
export function dequantCompressedRef(t: Tensors, base: string, o: CtOptions & { N: number; K: number; group: number }): Float32Array {
  const { N, K, bits } = o;
  const x = o.unpacked ? Int32Array.from(t.get(`${base}.weight`)!.data as Int8Array) : unpackFromInt32(ints(t.get(`${base}.weight_packed`)!), t.get(`${base}.weight_packed`)!.shape, bits, [N, K]);
  const sT = t.get(`${base}.weight_scale`)!;
  const scale = floats(sT);
  const groups = sT.shape[1];
  let zp: Int32Array | null = null;
  const zT = t.get(`${base}.weight_zero_point`);
  if (zT) zp = zT.dtype === 'I32' ? unpackFromInt32(ints(zT), zT.shape, bits, [N, groups], 0) : Int32Array.from(zT.data as Int8Array);
  const deq = (v: number, n: number, g: number) => Math.fround((v - (zp ? zp[n * groups + g] : 0)) * scale[n * groups + g]);
  const out = new Float32Array(N * K);
  if (o.strategy === 'channel') {
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) out[n * K + k] = deq(x[n * K + k], n, 0);
    return out;
  }
  const gT = t.get(`${base}.weight_g_idx`);
  const gIdx = gT ? ints(gT) : null;
  // is_column_order = g_idx is None or -1 in g_idx; else perm = argsort(g_idx), groups of group_size in that order
  const perm = gIdx && !gIdx.includes(-1) ? Array.from({ length: K }, (_, k) => k).sort((a, b) => gIdx[a] - gIdx[b] || a - b) : Array.from({ length: K }, (_, k) => k);
  for (let n = 0; n < N; n++) for (let j = 0; j < K; j++) out[n * K + perm[j]] = deq(x[n * K + perm[j]], n, Math.floor(j / o.group));
  return out;
}

// ---------------------------------------------------------------------------------------------
// bitsandbytes LLM.int8()

const INV127 = Math.fround(7.874015718698502e-3);

/** int8_vectorwise_quant: SCB = absmax per row (f32), CB = round(A * (127 / SCB)). */
export function packBnb(base: string, w: Float32Array, N: number, K: number): TensorToWrite[] {
  const scb = new Float32Array(N);
  const cb = new Int8Array(N * K);
  for (let n = 0; n < N; n++) {
    let m = 0;
    for (let k = 0; k < K; k++) m = Math.max(m, Math.abs(w[n * K + k]));
    scb[n] = m;
    const f = Math.fround(127 / m);
    for (let k = 0; k < K; k++) cb[n * K + k] = roundHalfEven(Math.fround(w[n * K + k] * f));
  }
  return [
    { name: `${base}.weight`, dtype: 'I8', shape: [N, K], data: cb },
    { name: `${base}.SCB`, dtype: 'F32', shape: [N], data: scb },
  ];
}

/** int8_vectorwise_dequant: A * stats.view(-1, 1) * 7.874015718698502e-3, in f32. */
export function dequantBnbRef(t: Tensors, base: string): Float32Array {
  const wT = t.get(`${base}.weight`)!;
  const [N, K] = wT.shape;
  const cb = wT.data as Int8Array;
  const scb = floats(t.get(`${base}.SCB`)!);
  const out = new Float32Array(N * K);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) out[n * K + k] = Math.fround(Math.fround(cb[n * K + k] * scb[n]) * INV127);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Whole checkpoints

export type FormatSpec =
  | { format: 'gptq'; bits: 4 | 8; group: number; sym: boolean; actOrder?: ActOrder; v2?: boolean }
  | { format: 'awq'; group: number }
  | ({ format: 'compressed-tensors'; group: number; int8Activations?: boolean; actOrder?: ActOrder } & CtOptions)
  | { format: 'bitsandbytes' };

/** config.json's quantization_config as each tool writes it. */
export function quantizationConfig(s: FormatSpec): Record<string, unknown> {
  switch (s.format) {
    case 'gptq':
      return { bits: s.bits, checkpoint_format: s.v2 ? 'gptq_v2' : 'gptq', damp_percent: 0.01, desc_act: (s.actOrder ?? 'none') !== 'none', group_size: s.group, model_file_base_name: null, model_name_or_path: null, quant_method: 'gptq', static_groups: false, sym: s.sym, true_sequential: true };
    case 'awq':
      return { bits: 4, group_size: s.group, modules_to_not_convert: null, quant_method: 'awq', version: 'gemm', zero_point: true };
    case 'compressed-tensors':
      return {
        config_groups: {
          group_0: {
            input_activations: s.int8Activations ? { actorder: null, block_structure: null, dynamic: true, group_size: null, num_bits: 8, observer: null, observer_kwargs: {}, strategy: 'token', symmetric: true, type: 'int' } : null,
            output_activations: null,
            targets: ['Linear'],
            weights: { actorder: s.gIdx ? 'group' : null, block_structure: null, dynamic: false, group_size: s.strategy === 'group' ? s.group : null, num_bits: s.bits, observer: 'minmax', observer_kwargs: {}, strategy: s.strategy, symmetric: s.sym, type: 'int' },
          },
        },
        format: s.unpacked ? 'int-quantized' : 'pack-quantized',
        global_compression_ratio: null,
        ignore: ['lm_head'],
        kv_cache_scheme: null,
        quant_method: 'compressed-tensors',
        quantization_status: 'compressed',
      };
    case 'bitsandbytes':
      return { _load_in_4bit: false, _load_in_8bit: true, bnb_4bit_compute_dtype: 'float32', bnb_4bit_quant_storage: 'uint8', bnb_4bit_quant_type: 'fp4', bnb_4bit_use_double_quant: false, llm_int8_enable_fp32_cpu_offload: false, llm_int8_has_fp16_weight: false, llm_int8_skip_modules: null, llm_int8_threshold: 6.0, load_in_4bit: false, load_in_8bit: true, quant_method: 'bitsandbytes' };
  }
}

/** One Linear packed in `s`, with its reference dequantization ([N, K]). */
export function packLinear(base: string, w: Float32Array, N: number, K: number, s: FormatSpec, seed = 5): { tensors: TensorToWrite[]; ref: Float32Array } {
  if (s.format === 'bitsandbytes') {
    const tensors = packBnb(base, w, N, K);
    return { tensors, ref: dequantBnbRef(tensorMap(tensors), base) };
  }
  const bits = s.format === 'awq' ? 4 : s.bits;
  const sym = s.format === 'awq' ? false : s.sym;
  const G = s.group === -1 || (s.format === 'compressed-tensors' && s.strategy === 'channel') ? K : s.group;
  const actOrder = s.format === 'awq' ? 'none' : (s.actOrder ?? 'none');
  const gIdx = makeGIdx(K, G, actOrder, seed);
  const iq = quantizeInts(w, N, K, { bits, group: G, sym, gIdx, scaleDtype: s.format === 'compressed-tensors' ? s.scaleDtype : 'F16' });
  if (s.format === 'gptq') {
    const tensors = packGptq(base, iq, { v2: s.v2 });
    return { tensors, ref: dequantGptqRef(tensorMap(tensors), base, s.bits, { v2: s.v2 }) };
  }
  if (s.format === 'awq') {
    const tensors = packAwq(base, iq);
    return { tensors, ref: dequantAwqRef(tensorMap(tensors), base, s.group) };
  }
  const tensors = packCompressed(base, iq, { ...s, gIdx: s.gIdx ?? actOrder !== 'none' });
  return { tensors, ref: dequantCompressedRef(tensorMap(tensors), base, { ...s, gIdx: s.gIdx ?? actOrder !== 'none', N, K, group: G }) };
}

/**
 * Rewrites a float checkpoint folder (writeTinyLlama / writeTinyBert output) in format `s`: every
 * tensor `select` picks (a Linear's `.weight`, [N, K]) is replaced by the format's tensors, the rest
 * copied as stored; config.json gains quantization_config. Returns each replaced weight's
 * reference dequantization by tensor name, for the CPU reference forward.
 */
export async function writeQuantizedCopy(srcDir: string, outDir: string, s: FormatSpec, select: (name: string) => boolean, opts: { config?: (c: Record<string, unknown>) => void; edit?: (t: TensorToWrite[]) => TensorToWrite[] } = {}): Promise<Record<string, Float32Array>> {
  await mkdir(outDir, { recursive: true });
  const src = await SafetensorsFile.open(join(srcDir, 'model.safetensors'));
  let out: TensorToWrite[] = [];
  const refs: Record<string, Float32Array> = {};
  let seed = 11;
  try {
    for (const t of src.tensors) {
      if (select(t.name)) {
        const [N, K] = t.shape;
        const w = (await src.readAs(t.name, 'f32')) as Float32Array;
        const p = packLinear(t.name.replace(/\.weight$/, ''), w, N, K, s, seed++);
        out.push(...p.tensors);
        refs[t.name] = p.ref;
      } else {
        out.push({ name: t.name, dtype: t.dtype, shape: t.shape, data: await src.readBytes(t.name) });
      }
    }
  } finally {
    await src.close();
  }
  if (opts.edit) out = opts.edit(out);
  await writeSafetensorsFile(join(outDir, 'model.safetensors'), out, { format: 'pt' });
  for (const f of await readdir(srcDir)) if (f !== 'model.safetensors' && f !== 'config.json') await copyFile(join(srcDir, f), join(outDir, f));
  const config = JSON.parse(await readFile(join(srcDir, 'config.json'), 'utf8'));
  config.quantization_config = quantizationConfig(s);
  opts.config?.(config);
  await writeFile(join(outDir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  return refs;
}

/** The Linears GPTQ/AWQ/llm-compressor quantize in a Llama (the decoder layers' projections). */
export const LLAMA_LINEARS = (name: string) => /^model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)\.weight$/.test(name);
/** ... and in a BERT encoder (the layers' Linears; pooler and classifier stay float). */
export const BERT_LINEARS = (name: string) => /(^|\.)encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense|intermediate\.dense|output\.dense)\.weight$/.test(name);

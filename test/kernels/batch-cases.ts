/**
 * Kernel cases for batched decoding (src/generate/batch.ts): ropeKv's batched mode (row b is
 * sequence b at its own position, written into its region of a KvBatch) and
 * batchedDecoderAttention (each row over its own region and length), against
 * src/reference/decoder.ts run per sequence.
 */
import type { GpuContext } from '../../src/gpu/context.ts';
import type { Precision } from '../../src/gpu/shaders.ts';
import type { Tensor } from '../../src/gpu/tensor.ts';
import { f32ArrayToF16 } from '../../src/io/safetensors/half.ts';
import { batchedDecoderAttention } from '../../src/ops/batch-attention.ts';
import { KvBatch } from '../../src/ops/kv-batch.ts';
import { KvShared } from '../../src/ops/kv-cache.ts';
import { ropeKv } from '../../src/ops/rope-kv.ts';
import { refDecoderAttention, refQuantizeKvRows, refRopeKv } from '../../src/reference/decoder.ts';
import { allOf, compare, input, runOp, type Compare, type KernelCase } from './check.ts';

const cases: KernelCase[] = [];

function invFreq(D: number): Float32Array {
  return Float32Array.from({ length: D / 2 }, (_, i) => 1 / Math.pow(10000, (2 * i) / D));
}

type KvKind = 'act' | 'f32' | 'int8';

// [nh, nkv, D, cap, positions per sequence, window]: lengths on both sides of a 64-key split
// boundary and a short one; GQA 1, 2 and 20 (two head chunks); a sliding window; B = 1 and 4.
// The last case soft-caps the scores (Gemma 2) at 2, below the scores of its q (scaled x3).
const BATCH: [number, number, number, number, number[], number, KvKind[], number?][] = [
  [4, 2, 16, 90, [9, 70, 0], 0, ['act', 'f32', 'int8']],
  [6, 3, 8, 130, [129, 1, 64, 100], 0, ['act', 'int8']],
  [2, 2, 32, 80, [50], 16, ['act', 'int8']],
  [40, 2, 8, 70, [3, 69], 0, ['act', 'int8']],
  [4, 2, 16, 90, [9, 70], 0, ['act'], 2],
];
for (const c of BATCH) {
  const [nh, nkv, D, cap, P, window, kvs, softcap] = c;
  for (const kv of kvs) {
    cases.push({
      name: `batched decode attention nh=${nh} nkv=${nkv} D=${D} cap=${cap} positions=${P.join(',')}${window ? ` window=${window}` : ''}${softcap ? ` softcap=${softcap}` : ''} kv=${kv}`,
      run: (ctx, p) => batchCase(ctx, p, c, kv),
    });
  }
}

/**
 * Every sequence's cache region is filled with its own random keys and values (the whole cap:
 * positions past a sequence's own must not be read); then one batched step ropes the rows' new
 * keys and values into place at each sequence's position and attends. Checked: q and the written
 * rows against refRopeKv, and each row's attention against refDecoderAttention over its region.
 */
async function batchCase(ctx: GpuContext, p: Precision, [nh, nkv, D, cap, P, window, , softcap = 0]: (typeof BATCH)[number], kv: KvKind): Promise<Compare> {
  const dtype = kv === 'act' ? p : kv;
  const B = P.length;
  const width = (nh + 2 * nkv) * D;
  const freq = invFreq(D);
  const shared = KvShared.create(ctx, { layers: 1, heads: nh, kvHeads: nkv, headDim: D, cap, dtype }, freq);
  let batch: KvBatch | null = null;
  const made: Tensor[] = [];
  try {
    batch = KvBatch.create(ctx, shared, B + 1); // one spare sequence: a step may run fewer rows than the batch holds
    const region = nkv * cap * D;
    const kv16 = dtype === 'f16' ? 'f16' : 'f32';
    const ks: Float32Array[] = [], vs: Float32Array[] = [];
    const write = (t: Tensor, data: Float32Array | Uint16Array | Uint32Array) => ctx.dev.gpu.queue.writeBuffer(t.buffer, t.offset, data as Uint32Array<ArrayBuffer>);
    for (let b = 0; b < B; b++) {
      let k = input(region, 200 + 7 * b + D, kv16), v = input(region, 201 + 7 * b + D, kv16);
      const l = batch.seqs[b].layers[0];
      if (dtype === 'int8') {
        for (const [src, codes, scales] of [[k, l.k, l.ks!], [v, l.v, l.vs!]] as const) {
          const r = refQuantizeKvRows(src, nkv * cap, D);
          write(codes, new Uint32Array(r.codes.buffer));
          write(scales, r.scales);
        }
        const deq = (x: Float32Array) => {
          const r = refQuantizeKvRows(x, nkv * cap, D);
          return Float32Array.from(r.codes, (c, i) => c * r.scales[Math.floor(i / D)]);
        };
        [k, v] = [deq(k), deq(v)];
      } else {
        write(l.k, dtype === 'f16' ? f32ArrayToF16(k) : k);
        write(l.v, dtype === 'f16' ? f32ArrayToF16(v) : v);
      }
      ks.push(k);
      vs.push(v);
    }
    const qkv = input(B * width, 210 + D + B, p, softcap ? 3 : 1.5);
    const tqkv = ctx.uploadFloat(qkv, [B, width], p);
    made.push(tqkv);
    const pos = new Uint32Array(Math.max(4, B + 1));
    pos.set(P);
    write(batch.whole.pos, pos);
    const kvb = batch;
    let q: Tensor | null = null;
    const got = await runOp(ctx, (rec) => {
      q = ropeKv(ctx, rec, tqkv, kvb.whole, 0, { seqRows: kvb.seqRows });
      return batchedDecoderAttention(ctx, rec, q, kvb, 0, { window, softcap });
    });
    const gotQ = await ctx.readFloat(q!);
    q!.dispose();
    const parts: Record<string, Compare> = {};
    // Tolerances: decoder-cases.ts's for ropeKv and decoderAttention (an int8 row's new key is
    // compared after its own quantization, read back from the cache).
    const [ratol, rrtol] = p === 'f32' ? [1e-5, 1e-5] : [4e-3, 2e-3];
    const [aatol, artol] = p === 'f32' ? [5e-6, 1e-5] : [4e-3, 4e-3];
    const wantQ = new Float32Array(B * nh * D);
    for (let b = 0; b < B; b++) {
      const r = refRopeKv(qkv.subarray(b * width, (b + 1) * width), 1, nh, nkv, D, P[b], freq);
      wantQ.set(r.q, b * nh * D);
      // What the cache holds at the new rows: read back (int8 dequantized), checked against the reference.
      const l = batch.seqs[b].layers[0];
      const k = ks[b], v = vs[b];
      if (dtype === 'int8') {
        const kq = (await ctx.read(l.k)) as Uint32Array, vq = (await ctx.read(l.v)) as Uint32Array;
        const kS = await ctx.readFloat(l.ks!), vS = await ctx.readFloat(l.vs!);
        for (let h = 0; h < nkv; h++) {
          const row = h * cap + P[b];
          for (let d = 0; d < D; d++) {
            const code = (w: Uint32Array) => (w[(row * D + d) >> 2] << (24 - 8 * ((row * D + d) & 3))) >> 24;
            k[row * D + d] = code(kq) * kS[row];
            v[row * D + d] = code(vq) * vS[row];
          }
        }
        const step = Math.max(...refQuantizeKvRows(r.k, nkv, D).scales, ...refQuantizeKvRows(r.v, nkv, D).scales);
        const newK = new Float32Array(nkv * D), newV = new Float32Array(nkv * D);
        for (let h = 0; h < nkv; h++) {
          newK.set(k.subarray((h * cap + P[b]) * D, (h * cap + P[b] + 1) * D), h * D);
          newV.set(v.subarray((h * cap + P[b]) * D, (h * cap + P[b] + 1) * D), h * D);
        }
        parts[`sequence ${b} new k`] = compare(newK, r.k, step / 2 + 2 * ratol, rrtol);
        parts[`sequence ${b} new v`] = compare(newV, r.v, step / 2 + 2 * ratol, rrtol);
      } else {
        const gk = await ctx.readFloat(l.k), gv = await ctx.readFloat(l.v);
        const newK = new Float32Array(nkv * D), newV = new Float32Array(nkv * D);
        for (let h = 0; h < nkv; h++) {
          newK.set(gk.subarray((h * cap + P[b]) * D, (h * cap + P[b] + 1) * D), h * D);
          newV.set(gv.subarray((h * cap + P[b]) * D, (h * cap + P[b] + 1) * D), h * D);
        }
        parts[`sequence ${b} new k`] = compare(newK, r.k, ratol, rrtol);
        parts[`sequence ${b} new v`] = compare(newV, r.v, ratol, rrtol);
        // The reference attends over what the cache holds (the new rows rounded to the cache's type).
        k.set(gk);
        v.set(gv);
      }
      const qb = gotQ.subarray(b * nh * D, (b + 1) * nh * D);
      const ref = softcap ? softcappedAttention(qb, k, v, nh, nkv, D, cap, P[b], softcap) : refDecoderAttention(qb, k, v, 1, nh, nkv, D, cap, P[b], window);
      parts[`sequence ${b} attention`] = compare(got.subarray(b * nh * D, (b + 1) * nh * D), ref, aatol, artol);
    }
    parts.q = compare(gotQ, wantQ, ratol, rrtol);
    return allOf(parts);
  } finally {
    made.forEach((t) => t.dispose());
    batch?.dispose();
    shared.dispose();
  }
}

/**
 * One query row at position P over keys 0..P with scores s -> c tanh(s / c) (Gemma 2), in f64: the
 * soft-capped form of refDecoderAttention (src/reference/decoder.ts on this branch has no cap).
 */
function softcappedAttention(q: Float32Array, k: Float32Array, v: Float32Array, nh: number, nkv: number, D: number, cap: number, P: number, c: number): Float32Array {
  const out = new Float32Array(nh * D);
  const w = new Float64Array(P + 1);
  for (let h = 0; h < nh; h++) {
    const kv = Math.floor(h / (nh / nkv)) * cap * D;
    let max = -Infinity;
    for (let j = 0; j <= P; j++) {
      let s = 0;
      for (let d = 0; d < D; d++) s += q[h * D + d] * k[kv + j * D + d];
      w[j] = c * Math.tanh(s / Math.sqrt(D) / c);
      max = Math.max(max, w[j]);
    }
    let sum = 0;
    for (let j = 0; j <= P; j++) sum += w[j] = Math.exp(w[j] - max);
    for (let d = 0; d < D; d++) {
      let acc = 0;
      for (let j = 0; j <= P; j++) acc += w[j] * v[kv + j * D + d];
      out[h * D + d] = acc / sum;
    }
  }
  return out;
}

export const BATCH_CASES: readonly KernelCase[] = cases;

/**
 * Kernel cases for the decoder's own kernels (part of the one list in cases.ts): swiglu, ropeKv
 * (RoPE, Qwen3's q/k norm, K/V written into a float or int8 cache) and decoderAttention (causal
 * GQA over the cache, flash-decoding splits merged by attn_combine, sliding windows). Each checks
 * against src/reference/decoder.ts.
 */
import type { GpuContext } from '../../src/gpu/context.ts';
import type { Precision } from '../../src/gpu/shaders.ts';
import type { Tensor } from '../../src/gpu/tensor.ts';
import { f32ArrayToF16 } from '../../src/io/safetensors/half.ts';
import { gegluTanh, softcap, swiglu } from '../../src/ops/activation.ts';
import { decoderAttention } from '../../src/ops/decoder-attention.ts';
import { KvCache, KvShared, type KvDType } from '../../src/ops/kv-cache.ts';
import { ropeKv } from '../../src/ops/rope-kv.ts';
import { refDecoderAttention, refGegluTanh, refQuantizeKvRows, refRopeKv, refSoftcap, refSwiglu } from '../../src/reference/decoder.ts';
import { allOf, compare, input, roundF16, runOp, type Compare, type KernelCase } from './check.ts';

const cases: KernelCase[] = [];

/** Rotate-half RoPE frequencies with theta 10000 (what most Llama-family configs use). */
function invFreq(D: number): Float32Array {
  return Float32Array.from({ length: D / 2 }, (_, i) => 1 / Math.pow(10000, (2 * i) / D));
}

/** 'act': the cache in the activations' precision; 'f32': an f32 cache under either; 'int8'. */
type KvKind = 'act' | 'f32' | 'int8';
const kvDtype = (kv: KvKind, p: Precision): KvDType => (kv === 'act' ? p : kv);

/** The int8 cache's codes (four to a u32, lowest byte first) times their row's scale. */
function dequantKv(words: Uint32Array, scales: Float32Array, D: number): Float32Array {
  const out = new Float32Array(words.length * 4);
  for (let i = 0; i < out.length; i++) out[i] = ((words[i >> 2] << (24 - 8 * (i & 3))) >> 24) * scales[Math.floor(i / D)];
  return out;
}

// SwiGLU over a fused gate|up row: odd widths, one past the workgroup (256), many rows.
for (const [rows, cols] of [[1, 1], [3, 7], [5, 300], [2, 4099], [33, 257]] as const) {
  cases.push({
    name: `swiglu ${rows}x${cols}`,
    async run(ctx, p) {
      const x = input(rows * 2 * cols, 100 + cols, p, 3);
      const t = ctx.uploadFloat(x, [rows, 2 * cols], p);
      const got = await runOp(ctx, (rec) => swiglu(ctx, rec, t));
      t.dispose();
      // silu(g) * u in f32, stored in T: the activations' tolerance (an f16 result rounds to 2^-11).
      return p === 'f32' ? compare(got, refSwiglu(x, rows, cols), 2e-6, 1e-5) : compare(got, refSwiglu(x, rows, cols), 1e-4, 1e-3);
    },
  });
}

// ropeKv: [T, nh, nkv, D, pos0, Qwen3 q/k norm]. D 8 .. 256 (the kernel's largest, two pairs per
// thread), D/4 odd (100), a far position (1000), GQA and MHA; layer 1 of a two-layer cache.
const ROPE: [number, number, number, number, number, boolean][] = [
  [1, 2, 1, 8, 0, false],
  [5, 6, 2, 36, 17, true],
  [3, 4, 4, 256, 1000, true],
  [2, 3, 1, 100, 7, false],
];
for (const [T, nh, nkv, D, pos0, norm] of ROPE) {
  for (const kv of ['act', 'int8'] as const) {
    cases.push({
      name: `ropeKv T=${T} nh=${nh} nkv=${nkv} D=${D} pos0=${pos0}${norm ? ' qkNorm' : ''} kv=${kv}`,
      run: (ctx, p) => ropeKvCase(ctx, p, [T, nh, nkv, D, pos0, norm], kv),
    });
  }
}

async function ropeKvCase(ctx: GpuContext, p: Precision, [T, nh, nkv, D, pos0, norm]: (typeof ROPE)[number], kv: KvKind): Promise<Compare> {
  const cap = pos0 + T + 3;
  const dtype = kvDtype(kv, p);
  const width = (nh + 2 * nkv) * D;
  const freq = invFreq(D);
  const qkv = input(T * width, 110 + D + T, p, 1.5);
  const qn = input(D, 111 + D, p), kn = input(D, 112 + D, p);
  const cache = KvCache.create(ctx, { layers: 2, heads: nh, kvHeads: nkv, headDim: D, cap, dtype }, freq);
  const t = { qkv: ctx.uploadFloat(qkv, [T, width], p), qn: ctx.uploadFloat(qn, [D], p), kn: ctx.uploadFloat(kn, [D], p) };
  try {
    cache.setPosition(ctx, pos0);
    const q = await runOp(ctx, (rec) => ropeKv(ctx, rec, t.qkv, cache, 1, norm ? { qkNorm: { q: t.qn, k: t.kn, eps: 1e-6 } } : {}));
    const round = p === 'f16' ? (x: number) => roundF16(new Float32Array([x]))[0] : (x: number) => x;
    const ref = refRopeKv(qkv, T, nh, nkv, D, pos0, freq, norm ? { q: qn, k: kn, eps: 1e-6, round } : undefined);
    // The whole cache of both layers: rows pos0 .. pos0+T-1 of layer 1 hold the reference, the rest zeros.
    const want = (rows: Float32Array) => {
      const full = new Float32Array(nkv * cap * D);
      for (let h = 0; h < nkv; h++) full.set(rows.subarray(h * T * D, (h + 1) * T * D), (h * cap + pos0) * D);
      return full;
    };
    // f32: norm sums and RoPE in f32 against f64. f16: q and the cache round to f16 (2^-11), and the
    // normed head rounds to f16 before RoPE, where a value at a rounding boundary may go either way
    // (up to 2^-8 at |x| ~ 4): hence the wider atol.
    const [atol, rtol] = p === 'f32' ? [1e-5, 1e-5] : [4e-3, 2e-3];
    const l0 = cache.layers[0], l1 = cache.layers[1];
    const parts: Record<string, Compare> = { q: compare(q, ref.q, atol, rtol) };
    if (dtype !== 'int8') {
      parts.k = compare(await ctx.readFloat(l1.k), want(ref.k), atol, rtol);
      parts.v = compare(await ctx.readFloat(l1.v), want(ref.v), atol, rtol);
      parts['layer 0 k'] = compare(await ctx.readFloat(l0.k), new Float32Array(nkv * cap * D), 0, 0);
    } else {
      // int8: one scale per (token, head), max |x| / 127; each dequantized value within half a code
      // step of the exact one (plus the float path's error, the scale's own included).
      for (const [name, rows] of [['k', ref.k], ['v', ref.v]] as const) {
        const l = name === 'k' ? { q: l1.k, s: l1.ks! } : { q: l1.v, s: l1.vs! };
        const scales = await ctx.readFloat(l.s);
        const { scales: refScales } = refQuantizeKvRows(want(rows), nkv * cap, D);
        const step = Math.max(...refScales);
        parts[`${name} scales`] = compare(scales, refScales, atol / 127, rtol);
        parts[name] = compare(dequantKv((await ctx.read(l.q)) as Uint32Array, scales, D), want(rows), step / 2 + 2 * atol, rtol);
      }
      parts['layer 0 k'] = compare(dequantKv((await ctx.read(l0.k)) as Uint32Array, await ctx.readFloat(l0.ks!), D), new Float32Array(nkv * cap * D), 0, 0);
    }
    return allOf(parts);
  } finally {
    Object.values(t).forEach((x) => x.dispose());
    cache.dispose();
  }
}

// decoderAttention: [T, nh, nkv, D, pos0, window, cap, splits the cache makes, kv kinds]. Decode
// steps (T <= SPLIT_MAX_T) split the context in BK = 64-key pieces: a split boundary inside the
// context, a trailing split with no keys, splits wholly outside a sliding window, a window across a
// split boundary; GQA ratios 1, 2, 3, 4 and 20 (past the 16 heads a workgroup holds: two head
// chunks); prefills (one split, query rows tiled 4 at a time, 37 rows not a multiple of it) with a
// cached prefix (pos0 5) and a window; T = 5, one past SPLIT_MAX_T, on a cache with 2 splits.
const ATT: [number, number, number, number, number, number, number, number, KvKind[]][] = [
  [1, 2, 1, 16, 70, 0, 80, 2, ['act', 'f32', 'int8']],
  [3, 6, 2, 12, 130, 0, 200, 4, ['act', 'int8']],
  [4, 4, 4, 20, 100, 50, 128, 2, ['act', 'int8']],
  [1, 2, 2, 8, 200, 16, 256, 4, ['act', 'int8']],
  [2, 40, 2, 8, 100, 0, 130, 3, ['act', 'int8']],
  [1, 4, 1, 128, 200, 0, 257, 5, ['act', 'int8']],
  [37, 8, 2, 16, 5, 0, 64, 1, ['act', 'int8']],
  [20, 2, 1, 64, 0, 7, 40, 1, ['act', 'int8']],
  [5, 4, 2, 32, 60, 0, 70, 2, ['act', 'int8']],
];
for (const c of ATT) {
  const [T, nh, nkv, D, pos0, window, cap, , kvs] = c;
  for (const kv of kvs) {
    cases.push({
      name: `decoderAttention T=${T} nh=${nh} nkv=${nkv} D=${D} pos0=${pos0}${window ? ` window=${window}` : ''} cap=${cap} kv=${kv}`,
      run: (ctx, p) => attentionCase(ctx, p, c, kv),
    });
  }
}

/**
 * Gemma's attention options: scores soft-capped (attn_logit_softcapping; caps 2 and 0.5 against
 * scores of std ~1.5 here, so tanh bends most of them), a scale other than 1/sqrt(D)
 * (query_pre_attn_scalar), with and without a sliding window, prefill and decode, every cache.
 * Exported for test/node/gemma.test.ts, which runs them on both kernel families.
 */
const GEMMA_ATT: [(typeof ATT)[number], number, number][] = [
  [[1, 4, 2, 16, 70, 0, 80, 2, ['act', 'f32', 'int8']], 0.4, 2],
  [[1, 4, 2, 16, 70, 9, 80, 2, ['act', 'f32', 'int8']], 0.4, 2],
  [[20, 4, 2, 32, 0, 6, 40, 1, ['act', 'f32', 'int8']], 0.3, 0.5],
  [[3, 8, 2, 16, 100, 0, 130, 3, ['act', 'int8']], 0.4, 2],
];
export const GEMMA_KERNEL_CASES: KernelCase[] = [];
for (const [c, scale, softcap] of GEMMA_ATT) {
  const [T, nh, nkv, D, pos0, window, cap, , kvs] = c;
  for (const kv of kvs) {
    GEMMA_KERNEL_CASES.push({
      name: `decoderAttention softcap=${softcap} scale=${scale} T=${T} nh=${nh} nkv=${nkv} D=${D} pos0=${pos0}${window ? ` window=${window}` : ''} kv=${kv}`,
      run: (ctx, p) => attentionCase(ctx, p, c, kv, { scale, softcap }),
    });
  }
}
// GeGLU (tanh GELU) and the logits' softcap, one past the workgroup (256) and many rows.
for (const [rows, cols] of [[3, 7], [33, 257]] as const) {
  GEMMA_KERNEL_CASES.push({
    name: `geglu_tanh ${rows}x${cols}`,
    async run(ctx, p) {
      const x = input(rows * 2 * cols, 200 + cols, p, 3);
      const t = ctx.uploadFloat(x, [rows, 2 * cols], p);
      const got = await runOp(ctx, (rec) => gegluTanh(ctx, rec, t));
      t.dispose();
      return p === 'f32' ? compare(got, refGegluTanh(x, rows, cols), 1e-6, 1e-5) : compare(got, refGegluTanh(x, rows, cols), 2e-3, 2e-3);
    },
  });
  GEMMA_KERNEL_CASES.push({
    name: `softcap 3 ${rows}x${cols}`,
    async run(ctx, p) {
      // Values up to ~30 (input scale 10): past the cap, where tanh saturates; 1e4 checks no NaN.
      const x = input(rows * cols, 210 + cols, p, 10);
      x[0] = 1e4;
      x[1] = -1e4;
      const t = ctx.uploadFloat(x, [rows, cols], p);
      const got = await runOp(ctx, (rec) => softcap(ctx, rec, t, 3));
      t.dispose();
      return p === 'f32' ? compare(got, refSoftcap(x, 3), 1e-6, 1e-5) : compare(got, refSoftcap(x, 3), 2e-3, 2e-3);
    },
  });
}
cases.push(...GEMMA_KERNEL_CASES);

async function attentionCase(
  ctx: GpuContext, p: Precision, [T, nh, nkv, D, pos0, window, cap, splits]: (typeof ATT)[number], kv: KvKind, gemma?: { scale: number; softcap: number },
): Promise<Compare> {
  const dtype = kvDtype(kv, p);
  const cache = KvCache.create(ctx, { layers: 1, heads: nh, kvHeads: nkv, headDim: D, cap, dtype }, invFreq(D));
  // Keys and values fill the whole cache: positions past the context hold values the kernel must not read.
  const kv16 = dtype === 'f16' ? 'f16' : 'f32';
  let k = input(nkv * cap * D, 120 + D + T, kv16), v = input(nkv * cap * D, 121 + D + T, kv16);
  const q = input(T * nh * D, 122 + D + T, p);
  const tq = ctx.uploadFloat(q, [T, nh * D], p);
  try {
    if (cache.shared.splits !== splits) throw new Error(`the cache makes ${cache.shared.splits} splits; the case is written for ${splits}`);
    const l = cache.layers[0];
    const write = (t: Tensor, data: Float32Array | Uint16Array | Uint32Array) => ctx.dev.gpu.queue.writeBuffer(t.buffer, t.offset, data as Uint32Array<ArrayBuffer>);
    if (dtype === 'int8') {
      // The reference reads what the cache holds: the codes times their scales.
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
    cache.setPosition(ctx, pos0);
    const got = await runOp(ctx, (rec) => decoderAttention(ctx, rec, tq, cache, 0, { pos0, window, ...gemma }));
    const ref = refDecoderAttention(q, k, v, T, nh, nkv, D, cap, pos0, window, gemma?.scale, gemma?.softcap);
    // Softmax-weighted means of N(0,1) values: f32 exp and sums (and the splits' rescaling) against
    // f64; f16 stores q and the output in f16 (2^-11), the weights stay f32.
    return p === 'f32' ? compare(got, ref, 2e-6, 1e-5) : compare(got, ref, 2e-3, 2e-3);
  } finally {
    tq.dispose();
    cache.dispose();
  }
}

// Two sequences of one model (KvCache.forShared): each its own keys, values and position, the RoPE
// table and the split scratch shared. Step 0 prefills both and step 1 decodes a row of each, both
// sequences recorded into one encoder (as batched decoding would); then sequence 0 is freed and
// step 2 decodes sequence 1 again on the shared tables it left.
cases.push({
  name: 'ropeKv + decoderAttention: two sequences on one KvShared',
  async run(ctx, p) {
    const [nh, nkv, D, cap] = [4, 2, 16, 90];
    const width = (nh + 2 * nkv) * D;
    const freq = invFreq(D);
    const shared = KvShared.create(ctx, { layers: 1, heads: nh, kvHeads: nkv, headDim: D, cap, dtype: p }, freq);
    const seqs = [KvCache.forShared(ctx, shared), KvCache.forShared(ctx, shared)];
    // Prompt lengths: sequence 1's decode rows sit past the first 64-key split.
    const Ts = [9, 70];
    const data = Ts.map((T, s) => input((T + 2) * width, 130 + s, p));
    const outs: Float32Array[][] = [[], []];
    const run = async (step: number, which: number[]) => {
      const rec = ctx.record();
      const made: Tensor[] = [];
      const results: [number, Tensor][] = [];
      for (const s of which) {
        const [pos0, rows] = step === 0 ? [0, Ts[s]] : [Ts[s] + step - 1, 1];
        const x = ctx.uploadFloat(data[s].subarray(pos0 * width, (pos0 + rows) * width), [rows, width], p);
        const q = ropeKv(ctx, rec, x, seqs[s], 0);
        results.push([s, decoderAttention(ctx, rec, q, seqs[s], 0, { pos0 })]);
        seqs[s].setPosition(ctx, pos0); // queue.writeBuffer: lands before the submit
        made.push(x, q);
      }
      await rec.submit();
      for (const [s, r] of results) {
        if (step > 0) outs[s].push(await ctx.readFloat(r));
        r.dispose();
      }
      made.forEach((t) => t.dispose());
    };
    try {
      await run(0, [0, 1]);
      await run(1, [0, 1]);
      seqs[0].dispose();
      await run(2, [1]);
      const parts: Record<string, Compare> = {};
      for (const [s, T] of Ts.entries()) {
        const all = refRopeKv(data[s], T + 2, nh, nkv, D, 0, freq);
        const k = new Float32Array(nkv * cap * D), v = new Float32Array(nkv * cap * D);
        for (let h = 0; h < nkv; h++) {
          k.set(all.k.subarray(h * (T + 2) * D, (h + 1) * (T + 2) * D), h * cap * D);
          v.set(all.v.subarray(h * (T + 2) * D, (h + 1) * (T + 2) * D), h * cap * D);
        }
        outs[s].forEach((got, i) => {
          const P = T + i;
          const ref = refDecoderAttention(all.q.subarray(P * nh * D, (P + 1) * nh * D), k, v, 1, nh, nkv, D, cap, P);
          // The attention tolerances; on f16 the cached keys and values are f16 too.
          parts[`sequence ${s} position ${P}`] = p === 'f32' ? compare(got, ref, 5e-6, 1e-5) : compare(got, ref, 4e-3, 4e-3);
        });
      }
      if (Object.keys(parts).length !== 3) throw new Error(`${Object.keys(parts).length} decode outputs; expected 3`);
      return allOf(parts);
    } finally {
      seqs.forEach((c) => c.dispose());
      shared.dispose();
    }
  },
});

export const DECODER_CASES: readonly KernelCase[] = cases;

// rope_kv.wgsl's options for the decoder families against a plain-TS computation of the same
// thing: q/k RMSNorm per head (Qwen3) or over the whole projection (OLMo 2), RoPE on the first
// `rotary` dimensions of each head with cos and sin scaled (Phi-4-mini's partial rotary and
// longrope), and no RoPE (SmolLM3's NoPE layers); q out, K and V into the cache at pos0 + t.
// Tolerances: f32 1e-5, f16 activations 1e-2 (inputs rounded to f16 on both sides; the kernel
// rounds the norm's output and q to f16, values here are up to ~4).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuContext } from '../../src/gpu/context.ts';
import { ropeInvFreq } from '../../src/models/llama/llama-config.ts';
import { roundToF16 } from '../../src/models/upload.ts';
import { KvCache } from '../../src/ops/kv-cache.ts';
import { ropeKv, type RopeKvOptions } from '../../src/ops/rope-kv.ts';
import { rng } from '../kernels/check.ts';

let ctx: GpuContext;
beforeAll(async () => {
  ctx = await GpuContext.create();
});
afterAll(() => ctx?.dispose());

const nh = 4;
const nkv = 2;
const D = 16;
const T = 5;
const pos0 = 3;
const cap = 16;
const W = (nh + 2 * nkv) * D;

interface Case {
  norm: 'none' | 'head' | 'all';
  rotary: number;
  mscale: number;
}

const CASES: [string, Case][] = [
  ['per-head q/k norms, full rotation (Qwen3)', { norm: 'head', rotary: D, mscale: 1 }],
  ['q/k norms over the projection (OLMo 2)', { norm: 'all', rotary: D, mscale: 1 }],
  ['partial rotation 12 of 16, cos/sin x 1.118 (Phi-4-mini longrope)', { norm: 'none', rotary: 12, mscale: 1.118 }],
  ['no RoPE (a SmolLM3 NoPE layer)', { norm: 'none', rotary: 0, mscale: 1 }],
];

function normal(rand: () => number, n: number, mean: number, std: number): Float32Array {
  return Float32Array.from({ length: n }, () => mean + std * Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand()));
}

/** The expected q [T, nh D], and K, V rows [nkv][T][D] at positions pos0.. . */
function expected(qkv: Float32Array, qn: Float32Array, kn: Float32Array, c: Case, eps: number): { q: Float64Array; k: Float64Array; v: Float64Array } {
  const inv = ropeInvFreq({ headDim: D, rotaryDim: c.rotary, ropeTheta: 10000, ropeScaling: null });
  const q = new Float64Array(T * nh * D);
  const k = new Float64Array(nkv * T * D);
  const v = new Float64Array(nkv * T * D);
  const prep = (row: number, off: number, heads: number, g: Float32Array, out: Float64Array, at: (h: number) => number) => {
    const x = Float64Array.from(qkv.subarray(row * W + off, row * W + off + heads * D));
    const rms = (a: number, n: number) => {
      let ss = 0;
      for (let i = a; i < a + n; i++) ss += x[i] ** 2;
      return 1 / Math.sqrt(ss / n + eps);
    };
    if (c.norm === 'all') {
      const r = rms(0, heads * D);
      for (let i = 0; i < heads * D; i++) x[i] *= r * g[i];
    }
    for (let h = 0; h < heads; h++) {
      if (c.norm === 'head') {
        const r = rms(h * D, D);
        for (let i = 0; i < D; i++) x[h * D + i] *= r * g[i];
      }
      const p = pos0 + row;
      const half = c.rotary / 2;
      const y = x.slice(h * D, (h + 1) * D);
      for (let i = 0; i < half; i++) {
        const cos = Math.cos(p * inv[i]) * c.mscale;
        const sin = Math.sin(p * inv[i]) * c.mscale;
        y[i] = x[h * D + i] * cos - x[h * D + i + half] * sin;
        y[i + half] = x[h * D + i + half] * cos + x[h * D + i] * sin;
      }
      out.set(y, at(h));
    }
  };
  for (let t = 0; t < T; t++) {
    prep(t, 0, nh, qn, q, (h) => (t * nh + h) * D);
    prep(t, nh * D, nkv, kn, k, (h) => (h * T + t) * D);
    for (let h = 0; h < nkv; h++) for (let i = 0; i < D; i++) v[(h * T + t) * D + i] = qkv[t * W + (nh + nkv + h) * D + i];
  }
  return { q, k, v };
}

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

describe.each(['f32', 'f16'] as const)('%s activations', (precision) => {
  it.each(CASES)('%s', async (_, c) => {
    if (precision === 'f16' && !ctx.caps.f16) return;
    const tol = precision === 'f32' ? 1e-5 : 1e-2;
    const round = (a: Float32Array) => (precision === 'f16' ? roundToF16(a) : a);
    const rand = rng(17);
    const qkv = round(normal(rand, T * W, 0, 1));
    const all = c.norm === 'all';
    const qn = round(normal(rand, (all ? nh : 1) * D, 1, 0.2));
    const kn = round(normal(rand, (all ? nkv : 1) * D, 1, 0.2));
    const eps = 1e-6;
    const inv = ropeInvFreq({ headDim: D, rotaryDim: c.rotary, ropeTheta: 10000, ropeScaling: null });
    const cache = KvCache.create(ctx, { layers: 1, heads: nh, kvHeads: nkv, headDim: D, cap, dtype: 'f32' }, inv);
    const x = ctx.uploadFloat(qkv, [T, W], precision);
    const gq = ctx.uploadFloat(qn, [qn.length], precision);
    const gk = ctx.uploadFloat(kn, [kn.length], precision);
    try {
      cache.setPosition(ctx, pos0);
      const rec = ctx.record();
      const opts: RopeKvOptions = { rotary: c.rotary, ropeScale: c.mscale, ...(c.norm !== 'none' && { qkNorm: { q: gq, k: gk, eps, all } }) };
      const q = ropeKv(ctx, rec, x, cache, 0, opts);
      await rec.submit();
      const want = expected(qkv, qn, kn, c, eps);
      expect(maxAbs(await ctx.readFloat(q), want.q)).toBeLessThan(tol);
      q.dispose();
      // The cache holds [nkv, cap, D]: positions pos0 .. pos0 + T - 1 of each KV head.
      const rows = async (t: typeof cache.layers[0]['k']) => {
        const a = await ctx.readFloat(t);
        const out = new Float32Array(nkv * T * D);
        for (let h = 0; h < nkv; h++) out.set(a.subarray((h * cap + pos0) * D, (h * cap + pos0 + T) * D), h * T * D);
        return out;
      };
      expect(maxAbs(await rows(cache.layers[0].k), want.k)).toBeLessThan(tol);
      expect(maxAbs(await rows(cache.layers[0].v), want.v)).toBeLessThan(tol);
    } finally {
      [x, gq, gk].forEach((t) => t.dispose());
      cache.dispose();
    }
  });
});

it('refuses an odd or too wide rotary count and norm weights of the wrong width', async () => {
  const cache = KvCache.create(ctx, { layers: 1, heads: nh, kvHeads: nkv, headDim: D, cap, dtype: 'f32' }, new Float32Array(D / 2));
  const x = ctx.uploadFloat(new Float32Array(T * W), [T, W], 'f32');
  const g = ctx.uploadFloat(new Float32Array(D), [D], 'f32');
  try {
    const rec = ctx.record();
    expect(() => ropeKv(ctx, rec, x, cache, 0, { rotary: 7 })).toThrow(/rotary 7 must be an even number of dimensions up to the head's 16/);
    expect(() => ropeKv(ctx, rec, x, cache, 0, { rotary: 18 })).toThrow(/rotary 18/);
    expect(() => ropeKv(ctx, rec, x, cache, 0, { qkNorm: { q: g, k: g, eps: 1e-6, all: true } })).toThrow(/expected 64 \/ 32 \(all heads\)/);
  } finally {
    [x, g].forEach((t) => t.dispose());
    cache.dispose();
  }
});

/**
 * Kernel test cases, runnable in Node (vitest), Deno and Chromium: each uploads seeded random
 * inputs, runs one op on the GPU, reads back and compares with the CPU reference at a stated
 * tolerance. Sizes deliberately include ones that are not multiples of 4, of the workgroup size,
 * or of the matmul tile. f16 cases round the inputs to f16 first so both sides see the same data.
 */
import { GpuContext } from '../../src/gpu/context.ts';
import type { Precision } from '../../src/gpu/shaders.ts';
import { add, mul } from '../../src/ops/elementwise.ts';
import { geglu, gelu, silu } from '../../src/ops/activation.ts';
import { ropeQkv, ropeTable } from '../../src/ops/rope-qkv.ts';
import { layerNorm, rmsNorm } from '../../src/ops/norm.ts';
import { softmax } from '../../src/ops/softmax.ts';
import { embedding } from '../../src/ops/embedding.ts';
import { matmul } from '../../src/ops/matmul.ts';
import { gelu as refGelu, silu as refSilu } from '../../src/reference/math.ts';
import { refGeglu, refRopeQkv } from '../../src/reference/ops.ts';
import { refAttention, refBinary, refEmbedSum, refEmbedding, refLayerNorm, refMatmul, refPool, refRmsNorm, refSoftmax, refUnary } from '../../src/reference/ops.ts';
import { copy } from '../../src/ops/copy.ts';
import { attention } from '../../src/ops/attention.ts';
import { embedSum, pool } from '../../src/ops/encoder-io.ts';
import { relativeBuckets } from '../../src/models/bert/bert.ts';
import { compare, input, rng, roundF16, runOp, withDevice, type Compare, type KernelCase } from './check.ts';
import { BATCH_CASES } from './batch-cases.ts';
import { GEMV_MULTI_CASES } from './gemv-multi-cases.ts';
import { DECODER_CASES } from './decoder-cases.ts';

export type { KernelCase } from './check.ts';

/** Tolerances (atol, rtol) per op and precision; f16 values carry ~2^-11 relative rounding. */
const TOL = {
  elementwise: { f32: [1e-6, 1e-6], f16: [1e-4, 1e-3] },
  activation: { f32: [2e-6, 1e-5], f16: [1e-4, 1e-3] },
  norm: { f32: [1e-5, 1e-5], f16: [2e-3, 2e-3] },
  softmax: { f32: [1e-7, 1e-5], f16: [1e-5, 2e-3] },
  embedding: { f32: [0, 0], f16: [0, 0] },
} as const;

const cases: KernelCase[] = [];

for (const [n, nb] of [[1, 1], [7, 7], [257, 257], [1000, 10], [4099, 1]] as const) {
  for (const op of ['add', 'mul'] as const) {
    cases.push({
      name: `${op} n=${n} b=${nb}`,
      async run(ctx, p) {
        const a = input(n, 1 + n, p), b = input(nb, 2 + n, p);
        const ta = ctx.uploadFloat(a, [n], p), tb = ctx.uploadFloat(b, [nb], p);
        const got = await runOp(ctx, (rec) => (op === 'add' ? add : mul)(ctx, rec, ta, tb));
        ta.dispose(); tb.dispose();
        const [atol, rtol] = TOL.elementwise[p];
        return compare(got, refBinary(op, a, b), atol, rtol);
      },
    });
  }
}

// 256 * 65535 + 3 elements: more workgroups than one dimension allows, so the grid folds into y.
cases.push({
  name: 'add n=16776963 (2-D grid)',
  large: true,
  async run(ctx, p) {
    const n = 256 * 65535 + 3;
    const a = new Float32Array(n).map((_, i) => (i % 1000) / 8), b = new Float32Array([0.5, 0.25, 2]);
    const ta = ctx.uploadFloat(a, [n], p), tb = ctx.uploadFloat(b, [3], p);
    const got = await runOp(ctx, (rec) => add(ctx, rec, ta, tb));
    ta.dispose(); tb.dispose();
    const [atol, rtol] = TOL.elementwise[p];
    return compare(got, refBinary('add', p === 'f16' ? roundF16(a) : a, b), atol, rtol);
  },
});

for (const n of [1, 5, 300, 4097]) {
  for (const [name, op, ref] of [['gelu', gelu, refGelu], ['silu', silu, refSilu]] as const) {
    cases.push({
      name: `${name} n=${n}`,
      async run(ctx, p) {
        const x = input(n, 10 + n, p, 3);
        const t = ctx.uploadFloat(x, [n], p);
        const got = await runOp(ctx, (rec) => op(ctx, rec, t));
        t.dispose();
        const [atol, rtol] = TOL.activation[p];
        return compare(got, refUnary(ref, x), atol, rtol);
      },
    });
  }
}

for (const [rows, cols] of [[1, 1], [3, 7], [5, 384], [17, 1000], [2, 4099]] as const) {
  cases.push({
    name: `layerNorm ${rows}x${cols}`,
    async run(ctx, p) {
      // An offset mean (3) checks the two-pass variance.
      const x = input(rows * cols, 20 + cols, p).map((v) => v + 3);
      const xr = p === 'f16' ? roundF16(x) : x;
      const g = input(cols, 21 + cols, p), b = input(cols, 22 + cols, p);
      const [tx, tg, tb] = [ctx.uploadFloat(xr, [rows, cols], p), ctx.uploadFloat(g, [cols], p), ctx.uploadFloat(b, [cols], p)];
      const got = await runOp(ctx, (rec) => layerNorm(ctx, rec, tx, tg, tb, 1e-5));
      tx.dispose(); tg.dispose(); tb.dispose();
      const [atol, rtol] = TOL.norm[p];
      return compare(got, refLayerNorm(xr, rows, cols, g, b, 1e-5), atol, rtol);
    },
  });
  cases.push({
    name: `rmsNorm ${rows}x${cols}`,
    async run(ctx, p) {
      const x = input(rows * cols, 30 + cols, p), g = input(cols, 31 + cols, p);
      const [tx, tg] = [ctx.uploadFloat(x, [rows, cols], p), ctx.uploadFloat(g, [cols], p)];
      const got = await runOp(ctx, (rec) => rmsNorm(ctx, rec, tx, tg, 1e-6));
      tx.dispose(); tg.dispose();
      const [atol, rtol] = TOL.norm[p];
      return compare(got, refRmsNorm(x, rows, cols, g, 1e-6), atol, rtol);
    },
  });
  cases.push({
    name: `softmax ${rows}x${cols}`,
    async run(ctx, p) {
      const x = input(rows * cols, 40 + cols, p, 4);
      if (rows > 2) for (let c = 0; c < cols; c++) x[cols + c] = -Infinity; // a fully masked row -> zeros
      const t = ctx.uploadFloat(x, [rows, cols], p);
      const got = await runOp(ctx, (rec) => softmax(ctx, rec, t));
      t.dispose();
      const [atol, rtol] = TOL.softmax[p];
      return compare(got, refSoftmax(x, rows, cols), atol, rtol);
    },
  });
}

for (const [tokens, vocab, dim] of [[1, 3, 1], [9, 50, 7], [130, 1000, 33]] as const) {
  cases.push({
    name: `embedding T=${tokens} V=${vocab} D=${dim}`,
    async run(ctx, p) {
      const r = rng(50 + dim);
      const ids = new Uint32Array(tokens).map(() => Math.floor(r() * vocab));
      ids[tokens - 1] = vocab + 5; // out of range -> zeros, never an out-of-bounds read
      const table = input(vocab * dim, 51 + dim, p);
      const tids = ctx.upload(ids, [tokens], 'u32'), tt = ctx.uploadFloat(table, [vocab, dim], p);
      const got = await runOp(ctx, (rec) => embedding(ctx, rec, tids, tt));
      tids.dispose(); tt.dispose();
      const [atol, rtol] = TOL.embedding[p];
      return compare(got, refEmbedding(ids, table, vocab, dim), atol, rtol);
    },
  });
}

// [batch, M, N, K, transB, bias, shared B]
const MM: [number, number, number, number, boolean, boolean, boolean][] = [
  [1, 1, 1, 1, true, false, true],
  [1, 7, 13, 5, true, true, true],
  [1, 65, 67, 33, true, true, true],
  [1, 128, 96, 130, false, false, true],
  [3, 17, 19, 23, false, false, false],
  [2, 70, 5, 64, true, true, false],
  [1, 3, 70, 45, true, true, true], // M <= 4: the GEMV kernel
  [1, 1, 129, 130, true, false, true],
  [1, 40, 131, 44, true, true, true], // K % 4 == 0 (subgroup kernels: A and B rows read as vec4s) and K % 8 == 4
  // M <= 4 with K % 4 == 0: the gpu family's vec4 GEMV (gemv4_lib.wgsl), N past one workgroup's
  // rows (64 on an 8-wide subgroup, 16 with the workgroup tree) and not a multiple of them
  [1, 3, 70, 48, true, true, true],
  [1, 1, 200, 1028, true, false, true],
  // the gpu family's subgroup GEMM (matmul_gpu_sg.wgsl, K % 4 == 0): several tiles with edges in
  // M and N, K past its K step of 32 and not a multiple of it, a batched B
  [1, 130, 150, 100, true, true, true],
  [2, 70, 67, 36, true, false, false],
];
// With subgroups the gpu family's K % 4 == 0 GEMMs run matmul_gpu_sg.wgsl; 'main4' repeats these
// shapes on a device made with gemm.subgroups 'off', so matmul.wgsl main4 stays tested on such
// devices too.
const MAIN4 = new Set(['1x40x131x44', '1x130x150x100', '2x70x67x36']);

async function matmulCase(ctx: GpuContext, p: Precision, [batch, M, N, K, transB, hasBias, shared]: (typeof MM)[number]): Promise<Compare> {
  const bb = shared ? 1 : batch;
  const a = input(batch * M * K, 60 + M, p), b = input(bb * N * K, 61 + N, p), bias = input(N, 62 + N, p);
  const ta = ctx.uploadFloat(a, batch > 1 ? [batch, M, K] : [M, K], p);
  const tb = ctx.uploadFloat(b, shared ? (transB ? [N, K] : [K, N]) : transB ? [bb, N, K] : [bb, K, N], p);
  const tbias = ctx.uploadFloat(bias, [N], p);
  const got = await runOp(ctx, (rec) => matmul(ctx, rec, ta, tb, { transB, bias: hasBias ? tbias : undefined }));
  ta.dispose(); tb.dispose(); tbias.dispose();
  const ref = refMatmul(a, b, batch, M, N, K, { transB, bias: hasBias ? bias : undefined, bShared: shared });
  // Sums of K products of N(0,1) values have magnitude ~sqrt(K); f32 accumulation error grows with K.
  const scale = Math.sqrt(K);
  return p === 'f32' ? compare(got, ref, 2e-5 * scale, 1e-5) : compare(got, ref, 2e-3 * scale, 2e-3);
}

for (const c of MM) {
  const [batch, M, N, K, transB, hasBias, shared] = c;
  const name = `matmul b=${batch} ${M}x${N}x${K}${transB ? ' B^T' : ''}${hasBias ? ' +bias' : ''}${shared ? '' : ' batched-B'}`;
  cases.push({ name, run: (ctx, p) => matmulCase(ctx, p, c) });
  if (MAIN4.has(`${batch}x${M}x${N}x${K}`)) {
    cases.push({
      name: `${name} (gemm.subgroups off)`,
      run: (ctx, p) =>
        withDevice(ctx, { gemm: { subgroups: 'off' } }, (d) => {
          if (d.caps.gemm.subgroups !== 'off') throw new Error('the sibling device ignored gemm.subgroups');
          return matmulCase(d, p, c);
        }),
    });
  }
}

// Fused epilogue act(A B^T + bias) + residual, on the GEMV (M=2) and tiled (M=37) kernels; K=52
// takes the subgroup kernels' vec4 entry (main4), K=50 their general one.
for (const [M, K] of [[2, 50], [2, 52], [37, 50], [37, 52]]) {
  for (const activation of ['gelu', 'silu', 'tanh', 'relu'] as const) {
    cases.push({
      name: `matmul epilogue ${activation} bias+residual M=${M} K=${K}`,
      async run(ctx, p) {
        const N = 29;
        const a = input(M * K, 70 + M, p), b = input(N * K, 71, p), bias = input(N, 72, p), res = input(M * N, 73, p);
        const [ta, tb, tbias, tres] = [ctx.uploadFloat(a, [M, K], p), ctx.uploadFloat(b, [N, K], p), ctx.uploadFloat(bias, [N], p), ctx.uploadFloat(res, [M, N], p)];
        const got = await runOp(ctx, (rec) => matmul(ctx, rec, ta, tb, { bias: tbias, activation, residual: tres }));
        [ta, tb, tbias, tres].forEach((t) => t.dispose());
        const f = { gelu: refGelu, silu: refSilu, tanh: Math.tanh, relu: (v: number) => Math.max(v, 0) }[activation];
        const ref = refMatmul(a, b, 1, M, N, K, { transB: true, bias, bShared: true }).map((v, i) => f(v) + res[i]);
        return p === 'f32' ? compare(got, ref, 2e-5 * Math.sqrt(K), 1e-5) : compare(got, ref, 2e-3 * Math.sqrt(K), 2e-3);
      },
    });
  }
}

// Fused attention: sequence lengths off the key block (16) and workgroup (64, or 128 queries on
// the subgroup kernel, which gives each lane two), padding masks.
for (const [B, T, heads, H] of [[1, 1, 2, 8], [2, 19, 4, 128], [3, 70, 2, 128], [1, 33, 3, 192], [2, 20, 1, 128], [2, 150, 2, 64]] as const) {
  cases.push({
    name: `attention B=${B} T=${T} heads=${heads} D=${H / heads}`,
    async run(ctx, p) {
      const qkv = input(B * T * 3 * H, 80 + T, p, 0.7);
      const mask = new Uint32Array(B * T).fill(1);
      for (let b = 1; b < B; b++) for (let t = T - 1 - 3 * b; t < T; t++) if (t > 0) mask[b * T + t] = 0; // right padding
      const [tq, tm] = [ctx.uploadFloat(qkv, [B * T, 3 * H], p), ctx.upload(mask, [B * T], 'u32')];
      const got = await runOp(ctx, (rec) => attention(ctx, rec, tq, tm, { batch: B, seqLen: T, heads }));
      tq.dispose(); tm.dispose();
      const ref = refAttention(qkv, mask, B, T, heads, H);
      return p === 'f32' ? compare(got, ref, 2e-6, 1e-5) : compare(got, ref, 2e-3, 2e-3);
    },
  });
}

// MPNet's relative position bias inside the fused attention: a [32, heads] table indexed by the
// bucket of each distance; T past both kernels' key blocks, padding masks.
for (const [B, T, heads, H] of [[2, 37, 4, 128], [1, 150, 2, 64]] as const) {
  cases.push({
    name: `attention + relative position bias B=${B} T=${T} heads=${heads}`,
    async run(ctx, p) {
      const qkv = input(B * T * 3 * H, 180 + T, p, 0.7);
      const mask = new Uint32Array(B * T).fill(1);
      for (let t = T - 5; t < T; t++) mask[(B - 1) * T + t] = 0;
      const table = input(32 * heads, 181, 'f32', 2);
      const buckets = relativeBuckets(T);
      const [tq, tm, tt, tb] = [ctx.uploadFloat(qkv, [B * T, 3 * H], p), ctx.upload(mask, [B * T], 'u32'), ctx.uploadFloat(table, [32, heads], 'f32'), ctx.upload(buckets, [2 * T - 1], 'u32')];
      const got = await runOp(ctx, (rec) => attention(ctx, rec, tq, tm, { batch: B, seqLen: T, heads }, undefined, { table: tt, buckets: tb }));
      [tq, tm, tt, tb].forEach((t) => t.dispose());
      const ref = refAttention(qkv, mask, B, T, heads, H, { table, buckets });
      return p === 'f32' ? compare(got, ref, 2e-6, 1e-5) : compare(got, ref, 2e-3, 2e-3);
    },
  });
}

// ModernBERT's local layers: the window (|i - j| <= win) on top of the padding mask, in both kernel
// families; windows smaller than a key block, 0 (only itself), and T past both kernels' blocks.
for (const [B, T, heads, H, win] of [[2, 37, 4, 128, 4], [1, 150, 2, 64, 16], [2, 19, 2, 64, 0], [1, 70, 4, 128, 40]] as const) {
  cases.push({
    name: `attention + local window ${win} B=${B} T=${T} heads=${heads}`,
    async run(ctx, p) {
      const qkv = input(B * T * 3 * H, 280 + T, p, 0.7);
      const mask = new Uint32Array(B * T).fill(1);
      for (let t = T - 5; t < T; t++) mask[(B - 1) * T + t] = 0;
      const [tq, tm] = [ctx.uploadFloat(qkv, [B * T, 3 * H], p), ctx.upload(mask, [B * T], 'u32')];
      const got = await runOp(ctx, (rec) => attention(ctx, rec, tq, tm, { batch: B, seqLen: T, heads, window: win }));
      [tq, tm].forEach((t) => t.dispose());
      const ref = refAttention(qkv, mask, B, T, heads, H, undefined, win);
      return p === 'f32' ? compare(got, ref, 2e-6, 1e-5) : compare(got, ref, 2e-3, 2e-3);
    },
  });
}

// ModernBERT's RoPE pass on the fused QKV (in place, V untouched) and GeGLU on the fused Wi output.
for (const [B, T, heads, H, base] of [[2, 13, 4, 64, 10000], [1, 70, 2, 128, 160000]] as const) {
  cases.push({
    name: `ropeQkv B=${B} T=${T} heads=${heads} base=${base}`,
    async run(ctx, p) {
      const qkv = input(B * T * 3 * H, 300 + T, p, 1);
      const D = H / heads;
      const [tq, tt] = [ctx.uploadFloat(qkv, [B * T, 3 * H], p), ctx.uploadFloat(ropeTable(T, D, base), [T, D], 'f32')];
      const got = await runOp(ctx, (rec) => (ropeQkv(ctx, rec, tq, tt, { seqLen: T, heads }), tq));
      tt.dispose();
      const ref = refRopeQkv(qkv, T, heads, H, base);
      return p === 'f32' ? compare(got, ref, 2e-5, 1e-5) : compare(got, ref, 2e-3, 2e-3);
    },
  });
}
cases.push({
  name: 'geglu rows=7 cols=45',
  async run(ctx, p) {
    const [rows, cols] = [7, 45];
    const x = input(rows * 2 * cols, 310, p, 2);
    const tx = ctx.uploadFloat(x, [rows, 2 * cols], p);
    const got = await runOp(ctx, (rec) => geglu(ctx, rec, tx));
    tx.dispose();
    const ref = refGeglu(x, rows, cols);
    return p === 'f32' ? compare(got, ref, 1e-6, 1e-5) : compare(got, ref, 2e-3, 2e-3);
  },
});

cases.push({
  name: 'embedSum + mean/cls pooling with normalize',
  async run(ctx, p) {
    const [B, T, H, V, P, TV] = [3, 7, 40, 50, 9, 2];
    const r = rng(90);
    const ids = new Uint32Array(B * T).map(() => Math.floor(r() * V));
    const types = new Uint32Array(B * T).map((_, i) => (i % T > 3 ? 1 : 0));
    const mask = new Uint32Array(B * T).map((_, i) => (i % T < T - (Math.floor(i / T) * 2) ? 1 : 0));
    const [word, pos, typ] = [input(V * H, 91, p), input(P * H, 92, p), input(TV * H, 93, p)];
    // RoBERTa-style position ids (1 for padding, 2.. for real tokens) so the kernel cannot assume r % T.
    const positions = Uint32Array.from(mask, (m, i) => (m ? 2 + (i % T) : 1));
    const t = {
      ids: ctx.upload(ids, [B * T], 'u32'), types: ctx.upload(types, [B * T], 'u32'), mask: ctx.upload(mask, [B * T], 'u32'), positions: ctx.upload(positions, [B * T], 'u32'),
      word: ctx.uploadFloat(word, [V, H], p), pos: ctx.uploadFloat(pos, [P, H], p), type: ctx.uploadFloat(typ, [TV, H], p),
    };
    const rec = ctx.record();
    const e = embedSum(ctx, rec, t.ids, t.types, t.positions, { word: t.word, pos: t.pos, type: t.type }, T);
    const mean = pool(ctx, rec, e, t.mask, B, { mode: 'mean', normalize: true });
    const cls = pool(ctx, rec, e, t.mask, B, { mode: 'cls', normalize: false });
    await rec.submit();
    const [ge, gm, gc] = [await ctx.readFloat(e), await ctx.readFloat(mean), await ctx.readFloat(cls)];
    [e, mean, cls, ...Object.values(t)].forEach((x) => x.dispose());
    const re = refEmbedSum(ids, types, word, pos, typ, T, H, positions);
    const eRef = p === 'f16' ? roundF16(re) : re; // the f16 path stores the sum in f16 before pooling
    const rm = refPool(eRef, mask, B, H, 'mean', true), rc = refPool(eRef, mask, B, H, 'cls', false);
    const [atol, rtol] = p === 'f32' ? [1e-5, 1e-5] : [2e-3, 2e-3];
    const checks = [compare(ge, re, atol, rtol), compare(gm, rm, atol, rtol), compare(gc, rc, atol, rtol)];
    return checks.find((c) => !c.ok) ?? checks[0];
  },
});

// Pooling alone: H past the workgroup (64) and not a multiple of it, a row with every token masked
// (mean: zeros, and normalize keeps them zero), both modes, with and without normalize.
for (const [B, T, H] of [[1, 1, 1], [2, 9, 130], [4, 3, 64]] as const) {
  for (const [mode, normalize] of [['mean', false], ['mean', true], ['cls', true]] as const) {
    cases.push({
      name: `pool ${mode}${normalize ? ' normalized' : ''} B=${B} T=${T} H=${H}`,
      async run(ctx, p) {
        const x = input(B * T * H, 94 + H, p);
        const mask = new Uint32Array(B * T).map((_, i) => (i % T <= (Math.floor(i / T) * 2) % T ? 1 : 0));
        if (B > 2) mask.fill(0, T, 2 * T);
        const [tx, tm] = [ctx.uploadFloat(x, [B * T, H], p), ctx.upload(mask, [B * T], 'u32')];
        const got = await runOp(ctx, (rec) => pool(ctx, rec, tx, tm, B, { mode, normalize }));
        tx.dispose(); tm.dispose();
        // Means and norms in f32 against f64; f16 rounds the pooled value, then again when normalized.
        const ref = refPool(x, mask, B, H, mode, normalize);
        return p === 'f32' ? compare(got, ref, 1e-6, 1e-5) : compare(got, ref, 1e-3, 2e-3);
      },
    });
  }
}

// The byte copy (the benches' bandwidth reference): its reference is its input. 16-byte units,
// counts off the workgroup (256) and past one; f16 and f32 tensors alike (the kernel moves u32s).
for (const n of [4, 1028, 4 * 257 * 3]) {
  cases.push({
    name: `copy ${n} values`,
    async run(ctx, p) {
      const count = p === 'f16' ? 2 * n : n; // the same bytes either way
      const x = input(count, 95 + n, p);
      const t = ctx.uploadFloat(x, [count], p);
      const got = await runOp(ctx, (rec) => copy(ctx, rec, t));
      t.dispose();
      return compare(got, x, 0, 0);
    },
  });
}

cases.push(...DECODER_CASES);
cases.push(...BATCH_CASES);
cases.push(...GEMV_MULTI_CASES);

export const KERNEL_CASES: readonly KernelCase[] = cases;

/** Runs every case on one precision; used by the browser page and Deno. */
export async function runKernelCases(ctx: GpuContext, p: Precision, opts: { large?: boolean } = {}): Promise<{ name: string; result: Compare }[]> {
  const out: { name: string; result: Compare }[] = [];
  for (const c of cases) {
    if (c.large && !opts.large) continue;
    out.push({ name: c.name, result: await c.run(ctx, p) });
  }
  return out;
}

// A weight larger than maxStorageBufferBindingSize (128 MiB here): Qwen2-0.5B's 151936 x 896
// vocabulary in f16 is 272 MB, split across three bindings, used both as the embedding table and
// as the tied LM head; and its int8 form (136 MB, two bindings). Checked against the CPU.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuContext } from '../../src/gpu/context.ts';
import { embedding } from '../../src/ops/embedding.ts';
import { linear, rowChunks } from '../../src/ops/linear.ts';
import { prepareLinear } from '../../src/models/prepare-linear.ts';
import { quantizeWeight } from '../../src/quant/rtn.ts';
import { refQLinear } from '../../src/reference/qmatmul.ts';
import { compare, randn, rng, roundF16 } from '../kernels/check.ts';

const [V, D] = [151936, 896];
let ctx: GpuContext;
let table: Float32Array;

beforeAll(async () => {
  ctx = await GpuContext.create();
  // Cheap pseudo-random values: a full Box-Muller over 136M elements would dominate the test.
  const r = rng(5);
  table = new Float32Array(V * D);
  for (let i = 0; i < table.length; i++) table[i] = (r() - 0.5) * 0.2;
  table = roundF16(table);
}, 300_000);
afterAll(() => ctx?.dispose());

describe('tensors larger than one storage binding', () => {
  it('f16 151936x896: tied LM head (decode GEMV) and embedding gather over 3 bindings', async () => {
    expect(V * D * 2).toBeGreaterThan(ctx.caps.maxStorageBufferBindingSize);
    const lw = prepareLinear(ctx, table, V, D, 'f16', { label: 'lm_head' });
    const chunks = rowChunks(lw).chunks;
    expect(chunks.length).toBeGreaterThanOrEqual(3);
    for (const c of chunks) expect(c.w.byteLength).toBeLessThanOrEqual(ctx.caps.maxStorageBufferBindingSize);
    const x = roundF16(randn(D, 6));
    const ids = new Uint32Array([0, 1, V - 1, chunks[1].n0, chunks[1].n0 - 1, chunks[2].n0 + 7, V + 3]);
    const tx = ctx.uploadFloat(x, [1, D], 'f16');
    const tids = ctx.upload(ids, [ids.length], 'u32');
    const rec = ctx.record();
    const logits = linear(ctx, rec, tx, lw);
    const emb = embedding(ctx, rec, tids, rowChunks(lw));
    await rec.submit();
    const got = await ctx.readFloat(logits);
    const rows = await ctx.readFloat(emb);
    // CPU logits
    const ref = new Float32Array(V);
    for (let n = 0; n < V; n++) {
      let s = 0;
      for (let k = 0; k < D; k++) s += table[n * D + k] * x[k];
      ref[n] = s;
    }
    const c = compare(got, ref, 2e-3 * Math.sqrt(D) * 0.1, 2e-3);
    expect(c.mismatches, `max |d| ${c.maxAbs}`).toEqual([]);
    for (let t = 0; t < ids.length; t++) {
      const want = ids[t] < V ? table.subarray(ids[t] * D, (ids[t] + 1) * D) : new Float32Array(D);
      expect(compare(rows.subarray(t * D, (t + 1) * D), want, 0, 0).mismatches, `token ${t} id ${ids[t]}`).toEqual([]);
    }
    [tx, tids, logits, emb].forEach((t) => t.dispose());
    lw.dispose();
  }, 300_000);

  it('int8 151936x896 (q8 weight-only, 136 MB) over 2 bindings matches the CPU', async () => {
    const lw = prepareLinear(ctx, table, V, D, 'q8', { precision: 'f32', activations: 'float' });
    expect(lw.bytes).toBeGreaterThan(ctx.caps.maxStorageBufferBindingSize);
    const x = randn(D, 7);
    const tx = ctx.uploadFloat(x, [1, D], 'f32');
    const rec = ctx.record();
    const out = linear(ctx, rec, tx, lw);
    await rec.submit();
    const got = await ctx.readFloat(out);
    const ref = refQLinear(x, 1, D, quantizeWeight(table, V, D, { bits: 8, group: 128, symmetric: true }));
    const c = compare(got, ref, 1e-4, 1e-4);
    expect(c.mismatches, `max |d| ${c.maxAbs}`).toEqual([]);
    tx.dispose(); out.dispose(); lw.dispose();
  }, 300_000);
});

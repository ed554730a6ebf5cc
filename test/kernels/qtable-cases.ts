/**
 * Gathers from a quantized table (part of the quantized case list in qcases.ts):
 * embeddingQuantized (shaders/embedding_q.wgsl) and embedSum with a quantized word table
 * (embed_sum_q.wgsl), int8 and int4, symmetric or not, tables split into row chunks. The reference
 * is the CPU dequantizer's table (scales and zeros rounded to f16 on the f16 path, as stored) read
 * by refEmbedding / refEmbedSum, so the tolerance covers output rounding only.
 */
import type { Precision } from '../../src/gpu/shaders.ts';
import { embeddingQuantized } from '../../src/ops/embedding.ts';
import { embedSum } from '../../src/ops/encoder-io.ts';
import { uploadQuantized } from '../../src/ops/qweight.ts';
import type { QuantSpec, QuantizedWeight } from '../../src/quant/layout.ts';
import { dequantizeWeight, quantizeWeight } from '../../src/quant/rtn.ts';
import { refEmbedSum, refEmbedding } from '../../src/reference/ops.ts';
import { compare, input, randn, rng, roundF16, runOp, type KernelCase } from './check.ts';

const cases: KernelCase[] = [];

/** The table the GPU sees: scales and zeros as stored in the activation precision. */
function storedTable(q: QuantizedWeight, p: Precision): Float32Array {
  return dequantizeWeight(p === 'f16' ? { ...q, scales: roundF16(q.scales), zeros: q.zeros && roundF16(q.zeros) } : q);
}

// Row sizes off the group (72 with g32 / g64) and a whole channel; 64-row chunks of a 300-row table.
const SPECS: QuantSpec[] = [
  { bits: 8, group: 32, symmetric: true },
  { bits: 8, group: 'channel', symmetric: true },
  { bits: 8, group: 64, symmetric: false },
  { bits: 4, group: 32, symmetric: false },
  { bits: 4, group: 128, symmetric: true },
];
for (const spec of SPECS) {
  const tag = `int${spec.bits} g${spec.group} ${spec.symmetric ? 'sym' : 'asym'}`;
  cases.push({
    name: `embeddingQuantized ${tag} V=300 K=72 in row chunks`,
    async run(ctx, p) {
      const [V, K] = [300, 72];
      const q = quantizeWeight(randn(V * K, 140 + spec.bits, 0.7), V, K, spec);
      const w = uploadQuantized(ctx, q, p, { bindingLimit: 64 * ((q.Kp * spec.bits) / 8) });
      const ids = Uint32Array.from([0, 299, 7, 64, 65, 150, 7, 1000]); // 1000 is past the table: zeros
      const tids = ctx.upload(ids, [ids.length], 'u32');
      try {
        if (w.chunks.length < 3) throw new Error(`the table is in ${w.chunks.length} chunks; the case wants several`);
        const got = await runOp(ctx, (rec) => embeddingQuantized(ctx, rec, tids, w));
        // Dequantized values are exact in f32; the f16 path rounds each output once.
        return p === 'f32' ? compare(got, refEmbedding(ids, storedTable(q, p), V, K), 1e-6, 1e-6) : compare(got, refEmbedding(ids, storedTable(q, p), V, K), 1e-3, 2e-3);
      } finally {
        tids.dispose();
        w.dispose();
      }
    },
  });
  cases.push({
    name: `embedSum quantized word table ${tag} B=3 T=5 H=72 in row chunks`,
    async run(ctx, p) {
      const [B, T, H, V, P, TV] = [3, 5, 72, 300, 7, 2];
      const q = quantizeWeight(randn(V * H, 150 + spec.bits, 0.7), V, H, spec);
      const w = uploadQuantized(ctx, q, p, { bindingLimit: 64 * ((q.Kp * spec.bits) / 8) });
      const r = rng(151);
      const ids = new Uint32Array(B * T).map(() => Math.floor(r() * V));
      ids[2] = V - 1;
      const types = new Uint32Array(B * T).map((_, i) => i % 2);
      const [pos, typ] = [input(P * H, 152, p), input(TV * H, 153, p)];
      const positions = new Uint32Array(B * T).map((_, i) => i % T);
      const t = { ids: ctx.upload(ids, [B * T], 'u32'), types: ctx.upload(types, [B * T], 'u32'), positions: ctx.upload(positions, [B * T], 'u32'), pos: ctx.uploadFloat(pos, [P, H], p), type: ctx.uploadFloat(typ, [TV, H], p) };
      try {
        if (w.chunks.length < 3) throw new Error(`the table is in ${w.chunks.length} chunks; the case wants several`);
        const got = await runOp(ctx, (rec) => embedSum(ctx, rec, t.ids, t.types, t.positions, { word: w, pos: t.pos, type: t.type }, T));
        const ref = refEmbedSum(ids, types, storedTable(q, p), pos, typ, T, H);
        // A sum of three values in f32; the f16 path rounds the sum once.
        return p === 'f32' ? compare(got, ref, 1e-6, 1e-6) : compare(got, ref, 2e-3, 2e-3);
      } finally {
        Object.values(t).forEach((x) => x.dispose());
        w.dispose();
      }
    },
  });
}

export const QTABLE_CASES: readonly KernelCase[] = cases;

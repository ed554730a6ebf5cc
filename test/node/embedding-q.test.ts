// The quantized-table gather (shaders/embedding_q.wgsl) against the CPU dequantizer, for int8 and
// int4, symmetric and not, every group size, a table split over several bindings, and ids in and
// out of range; on the f32 and (where the device has it) f16 paths.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { GpuContext } from '../../src/gpu/context.ts';
import { embeddingQuantized } from '../../src/ops/embedding.ts';
import { uploadQuantized } from '../../src/ops/qweight.ts';
import { dequantizeWeight, quantizeWeight } from '../../src/quant/rtn.ts';
import type { QuantSpec } from '../../src/quant/layout.ts';
import { compare, randn, roundF16 } from '../kernels/check.ts';

let ctx: GpuContext;
beforeAll(async () => {
  ctx = await GpuContext.create();
});
afterAll(() => ctx?.dispose());

const SPECS: QuantSpec[] = [
  { bits: 8, group: 32, symmetric: true },
  { bits: 8, group: 'channel', symmetric: true },
  { bits: 8, group: 64, symmetric: false },
  { bits: 4, group: 32, symmetric: false },
  { bits: 4, group: 128, symmetric: true },
];

for (const precision of ['f32', 'f16'] as const) {
  for (const spec of SPECS) {
    it(`${precision} int${spec.bits} group ${spec.group} ${spec.symmetric ? 'sym' : 'asym'}: rows equal the dequantized table`, async () => {
      if (precision === 'f16' && !ctx.caps.f16) return;
      const V = 300;
      const K = 72; // not a multiple of the group: padded columns must not leak into the row
      const q = quantizeWeight(randn(V * K, 5, 0.7), V, K, spec);
      const deq = dequantizeWeight(q);
      // A small binding limit splits the table into several row chunks.
      const w = uploadQuantized(ctx, q, precision, { bindingLimit: 64 * ((q.Kp * spec.bits) / 8) });
      expect(w.chunks.length).toBeGreaterThan(2);
      const ids = Uint32Array.from([0, 299, 7, 64, 65, 150, 7, 1000]); // 1000 is past the table: zeros
      const idsT = ctx.write(ids, [ids.length], 'u32');
      const rec = ctx.record();
      const out = embeddingQuantized(ctx, rec, idsT, w);
      await rec.submit();
      const got = await ctx.readFloat(out);
      const want = new Float32Array(ids.length * K);
      ids.forEach((id, t) => {
        if (id < V) want.set(deq.subarray(id * K, (id + 1) * K), t * K);
      });
      // Scales (and zeros) are stored in the activation precision: round the reference's the same way.
      const ref = precision === 'f16' ? roundF16(dequantizeWeight({ ...q, scales: roundF16(q.scales), zeros: q.zeros && roundF16(q.zeros) })) : deq;
      ids.forEach((id, t) => {
        if (id < V) want.set(ref.subarray(id * K, (id + 1) * K), t * K);
      });
      const r = compare(got, want, precision === 'f16' ? 1e-3 : 1e-6, precision === 'f16' ? 2e-3 : 1e-6);
      expect(r.ok, r.mismatches.join('\n')).toBe(true);
      out.dispose();
      idsT.dispose();
      w.dispose();
    });
  }
}

// GPU kernels of the quantization toolkit against their CPU references: the calibration
// statistics (shaders/calib_stats.wgsl: per-channel max / sums, X^T X, the 2048-bin histogram,
// accumulated over calls, padding rows masked) and static activation quantization (w8a8-static:
// quantize_act*.wgsl with STATIC, one fixed scale, no per-token reduction) through linear().
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuContext } from '../../src/gpu/context.ts';
import type { Precision } from '../../src/gpu/shaders.ts';
import { accumulateInputStats, createInputStats, readInputStats } from '../../src/ops/calib-stats.ts';
import { linear, type LinearDType } from '../../src/ops/linear.ts';
import { prepareQuantizedLinear, withStaticActivations } from '../../src/models/prepare-linear.ts';
import type { QuantSpec } from '../../src/quant/layout.ts';
import { quantizeWeight } from '../../src/quant/rtn.ts';
import { refInputStats } from '../../src/reference/calib-stats.ts';
import { refW8A8 } from '../../src/reference/qmatmul.ts';
import { compare, randn, roundF16 } from '../kernels/check.ts';

let ctx: GpuContext;
let gpuFamily: GpuContext;
beforeAll(async () => {
  ctx = await GpuContext.create();
  gpuFamily = await GpuContext.create({ kernels: 'gpu' });
});
afterAll(() => {
  ctx?.dispose();
  gpuFamily?.dispose();
});

describe('calibration statistics on the GPU', () => {
  for (const p of ['f32', 'f16'] as Precision[]) {
    it(`${p}: two batches (the second with padding rows) add up to the CPU reference; K = 45, 37 + 21 rows`, async () => {
      if (p === 'f16' && !ctx.caps.f16) return;
      const K = 45;
      const [M1, M2] = [37, 21];
      let x1 = randn(M1 * K, 1, 2);
      let x2 = randn(M2 * K, 2, 3);
      if (p === 'f16') [x1, x2] = [roundF16(x1), roundF16(x2)];
      const mask = Uint32Array.from({ length: M2 }, (_, m) => (m % 4 === 3 ? 0 : 1));
      const range = 12;
      const s = createInputStats(ctx, K, { gram: true, histRange: range });
      const t1 = ctx.uploadFloat(x1, [M1, K], p);
      const t2 = ctx.uploadFloat(x2, [M2, K], p);
      const tm = ctx.upload(mask, [M2], 'u32');
      const rec = ctx.record();
      accumulateInputStats(ctx, rec, t1, s);
      accumulateInputStats(ctx, rec, t2, s, { mask: tm, maskRows: mask.reduce((a, b) => a + b, 0) });
      await rec.submit();
      const got = await readInputStats(ctx, s);
      [t1, t2, tm].forEach((t) => t.dispose());
      s.dispose();

      const all = new Float32Array((M1 + M2) * K);
      all.set(x1);
      all.set(x2, M1 * K);
      const ref = refInputStats(all, M1 + M2, K, { mask: [...new Array(M1).fill(1), ...mask], histWidth: range / 2048 });
      expect(got.rows).toBe(ref.rows);
      for (const [name, a, b, atol, rtol] of [
        ['absMax', got.absMax, ref.absMax, 0, 0],
        ['sumAbs', got.sumAbs, ref.sumAbs, 1e-4, 1e-5],
        ['sum', got.sum, ref.sum, 1e-4, 1e-5],
        ['gram', got.gram!, ref.gram!, 1e-3, 1e-5],
      ] as const) {
        const c = compare(a, b, atol, rtol);
        expect(c.mismatches, `${name}: max |d| ${c.maxAbs}`).toEqual([]);
      }
      // Bins can differ only for a value on a bin edge (f32 multiply vs f64 divide).
      let moved = 0;
      for (let i = 0; i < 2048; i++) moved += Math.abs(got.hist![i] - ref.hist![i]);
      expect(got.hist!.reduce((a, b) => a + b, 0)).toBe(ref.rows * K);
      expect(moved).toBeLessThanOrEqual(4);
    });
  }
});

describe('static activation quantization (w8a8-static) through linear()', () => {
  const cases: [LinearDType, QuantSpec][] = [
    ['w8a8', { bits: 8, group: 'channel', symmetric: true }],
    ['w4a8', { bits: 4, group: 32, symmetric: false }],
  ];
  for (const [label, which] of [['subgroup kernels', () => ctx], ['gpu kernels', () => gpuFamily]] as const) {
    for (const [dtype, spec] of cases) {
      for (const M of [3, 37]) {
        for (const p of ['f32', 'f16'] as Precision[]) {
          it(`${label}, ${p}, ${dtype}, M = ${M}: one fixed scale (some values clamp) equals the reference`, async () => {
            const c = which();
            if (p === 'f16' && !c.caps.f16) return;
            const [N, K] = [29, 70];
            let x = randn(M * K, 5 + M, 1);
            let bias = randn(N, 6, 0.1);
            if (p === 'f16') [x, bias] = [roundF16(x), roundF16(bias)];
            const amax = x.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
            const scale = (0.6 * amax) / 127; // the largest values clamp at +-127
            const q = quantizeWeight(randn(N * K, 7, 0.2), N, K, spec);
            const w = withStaticActivations(c, prepareQuantizedLinear(c, q, dtype, { precision: p }), scale);
            const [tx, tb] = [c.uploadFloat(x, [M, K], p), c.uploadFloat(bias, [N], p)];
            const rec = c.record();
            const out = linear(c, rec, tx, w, { bias: tb });
            await rec.submit();
            const got = await c.readFloat(out);
            [out, tx, tb].forEach((t) => t.dispose());
            w.dispose();
            const qr = p === 'f16' ? { ...q, scales: roundF16(q.scales), zeros: q.zeros && roundF16(q.zeros) } : q;
            const ref = refW8A8(x, M, K, qr, bias, undefined, scale);
            const s = Math.sqrt(K);
            const r = p === 'f32' ? compare(got, ref, 3e-5 * s, 1e-5) : compare(got, ref, 2e-3 * s, 2e-3);
            expect(r.mismatches, `max |d| ${r.maxAbs}`).toEqual([]);
          });
        }
      }
    }
  }

  it('refuses a float or weight-only Linear and a bad scale', () => {
    const q = quantizeWeight(randn(64, 1), 2, 32, { bits: 8, group: 'channel', symmetric: true });
    const w = prepareQuantizedLinear(ctx, q, 'q8', { precision: 'f32', activations: 'float' });
    expect(() => withStaticActivations(ctx, w, 0.1)).toThrow(/needs a w8a8 or w4a8 weight/);
    const w2 = prepareQuantizedLinear(ctx, q, 'w8a8', { precision: 'f32' });
    expect(() => withStaticActivations(ctx, w2, 0)).toThrow(/positive number/);
    w.dispose();
    w2.dispose();
  });
});

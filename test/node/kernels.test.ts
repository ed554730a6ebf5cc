import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuContext } from '../../src/gpu/context.ts';
import { gpuGemmSubgroups, gpuGemvConfig } from '../../src/ops/matmul.ts';
import { KERNEL_CASES } from '../kernels/cases.ts';

let ctx: GpuContext;
// The same adapter with the workgroup-memory ('gpu') GEMMs, so both kernel families are tested
// here: lavapipe picks the subgroup ('cpu') family by default.
let gpuKernels: GpuContext;
// Dawn's robustness (bounds clamping of every buffer access) is off by default in Node, as
// onnxruntime sets it up: the kernels guard their own bounds. Every case runs again with it on.
let robust: GpuContext;
beforeAll(async () => {
  ctx = await GpuContext.create();
  gpuKernels = await GpuContext.create({ kernels: 'gpu' });
  robust = await GpuContext.create({ robustness: true });
});
afterAll(() => {
  ctx?.dispose();
  gpuKernels?.dispose();
  robust?.dispose();
});

describe('device', () => {
  it('has shader-f16 on lavapipe so both paths are tested here', () => {
    expect(ctx.caps.f16).toBe(true);
    expect(ctx.caps.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 * 1024 * 1024);
  });
  it('picks the subgroup GEMMs on lavapipe (fixed subgroup size 8) unless told otherwise', () => {
    expect(ctx.caps.software).toBe(true);
    expect(ctx.caps.subgroupSize).toBe(8);
    expect(ctx.caps.kernels).toBe('cpu');
    expect(gpuKernels.caps.kernels).toBe('gpu');
  });
  it("sets Dawn up as onnxruntime does (robustness off, no lazy clears, exact timestamps); robustness: true keeps Dawn's clamps", () => {
    expect(ctx.caps.robustness).toBe(false);
    expect(ctx.caps.dawnToggles?.enabled).toContain('disable_robustness');
    expect(ctx.caps.dawnToggles?.disabled).toEqual(expect.arrayContaining(['lazy_clear_resource_on_first_use', 'timestamp_quantization']));
    expect(robust.caps.robustness).toBe(true);
    expect(robust.caps.dawnToggles?.enabled).not.toContain('disable_robustness');
  });
  it('rejects an unknown kernel family or robustness value before making a device', async () => {
    await expect(GpuContext.create({ robustness: 'yes' as never })).rejects.toThrow(/robustness must be true or false, got "yes"/);
    await expect(GpuContext.create({ kernels: 'fast' as never })).rejects.toThrow(/kernels must be 'gpu' or 'cpu', got "fast"/);
    await expect(GpuContext.create({ gemv: { reduce: 'tree' as never } })).rejects.toThrow(/gemv.reduce must be 'auto', 'workgroup' or 'off', got "tree"/);
    await expect(GpuContext.create({ gemv: { wg: 96 } })).rejects.toThrow(/gemv.wg must be a power of two from 32 to 1024, got 96/);
    await expect(GpuContext.create({ gemv: { nr: 5 } })).rejects.toThrow(/gemv.nr must be an integer from 1 to 4, got 5/);
    await expect(GpuContext.create({ gemm: { subgroups: 'on' as never } })).rejects.toThrow(/gemm.subgroups must be 'auto' or 'off', got "on"/);
  });
  it('takes its kernel choices from the device options: subgroup GEMVs and GEMMs by default on lavapipe', () => {
    expect(ctx.caps.gemv).toEqual({ reduce: 'auto' });
    expect(ctx.caps.gemm).toEqual({ subgroups: 'auto' });
    expect(gpuGemvConfig(ctx)).toEqual({ sg: true, TPR: 8, WG: 128, NR: 4 });
    expect(gpuGemmSubgroups(gpuKernels)).toBe(true);
    const withCaps = (c: Partial<GpuContext['caps']>) => ({ caps: { ...ctx.caps, ...c } }) as GpuContext;
    expect(gpuGemvConfig(withCaps({ gemv: { reduce: 'off' } }))).toBeNull();
    expect(gpuGemvConfig(withCaps({ gemv: { reduce: 'workgroup', wg: 64, nr: 2 } }))).toEqual({ sg: false, TPR: 32, WG: 64, NR: 2 });
    expect(gpuGemvConfig(withCaps({ gemv: { reduce: 'auto', wg: 256 } }))).toEqual({ sg: true, TPR: 8, WG: 256, NR: 4 });
    expect(gpuGemmSubgroups(withCaps({ gemm: { subgroups: 'off' } }))).toBe(false);
  });
});

for (const p of ['f32', 'f16'] as const) {
  describe(`kernels ${p}`, () => {
    for (const c of KERNEL_CASES) {
      it(c.name, async () => {
        const r = await c.run(ctx, p);
        expect(r.mismatches, `max |d| = ${r.maxAbs}`).toEqual([]);
        expect(r.ok).toBe(true);
      });
    }
    // The tiled family too: matmuls, and ModernBERT's local window in attention.wgsl (beside
    // attention_sg.wgsl; head dim 32 only: lavapipe takes 10-40 s to compile each of its head dims).
    for (const c of KERNEL_CASES.filter((k) => k.name.startsWith('matmul') || k.name.startsWith('attention + local window'))) {
      it(`${c.name} (gpu kernels)`, async () => {
        const r = await c.run(gpuKernels, p);
        expect(r.mismatches, `max |d| = ${r.maxAbs}`).toEqual([]);
        expect(r.ok).toBe(true);
      });
    }
    for (const c of KERNEL_CASES) {
      it(`${c.name} (robustness on)`, async () => {
        const r = await c.run(robust, p);
        expect(r.mismatches, `max |d| = ${r.maxAbs}`).toEqual([]);
        expect(r.ok).toBe(true);
      });
    }
  });
}

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuContext } from '../../src/gpu/context.ts';
import { KERNEL_CASES } from '../kernels/cases.ts';

let ctx: GpuContext;
// The same adapter with the workgroup-memory ('gpu') GEMMs, so both kernel families are tested
// here: lavapipe picks the subgroup ('cpu') family by default.
let gpuKernels: GpuContext;
beforeAll(async () => {
  ctx = await GpuContext.create();
  gpuKernels = await GpuContext.create({ kernels: 'gpu' });
});
afterAll(() => {
  ctx?.dispose();
  gpuKernels?.dispose();
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
  it('rejects an unknown kernel family before making a device', async () => {
    await expect(GpuContext.create({ kernels: 'fast' as never })).rejects.toThrow(/kernels must be 'gpu' or 'cpu', got "fast"/);
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
    for (const c of KERNEL_CASES.filter((k) => k.name.startsWith('matmul'))) {
      it(`${c.name} (gpu kernels)`, async () => {
        const r = await c.run(gpuKernels, p);
        expect(r.mismatches, `max |d| = ${r.maxAbs}`).toEqual([]);
        expect(r.ok).toBe(true);
      });
    }
  });
}

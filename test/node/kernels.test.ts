import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuContext } from '../../src/gpu/context.ts';
import { KERNEL_CASES } from '../kernels/cases.ts';

let ctx: GpuContext;
beforeAll(async () => {
  ctx = await GpuContext.create();
});
afterAll(() => ctx?.dispose());

describe('device', () => {
  it('has shader-f16 on lavapipe so both paths are tested here', () => {
    expect(ctx.caps.f16).toBe(true);
    expect(ctx.caps.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 * 1024 * 1024);
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
  });
}

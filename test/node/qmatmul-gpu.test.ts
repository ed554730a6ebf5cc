import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuContext } from '../../src/gpu/context.ts';
import { gpuGemvConfig } from '../../src/ops/matmul.ts';
import { KERNEL_CASES as CASES } from '../kernels/cases.ts';
import { QUANT_CASES } from '../kernels/qcases.ts';

let ctx: GpuContext;
beforeAll(async () => {
  ctx = await GpuContext.create();
});
afterAll(() => ctx?.dispose());

for (const p of ['f32', 'f16'] as const) {
  describe(`quantized matmul ${p}`, () => {
    for (const c of QUANT_CASES) {
      it(c.name, async () => {
        const r = await c.run(ctx, p);
        expect(r.mismatches, `max |d| = ${r.maxAbs}`).toEqual([]);
      });
    }
  });
}

describe('quantized matmul without dot4I8Packed (emulated int8 dot products)', () => {
  let emu: GpuContext;
  beforeAll(async () => {
    emu = await GpuContext.create({ dot4I8: false });
  });
  afterAll(() => emu?.dispose());
  for (const c of QUANT_CASES.filter((c) => !c.name.includes('act=float'))) {
    it(`f32 ${c.name}`, async () => {
      expect(emu.caps.dot4I8).toBe(false);
      const r = await c.run(emu, 'f32');
      expect(r.mismatches, `max |d| = ${r.maxAbs}`).toEqual([]);
    });
  }
});

// Robustness off is the default (the kernels guard their own bounds); every case again with Dawn's clamps on.
describe('quantized matmul with robustness on', () => {
  let robust: GpuContext;
  beforeAll(async () => {
    robust = await GpuContext.create({ robustness: true });
  });
  afterAll(() => robust?.dispose());
  for (const p of ['f32', 'f16'] as const) {
    for (const c of QUANT_CASES) {
      it(`${p} ${c.name}`, async () => {
        expect(robust.caps.robustness).toBe(true);
        const r = await c.run(robust, p);
        expect(r.mismatches, `max |d| = ${r.maxAbs}`).toEqual([]);
      });
    }
  }
});

// lavapipe runs the subgroup GEMMs (qgemm_sg.wgsl) by default; these run every case again with
// the workgroup-memory GEMMs (qgemm.wgsl) that GPUs get.
describe('quantized matmul with the gpu kernel family', () => {
  let g: GpuContext;
  beforeAll(async () => {
    g = await GpuContext.create({ kernels: 'gpu' });
  });
  afterAll(() => g?.dispose());
  for (const p of ['f32', 'f16'] as const) {
    for (const c of QUANT_CASES) {
      it(`${p} ${c.name}`, async () => {
        expect(g.caps.kernels).toBe('gpu');
        const r = await c.run(g, p);
        expect(r.mismatches, `max |d| = ${r.maxAbs}`).toEqual([]);
      });
    }
  }
});

// The gpu family's decode GEMVs (gemv4*.wgsl, qgemv4*.wgsl) sum rows with subgroupAdd on this
// adapter; these run the GEMV-sized cases again with their workgroup-memory tree (TPR 32), the
// reduction devices without fixed-size subgroups get (a device made with gemv.reduce
// 'workgroup'), and the multi-row GEMV's cases (gemv4m / qgemv4m) likewise. Same references and
// tolerances.
describe('gpu-family GEMVs with the workgroup-memory reduction', () => {
  let g: GpuContext;
  beforeAll(async () => {
    g = await GpuContext.create({ kernels: 'gpu', gemv: { reduce: 'workgroup' } });
  });
  afterAll(() => g?.dispose());
  const gemvSized = (name: string) => /(^|\s)[1-4]x\d+x\d+|M=[1-4]\b/.test(name);
  for (const p of ['f32', 'f16'] as const) {
    const multiRow = CASES.filter((c) => c.name.startsWith('multi-row'));
    for (const c of [...[...QUANT_CASES, ...CASES.filter((c) => c.name.startsWith('matmul'))].filter((c) => gemvSized(c.name)), ...multiRow]) {
      it(`${p} ${c.name}`, async () => {
        expect(g.caps.gemv.reduce).toBe('workgroup');
        expect(gpuGemvConfig(g)).toMatchObject({ sg: false, TPR: 32 });
        const r = await c.run(g, p);
        expect(r.mismatches, `max |d| = ${r.maxAbs}`).toEqual([]);
      });
    }
  }
});

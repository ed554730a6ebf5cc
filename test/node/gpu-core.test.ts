// The GPU harness itself: caches, pooling, timing, bad calls, device loss and dispose.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuContext } from '../../src/gpu/context.ts';
import { createDevice } from '../../src/gpu/device.ts';
import { bucketSize } from '../../src/gpu/pool.ts';
import { WGSL } from '../../src/gpu/shaders.generated.ts';
import { grid } from '../../src/gpu/recorder.ts';
import { GPUDeviceError, ShapeError, WebGPUUnavailableError, WebqError } from '../../src/errors.ts';
import { add } from '../../src/ops/elementwise.ts';
import { layerNorm } from '../../src/ops/norm.ts';
import { matmul } from '../../src/ops/matmul.ts';
import { gelu } from '../../src/ops/activation.ts';
import { compare, randn } from '../kernels/check.ts';

let ctx: GpuContext;
beforeAll(async () => {
  ctx = await GpuContext.create();
});
afterAll(() => ctx?.dispose());

describe('capabilities', () => {
  it('records features and requests the adapter limits, not the defaults', () => {
    expect(ctx.caps.runtime).toBe('node');
    expect(ctx.caps.software).toBe(true);
    expect(ctx.caps.dot4I8).toBe(true);
    expect(ctx.caps.timestamps).toBe(true);
    // spec default is 128 MiB storage binding, 256 MiB buffer, 16 KiB workgroup storage
    expect(ctx.caps.maxBufferSize).toBeGreaterThan(256 * 1024 * 1024);
    expect(ctx.caps.maxComputeWorkgroupStorageSize).toBeGreaterThan(16384);
  });

  it('f16:false gives a device without shader-f16 that refuses f16 tensors', async () => {
    const c = await GpuContext.create({ f16: false });
    try {
      expect(c.caps.f16).toBe(false);
      expect(() => c.uploadFloat(new Float32Array(4), [4], 'f16')).toThrow(/shader-f16/);
    } finally {
      c.dispose();
    }
  });

  it('a GPU with no adapter is a typed error that says what to install', async () => {
    const fake = { requestAdapter: async () => null, wgslLanguageFeatures: new Set() } as unknown as GPU;
    const err = await createDevice({ gpu: fake }).catch((e) => e);
    expect(err).toBeInstanceOf(WebGPUUnavailableError);
    expect(err.code).toBe('NO_ADAPTER');
    expect(err.message).toMatch(/mesa-vulkan-drivers/);
  });
});

describe('caches and pool', () => {
  it('a repeated forward creates no pipelines, uniform buffers, bind groups or buffers', async () => {
    const x = ctx.uploadFloat(randn(6 * 40, 1), [6, 40], 'f32');
    const w = ctx.uploadFloat(randn(24 * 40, 2), [24, 40], 'f32');
    const g = ctx.uploadFloat(randn(24, 3), [24], 'f32');
    const forward = async () => {
      const rec = ctx.record();
      const h = matmul(ctx, rec, x, w);
      const a = gelu(ctx, rec, h);
      h.dispose();
      const o = layerNorm(ctx, rec, a, g, g, 1e-5);
      a.dispose();
      await rec.submit();
      const out = await ctx.readFloat(o);
      o.dispose();
      return out;
    };
    const first = await forward();
    const before = ctx.stats();
    const second = await forward();
    expect(ctx.stats()).toEqual(before);
    expect(compare(second, first, 0, 0).ok).toBe(true);
    x.dispose(); w.dispose(); g.dispose();
  });

  it('pipelines are cached per variant with readable labels', () => {
    const k1 = ctx.pipelines.get({ shader: 'matmul', variant: { precision: 'f16' }, constants: { TRANS_B: true, HAS_BIAS: false } });
    const k2 = ctx.pipelines.get({ shader: 'matmul', variant: { precision: 'f16' }, constants: { HAS_BIAS: false, TRANS_B: true } });
    expect(k1).toBe(k2);
    expect(k1.label).toBe('matmul.main[f16]{HAS_BIAS=false,TRANS_B=true}');
    expect([...k1.bindings.keys()].sort()).toEqual(['a', 'b', 'bias', 'c', 'p', 'res']);
    expect(k1.uniform?.fields.map((f) => f.name)).toEqual(['M', 'N', 'K', 'strideA', 'strideB', 'strideC', 'ldc', 'nOff']);
  });

  it('every shader file compiles without errors on both float paths', async () => {
    // A *_lib file that calls functions its importers define (attn_dec_lib: the cache loads) only
    // compiles inside them; every importer is compiled here.
    const imported = new Set(Object.values(WGSL).flatMap((src) => [...src.matchAll(/^\/\/! import (\w+)/gm)].map((m) => m[1])));
    for (const shader of Object.keys(WGSL)) {
      if (shader.endsWith('_lib') && imported.has(shader)) continue;
      // The *_sg kernels (CPU-emulated adapters) use subgroup builtins; KV-cache kernels name the cache's type.
      const subgroups = shader.endsWith('_sg');
      for (const precision of ['f32', 'f16'] as const) {
        const kv = /\bKV\b/.test(WGSL[shader]) ? precision : undefined;
        await ctx.pipelines.validate({ shader, variant: { precision, idot: 'native', subgroups, kv } });
        await ctx.pipelines.validate({ shader, variant: { precision, idot: 'emulated', subgroups, kv } });
      }
    }
    expect(Object.keys(WGSL).length).toBeGreaterThanOrEqual(15);
  });

  it('buckets buffer sizes and reuses released buffers', () => {
    expect(bucketSize(1)).toBe(256);
    expect(bucketSize(1024)).toBe(1024);
    expect(bucketSize(1025)).toBe(1280);
    expect(bucketSize(5000)).toBe(5120);
    const t = ctx.empty([1000], 'f32');
    const buf = t.buffer;
    t.dispose();
    const u = ctx.empty([990], 'f32');
    expect(u.buffer).toBe(buf);
    u.dispose();
  });

  it('folds large workgroup counts into two dimensions', () => {
    expect(grid(10)).toEqual([10, 1]);
    const [x, y] = grid(200_000);
    expect(x).toBeLessThanOrEqual(65535);
    expect(x * y).toBeGreaterThanOrEqual(200_000);
  });
});

describe('timing', () => {
  it('times each kernel with timestamp queries, labelled by kernel', async () => {
    const x = ctx.uploadFloat(randn(4096, 4), [4096], 'f32');
    const rec = ctx.record({ timing: true });
    const y = gelu(ctx, rec, x);
    const z = add(ctx, rec, y, x);
    const timings = await rec.submit();
    expect(timings.map((t) => t.label)).toEqual(['activation.gelu[f32]{WG=256}', 'elementwise.add[f32]{WG=256}']);
    for (const t of timings) expect(t.ms).toBeGreaterThanOrEqual(0);
    x.dispose(); y.dispose(); z.dispose();
  });

  it('switches off quietly without timestamp-query', async () => {
    const c = await GpuContext.create({ timestamps: false });
    try {
      expect(c.caps.timestamps).toBe(false);
      const x = c.uploadFloat(randn(64, 5), [64], 'f32');
      const rec = c.record({ timing: true });
      const y = gelu(c, rec, x);
      expect(await rec.submit()).toEqual([]);
      expect((await c.readFloat(y)).length).toBe(64);
    } finally {
      c.dispose();
    }
  });
});

describe('bad calls', () => {
  it('shape and dtype mismatches are ShapeErrors naming the op and operand', () => {
    const a = ctx.uploadFloat(new Float32Array(12), [3, 4], 'f32');
    const b = ctx.uploadFloat(new Float32Array(10), [2, 5], 'f32');
    const h = ctx.uploadFloat(new Float32Array(12), [3, 4], 'f16');
    const rec = ctx.record();
    expect(() => matmul(ctx, rec, a, b)).toThrow(ShapeError);
    expect(() => matmul(ctx, rec, a, b)).toThrow(/matmul: A \[3, 4\] has K=4 but B \[2, 5\]/);
    expect(() => add(ctx, rec, a, h)).toThrow(/add: b is f16 but other operands are f32/);
    expect(() => add(ctx, rec, a, b)).toThrow(/must match a/);
    expect(() => layerNorm(ctx, rec, a, b, b, 1e-5)).toThrow(/gamma must have 4 elements/);
    expect(() => ctx.upload(new Float32Array(3), [2, 2], 'f32')).toThrow(/needs 4 elements, got 3/);
    expect(() => ctx.pipelines.get({ shader: 'nope', variant: { precision: 'f32' } })).toThrow(/no shader 'nope.wgsl'/);
    expect(() => rec.dispatch({ shader: 'activation', entry: 'gelu', variant: { precision: 'f32' } }, { x: a }, [1], { n: 12 })).toThrow(/binding 'out' was not given/);
    expect(() => rec.dispatch({ shader: 'activation', entry: 'gelu', variant: { precision: 'f32' } }, { x: a, out: a }, [1], { n: 1, m: 2 })).toThrow(/no field 'm'/);
    a.dispose(); b.dispose(); h.dispose();
  });
});

describe('device failure', () => {
  it('an uncaptured GPU error becomes a GPUDeviceError instead of silent garbage', async () => {
    const c = await GpuContext.create();
    // MAP_READ may only be combined with COPY_DST: a validation error nobody captures.
    c.dev.gpu.createBuffer({ size: 16, usage: 0x0001 | 0x0080 });
    let err: unknown = null;
    for (let i = 0; i < 50 && !err; i++) {
      try {
        await c.dev.sync();
      } catch (e) {
        err = e;
      }
    }
    expect(err).toBeInstanceOf(GPUDeviceError);
    expect((err as WebqError).code).toBe('GPU_ERROR');
    expect(() => c.record()).toThrow(GPUDeviceError);
    c.dispose();
  });

  it('device loss rejects pending and later work instead of hanging', async () => {
    const c = await GpuContext.create();
    const x = c.uploadFloat(randn(16, 6), [16], 'f32');
    c.dev.gpu.destroy(); // as if the driver reset: webq did not dispose it
    const err = await c.readFloat(x).catch((e) => e);
    expect(err).toBeInstanceOf(GPUDeviceError);
    expect(err.code).toBe('DEVICE_LOST');
    expect(() => c.record()).toThrow(/device lost/);
    c.dispose();
  });

  it('dispose frees every buffer and later use is a clear error', async () => {
    const c = await GpuContext.create();
    const x = c.uploadFloat(randn(256, 7), [256], 'f32');
    const rec = c.record();
    gelu(c, rec, x).dispose();
    await rec.submit();
    expect(c.stats().ownedBuffers).toBe(1);
    expect(c.stats().pooledBytes).toBeGreaterThan(0);
    c.dispose();
    expect(c.stats().ownedBuffers).toBe(0);
    expect(c.stats().pooledBytes).toBe(0);
    expect(() => c.record()).toThrow(/disposed/);
    c.dispose(); // idempotent
  });
});

/** Helpers shared by kernel tests in every runtime: seeded random data and tolerance checks. */
import { GpuContext } from '../../src/gpu/context.ts';
import type { DeviceOptions } from '../../src/gpu/device.ts';
import type { Recorder } from '../../src/gpu/recorder.ts';
import type { Precision } from '../../src/gpu/shaders.ts';
import type { Tensor } from '../../src/gpu/tensor.ts';
import { f16ArrayToF32, f32ArrayToF16 } from '../../src/io/safetensors/half.ts';

/** mulberry32: small, seeded, identical in every runtime. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randn(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(r(), 1e-12);
    out[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r()) * scale;
  }
  return out;
}

/** Values as the f16 path stores them, so the reference sees the same inputs. */
export function roundF16(x: Float32Array): Float32Array {
  return f16ArrayToF32(f32ArrayToF16(x));
}

export interface Compare {
  ok: boolean;
  maxAbs: number;
  mismatches: string[];
}

/** Passes when every |got - ref| <= atol + rtol * |ref| (NaN never passes); lists the first 5 misses. */
export function compare(got: ArrayLike<number>, ref: ArrayLike<number>, atol: number, rtol: number): Compare {
  const mismatches: string[] = [];
  let maxAbs = 0;
  if (got.length !== ref.length) return { ok: false, maxAbs: Infinity, mismatches: [`length ${got.length} != ${ref.length}`] };
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(got[i] - ref[i]);
    if (!(d <= maxAbs)) maxAbs = Number.isNaN(d) ? Infinity : Math.max(maxAbs, d);
    if (!(d <= atol + rtol * Math.abs(ref[i]))) {
      if (mismatches.length < 5) mismatches.push(`[${i}] got ${got[i]} want ${ref[i]}`);
      else if (mismatches.length === 5) mismatches.push('...');
    }
  }
  return { ok: mismatches.length === 0, maxAbs, mismatches };
}

/**
 * Runs `fn` on a second device made like ctx's with `options` changed (kernel choices such as
 * DeviceOptions.gemm are fixed per device), then frees it.
 */
export async function withDevice<R>(ctx: GpuContext, options: DeviceOptions, fn: (c: GpuContext) => Promise<R>): Promise<R> {
  const c = await GpuContext.create({ ...ctx.dev.options, ...options });
  try {
    return await fn(c);
  } finally {
    c.dispose();
  }
}

export interface KernelCase {
  name: string;
  /** Too big for the browser/Deno smoke runs (exercises 2-D grid folding). */
  large?: boolean;
  run(ctx: GpuContext, p: Precision): Promise<Compare>;
}

/** Seeded N(0, scale^2) values, rounded to f16 for the f16 path so both sides see the same data. */
export function input(n: number, seed: number, p: Precision, scale = 1): Float32Array {
  const x = randn(n, seed, scale);
  return p === 'f16' ? roundF16(x) : x;
}

/** Records one op, submits, reads its output back and frees it. */
export async function runOp(ctx: GpuContext, build: (rec: Recorder) => Tensor): Promise<Float32Array> {
  const rec = ctx.record();
  const out = build(rec);
  await rec.submit();
  const got = await ctx.readFloat(out);
  out.dispose();
  return got;
}

/** Several comparisons as one: ok when all are, mismatches prefixed with their part's name. */
export function allOf(parts: Record<string, Compare>): Compare {
  const mismatches: string[] = [];
  for (const [name, c] of Object.entries(parts)) mismatches.push(...c.mismatches.map((m) => `${name} ${m}`));
  const all = Object.values(parts);
  return { ok: all.every((c) => c.ok), maxAbs: Math.max(...all.map((c) => c.maxAbs)), mismatches };
}

/** Helpers shared by kernel tests in every runtime: seeded random data and tolerance checks. */
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

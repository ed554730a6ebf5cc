// Shared helpers for the quant-*.test.ts files: a seeded PRNG so every run sees the same data.

/** mulberry32: tiny deterministic PRNG returning floats in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Roughly normal values (sum of uniforms) times `scale`, with some heavier outliers. */
export function randomWeights(len: number, seed: number, scale = 0.05): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(len);
  for (let i = 0; i < len; i++) {
    const v = (r() + r() + r() + r() - 2) * scale;
    out[i] = r() < 0.01 ? v * 20 : v;
  }
  return out;
}

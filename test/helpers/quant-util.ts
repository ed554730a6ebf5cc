// Shared helpers for the quant-*.test.ts files: a seeded PRNG so every run sees the same data.

import { rng } from '../kernels/check.ts';

export { rng };

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

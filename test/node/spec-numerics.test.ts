// Speculative decoding is exact only if a token's logits agree whether the token ran alone (decode,
// M = 1 kernels) or among others (prefill, M > 1 kernels). This measures, per dtype and KV type, the
// logits at every position of a T-token prefill against T one-token steps over the same cache, on
// a tiny random Llama and on the trained fixture, and asserts the argmax agrees everywhere.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LlmModel } from '../../src/api/llm.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { writeTinyLlama, type TinyLlama } from '../../fixtures/tiny-llama.ts';
import { TRAINED_LLAMA } from '../helpers/trained-fixture.ts';

let dir: string;
let ctx: GpuContext;
let tiny: TinyLlama;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'webq-spec-num-'));
  ctx = await GpuContext.create();
  tiny = await writeTinyLlama(join(dir, 'm'), { tokenizer: 'llama2', maxPositions: 128, seed: 7 });
});

afterAll(async () => {
  ctx?.dispose();
  await rm(dir, { recursive: true, force: true });
});

const argmax = (a: Float32Array) => {
  let b = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[b]) b = i;
  return b;
};

/** Prefill rows vs one-token steps: max |diff| relative to the logits' range, and argmax mismatches. */
async function compare(model: LlmModel, ids: number[]): Promise<{ maxRel: number; mismatches: number; minMargin: number }> {
  const V = model.config.vocabSize;
  const all = await model.logitsAll(ids); // [T, V] from an empty cache: prefill kernels
  let maxRel = 0, mismatches = 0, minMargin = Infinity;
  for (let t = 1; t <= ids.length; t++) {
    const { logits: one } = await model.logits(ids.slice(0, t)); // the cached prefix + one token: decode kernels
    const row = all.subarray((t - 1) * V, t * V);
    let lo = Infinity, hi = -Infinity, d = 0;
    for (let i = 0; i < V; i++) {
      lo = Math.min(lo, row[i]);
      hi = Math.max(hi, row[i]);
      d = Math.max(d, Math.abs(row[i] - one[i]));
    }
    maxRel = Math.max(maxRel, d / (hi - lo));
    if (argmax(row) !== argmax(one)) mismatches++;
    const sorted = [...row].sort((a, b) => b - a);
    minMargin = Math.min(minMargin, (sorted[0] - sorted[1]) / (hi - lo));
  }
  return { maxRel, mismatches, minMargin };
}

const CASES = [
  { dtype: 'f32', kv: 'f32' },
  { dtype: 'f32', kv: 'f16' },
  { dtype: 'q8', kv: 'f16' },
  { dtype: 'q4', kv: 'f16' },
  { dtype: 'q4', kv: 'int8' },
] as const;

describe('prefill and decode logits agree', () => {
  for (const c of CASES) {
    it(`tiny llama ${c.dtype} weights, ${c.kv} KV`, async () => {
      const model = await LlmModel.load(tiny.dir, { ...c, context: ctx });
      try {
        const ids = model.encode('the cat sat on the mat and the dog sat on the cat');
        const r = await compare(model, ids);
        console.log(`tiny ${c.dtype}/${c.kv} (f16 ${ctx.caps.f16}): T=${ids.length} max |prefill - decode| / range ${r.maxRel.toExponential(2)}, argmax mismatches ${r.mismatches}, smallest top-2 margin / range ${r.minMargin.toExponential(2)}`);
        // f32 paths differ only by summation order; f16 activations round differently per kernel.
        expect(r.maxRel).toBeLessThan(c.dtype === 'f32' && c.kv === 'f32' ? 1e-4 : 2e-2);
        expect(r.mismatches).toBe(0);
      } finally {
        model.dispose();
      }
    });
  }
  for (const dtype of ['f32', 'q8', 'q4'] as const) {
    it(`trained llama ${dtype} weights`, async () => {
      const model = await LlmModel.load(TRAINED_LLAMA, { dtype, context: ctx, contextLength: 128 });
      try {
        const ids = model.encode('Emma was a brave little girl who lived in a nest near the town. Every Thursday, Emma');
        const r = await compare(model, ids);
        console.log(`trained ${dtype}/${model.kv}: T=${ids.length} max rel ${r.maxRel.toExponential(2)}, mismatches ${r.mismatches}, min margin ${r.minMargin.toExponential(2)}`);
        expect(r.maxRel).toBeLessThan(2e-2);
        expect(r.mismatches).toBe(0);
      } finally {
        model.dispose();
      }
    });
  }
});

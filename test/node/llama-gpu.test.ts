// The LLaMA-family forward on the GPU (prefill, cached decode, KV cache dtypes) against the
// independent fp32 CPU forward (src/reference/llama.ts), on tiny generated checkpoints of every
// architecture webq runs.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Decoder } from '../../src/generate/decoder.ts';
import { kvCacheFor } from '../../src/generate/kv.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { openModelFiles } from '../../src/io/hub/hub.ts';
import { parseLlamaConfig, type LlamaConfig } from '../../src/models/llama/llama-config.ts';
import { uploadLlamaWeights } from '../../src/models/llama/llama.ts';
import { resolveLlamaWeights } from '../../src/models/llama/llama-weights.ts';
import type { KvDType } from '../../src/ops/kv-cache.ts';
import type { LinearDType } from '../../src/ops/linear.ts';
import { validateSamplingParams } from '../../src/ops/sample.ts';
import { llamaReferenceForward, llamaReferenceGreedy } from '../../src/reference/llama.ts';
import { writeTinyLlama, type TinyLlama, type TinyLlamaOptions } from '../../fixtures/tiny-llama.ts';

let dir: string;
let ctx: GpuContext;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'webq-llama-'));
  ctx = await GpuContext.create();
});

afterAll(async () => {
  ctx?.dispose();
  await rm(dir, { recursive: true, force: true });
});

async function decoderFor(m: TinyLlama, dtype: LinearDType, kv: KvDType, cap = 128): Promise<{ dec: Decoder; cfg: LlamaConfig }> {
  const files = await openModelFiles(m.dir);
  const cfg = parseLlamaConfig(m.config);
  const store = await files.checkpoint();
  const w = await uploadLlamaWeights(ctx, store, cfg, resolveLlamaWeights(store, cfg), dtype);
  await store.close?.();
  const cache = kvCacheFor(ctx, cfg, cap, kv);
  const dec = new Decoder(ctx, cfg, w, cache);
  const dispose = dec.dispose.bind(dec);
  dec.dispose = () => (dispose(), w.dispose());
  return { dec, cfg };
}

function prompt(n: number, V: number, seed = 7): number[] {
  let s = seed;
  return Array.from({ length: n }, () => (s = (s * 1103515245 + 12345) >>> 0) % V);
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const ARCHS: [string, TinyLlamaOptions][] = [
  ['llama GQA untied F32', { modelType: 'llama', seed: 1 }],
  ['llama3 rope_scaling tied BF16', { modelType: 'llama', tied: true, dtype: 'BF16', ropeTheta: 500000, ropeScaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 }, seed: 2 }],
  ['mistral sliding window F16', { modelType: 'mistral', slidingWindow: 8, dtype: 'F16', seed: 3 }],
  ['qwen2 biases tied', { modelType: 'qwen2', tied: true, seed: 4 }],
  ['qwen3 q/k norms, head_dim 32', { modelType: 'qwen3', headDim: 32, heads: 4, kvHeads: 1, seed: 5 }],
];

describe.each(ARCHS)('%s', (name, opts) => {
  it('f32: last-position logits within 1e-3 of the fp32 reference; cached decode equals a full recompute; 32 greedy tokens equal', async () => {
    const m = await writeTinyLlama(join(dir, name.replace(/\W+/g, '-')), opts);
    const { dec, cfg } = await decoderFor(m, 'f32', 'f32');
    try {
      const ids = prompt(20, cfg.vocabSize);
      const ref = llamaReferenceForward(cfg, m.weights, ids);
      const V = cfg.vocabSize;
      const got = await dec.logits(ids);
      const want = ref.subarray((ids.length - 1) * V);
      expect(maxAbs(got, want)).toBeLessThan(1e-3);
      // Extend by one token at a time: the cache is reused and must give the recompute's logits.
      for (const extra of [3, 1]) {
        ids.push(...prompt(extra, V, ids.length));
        const full = llamaReferenceForward(cfg, m.weights, ids).subarray((ids.length - 1) * V);
        expect(dec.cache.length).toBeGreaterThan(0);
        expect(maxAbs(await dec.logits(ids), full)).toBeLessThan(1e-3);
      }
      // 32 greedy tokens, run ahead in batches, equal the reference's (the cache keeps the prompt).
      const start = prompt(9, V, 3);
      const greedy: number[] = [];
      for await (const b of dec.generate(start, validateSamplingParams({}), { maxTokens: 32, batch: 5 })) greedy.push(...b);
      expect(greedy).toEqual(llamaReferenceGreedy(cfg, m.weights, start, 32));
    } finally {
      dec.dispose();
    }
  });
});

describe('greedy generation', () => {
  it('32 greedy tokens equal the reference (f32 weights, f32 KV), run ahead in batches', async () => {
    const m = await writeTinyLlama(join(dir, 'greedy'), { modelType: 'qwen2', seed: 11 });
    const { dec, cfg } = await decoderFor(m, 'f32', 'f32');
    try {
      const ids = prompt(9, cfg.vocabSize, 3);
      const want = llamaReferenceGreedy(cfg, m.weights, ids, 32);
      const got: number[] = [];
      for await (const b of dec.generate(ids, validateSamplingParams({}), { maxTokens: 32, batch: 5 })) got.push(...b);
      expect(got).toEqual(want);
      expect(new Set(got).size).toBeGreaterThan(4);
    } finally {
      dec.dispose();
    }
  });
});

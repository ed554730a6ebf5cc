// Batched decoding (src/generate/batch.ts): each sequence of a batch decodes exactly the tokens it
// decodes alone (the one-sequence Decoder), for float and quantized weights and every KV dtype, with
// prompts of different lengths, a batch run with fewer rows than it holds, a sequence that runs
// out of cache room before the others, and seeded sampling per row.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { LlmModel } from '../../src/api/llm.ts';
import { BatchDecoder, type BatchRow } from '../../src/generate/batch.ts';
import { Decoder } from '../../src/generate/decoder.ts';
import { kvCacheFor, kvSharedFor } from '../../src/generate/kv.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { openModelFiles } from '../../src/io/hub/hub.ts';
import { parseLlamaConfig, type LlamaConfig } from '../../src/models/llama/llama-config.ts';
import { uploadLlamaWeights, type LlamaGpuWeights } from '../../src/models/llama/llama.ts';
import { resolveLlamaWeights } from '../../src/models/llama/llama-weights.ts';
import type { KvDType } from '../../src/ops/kv-cache.ts';
import type { LinearDType } from '../../src/ops/linear.ts';
import { validateSamplingParams, type SamplingParams } from '../../src/ops/sample.ts';
import { writeTinyLlama, type TinyLlama } from '../../fixtures/tiny-llama.ts';

let dir: string;
let ctx: GpuContext;
let model: TinyLlama;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'webq-batch-'));
  ctx = await GpuContext.create();
  model = await writeTinyLlama(join(dir, 'm'), { modelType: 'qwen2', heads: 4, kvHeads: 2, seed: 21 });
});

afterAll(async () => {
  ctx?.dispose();
  await rm(dir, { recursive: true, force: true });
});

async function load(dtype: LinearDType): Promise<{ w: LlamaGpuWeights; cfg: LlamaConfig }> {
  const files = await openModelFiles(model.dir);
  const cfg = parseLlamaConfig(model.config);
  const store = await files.checkpoint();
  const w = await uploadLlamaWeights(ctx, store, cfg, resolveLlamaWeights(store, cfg), dtype);
  await store.close?.();
  return { w, cfg };
}

function prompt(n: number, V: number, seed: number): number[] {
  let s = seed;
  return Array.from({ length: n }, () => (s = (s * 1103515245 + 12345) >>> 0) % V);
}

/** Each row's ids alone, from a one-sequence Decoder on the same weights and cache dtype. */
async function alone(w: LlamaGpuWeights, cfg: LlamaConfig, kv: KvDType, cap: number, rows: BatchRow[], maxTokens: number): Promise<number[][]> {
  const dec = new Decoder(ctx, cfg, w, kvCacheFor(ctx, cfg, cap, kv));
  try {
    const out: number[][] = [];
    for (const r of rows) {
      const ids: number[] = [];
      dec.keepCached(0);
      for await (const b of dec.generate(r.prompt, r.params, { maxTokens, batch: 5 })) ids.push(...b);
      out.push(ids);
    }
    return out;
  } finally {
    // The decoder's dispose frees its cache, not the weights.
    dec.dispose();
  }
}

/** Each row's ids from one batched run, cut to the row's own limit (its cache room). */
async function together(bd: BatchDecoder, w: LlamaGpuWeights, rows: BatchRow[], maxTokens: number, cap: number): Promise<number[][]> {
  const out: number[][] = rows.map(() => []);
  for await (const step of bd.generate(w, rows, { maxTokens })) step.forEach((ids, b) => out[b].push(...ids));
  return out.map((ids, b) => ids.slice(0, Math.min(maxTokens, cap - rows[b].prompt.length + 1)));
}

const greedy = validateSamplingParams({});

describe('batched decode equals each sequence alone', () => {
  const CASES: [LinearDType, KvDType, number][] = [
    ['f32', 'f32', 3],
    ['q8', 'f16', 3],
    ['q4', 'f32', 4], // a batch of 4 running 3 rows
    ['f32', 'int8', 3],
  ];
  for (const [dtype, kv, size] of CASES) {
    it(`${dtype} weights, ${kv} KV: three prompts of 5, 17 and 40 tokens, 24 greedy tokens each (batch of ${size})`, async () => {
      const { w, cfg } = await load(dtype);
      const cap = 96;
      const bd = new BatchDecoder(ctx, cfg, kvSharedFor(ctx, cfg, cap, kv), size, 5);
      try {
        const rows = [5, 17, 40].map((n, i) => ({ prompt: prompt(n, cfg.vocabSize, 3 + i), params: greedy }));
        const want = await alone(w, cfg, kv, cap, rows, 24);
        const got = await together(bd, w, rows, 24, cap);
        expect(got).toEqual(want);
        // The three continuations differ (the test would pass trivially on a model that repeats one token).
        expect(new Set(want.map((r) => r.join(','))).size).toBe(3);
        expect(want.every((r) => r.length === 24)).toBe(true);
      } finally {
        bd.dispose();
      bd.kv.shared.dispose();
        w.dispose();
      }
    });
  }

  it('a sequence near the end of the cache stops at its room while the others go on; a second run reuses the buffers', async () => {
    const { w, cfg } = await load('f32');
    const cap = 48;
    const bd = new BatchDecoder(ctx, cfg, kvSharedFor(ctx, cfg, cap, 'f32'), 2, 4);
    try {
      const rows = [44, 6].map((n, i) => ({ prompt: prompt(n, cfg.vocabSize, 40 + i), params: greedy }));
      const want = await alone(w, cfg, 'f32', cap, rows, 20);
      expect(want.map((r) => r.length)).toEqual([5, 20]);
      expect(await together(bd, w, rows, 20, cap)).toEqual(want);
      expect(await together(bd, w, rows.slice().reverse(), 20, cap)).toEqual(want.slice().reverse());
    } finally {
      bd.dispose();
      bd.kv.shared.dispose();
      w.dispose();
    }
  });

  it('seeded sampling: n = 2 of one prompt with seeds s and s + 1 equals two single runs with those seeds', async () => {
    const { w, cfg } = await load('f32');
    const cap = 64;
    const bd = new BatchDecoder(ctx, cfg, kvSharedFor(ctx, cfg, cap, 'f32'), 2, 5);
    try {
      const p = prompt(9, cfg.vocabSize, 77);
      const params = (seed: number): SamplingParams => validateSamplingParams({ temperature: 1.2, topK: 40, repetitionPenalty: 1.1, seed });
      const rows = [params(1234), params(1235)].map((q) => ({ prompt: p, params: q }));
      const want = await alone(w, cfg, 'f32', cap, rows, 16);
      expect(want[0]).not.toEqual(want[1]);
      expect(await together(bd, w, rows, 16, cap)).toEqual(want);
    } finally {
      bd.dispose();
      bd.kv.shared.dispose();
      w.dispose();
    }
  });

  it('rejects more rows than the batch holds and an empty prompt, naming them', async () => {
    const { w, cfg } = await load('f32');
    const bd = new BatchDecoder(ctx, cfg, kvSharedFor(ctx, cfg, 32, 'f32'), 2);
    try {
      const row = { prompt: [1, 2], params: greedy };
      const run = async (rows: BatchRow[]) => {
        for await (const _ of bd.generate(w, rows, { maxTokens: 2 })) break;
      };
      await expect(run([row, row, row])).rejects.toThrow(/runs 1 to 2 sequences; got 3/);
      await expect(run([row, { prompt: [], params: greedy }])).rejects.toThrow(/prompt 1 has no tokens/);
      await expect(run([row, { prompt: [1, cfg.vocabSize], params: greedy }])).rejects.toThrow(new RegExp(`prompt 1 token 1 is ${cfg.vocabSize}, outside the vocabulary`));
    } finally {
      bd.dispose();
      bd.kv.shared.dispose();
      w.dispose();
    }
  });
});

describe('LlmModel.generateBatch and chat n', () => {
  const CHATML = "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

  it('different prompts decode together (one batched run) and each equals generate() alone; n = 2 chat choices equal single calls with seed and seed + 1', async () => {
    const m = await writeTinyLlama(join(dir, 'api'), { modelType: 'llama', tokenizer: 'llama2', chatTemplate: CHATML, maxPositions: 128, seed: 31 });
    const lm = await LlmModel.load(m.dir, { dtype: 'q8', context: ctx, batchSize: 3 });
    const spy = vi.spyOn(BatchDecoder.prototype, 'generate');
    try {
      const prompts = ['Once upon a time', 'The cat', 'A long time ago in a land far away there lived'];
      const want = [];
      for (const p of prompts) want.push(await lm.generate(p, { maxTokens: 12, temperature: 0, ignoreEos: true }));
      expect(spy).not.toHaveBeenCalled();
      const got = await lm.generateBatch(prompts, { maxTokens: 12, temperature: 0, ignoreEos: true });
      expect(spy).toHaveBeenCalledTimes(1);
      expect(got.map((r) => r.tokens)).toEqual(want.map((r) => r.tokens));
      expect(got.map((r) => r.text)).toEqual(want.map((r) => r.text));
      expect(got.map((r) => r.usage.completionTokens)).toEqual([12, 12, 12]);
      // A stop string ends its own row only.
      const cut = want[1].text.slice(0, Math.max(1, Math.floor(want[1].text.length / 2)));
      const stopped = await lm.generateBatch(prompts, [{ maxTokens: 12, temperature: 0, ignoreEos: true }, { maxTokens: 12, temperature: 0, ignoreEos: true, stop: cut.slice(-1) }, { maxTokens: 5, temperature: 0, ignoreEos: true }]);
      expect(stopped[0].tokens).toEqual(want[0].tokens);
      expect(stopped[1].finishReason).toBe('stop');
      expect(want[1].text.startsWith(stopped[1].text)).toBe(true);
      expect(stopped[2].tokens).toEqual(want[2].tokens.slice(0, 5));
      const messages = [{ role: 'user' as const, content: 'Name a colour.' }];
      const single = [];
      for (const seed of [7, 8]) single.push(await lm.chat.completions.create({ messages, max_tokens: 10, temperature: 1.5, seed }));
      spy.mockClear();
      const two = await lm.chat.completions.create({ messages, max_tokens: 10, temperature: 1.5, seed: 7, n: 2 });
      expect(spy).toHaveBeenCalledTimes(1);
      expect(two.choices.map((c) => c.message.content)).toEqual(single.map((r) => r.choices[0].message.content));
      expect(two.usage.completion_tokens).toBe(single[0].usage.completion_tokens + single[1].usage.completion_tokens);
      await expect(LlmModel.load(m.dir, { context: ctx, batchSize: 17 })).rejects.toThrow(/batchSize must be an integer from 1 to 16, got 17/);
      await expect(lm.generateBatch(['a', 'b'], [{}])).rejects.toThrow(/1 options for 2 prompts/);
    } finally {
      spy.mockRestore();
      lm.dispose();
    }
  });
});

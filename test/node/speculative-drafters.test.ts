// Speculative decoding with model drafters (#24): 'self' (the model's own first layers, sharing
// its GPU buffers) and 'draft' (a smaller model with the same tokenizer). Greedy output identical
// to plain greedy for f32/q8/q4 targets and int8 KV; drafts accepted when the draft is the same
// weights quantized; bad drafts rejected before generation starts, naming both models.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LlmModel } from '../../src/api/llm.ts';
import type { CliIO } from '../../src/cli/command.ts';
import { main } from '../../src/cli/main.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { writeTinyLlama, type TinyLlama } from '../../fixtures/tiny-llama.ts';
import { TRAINED_LLAMA } from '../helpers/trained-fixture.ts';

let dir: string;
let ctx: GpuContext;
let target: TinyLlama, draft: TinyLlama, otherVocab: TinyLlama;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'webq-drafters-'));
  ctx = await GpuContext.create();
  target = await writeTinyLlama(join(dir, 'target'), { tokenizer: 'llama2', layers: 3, maxPositions: 256, seed: 11 });
  draft = await writeTinyLlama(join(dir, 'draft'), { tokenizer: 'llama2', layers: 1, hidden: 32, intermediate: 64, maxPositions: 256, seed: 5 });
  otherVocab = await writeTinyLlama(join(dir, 'qwen'), { tokenizer: 'qwen3', layers: 1, hidden: 32, intermediate: 64, seed: 6 });
});

afterAll(async () => {
  ctx?.dispose();
  await rm(dir, { recursive: true, force: true });
});

const QUOTE = 'Please repeat: the cat sat on the mat and the dog sat on the log. Again: the cat sat on the mat and the dog';

describe('greedy with model drafters equals greedy without them', () => {
  const cases = [
    { dtype: 'f32', kv: 'f32' },
    { dtype: 'q8', kv: 'f16' },
    { dtype: 'q4', kv: 'f16' },
    { dtype: 'q4', kv: 'int8' },
  ] as const;
  for (const c of cases) {
    it(`tiny llama target ${c.dtype} weights, ${c.kv} KV: self (default: q4 copy, or 1 of 3 layers on q4; 2 of 3 layers) and a tiny draft model (loaded, and by path)`, async () => {
      const model = await LlmModel.load(target.dir, { ...c, context: ctx, contextLength: 128 });
      const small = await LlmModel.load(draft.dir, { dtype: 'q4', kv: c.kv, context: ctx, contextLength: 128 });
      try {
        const plain = await model.generate(QUOTE, { maxTokens: 24, temperature: 0, ignoreEos: true });
        const specs = [
          { method: 'self', k: 4 },
          { method: 'self', k: 3, layers: 2 },
          { method: 'draft', k: 4, model: small },
          { method: 'draft', k: 2, model: draft.dir },
        ] as const;
        for (const s of specs) {
          const r = await model.generate(QUOTE, { maxTokens: 24, temperature: 0, ignoreEos: true, speculative: s });
          const label = `${s.method} ${'layers' in s ? s.layers : ''} k=${s.k}${typeof (s as { model?: unknown }).model === 'string' ? ' (path)' : ''}`;
          expect(r.tokens, label).toEqual(plain.tokens);
          const d = r.usage.completionTokensDetails!;
          expect(r.usage.targetForwards! + d.acceptedPredictionTokens, label).toBe(r.tokens.length);
          expect(d.acceptedPredictionTokens + d.rejectedPredictionTokens, label).toBeGreaterThan(0); // it drafted
          console.log(`tiny ${c.dtype}/${c.kv} ${label}: ${r.tokens.length} tokens in ${r.usage.targetForwards} forwards, accepted ${d.acceptedPredictionTokens}, rejected ${d.rejectedPredictionTokens}`);
        }
        // The lent draft model is free again afterwards, and its own generation still works.
        const own = await small.generate(QUOTE, { maxTokens: 4, temperature: 0, ignoreEos: true });
        expect(own.tokens.length).toBe(4);
      } finally {
        small.dispose();
        model.dispose();
      }
    });
  }
});

describe('drafts are accepted where the draft agrees with the target', () => {
  it('the trained fixture at f32 with its own q4 weights as the draft, and self (the same by default): identical text, drafts accepted', async () => {
    const story = 'Emma was a brave little girl who lived in a nest near the town. Every Thursday, Emma and Nora went to';
    const model = await LlmModel.load(TRAINED_LLAMA, { dtype: 'f32', kv: 'f32', context: ctx, contextLength: 160 });
    const q4 = await LlmModel.load(TRAINED_LLAMA, { dtype: 'q4', kv: 'f32', context: ctx, contextLength: 160 });
    try {
      const plain = await model.generate(story, { maxTokens: 32, temperature: 0, ignoreEos: true });
      const viaDraft = await model.generate(story, { maxTokens: 32, temperature: 0, ignoreEos: true, speculative: { method: 'draft', model: q4, k: 6 } });
      expect(viaDraft.tokens).toEqual(plain.tokens);
      const d = viaDraft.usage.completionTokensDetails!;
      console.log(`trained f32, q4 draft k=6: ${viaDraft.tokens.length} tokens in ${viaDraft.usage.targetForwards} forwards, accepted ${d.acceptedPredictionTokens}, rejected ${d.rejectedPredictionTokens}`);
      expect(d.acceptedPredictionTokens).toBeGreaterThan(d.rejectedPredictionTokens); // q4 agrees with f32 on most greedy tokens
      const viaSelf = await model.generate(story, { maxTokens: 32, temperature: 0, ignoreEos: true, speculative: { method: 'self', k: 4 } });
      expect(viaSelf.tokens).toEqual(plain.tokens);
      const ds = viaSelf.usage.completionTokensDetails!;
      // 'self' on an f32 model drafts with the checkpoint's q4 weights: the same counts as the q4 draft model.
      expect(ds.acceptedPredictionTokens).toBeGreaterThan(ds.rejectedPredictionTokens);
      console.log(`trained f32, self (its q4 copy) k=4: ${viaSelf.tokens.length} tokens in ${viaSelf.usage.targetForwards} forwards, accepted ${ds.acceptedPredictionTokens}, rejected ${ds.rejectedPredictionTokens}`);
      // Sampling with a model drafter: the same tokens as sampling without it, for a seed.
      const o = { maxTokens: 20, temperature: 0.7, topK: 20, seed: 3, ignoreEos: true };
      const sampled = await model.generate(story, o);
      const sampledDraft = await model.generate(story, { ...o, speculative: { method: 'draft', model: q4, k: 4 } });
      expect(sampledDraft.tokens).toEqual(sampled.tokens);
      expect(sampledDraft.usage.completionTokensDetails!.acceptedPredictionTokens).toBeGreaterThan(0);
    } finally {
      q4.dispose();
      model.dispose();
    }
  });
});

describe("'self' on a checkpoint stored at q8 (it will not load at q4)", () => {
  it('drafts with its first layers instead: greedy identical, drafts made', async () => {
    const out = join(dir, 'target-q8');
    const io = { stdout: () => {}, stderr: () => {}, gpuContext: ctx } as unknown as CliIO;
    expect(await main(['quantize', target.dir, '--dtype', 'q8', '--out', out], io)).toBe(0);
    await expect(LlmModel.load(out, { dtype: 'q4', context: ctx, contextLength: 64 })).rejects.toThrow(/pre-quantized as q8/); // the premise
    const model = await LlmModel.load(out, { context: ctx, contextLength: 64, kv: 'f32' });
    try {
      expect(model.dtype).toBe('q8');
      const plain = await model.generate(QUOTE, { maxTokens: 12, temperature: 0, ignoreEos: true });
      for (let i = 0; i < 2; i++) {
        const r = await model.generate(QUOTE, { maxTokens: 12, temperature: 0, ignoreEos: true, speculative: { method: 'self', k: 3 } });
        expect(r.tokens).toEqual(plain.tokens);
        const d = r.usage.completionTokensDetails!;
        expect(d.acceptedPredictionTokens + d.rejectedPredictionTokens).toBeGreaterThan(0);
      }
    } finally {
      model.dispose();
    }
  });
});

describe('bad drafts are errors before generation starts', () => {
  let model: LlmModel;
  beforeAll(async () => {
    model = await LlmModel.load(target.dir, { dtype: 'f32', kv: 'f32', context: ctx, contextLength: 64 });
  });
  afterAll(() => model?.dispose());

  it('another vocabulary, another GPU context, the model itself, a missing model, bad layers', async () => {
    const qwen = await LlmModel.load(otherVocab.dir, { dtype: 'f32', context: ctx, contextLength: 64 });
    const ctx2 = await GpuContext.create();
    const elsewhere = await LlmModel.load(draft.dir, { dtype: 'f32', context: ctx2, contextLength: 64 });
    try {
      const bad: [object, string, RegExp][] = [
        [{ method: 'draft', model: qwen }, 'DRAFT_VOCABULARY', new RegExp(`vocab.*target ${target.dir.replace(/[/\\]/g, '.')}.*draft ${otherVocab.dir.replace(/[/\\]/g, '.')}`)],
        [{ method: 'draft', model: otherVocab.dir }, 'DRAFT_VOCABULARY', /draft model's vocabulary differs/],
        [{ method: 'draft', model: elsewhere }, 'BAD_OPTION', /loaded on the target's GPU context/],
        [{ method: 'draft', model }, 'BAD_OPTION', /itself; use method 'self'/],
        [{ method: 'draft' }, 'BAD_OPTION', /speculative\.model must be the draft model/],
        [{ method: 'lookup', model: draft.dir }, 'BAD_OPTION', /speculative\.model is for method 'draft'/],
        [{ method: 'self', layers: 3 }, 'BAD_OPTION', /speculative\.layers must be less than .*3 layers/],
        [{ method: 'self', layers: 0 }, 'BAD_OPTION', /speculative\.layers must be a positive integer/],
        [{ method: 'self', k: 17 }, 'BAD_OPTION', /speculative\.k .* 1 to 16, got 17/],
        [{ method: 'draft', model: draft.dir, k: 0 }, 'BAD_OPTION', /speculative\.k .* 1 to 16, got 0/],
      ];
      for (const [s, code, msg] of bad) {
        const e = await model.generate(QUOTE, { maxTokens: 4, temperature: 0, speculative: s as never }).catch((x) => x);
        expect(e, JSON.stringify(Object.keys(s))).toBeInstanceOf(Error);
        expect(e.code, e.message).toBe(code);
        expect(e.message).toMatch(msg);
      }
      const missing = await model.generate(QUOTE, { maxTokens: 4, speculative: { method: 'draft', model: join(dir, 'nope') } }).catch((x) => x);
      expect(missing).toBeInstanceOf(Error);
      expect(missing.message).toContain('nope');
      // Nothing was half-done: plain and speculative calls still work.
      const plain = await model.generate(QUOTE, { maxTokens: 6, temperature: 0, ignoreEos: true });
      const again = await model.generate(QUOTE, { maxTokens: 6, temperature: 0, ignoreEos: true, speculative: { method: 'self' } });
      expect(again.tokens).toEqual(plain.tokens);
    } finally {
      elsewhere.dispose();
      ctx2.dispose();
      qwen.dispose();
    }
  });
});

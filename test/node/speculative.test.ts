// Speculative decoding with prompt-lookup drafts (#24): the verification kernel against its CPU
// reference, the drafter, greedy output identical with and without speculation per dtype and KV
// type (tiny random Llama and the trained fixture), the usage counts, and bad options.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { predictionUsage } from '../../src/api/chat.ts';
import { LlmModel } from '../../src/api/llm.ts';
import { parseChat } from '../../src/serve/openai.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { f32ToF16Bits } from '../../src/io/safetensors/half.ts';
import { lookupDraft } from '../../src/generate/lookup.ts';
import { verifyDrafts } from '../../src/ops/verify.ts';
import { verifyDraftsReference } from '../../src/reference/verify.ts';
import { writeTinyLlama, type TinyLlama } from '../../fixtures/tiny-llama.ts';
import { TRAINED_LLAMA } from '../helpers/trained-fixture.ts';

let dir: string;
let ctx: GpuContext;
let tiny: TinyLlama;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'webq-spec-'));
  ctx = await GpuContext.create();
  // A ChatML template (the tokenizer has none of its own), for the chat.completions case.
  const chatTemplate = "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
  tiny = await writeTinyLlama(join(dir, 'm'), { tokenizer: 'llama2', maxPositions: 256, seed: 11, chatTemplate });
});

afterAll(async () => {
  ctx?.dispose();
  await rm(dir, { recursive: true, force: true });
});

describe('lookupDraft', () => {
  it('continues the most recent earlier occurrence of the longest suffix n-gram', () => {
    expect(lookupDraft([1, 2, 3, 4, 9, 2, 3, 5, 7, 1, 2, 3], 3)).toEqual([4, 9, 2]); // the 3-gram "1 2 3" wins over the later "2 3"
    expect(lookupDraft([1, 2, 9, 1, 2, 8, 6, 1, 2], 2)).toEqual([8, 6]); // the most recent "1 2"
    expect(lookupDraft([5, 6, 7, 8, 6, 7], 8)).toEqual([8, 6, 7]); // stops at the end of the text
    expect(lookupDraft([1, 2, 3], 4)).toEqual([]); // nothing repeats
    expect(lookupDraft([4, 5, 6, 7, 8, 5], 8)).toEqual([6, 7]); // a one-token match drafts at most two
    expect(lookupDraft([4, 5, 6, 7, 8, 4, 5], 8)).toEqual([6, 7, 8, 4, 5]); // a longer one up to k
  });
});

describe('the OpenAI surface', () => {
  it('webq serve passes speculative through; usage maps to OpenAI names only with speculation', () => {
    const p = parseChat({ messages: [{ role: 'user', content: 'hi' }], speculative: { method: 'lookup', k: 3 } }, { maxTokens: 16 } as Parameters<typeof parseChat>[1]);
    expect(p.request.speculative).toEqual({ method: 'lookup', k: 3 });
    expect(() => parseChat({ messages: [{ role: 'user', content: 'hi' }], speculative: { method: 'draft', model: '/some/path' } }, { maxTokens: 16 } as Parameters<typeof parseChat>[1])).toThrow(/method "draft" is not available over HTTP/);
    const u = { promptTokens: 3, completionTokens: 9, cachedTokens: 0, prefillTokensPerSecond: 1, decodeTokensPerSecond: 1 };
    expect(predictionUsage(u)).toEqual({});
    expect(predictionUsage({ ...u, completionTokensDetails: { acceptedPredictionTokens: 4, rejectedPredictionTokens: 2 }, targetForwards: 5 })).toEqual({
      completion_tokens_details: { accepted_prediction_tokens: 4, rejected_prediction_tokens: 2 },
      target_forwards: 5,
    });
  });
});

describe('verifyDrafts kernel', () => {
  for (const dtype of ['f32', 'f16'] as const) {
    it(`argmax per row and the accepted count equal the CPU reference (${dtype} logits, ties to the lowest index)`, async () => {
      if (dtype === 'f16' && !ctx.caps.f16) return;
      const V = 1000, rows = 6;
      const logits = new Float32Array(rows * V);
      let s = 12345;
      for (let i = 0; i < logits.length; i++) logits[i] = Math.round(((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) * 64) / 8; // coarse values: ties happen
      const ref0 = verifyDraftsReference(logits, rows, V, []);
      // Drafts agreeing with the first three argmaxes, then not.
      const draft = [ref0.argmax[0], ref0.argmax[1], ref0.argmax[2], (ref0.argmax[3] + 1) % V, ref0.argmax[4]];
      const ref = verifyDraftsReference(logits, rows, V, draft);
      expect(ref.accepted).toBe(3);
      const lt = dtype === 'f32' ? ctx.upload(logits, [rows, V], 'f32') : ctx.upload(Uint16Array.from(logits, f32ToF16Bits), [rows, V], 'f16') // eighths are exact in f16;
      const dr = ctx.upload(Uint32Array.from(draft), [draft.length], 'u32');
      const out = ctx.upload(new Uint32Array(rows + 1), [rows + 1], 'u32');
      const rec = ctx.record();
      verifyDrafts(ctx, rec, lt, dr, out);
      await rec.submit();
      const got = await ctx.read(out);
      expect(Array.from(got)).toEqual([ref.accepted, ...ref.argmax]);
      [lt, dr, out].forEach((t) => t.dispose());
    });
  }
});

const QUOTE = 'Please repeat: the cat sat on the mat and the dog sat on the log. Again: the cat sat on the mat and the dog';

async function both(model: LlmModel, prompt: string, maxTokens: number, k = 4) {
  const plain = await model.generate(prompt, { maxTokens, temperature: 0, ignoreEos: true });
  const spec = await model.generate(prompt, { maxTokens, temperature: 0, ignoreEos: true, speculative: { method: 'lookup', k } });
  return { plain, spec };
}

describe('greedy with lookup speculation equals greedy without it', () => {
  const cases = [
    { dtype: 'f32', kv: 'f32' },
    { dtype: 'q8', kv: 'f16' },
    { dtype: 'q4', kv: 'f16' },
    { dtype: 'q4', kv: 'int8' },
  ] as const;
  for (const c of cases) {
    it(`tiny llama, ${c.dtype} weights, ${c.kv} KV`, async () => {
      const model = await LlmModel.load(tiny.dir, { ...c, context: ctx, contextLength: 128 });
      try {
        let accepted = 0;
        for (const k of [1, 4, 16]) {
          const { plain, spec } = await both(model, QUOTE, 40, k);
          expect(spec.tokens).toEqual(plain.tokens);
          expect(spec.text).toBe(plain.text);
          const d = spec.usage.completionTokensDetails!;
          // Every completion token came from a forward or an accepted draft.
          expect(spec.usage.targetForwards! + d.acceptedPredictionTokens).toBe(spec.tokens.length);
          console.log(`tiny ${c.dtype}/${c.kv} k=${k}: ${spec.tokens.length} tokens in ${spec.usage.targetForwards} forwards, accepted ${d.acceptedPredictionTokens}, rejected ${d.rejectedPredictionTokens}`);
          accepted += d.acceptedPredictionTokens;
        }
        expect(accepted).toBeGreaterThan(0); // verification kept drafts, not only the target's own token
      } finally {
        model.dispose();
      }
    });
  }
  it('the trained fixture (f32, q8, q4): identical text, more than one token per target forward on a story that repeats its prompt', async () => {
    const story = 'Emma was a brave little girl who lived in a nest near the town. Every Thursday, Emma and Nora went to the town together. Emma was a brave little girl who lived in a nest near the town. Every Thursday, Emma';
    for (const dtype of ['f32', 'q8', 'q4'] as const) {
      const model = await LlmModel.load(TRAINED_LLAMA, { dtype, context: ctx, contextLength: 192 });
      try {
        const { plain, spec } = await both(model, story, 48, 6);
        expect(spec.tokens).toEqual(plain.tokens);
        if (dtype === 'f32') console.log(JSON.stringify(plain.text));
        const per = spec.tokens.length / spec.usage.targetForwards!;
        console.log(`trained ${dtype}: ${spec.tokens.length} tokens in ${spec.usage.targetForwards} forwards (${per.toFixed(2)} per forward), accepted ${spec.usage.completionTokensDetails!.acceptedPredictionTokens}, rejected ${spec.usage.completionTokensDetails!.rejectedPredictionTokens}`);
        expect(per).toBeGreaterThan(1);
      } finally {
        model.dispose();
      }
    }
  });
});

describe('speculation with stops, limits, the cache and chat', () => {
  let model: LlmModel;
  beforeAll(async () => {
    model = await LlmModel.load(tiny.dir, { dtype: 'f32', kv: 'f32', context: ctx, contextLength: 64 });
  });
  afterAll(() => model?.dispose());

  it('maxTokens is exact, a stop string cuts the same text, and the next call reuses the cache correctly', async () => {
    for (const n of [1, 2, 7]) {
      const { plain, spec } = await both(model, QUOTE, n, 8);
      expect(spec.tokens).toEqual(plain.tokens);
      expect(spec.tokens.length).toBe(n);
    }
    const base = await model.generate(QUOTE, { maxTokens: 20, temperature: 0, ignoreEos: true });
    const stop = model.tokenizer.decode(base.tokens.slice(5, 7), { skipSpecialTokens: true }).trim();
    const a = await model.generate(QUOTE, { maxTokens: 20, temperature: 0, ignoreEos: true, stop });
    const b = await model.generate(QUOTE, { maxTokens: 20, temperature: 0, ignoreEos: true, stop, speculative: { method: 'lookup', k: 5 } });
    expect(b.text).toBe(a.text);
    // Follow-up turns reuse the cached prefix whichever loop left it.
    const c = await model.generate(QUOTE + b.text, { maxTokens: 10, temperature: 0, ignoreEos: true });
    const d = await model.generate(QUOTE + b.text, { maxTokens: 10, temperature: 0, ignoreEos: true, speculative: { method: 'lookup' } });
    expect(d.tokens).toEqual(c.tokens);
    expect(d.usage.cachedTokens).toBeGreaterThan(0);
  });

  it('an abort mid-stream rejects with AbortError and leaves the model working (same tokens after)', async () => {
    const want = await model.generate(QUOTE, { maxTokens: 12, temperature: 0, ignoreEos: true });
    const ac = new AbortController();
    const s = model.generate(QUOTE, { maxTokens: 12, temperature: 0, ignoreEos: true, speculative: { method: 'lookup' }, stream: true, signal: ac.signal });
    const e = await (async () => {
      for await (const _ of s) ac.abort();
    })().catch((x) => x);
    expect(e?.name).toBe('AbortError');
    const again = await model.generate(QUOTE, { maxTokens: 12, temperature: 0, ignoreEos: true, speculative: { method: 'lookup' } });
    expect(again.tokens).toEqual(want.tokens);
  });

  it('runs to the end of the context', async () => {
    const ids = model.encode(QUOTE);
    const { plain, spec } = await both(model, QUOTE, 1000, 16);
    expect(plain.tokens.length).toBe(64 - ids.length + 1);
    expect(spec.tokens).toEqual(plain.tokens);
  });

  it('chat.completions reports the prediction counts in OpenAI names', async () => {
    const r = await model.chat.completions.create({ messages: [{ role: 'user', content: QUOTE }], max_tokens: 12, temperature: 0, speculative: { method: 'lookup', k: 4 } });
    const plain = await model.chat.completions.create({ messages: [{ role: 'user', content: QUOTE }], max_tokens: 12, temperature: 0 });
    expect(r.choices[0].message.content).toBe(plain.choices[0].message.content);
    expect(plain.usage.completion_tokens_details).toBeUndefined();
    const u = r.usage;
    expect(u.target_forwards).toBeGreaterThan(0);
    expect(u.completion_tokens_details!.accepted_prediction_tokens + u.target_forwards!).toBe(u.completion_tokens);
    expect(u.completion_tokens_details!.rejected_prediction_tokens).toBeGreaterThanOrEqual(0);
  });

  it('bad options are BAD_OPTION errors naming the option, before generation starts', async () => {
    const bad: [object, RegExp][] = [
      [{ speculative: { method: 'lookup', k: 0 } }, /speculative\.k .* 1 to 16, got 0/],
      [{ speculative: { method: 'lookup', k: 17 } }, /speculative\.k .* 1 to 16, got 17/],
      [{ speculative: { method: 'lookup', k: 2.5 } }, /speculative\.k/],
      [{ speculative: { method: 'tree' } }, /speculative\.method must be one of lookup, self, draft, got "tree"/],
      [{ speculative: null }, /speculative must be an object/],
      [{ speculative: { method: 'lookup' }, repetitionPenalty: 1.2 }, /repetitionPenalty must be 1/],
      [{ speculative: { method: 'lookup' }, responseFormat: { type: 'json_object' } }, /does not combine with responseFormat/],
      [{ speculative: { method: 'lookup' }, logprobs: 2 }, /does not combine with logprobs/],
      [{ speculative: { method: 'lookup' }, logitBias: { 5: 1 } }, /does not combine with logitBias/],
    ];
    for (const [o, msg] of bad) {
      const e = await model.generate(QUOTE, { maxTokens: 4, ...o }).catch((x) => x);
      expect(e, JSON.stringify(o)).toBeInstanceOf(Error);
      expect(e.code, JSON.stringify(o)).toBe('BAD_OPTION');
      expect(e.message).toMatch(msg);
    }
  });
});

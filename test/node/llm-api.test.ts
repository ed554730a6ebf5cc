// LlmModel end to end on a tiny Llama with a real tokenizer: generate (whole and streamed), seeded
// sampling, stops, aborts, queueing, the OpenAI-shaped chat API, cache reuse, GPU hygiene, and
// the bad inputs the issue lists.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LlmModel } from '../../src/api/llm.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { parseLlamaConfig } from '../../src/models/llama/llama-config.ts';
import { llamaReferenceGreedy } from '../../src/reference/llama.ts';
import { writeTinyLlama, type TinyLlama } from '../../fixtures/tiny-llama.ts';

// A ChatML template (the shape Qwen and SmolLM2 use), for a tokenizer that has none of its own.
const CHATML = "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

let dir: string;
let ctx: GpuContext;
let tiny: TinyLlama;
let model: LlmModel;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'webq-llm-'));
  ctx = await GpuContext.create();
  tiny = await writeTinyLlama(join(dir, 'chat'), { modelType: 'llama', tokenizer: 'llama2', chatTemplate: CHATML, maxPositions: 256, seed: 31 });
  model = await LlmModel.load(tiny.dir, { dtype: 'f32', kv: 'f32', context: ctx });
});

afterAll(async () => {
  model?.dispose();
  ctx?.dispose();
  await rm(dir, { recursive: true, force: true });
});

describe('generate', () => {
  it('greedy tokens equal the fp32 reference; the text is their decoding; BOS added as the tokenizer does', async () => {
    const r = await model.generate('Once upon a time', { maxTokens: 16, temperature: 0, ignoreEos: true });
    expect(r.promptIds[0]).toBe(1); // llama2's tokenizer.json adds <s>
    expect(r.tokens).toEqual(llamaReferenceGreedy(parseLlamaConfig(tiny.config), tiny.weights, r.promptIds, 16));
    expect(r.text).toBe(model.tokenizer.decode(r.tokens, { skipSpecialTokens: true }));
    expect(r.finishReason).toBe('length');
    expect(r.usage.promptTokens).toBe(r.promptIds.length);
    expect(r.usage.completionTokens).toBe(16);
    expect(r.usage.decodeTokensPerSecond).toBeGreaterThan(0);
  });

  it('streams chunks whose text adds up to the result', async () => {
    const s = model.generate('The weather', { maxTokens: 12, stream: true, temperature: 0, ignoreEos: true, readEvery: 3 });
    let text = '';
    let n = 0;
    for await (const c of s) {
      text += c.text;
      n += c.tokens.length;
    }
    const r = await s.result;
    expect(text).toBe(r.text);
    expect(n).toBe(12);
  });

  it('a seed gives the same tokens every time; another seed gives others', async () => {
    const o = { maxTokens: 20, temperature: 1.5, topK: 50, topP: 0.95, ignoreEos: true };
    const a = await model.generate('Hello', { ...o, seed: 7 });
    const b = await model.generate('Hello', { ...o, seed: 7 });
    const c = await model.generate('Hello', { ...o, seed: 8 });
    expect(b.tokens).toEqual(a.tokens);
    expect(c.tokens).not.toEqual(a.tokens);
  });

  it('a stop string ends the text before it', async () => {
    const full = await model.generate('Stop here', { maxTokens: 24, temperature: 0, ignoreEos: true });
    // Stop at a piece of the greedy text from its middle.
    const cut = Math.floor(full.text.length / 2);
    const stop = full.text.slice(cut, cut + 3);
    expect(stop.length).toBe(3);
    const r = await model.generate('Stop here', { maxTokens: 24, temperature: 0, ignoreEos: true, stop: [stop] });
    expect(r.finishReason).toBe('stop');
    expect(r.text).toBe(full.text.slice(0, full.text.indexOf(stop)));
  });

  it('counts no token sampled past a stop string: tokens, usage, stream, chat usage and the cache', async () => {
    const full = await model.generate('Stop here', { maxTokens: 24, temperature: 0, ignoreEos: true });
    const decode = (ids: number[]) => model.tokenizer.decode(ids, { skipSpecialTokens: true });
    // A stop early in the text, so that most of a read-back batch (8) lies past it.
    const cut = Math.floor(full.text.length / 4);
    const stop = full.text.slice(cut, cut + 3);
    // The shortest run of greedy ids whose text holds the stop: the id completing it counts, no later one.
    let kept = 1;
    while (!decode(full.tokens.slice(0, kept)).includes(stop)) kept++;
    expect(kept).toBeLessThan(full.tokens.length - 4);
    const want = full.tokens.slice(0, kept);

    const r = await model.generate('Stop here', { maxTokens: 24, temperature: 0, ignoreEos: true, stop: [stop] });
    expect(r.finishReason).toBe('stop');
    expect(r.tokens).toEqual(want);
    expect(r.usage.completionTokens).toBe(kept);

    const s = model.generate('Stop here', { maxTokens: 24, temperature: 0, ignoreEos: true, stop: [stop], stream: true });
    let streamed = 0;
    for await (const c of s) streamed += c.tokens.length;
    expect((await s.result).tokens).toEqual(want);
    expect(streamed).toBe(kept);

    // The cache keeps the prompt and the kept ids, none past the stop: a prompt continuing with
    // every greedy id reuses exactly those.
    const again = await model.generate([...r.promptIds, ...full.tokens], { maxTokens: 1, temperature: 0 });
    expect(again.usage.cachedTokens).toBe(r.promptIds.length + kept);

    const messages = [{ role: 'user' as const, content: 'Stop here' }];
    const chatFull = await model.chat.completions.create({ messages, max_tokens: 24, temperature: 0 });
    expect(chatFull.usage.completion_tokens).toBeGreaterThan(8);
    const chatStop = chatFull.choices[0].message.content!.slice(2, 5);
    const c = await model.chat.completions.create({ messages, max_tokens: 24, temperature: 0, stop: [chatStop] });
    const g = await model.generate(model.encode(model.renderChat(messages), { addSpecialTokens: false }), { maxTokens: 24, temperature: 0, stop: [chatStop] });
    expect(c.choices[0].finish_reason).toBe('stop');
    expect(decode(g.tokens)).toContain(chatStop);
    expect(decode(g.tokens.slice(0, -1))).not.toContain(chatStop);
    expect(c.usage.completion_tokens).toBe(g.tokens.length);
  });

  it('an abort rejects with AbortError and leaves the model usable', async () => {
    const want = await model.generate('Abort me', { maxTokens: 20, temperature: 0, ignoreEos: true });
    const ac = new AbortController();
    const s = model.generate('Abort me', { maxTokens: 200, stream: true, temperature: 0, ignoreEos: true, signal: ac.signal, readEvery: 2 });
    const seen: string[] = [];
    await expect(
      (async () => {
        for await (const c of s) {
          seen.push(c.text);
          ac.abort();
        }
      })(),
    ).rejects.toMatchObject({ name: 'AbortError' });
    expect(seen.length).toBe(1);
    const again = await model.generate('Abort me', { maxTokens: 20, temperature: 0, ignoreEos: true });
    expect(again.tokens).toEqual(want.tokens);
  });

  it('two calls at once are queued, not interleaved', async () => {
    const a0 = await model.generate('First prompt', { maxTokens: 10, temperature: 0, ignoreEos: true });
    const b0 = await model.generate('Second one', { maxTokens: 10, temperature: 0, ignoreEos: true });
    const [a, b] = await Promise.all([
      model.generate('First prompt', { maxTokens: 10, temperature: 0, ignoreEos: true }),
      model.generate('Second one', { maxTokens: 10, temperature: 0, ignoreEos: true }),
    ]);
    expect(a.tokens).toEqual(a0.tokens);
    expect(b.tokens).toEqual(b0.tokens);
  });

  it("stops at an end-of-sequence id from generation_config.json, which is not in the result", async () => {
    const ids = model.encode('End early');
    const greedy = llamaReferenceGreedy(parseLlamaConfig(tiny.config), tiny.weights, ids, 8);
    const eos = greedy[5];
    const m2 = await writeTinyLlama(join(dir, 'eos'), { modelType: 'llama', tokenizer: 'llama2', maxPositions: 256, seed: 31, generationConfig: { eos_token_id: [2, eos] } });
    const lm = await LlmModel.load(m2.dir, { dtype: 'f32', kv: 'f32', context: ctx });
    try {
      const r = await lm.generate('End early', { maxTokens: 8, temperature: 0 });
      expect(r.finishReason).toBe('stop');
      expect(r.tokens).toEqual(greedy.slice(0, greedy.indexOf(eos)));
    } finally {
      lm.dispose();
    }
  });

  it('repeats create nothing new on the GPU: no buffers, uniforms, bind groups or pipelines per token', async () => {
    await model.generate('Steady state', { maxTokens: 16, temperature: 0.7, seed: 1, ignoreEos: true });
    const before = ctx.stats();
    await model.generate('Steady state', { maxTokens: 16, temperature: 0.7, seed: 1, ignoreEos: true });
    expect(ctx.stats()).toEqual(before);
  });
});

describe('chat.completions', () => {
  it('returns an OpenAI-shaped completion, and a follow-up turn reuses the cached prefix', async () => {
    const messages = [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'Say something.' },
    ];
    const c = await model.chat.completions.create({ messages, max_tokens: 8, temperature: 0 });
    expect(c.object).toBe('chat.completion');
    expect(c.choices[0].message.role).toBe('assistant');
    expect(typeof c.choices[0].message.content).toBe('string');
    expect(['stop', 'length']).toContain(c.choices[0].finish_reason);
    expect(c.usage.total_tokens).toBe(c.usage.prompt_tokens + c.usage.completion_tokens);
    const next = await model.chat.completions.create({
      messages: [...messages, { role: 'assistant', content: c.choices[0].message.content }, { role: 'user', content: 'More.' }],
      max_tokens: 4,
      temperature: 0,
    });
    // The system and first user turn are rendered identically: their keys and values are kept.
    expect(next.usage.prompt_tokens_details.cached_tokens).toBeGreaterThan(10);
  });

  it('streams chunks: a role delta, content deltas, then finish_reason with usage', async () => {
    const chunks = [];
    for await (const ch of model.chat.completions.create({ messages: [{ role: 'user', content: 'Hi' }], max_tokens: 6, temperature: 0, stream: true })) chunks.push(ch);
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    const last = chunks[chunks.length - 1];
    expect(last.choices[0].finish_reason).not.toBeNull();
    expect(last.usage?.completion_tokens).toBeGreaterThan(0);
    const text = chunks.map((c) => c.choices[0].delta.content ?? '').join('');
    const whole = await model.chat.completions.create({ messages: [{ role: 'user', content: 'Hi' }], max_tokens: 6, temperature: 0 });
    expect(text).toBe(whole.choices[0].message.content);
  });

  it("truncation 'auto' drops the oldest turns to fit the context; 'disabled' is an error", async () => {
    const long = Array.from({ length: 12 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: 'word '.repeat(30) + i }));
    await expect(model.chat.completions.create({ messages: long, max_tokens: 2 })).rejects.toMatchObject({ code: 'CONTEXT_FULL' });
    const c = await model.chat.completions.create({ messages: long, max_tokens: 2, truncation: 'auto' });
    expect(c.usage.prompt_tokens).toBeLessThan(model.contextLength);
  });
});

describe('bad input', () => {
  it('each gets a one-line error naming what was wrong', async () => {
    await expect(model.generate('x', { maxTokens: 0 })).rejects.toMatchObject({ code: 'BAD_OPTION', message: expect.stringContaining('maxTokens') });
    await expect(model.generate('x', { maxTokens: -3 })).rejects.toMatchObject({ code: 'BAD_OPTION' });
    await expect(model.generate('x', { temperature: -1 })).rejects.toMatchObject({ code: 'BAD_OPTION', message: expect.stringContaining('temperature') });
    await expect(model.generate('word '.repeat(400))).rejects.toMatchObject({ code: 'CONTEXT_FULL', message: expect.stringContaining('context of 256') });
    const plain = await writeTinyLlama(join(dir, 'plain'), { modelType: 'llama', tokenizer: 'llama2', seed: 5 });
    const lm = await LlmModel.load(plain.dir, { dtype: 'f32', context: ctx });
    try {
      await expect(lm.chat.completions.create({ messages: [{ role: 'user', content: 'hi' }] })).rejects.toMatchObject({ code: 'NO_CHAT_TEMPLATE' });
      expect((await lm.generate('plain generate still works', { maxTokens: 2 })).tokens.length).toBeGreaterThan(0);
    } finally {
      lm.dispose();
    }
  });

  it('a bad checkpoint or config fails the load and leaves nothing on the GPU', async () => {
    const before = ctx.stats().ownedBuffers;
    const missing = await writeTinyLlama(join(dir, 'missing'), { modelType: 'llama', tokenizer: 'llama2', omit: ['model.layers.1.mlp.down_proj.weight'] });
    await expect(LlmModel.load(missing.dir, { context: ctx })).rejects.toMatchObject({ code: 'WEIGHTS_MISSING', message: expect.stringContaining('model.layers.1.mlp.down_proj.weight') });
    const arch = await writeTinyLlama(join(dir, 'arch'), { modelType: 'llama', tokenizer: 'llama2', extraConfig: { architectures: ['LlamaForSequenceClassification'] } });
    await expect(LlmModel.load(arch.dir, { context: ctx })).rejects.toThrow(/LlamaForSequenceClassification/);
    const rope = await writeTinyLlama(join(dir, 'rope'), { modelType: 'llama', tokenizer: 'llama2', extraConfig: { rope_scaling: { rope_type: 'yarn', factor: 4 } } });
    await expect(LlmModel.load(rope.dir, { context: ctx })).rejects.toThrow(/rope_scaling.*"yarn"/);
    const act = await writeTinyLlama(join(dir, 'act'), { modelType: 'llama', tokenizer: 'llama2', extraConfig: { hidden_act: 'gelu' } });
    await expect(LlmModel.load(act.dir, { context: ctx })).rejects.toThrow(/hidden_act "gelu"/);
    const shape = await writeTinyLlama(join(dir, 'shape'), { modelType: 'llama', tokenizer: 'llama2', extraConfig: { intermediate_size: 96 } });
    await expect(LlmModel.load(shape.dir, { context: ctx })).rejects.toMatchObject({ code: 'WEIGHTS_SHAPE' });
    expect(ctx.stats().ownedBuffers).toBe(before);
  });

  it('dispose frees the weights and the cache', async () => {
    const cycle = async () => {
      const lm = await LlmModel.load(tiny.dir, { dtype: 'q4', kv: 'int8', context: ctx });
      expect(ctx.stats().ownedBuffers).toBeGreaterThan(before);
      await lm.generate('x', { maxTokens: 3 });
      lm.dispose();
      return lm;
    };
    let before = 0;
    await cycle(); // the device's shared placeholder buffers are made on first use and kept
    before = ctx.stats().ownedBuffers;
    const lm = await cycle();
    expect(ctx.stats().ownedBuffers).toBe(before);
    await expect(lm.generate('x')).rejects.toMatchObject({ code: 'DISPOSED' });
  });
});

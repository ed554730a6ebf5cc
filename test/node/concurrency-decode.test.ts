// Concurrent generate calls sharing decode forwards (LlmLoadOptions.concurrency,
// src/api/concurrent-generate.ts): calls made together on a model loaded with concurrency B run as
// one batch (one forward per step for all), and each call gives exactly the tokens it gives alone
// on a model without concurrency (greedy, f32 and q4; seeded sampling), streams its own chunks,
// and is aborted alone; calls past B wait for the next batch; dispose() rejects running calls.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { LlmModel, type GenerateOptions, type GenerationResult } from '../../src/api/llm.ts';
import { main } from '../../src/cli/main.ts';
import type { ServeIO } from '../../src/cli/serve.ts';
import { BatchDecoder } from '../../src/generate/batch.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import type { LinearDType } from '../../src/ops/linear.ts';
import type { RunningServer } from '../../src/serve/node.ts';
import { writeTinyLlama, type TinyLlama } from '../../fixtures/tiny-llama.ts';

let dir: string;
let ctx: GpuContext;
let tiny: TinyLlama;

const CHATML = "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'webq-concur-'));
  ctx = await GpuContext.create();
  tiny = await writeTinyLlama(join(dir, 'm'), { modelType: 'llama', tokenizer: 'llama2', chatTemplate: CHATML, maxPositions: 128, seed: 41 });
});

afterAll(async () => {
  ctx?.dispose();
  await rm(dir, { recursive: true, force: true });
});

const PROMPTS = ['Once upon a time', 'The cat', 'A long time ago in a land far away there lived'];

/** Forwards recorded on the context (one-sequence and batched prefills and decode steps). */
function countForwards(): { count: () => number; restore: () => void } {
  const spy = vi.spyOn(ctx, 'record');
  const count = () => spy.mock.calls.filter(([o]) => /^llm:(batch-)?(prefill|decode)$/.test(o?.label ?? '')).length;
  return { count, restore: () => spy.mockRestore() };
}

async function solo(lm: LlmModel, opts: GenerateOptions[]): Promise<GenerationResult[]> {
  const out: GenerationResult[] = [];
  for (const [i, o] of opts.entries()) out.push(await lm.generate(PROMPTS[i], o));
  return out;
}

describe('concurrent generate calls share decode forwards', () => {
  const DTYPES: LinearDType[] = ['f32', 'q4'];
  for (const dtype of DTYPES) {
    it(`${dtype}: 3 calls with different prompts and maxTokens run as one batch, each giving its solo tokens; a stream gets its own chunks`, async () => {
      const alone = await LlmModel.load(tiny.dir, { dtype, context: ctx });
      const lm = await LlmModel.load(tiny.dir, { dtype, context: ctx, concurrency: 3 });
      const runs = vi.spyOn(BatchDecoder.prototype, 'generate');
      try {
        const opts: GenerateOptions[] = [6, 11, 15].map((maxTokens) => ({ maxTokens, temperature: 0, ignoreEos: true }));
        const want = await solo(alone, opts);
        expect(runs).not.toHaveBeenCalled();
        const fw = countForwards();
        const stream = lm.generate(PROMPTS[1], { ...opts[1], stream: true });
        const chunks: string[] = [];
        const streamed = (async () => {
          for await (const c of stream) chunks.push(c.text);
          return stream.result;
        })();
        const got = await Promise.all([lm.generate(PROMPTS[0], opts[0]), streamed, lm.generate(PROMPTS[2], opts[2])]);
        const forwards = fw.count();
        fw.restore();
        expect(runs).toHaveBeenCalledTimes(1);
        expect(got.map((r) => r.tokens)).toEqual(want.map((r) => r.tokens));
        expect(got.map((r) => r.text)).toEqual(want.map((r) => r.text));
        expect(got.map((r) => r.usage.completionTokens)).toEqual([6, 11, 15]);
        // 3 prefills + 14 shared steps, where one after another takes 6 + 11 + 15 = 32 forwards.
        const sum = got.reduce((n, r) => n + r.tokens.length, 0);
        expect(forwards).toBe(3 + 15 - 1);
        expect(forwards).toBeLessThan(sum);
        expect(chunks.length).toBeGreaterThan(1);
        expect(chunks.join('')).toBe(want[1].text);
      } finally {
        runs.mockRestore();
        lm.dispose();
        alone.dispose();
      }
    });
  }

  it('seeded sampling equals solo; an aborted call leaves the others unchanged; calls past B run in the next batch; chat calls share too', async () => {
    const alone = await LlmModel.load(tiny.dir, { dtype: 'q8', context: ctx });
    const lm = await LlmModel.load(tiny.dir, { dtype: 'q8', context: ctx, concurrency: 2 });
    const runs = vi.spyOn(BatchDecoder.prototype, 'generate');
    try {
      const sampled: GenerateOptions[] = [5, 6, 7].map((seed) => ({ maxTokens: 10, temperature: 1.3, topK: 20, seed, ignoreEos: true }));
      const want = await solo(alone, sampled);
      // Three calls on concurrency 2: the first two decode together, the third in the next batch.
      const got = await Promise.all(PROMPTS.map((p, i) => lm.generate(p, sampled[i])));
      expect(runs).toHaveBeenCalledTimes(2);
      expect(got.map((r) => r.tokens)).toEqual(want.map((r) => r.tokens));

      // Abort one call after its first chunk: it rejects, the other keeps its solo tokens.
      const greedy: GenerateOptions[] = [12, 12].map((maxTokens) => ({ maxTokens, temperature: 0, ignoreEos: true, readEvery: 2 }));
      const base = await solo(alone, greedy);
      const ac = new AbortController();
      const doomed = lm.generate(PROMPTS[0], { ...greedy[0], stream: true, signal: ac.signal });
      const aborted = (async () => {
        for await (const _ of doomed) ac.abort();
      })();
      const other = lm.generate(PROMPTS[1], greedy[1]);
      await expect(aborted).rejects.toThrow(/abort/i);
      expect((await other).tokens).toEqual(base[1].tokens);

      const messages = [{ role: 'user' as const, content: 'Name a colour.' }];
      const chatAlone = await alone.chat.completions.create({ messages, max_tokens: 8, temperature: 0 });
      runs.mockClear();
      const two = await Promise.all([1, 2].map(() => lm.chat.completions.create({ messages, max_tokens: 8, temperature: 0 })));
      expect(runs).toHaveBeenCalledTimes(1);
      expect(two.map((r) => r.choices[0].message.content)).toEqual([0, 1].map(() => chatAlone.choices[0].message.content));
      await expect(LlmModel.load(tiny.dir, { context: ctx, concurrency: 17 })).rejects.toThrow(/concurrency must be an integer from 1 to 16, got 17/);
    } finally {
      runs.mockRestore();
      lm.dispose();
      alone.dispose();
    }
  });

  it('dispose() while calls decode rejects them (no hang)', async () => {
    const lm = await LlmModel.load(tiny.dir, { dtype: 'f32', context: ctx, concurrency: 2 });
    const opts = { maxTokens: 100, temperature: 0, ignoreEos: true, readEvery: 2, stream: true as const };
    const a = lm.generate(PROMPTS[0], opts);
    const b = lm.generate(PROMPTS[1], { ...opts, stream: false });
    const readA = (async () => {
      for await (const _ of a) lm.dispose();
    })();
    await expect(readA).rejects.toThrow(/disposed/);
    await expect(b).rejects.toThrow(/disposed/);
  });

  it('webq serve --concurrency 3: two requests made while another decodes share the next batch, each equal to the model alone', async () => {
    const alone = await LlmModel.load(tiny.dir, { dtype: 'q8', context: ctx });
    const runs = vi.spyOn(BatchDecoder.prototype, 'generate');
    let stop!: () => void;
    let listening!: (s: RunningServer) => void;
    const ready = new Promise<RunningServer>((r) => (listening = r));
    const io: ServeIO = { stdout: () => {}, stderr: () => {}, gpuContext: ctx, onListening: listening, stop: new Promise((r) => (stop = () => r('test'))) };
    const exited = main(['serve', `chat=${tiny.dir}`, '--dtype', 'q8', '--port', '0', '--concurrency', '3'], io);
    try {
      const server = await Promise.race([ready, exited.then((code) => Promise.reject(new Error(`serve exited ${code}`)))]);
      const asks = ['Tell a story.', 'Name a colour.', 'Count to three.'].map((content, i) => ({ messages: [{ role: 'user' as const, content }], max_tokens: [100, 6, 10][i], temperature: 0 }));
      const want = [];
      for (const a of asks) want.push((await alone.chat.completions.create(a)).choices[0].message.content);
      const post = (body: object) => fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ model: 'chat', ...body }) });
      // The first request streams; once its first chunk is here it decodes, and the next two
      // (made together) gather into the next batch while it runs (a timing-free way to group them).
      const first = await post({ ...asks[0], stream: true });
      const reader = first.body!.getReader();
      let sse = new TextDecoder().decode((await reader.read()).value);
      const got = await Promise.all(asks.slice(1).map((a) => post(a).then((r) => r.json())));
      for (let r = await reader.read(); !r.done; r = await reader.read()) sse += new TextDecoder().decode(r.value);
      const streamed = sse.split('\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6)).choices[0]?.delta?.content ?? '').join('');
      expect(runs).toHaveBeenCalledTimes(2);
      expect(runs.mock.calls.map((c) => c[1].length)).toEqual([1, 2]);
      expect([streamed, ...got.map((r) => r.choices[0].message.content)]).toEqual(want);
    } finally {
      stop();
      expect(await exited).toBe(0);
      runs.mockRestore();
      alone.dispose();
    }
  });
});

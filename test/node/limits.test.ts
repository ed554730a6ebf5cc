// The limits a caller sets on a loaded model (src/api/limits.ts): each refusal is a LimitError with
// its code and the numbers, arrives before any GPU work for size limits, leaves the model working,
// and leaves nothing held (the context's buffers are the same before and after).
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BertModel } from '../../src/api/bert.ts';
import { LimitError } from '../../src/api/limits.ts';
import { LlmModel } from '../../src/api/llm.ts';
import { WebqError } from '../../src/errors.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { GREEDY, RUNTIME_PROMPT, TINY_CHAT_LLAMA } from '../helpers/llm-fixture.ts';
import { writeTinyBert } from '../../fixtures/tiny-bert.ts';
import { writeTinyLlama } from '../../fixtures/tiny-llama.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir('webq-limits-');
let ctx: GpuContext;
let llamaDir: string;
let bertDir: string;

beforeAll(async () => {
  ctx = await GpuContext.create();
  llamaDir = (await writeTinyLlama(join(tmp.dir, 'llama'), TINY_CHAT_LLAMA)).dir;
  bertDir = (await writeTinyBert(join(tmp.dir, 'bert'))).dir;
});
afterAll(() => ctx?.dispose());

async function code(p: Promise<unknown>): Promise<string> {
  const e = await p.then(() => new Error('resolved'), (x: unknown) => x);
  if (!(e instanceof WebqError)) throw e;
  return e.code;
}

const LONG = { maxTokens: 120, temperature: 0, ignoreEos: true };

describe('LlmModel limits', () => {
  let m: LlmModel;
  beforeAll(async () => {
    m = await LlmModel.load(llamaDir, { dtype: 'q4', context: ctx, limits: { maxInputTokens: 12, maxQueue: 2 } });
    await m.generate(RUNTIME_PROMPT, GREEDY); // compiles the kernels
  });
  afterAll(() => m?.dispose());

  it('maxInputTokens refuses a longer prompt (and a longer chat) with INPUT_TOO_LONG, naming both numbers', async () => {
    const long = 'one two three four five six seven eight nine ten eleven twelve thirteen';
    const e = await m.generate(long, GREEDY).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(LimitError);
    expect((e as LimitError).code).toBe('INPUT_TOO_LONG');
    expect((e as LimitError).message).toMatch(/the prompt is \d+ tokens, more than limits\.maxInputTokens \(12\)/);
    expect(await code(m.chat.completions.create({ messages: [{ role: 'user', content: long }], max_tokens: 2 }))).toBe('INPUT_TOO_LONG');
    expect(await code(m.logits(long))).toBe('INPUT_TOO_LONG');
    expect((await m.generate(RUNTIME_PROMPT, GREEDY)).tokens).toHaveLength(GREEDY.maxTokens);
  });

  it('maxQueue: the call past it is BUSY at once; the queue goes on', async () => {
    const before = ctx.stats();
    const a = m.generate(RUNTIME_PROMPT, LONG);
    const b = m.generate(RUNTIME_PROMPT, GREEDY);
    const t0 = performance.now();
    expect(await code(m.generate(RUNTIME_PROMPT, GREEDY))).toBe('BUSY');
    expect(performance.now() - t0).toBeLessThan(1000);
    expect((await a).tokens).toHaveLength(LONG.maxTokens);
    expect((await b).tokens).toHaveLength(GREEDY.maxTokens);
    expect((await m.generate(RUNTIME_PROMPT, GREEDY)).tokens).toHaveLength(GREEDY.maxTokens);
    expect(ctx.stats().ownedBytes).toBe(before.ownedBytes);
  });

  it('timeoutMs ends a generation with TIMEOUT (running, or waiting its turn); the next call works', async () => {
    const running = m.generate(RUNTIME_PROMPT, { ...LONG, timeoutMs: 30 });
    const waiting = m.generate(RUNTIME_PROMPT, { ...GREEDY, timeoutMs: 1 });
    expect(await code(waiting)).toBe('TIMEOUT');
    const e = await running.catch((x: unknown) => x);
    expect((e as LimitError).code).toBe('TIMEOUT');
    expect((e as LimitError).message).toContain('timeoutMs of 30 ms');
    const s = m.generate(RUNTIME_PROMPT, { ...LONG, timeoutMs: 30, stream: true });
    expect(await code((async () => {
      for await (const _ of s) {
        // read until the deadline
      }
    })())).toBe('TIMEOUT');
    expect((await m.generate(RUNTIME_PROMPT, GREEDY)).tokens).toHaveLength(GREEDY.maxTokens);
  });

  it('bad limits are BAD_OPTION at load and per call', async () => {
    for (const limits of [{ maxQueue: 0 }, { maxInputTokens: 1.5 }, { timeoutMs: -1 }, { maxBatch: Number.NaN }]) {
      expect(await code(LlmModel.load(llamaDir, { context: ctx, limits }))).toBe('BAD_OPTION');
    }
    expect(await code(m.generate(RUNTIME_PROMPT, { ...GREEDY, timeoutMs: 0 }))).toBe('BAD_OPTION');
  });
});

describe('BertModel limits', () => {
  let m: BertModel;
  const texts = (n: number) => Array.from({ length: n }, (_, i) => `text number ${i} about nothing much`);
  beforeAll(async () => {
    m = await BertModel.load(bertDir, { dtype: 'q8', context: ctx, limits: { maxBatch: 8, maxInputTokens: 200, maxQueue: 2 } });
    await m.embed(texts(2));
  });
  afterAll(() => m?.dispose());

  it('maxBatch and maxInputTokens refuse before tokenizing or uploading', async () => {
    const before = ctx.stats();
    expect(await code(m.embed(texts(9)))).toBe('BATCH_TOO_LARGE');
    expect(await code(m.hidden(texts(9)))).toBe('BATCH_TOO_LARGE');
    const e = (await m.embed(texts(8).map((t) => t.repeat(3))).catch((x: unknown) => x)) as LimitError;
    expect(e.code).toBe('INPUT_TOO_LONG');
    expect(e.message).toMatch(/8 texts padded to \d+ tokens are \d+ tokens, more than limits\.maxInputTokens \(200\)/);
    expect(ctx.stats()).toEqual(before);
    expect(await m.embed(texts(8))).toHaveLength(8);
  });

  it('maxQueue: calls past it are BUSY; timeoutMs rejects with TIMEOUT and the buffers still come back', async () => {
    const running = [m.embed(texts(8)), m.embed(texts(8))];
    expect(await code(m.embed(texts(1)))).toBe('BUSY');
    await Promise.all(running);
    const before = ctx.stats(); // two forwards at once took two sets of pooled buffers
    expect(await code(m.embed(texts(8), { timeoutMs: 0.01 }))).toBe('TIMEOUT');
    await new Promise((r) => setTimeout(r, 500)); // the timed-out forward ends on its own
    expect(await m.embed(texts(8))).toHaveLength(8);
    expect(ctx.stats()).toEqual(before);
  });
});

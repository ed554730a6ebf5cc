// Device loss in Node (Dawn on lavapipe), as a driver reset or a backgrounded tab makes it: the
// device is destroyed in the middle of a generation and of an embed batch (right after the batch's
// forward is submitted). The call in flight must reject with a GPUDeviceError; after recover()
// (or by itself with autoRecover) the next call must give exactly the tokens / vectors it gave
// before the loss, a chat goes on from its messages, a delta applied before the loss is applied
// again, and the new device holds as many bytes as the old one did (nothing uploaded twice).
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BertModel } from '../../src/api/bert.ts';
import { LlmModel } from '../../src/api/llm.ts';
import { GPUDeviceError } from '../../src/errors.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { makeDeltaFixtures, type DeltaFixtures } from '../helpers/delta-fixtures.ts';
import { GREEDY, RUNTIME_PROMPT, TINY_CHAT_LLAMA } from '../helpers/llm-fixture.ts';
import { writeTinyBert } from '../../fixtures/tiny-bert.ts';
import { writeTinyLlama } from '../../fixtures/tiny-llama.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir('webq-recover-');
const TEXTS = Array.from({ length: 24 }, (_, i) => `text ${i}: ${'the quick brown fox jumps '.repeat(1 + (i % 4))}`);
const LONG = { maxTokens: 200, temperature: 0, ignoreEos: true };
const CHAT = [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Hello! Who are you?' }] as const;

let llamaDir: string;
let bertDir: string;
let fx: DeltaFixtures;

beforeAll(async () => {
  llamaDir = (await writeTinyLlama(join(tmp.dir, 'llama'), TINY_CHAT_LLAMA)).dir;
  bertDir = (await writeTinyBert(join(tmp.dir, 'bert'), { layers: 2, maxPositions: 64 })).dir;
  fx = await makeDeltaFixtures(join(tmp.dir, 'fx'));
});

/** Destroys `ctx`'s device right after its next submit: the work in flight then never completes. */
function loseAfterNextSubmit(ctx: GpuContext): void {
  const q = ctx.dev.gpu.queue;
  const submit = q.submit.bind(q);
  q.submit = (buffers) => {
    submit(buffers);
    ctx.dev.gpu.destroy();
  };
}

async function rejection(p: Promise<unknown>): Promise<GPUDeviceError> {
  const e = await p.then(() => new Error('resolved'), (x: unknown) => x);
  expect(e).toBeInstanceOf(GPUDeviceError);
  return e as GPUDeviceError;
}

function maxDiff(a: Float32Array[], b: Float32Array[]): number {
  let m = 0;
  a.forEach((row, i) => row.forEach((x, k) => (m = Math.max(m, Math.abs(x - b[i][k])))));
  return m;
}

describe('LlmModel after a device loss', () => {
  let model: LlmModel;
  afterAll(() => model?.dispose());

  it('a generation in flight rejects; recover() brings back the same greedy tokens and chat reply; bytes as before', async () => {
    model = await LlmModel.load(llamaDir, { dtype: 'q4', kv: 'f32' });
    const want = await model.generate(RUNTIME_PROMPT, GREEDY);
    const wantChat = await model.chat.completions.create({ messages: [...CHAT], max_tokens: 12, temperature: 0 });
    const bytes = model.ctx.stats().ownedBytes;
    const gen0 = model.ctx.generation;

    const s = model.generate(RUNTIME_PROMPT, { ...LONG, stream: true });
    let got = 0;
    const err = await rejection(
      (async () => {
        for await (const c of s) {
          got += c.tokens.length;
          if (model.ctx.dev.error === null) model.ctx.dev.gpu.destroy(); // mid-generation, steps in flight
        }
      })(),
    );
    expect(err.code).toBe('DEVICE_LOST');
    expect(got).toBeLessThan(LONG.maxTokens);
    await rejection(s.result);
    // Without recover(), calls keep failing with the device's error (nothing hangs).
    expect((await rejection(model.generate(RUNTIME_PROMPT, GREEDY))).code).toBe('DEVICE_LOST');

    const t0 = performance.now();
    expect(await model.recover()).toBe(true);
    const ms = performance.now() - t0;
    expect(model.ctx.generation).toBe(gen0 + 1);
    const after = await model.generate(RUNTIME_PROMPT, GREEDY);
    expect(after.tokens).toEqual(want.tokens);
    expect(model.ctx.stats().ownedBytes).toBe(bytes);
    expect(after.usage.cachedTokens).toBe(0); // the KV cache was rebuilt by prefilling again
    const chat = await model.chat.completions.create({ messages: [...CHAT], max_tokens: 12, temperature: 0 });
    expect(chat.choices[0].message.content).toBe(wantChat.choices[0].message.content);
    expect(await model.recover()).toBe(false); // nothing to do now
    console.log(`llm: lost after ${got} tokens; recover() took ${ms.toFixed(0)} ms; ${bytes} bytes re-uploaded`);
  }, 300_000);
});

describe('BertModel after a device loss', () => {
  it('an embed batch in flight rejects; recover() brings back the same vectors', async () => {
    const model = await BertModel.load(bertDir, { dtype: 'q8' });
    try {
      const want = await model.embed(TEXTS);
      const bytes = model.ctx.stats().ownedBytes;
      loseAfterNextSubmit(model.ctx);
      expect((await rejection(model.embed(TEXTS))).code).toBe('DEVICE_LOST');
      expect(await model.recover()).toBe(true);
      const got = await model.embed(TEXTS);
      expect(maxDiff(got, want)).toBe(0);
      expect(model.ctx.stats().ownedBytes).toBe(bytes);
    } finally {
      model.dispose();
    }
  }, 300_000);

  it('a delta applied before the loss is applied again: same version, same vectors', async () => {
    const model = await BertModel.load(fx.v1, { autoRecover: true });
    try {
      await model.applyDelta(join(fx.served, 'delta.safetensors'));
      const version = model.version;
      const want = await model.embed(TEXTS.slice(0, 4));
      loseAfterNextSubmit(model.ctx);
      await rejection(model.embed(TEXTS.slice(0, 4)));
      // autoRecover: the next call waits for the recovery, then runs.
      const got = await model.embed(TEXTS.slice(0, 4));
      expect(model.version).toBe(version);
      expect(maxDiff(got, want)).toBe(0);
      const v2 = await BertModel.load(fx.v2, { context: model.ctx });
      expect(maxDiff(await v2.embed(TEXTS.slice(0, 4)), want)).toBe(0);
      v2.dispose();
    } finally {
      model.dispose();
    }
  }, 300_000);
});

describe('models sharing one context', () => {
  it('autoRecover on one model moves the context; the others say DEVICE_LOST until their own recover()', async () => {
    const ctx = await GpuContext.create();
    const llm = await LlmModel.load(llamaDir, { dtype: 'q4', kv: 'f32', context: ctx, autoRecover: true });
    const bert = await BertModel.load(bertDir, { dtype: 'q8', context: ctx });
    try {
      const wantTokens = (await llm.generate(RUNTIME_PROMPT, GREEDY)).tokens;
      const wantVectors = await bert.embed(TEXTS);
      loseAfterNextSubmit(ctx);
      await rejection(bert.embed(TEXTS));
      // The Llama recovers by itself (and the context with it); its next call waits for that.
      expect((await llm.generate(RUNTIME_PROMPT, GREEDY)).tokens).toEqual(wantTokens);
      expect(ctx.generation).toBe(1);
      const stale = await rejection(bert.embed(TEXTS));
      expect(stale.code).toBe('DEVICE_LOST');
      expect(stale.message).toContain('recover()');
      expect(await bert.recover()).toBe(true); // the device was already new: only its weights moved
      expect(ctx.generation).toBe(1);
      expect(maxDiff(await bert.embed(TEXTS), wantVectors)).toBe(0);
      bert.dispose();
      llm.dispose();
      expect(ctx.stats().ownedBytes).toBeLessThanOrEqual(64); // the context's own placeholders (4 x 16 bytes) at most
    } finally {
      bert.dispose();
      llm.dispose();
      ctx.dispose();
    }
  }, 300_000);
});

// webq's own memory estimate (src/models/memory-estimate.ts) against what loads really hold, and
// its checks: a context or a batch the device's buffer limits cannot hold is refused before
// anything is uploaded, naming the field and what fits; `webq info` prints the estimate.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BertModel } from '../../src/api/bert.ts';
import { LlmModel } from '../../src/api/llm.ts';
import { main } from '../../src/cli/main.ts';
import { WebqError } from '../../src/errors.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { parseBertConfig } from '../../src/models/config.ts';
import { parseLlamaConfig } from '../../src/models/llama/llama-config.ts';
import { checkEstimate, estimateBert, estimateLlm } from '../../src/models/memory-estimate.ts';
import type { LinearDType } from '../../src/ops/linear.ts';
import { TINY_CHAT_LLAMA } from '../helpers/llm-fixture.ts';
import { writeTinyBert, type TinyBert } from '../../fixtures/tiny-bert.ts';
import { writeTinyLlama, type TinyLlama } from '../../fixtures/tiny-llama.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir('webq-estimate-');
let ctx: GpuContext;
let llama: TinyLlama;
let bert: TinyBert;

beforeAll(async () => {
  ctx = await GpuContext.create();
  llama = await writeTinyLlama(join(tmp.dir, 'llama'), { ...TINY_CHAT_LLAMA, hidden: 128, intermediate: 256 });
  bert = await writeTinyBert(join(tmp.dir, 'bert'), { hidden: 64, heads: 2, intermediate: 128 });
});
afterAll(() => ctx?.dispose());

describe('the estimate against real loads', () => {
  it('LLM: weights within 10% of what a load uploads (f32, f16, q8, q4), the KV cache exactly', async () => {
    const cfg = parseLlamaConfig(llama.config);
    const rows: string[] = [];
    for (const dtype of ['f32', 'q8', 'q4', ...(ctx.caps.f16 ? ['f16'] : [])] as LinearDType[]) {
      for (const kv of ['f32', 'int8'] as const) {
        const m = await LlmModel.load(llama.dir, { context: ctx, dtype, kv, contextLength: 128 });
        const e = estimateLlm(cfg, { dtype, context: 128, kv, f16: ctx.caps.f16 });
        rows.push(`${dtype}/${kv}: weights ${e.weights} estimated, ${m.weightBytes} loaded (${((e.weights / m.weightBytes - 1) * 100).toFixed(1)}%)`);
        expect(Math.abs(e.weights / m.weightBytes - 1)).toBeLessThan(0.1);
        expect(e.kv_cache - 128 * cfg.headDim * 4).toBe(m.kvBytes); // the estimate adds the RoPE table
        m.dispose();
      }
    }
    console.log(rows.join('\n'));
  });

  it('BERT: weights within 10% of what a load uploads', async () => {
    const cfg = parseBertConfig(bert.config);
    for (const dtype of ['f32', 'q8', 'q4'] as LinearDType[]) {
      const m = await BertModel.load(bert.dir, { context: ctx, dtype });
      const e = estimateBert(cfg, { dtype, tokens: 64, f16: ctx.caps.f16 });
      console.log(`bert ${dtype}: weights ${e.weights} estimated, ${m.weightBytes} loaded`);
      expect(Math.abs(e.weights / m.weightBytes - 1)).toBeLessThan(0.1);
      m.dispose();
    }
  });
});

describe('checks before anything is allocated', () => {
  it('a context whose prefill activations exceed the buffer limit: BUFFER_TOO_LARGE naming intermediate_size and the context that fits', () => {
    const cfg = parseLlamaConfig({ ...llama.config, max_position_embeddings: 1 << 20 });
    const e = estimateLlm(cfg, { dtype: 'q4', context: 1 << 20, kv: 'int8', f16: false });
    const limits = { maxBufferSize: 1 << 30, maxStorageBufferBindingSize: 128 << 20 };
    let err: unknown;
    try {
      checkEstimate(e, limits, 'x/config.json', (n) => `load with contextLength ${n} or less`);
    } catch (x) {
      err = x;
    }
    expect(err).toBeInstanceOf(WebqError);
    expect((err as WebqError).code).toBe('BUFFER_TOO_LARGE');
    // [T, 2 x 256] f32 = 2048 bytes a position: 65536 positions fit 128 MiB.
    expect((err as WebqError).message).toContain('x/config.json: the widest prefill activation [1048576, 512] needs 2147483648 bytes (intermediate_size: 2048 bytes per position)');
    expect((err as WebqError).message).toContain('load with contextLength 65536 or less');
  });

  it('LlmModel.load with such a context refuses before uploading anything', async () => {
    const dir = join(tmp.dir, 'long');
    await writeTinyLlama(dir, { ...TINY_CHAT_LLAMA, hidden: 128, intermediate: 256, maxPositions: 1 << 22 });
    const before = ctx.stats();
    const limit = Math.min(ctx.caps.maxBufferSize, ctx.caps.maxStorageBufferBindingSize);
    const tooLong = Math.ceil(limit / (512 * (ctx.caps.f16 ? 2 : 4))) + 1;
    const e = await LlmModel.load(dir, { context: ctx, dtype: 'q4', kv: 'int8', contextLength: tooLong }).catch((x: unknown) => x);
    expect((e as WebqError).code).toBe('BUFFER_TOO_LARGE');
    expect(ctx.stats()).toEqual(before);
  });

  it('a BERT batch whose activations exceed the buffer limit is BATCH_TOO_LARGE before tokens reach the GPU', async () => {
    const m = await BertModel.load(bert.dir, { context: ctx, dtype: 'q8' });
    try {
      await m.embed(['warm up']);
      const before = ctx.stats();
      const perToken = 128 * (ctx.caps.f16 ? 2 : 4);
      const limit = Math.min(ctx.caps.maxBufferSize, ctx.caps.maxStorageBufferBindingSize);
      const n = Math.ceil(limit / perToken / 12) + 10; // texts of 12 tokens ([CLS] + 10 words + [SEP])
      const e = await m.embed(Array.from({ length: n }, () => 'the cat sat on the mat and the dog sat too')).catch((x: unknown) => x);
      expect((e as WebqError).code).toBe('BATCH_TOO_LARGE');
      expect((e as WebqError).message).toMatch(/embed\(\): the widest activation of \d+ tokens .* send at most \d+ tokens/);
      expect(ctx.stats()).toEqual(before);
    } finally {
      m.dispose();
    }
  });
});

it('webq info prints the estimate and the adapter check (text and JSON)', async () => {
  let out = '';
  const code = await main(['info', llama.dir], { stdout: (t) => void (out += t), stderr: () => undefined });
  expect(code).toBe(0);
  expect(out).toMatch(/memory estimate \(dtype q4, context 256, kv f16, f(16|32) activations\): weights [\d.]+ [KM]iB, KV cache [\d.]+ KiB, activations [\d.]+ [KM]iB; total/);
  expect(out).toMatch(/fits .* \(buffer limit/);
  out = '';
  await main(['info', llama.dir, '--json', '--dtype', 'q8', '--context', '64', '--no-gpu'], { stdout: (t) => void (out += t), stderr: () => undefined });
  const j = JSON.parse(out) as { memory: { dtype: string; tokens: number; weights: number; fits: null } };
  expect(j.memory).toMatchObject({ dtype: 'q8', tokens: 64, fits: null });
  expect(j.memory.weights).toBeGreaterThan(0);
});

// GGUF decoders end to end: tiny Llama (Q/K rows permuted by the converter), Qwen2 (biases, tied)
// and Qwen3 (q/k norms, head_dim) checkpoints written as GGUF by the independent writer in each
// type, loaded by LlmModel.load('x.gguf') with no other file, against the fp32 CPU reference
// (src/reference/llama.ts) run on the blocks' exact dequantization (computed by the writer).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LlmModel } from '../../src/api/llm.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { parseLlamaConfig } from '../../src/models/llama/llama-config.ts';
import { llamaReferenceForward } from '../../src/reference/llama.ts';
import type { GgmlTypeName } from '../helpers/gguf-quant.ts';
import { hfToGguf, vocabMetadata, type HfToGgufOptions } from '../helpers/gguf-writer.ts';
import { writeTinyLlama, type TinyLlamaOptions } from '../../fixtures/tiny-llama.ts';

let dir: string;
let ctx: GpuContext;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'webq-gguf-llm-'));
  ctx = await GpuContext.create();
});

afterAll(async () => {
  ctx?.dispose();
  await rm(dir, { recursive: true, force: true });
});

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) (ab += a[i] * b[i]), (aa += a[i] * a[i]), (bb += b[i] * b[i]);
  return ab / Math.sqrt(aa * bb);
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function prompt(n: number, V: number, seed = 7): number[] {
  let s = seed;
  return Array.from({ length: n }, () => (s = (s * 1103515245 + 12345) >>> 0) % V);
}

// Rows of 256 so every K-quant fits: hidden 256, 4 heads of 64, intermediate 512.
const SHAPE: TinyLlamaOptions = { hidden: 256, heads: 4, kvHeads: 2, intermediate: 512, layers: 2, vocab: 256, maxPositions: 128 };

const CASES: [string, TinyLlamaOptions, HfToGgufOptions][] = [
  ['llama F32', { modelType: 'llama', seed: 1 }, { linear: 'F32', output: 'F32' }],
  ['llama F16', { modelType: 'llama', seed: 2 }, { linear: 'F16', output: 'F16', embed: 'F16' }],
  ['llama Q8_0 with attention biases', { modelType: 'llama', attentionBias: true, seed: 3 }, { linear: 'Q8_0', output: 'Q8_0', embed: 'Q8_0' }],
  ['llama Q4_0, Q6_K head', { modelType: 'llama', seed: 4 }, { linear: 'Q4_0', embed: 'Q4_0' }],
  ['llama Q4_K_M-like (Q4_K, Q6_K v/down/head)', { modelType: 'llama', seed: 5 }, { linear: 'Q4_K', linearBy: { 'v_proj.weight': 'Q6_K', 'down_proj.weight': 'Q6_K' }, embed: 'Q4_K' }],
  ['llama Q8_0 with an F16 v_proj (a unit read as floats)', { modelType: 'llama', seed: 14 }, { linear: 'Q8_0', linearBy: { 'v_proj.weight': 'F16' } }],
  ['llama Q5_0 / Q4_1 / Q5_1', { modelType: 'llama', seed: 6 }, { linear: 'Q5_0', linearBy: { 'up_proj.weight': 'Q4_1', 'down_proj.weight': 'Q5_1' } }],
  ['llama Q5_K / Q3_K / Q2_K', { modelType: 'llama', seed: 7 }, { linear: 'Q5_K', linearBy: { 'gate_proj.weight': 'Q3_K', 'o_proj.weight': 'Q2_K' } }],
  ['qwen2 Q8_0 tied, biases', { modelType: 'qwen2', tied: true, seed: 8 }, { linear: 'Q8_0', embed: 'Q8_0' }],
  ['qwen2 Q4_0 tied', { modelType: 'qwen2', tied: true, seed: 9 }, { linear: 'Q4_0', embed: 'Q4_0' }],
  ['qwen2 Q4_K', { modelType: 'qwen2', seed: 10 }, { linear: 'Q4_K', embed: 'F16' }],
  ['qwen3 Q8_0 head_dim 32, no vocabulary', { modelType: 'qwen3', headDim: 32, seed: 11 }, { linear: 'Q8_0' }],
  ['qwen3 Q4_0', { modelType: 'qwen3', seed: 12 }, { linear: 'Q4_0', embed: 'Q4_0' }],
  ['qwen3 Q4_K / Q6_K', { modelType: 'qwen3', seed: 13 }, { linear: 'Q4_K', linearBy: { 'down_proj.weight': 'Q6_K' }, output: 'Q6_K' }],
];

describe.each(CASES)('%s', (name, opts, gopts) => {
  it('loads from the .gguf alone and matches the fp32 reference on the exact dequantization (cosine >= 0.9995)', async () => {
    const m = await writeTinyLlama(join(dir, `${name.replace(/\W+/g, '-')}-hf`), { ...SHAPE, ...opts });
    const g = hfToGguf(m.config, m.weights, { ...gopts, vocabMeta: name.includes('no vocabulary') ? {} : vocabMetadata('llama2').meta });
    const path = join(dir, `${name.replace(/\W+/g, '-')}.gguf`);
    await writeFile(path, g.bytes);
    const cfg = parseLlamaConfig(m.config);
    const ids = prompt(12, cfg.vocabSize);
    const want = llamaReferenceForward(cfg, g.dequantized, ids).subarray((ids.length - 1) * cfg.vocabSize);
    const llm = await LlmModel.load(path, { context: ctx });
    try {
      const { logits } = await llm.logits(ids);
      const cos = cosine(logits, want);
      console.log(`${name}: dtype ${llm.dtype}, cosine ${cos.toFixed(6)}`);
      expect(cos, `${name}: cosine ${cos}`).toBeGreaterThanOrEqual(0.9995);
      // The loaded config is the checkpoint's own.
      expect([llm.config.modelType, llm.config.numHeads, llm.config.numKvHeads, llm.config.headDim, llm.config.tieWordEmbeddings]).toEqual([cfg.modelType, cfg.numHeads, cfg.numKvHeads, cfg.headDim, cfg.tieWordEmbeddings]);
    } finally {
      llm.dispose();
    }
    if (/Q4_0|Q4_K_M|Q5_K/.test(name)) {
      // dtype f32: every weight as its exact dequantization, f32 activations: the reference's numbers.
      const f32 = await LlmModel.load(path, { context: ctx, dtype: 'f32', kv: 'f32' });
      try {
        const { logits } = await f32.logits(ids);
        expect(maxAbs(logits, want)).toBeLessThan(1e-3);
      } finally {
        f32.dispose();
      }
    }
  });
});

it('a GGUF with a real vocabulary generates the same tokens as its safetensors checkpoint, and chats with its template', async () => {
  const opts: TinyLlamaOptions = { modelType: 'llama', tokenizer: 'llama2', hidden: 64, layers: 2, maxPositions: 128, seed: 31 };
  const template = "{% for m in messages %}{{ '<s>[' + m.role + '] ' + m.content + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '[assistant] ' }}{% endif %}";
  const m = await writeTinyLlama(join(dir, 'vocab-hf'), { ...opts, chatTemplate: template });
  const g = hfToGguf(m.config, m.weights, { linear: 'F32', output: 'F32', vocabMeta: vocabMetadata('llama2', { chatTemplate: template }).meta });
  const path = join(dir, 'vocab.gguf');
  await writeFile(path, g.bytes);
  const a = await LlmModel.load(path, { context: ctx, dtype: 'f32', kv: 'f32' });
  const b = await LlmModel.load(m.dir, { context: ctx, dtype: 'f32', kv: 'f32' });
  try {
    const text = 'Once upon a time, in 2024, a café served 3 ☕ to Zoë.';
    expect(a.encode(text)).toEqual(b.encode(text));
    const ga = await a.generate(text, { maxTokens: 12, temperature: 0, ignoreEos: true });
    const gb = await b.generate(text, { maxTokens: 12, temperature: 0, ignoreEos: true });
    expect(ga.tokens).toEqual(gb.tokens);
    expect(ga.text).toBe(gb.text);
    const messages = [{ role: 'user', content: 'Say hi.' }];
    expect(a.renderChat(messages)).toBe(b.renderChat(messages));
    const ca = await a.chat.completions.create({ messages, max_tokens: 6, temperature: 0 });
    const cb = await b.chat.completions.create({ messages, max_tokens: 6, temperature: 0 });
    expect(ca.choices[0].message.content).toBe(cb.choices[0].message.content);
    expect(ca.usage.prompt_tokens).toBe(cb.usage.prompt_tokens);
  } finally {
    a.dispose();
    b.dispose();
  }
});

it('loads a GGUF file of a hub model ({ file }) through the download cache, then offline; by URL with range requests; `dtype` picks the kernels', async () => {
  const repo = join(dir, 'hub-repo');
  const m = await writeTinyLlama(join(dir, 'hub-hf'), { modelType: 'qwen2', hidden: 64, heads: 4, kvHeads: 2, intermediate: 128, vocab: 256, layers: 1, maxPositions: 64, seed: 21 });
  const g = hfToGguf(m.config, m.weights, { linear: 'Q4_0', embed: 'Q8_0', output: 'Q8_0', vocabMeta: vocabMetadata('llama2').meta });
  const { mkdir } = await import('node:fs/promises');
  await mkdir(repo, { recursive: true });
  await writeFile(join(repo, 'model-Q4_0.gguf'), g.bytes);
  const { serveFakeHub } = await import('../helpers/fake-hub.ts');
  const hub = await serveFakeHub(new Map([['org/tiny-gguf', repo]]));
  const cacheDir = join(dir, 'cache');
  const cfg = parseLlamaConfig(m.config);
  const ids = prompt(9, cfg.vocabSize);
  const want = llamaReferenceForward(cfg, g.dequantized, ids).subarray((ids.length - 1) * cfg.vocabSize);
  try {
    const viaHub = await LlmModel.load('org/tiny-gguf', { file: 'model-Q4_0.gguf', hubUrl: hub.url, cacheDir, context: ctx });
    const first = (await viaHub.logits(ids)).logits;
    expect(cosine(first, want)).toBeGreaterThanOrEqual(0.9995);
    expect(viaHub.dtype).toBe('q4');
    viaHub.dispose();
    const before = hub.log.length;
    const offline = await LlmModel.load('org/tiny-gguf', { file: 'model-Q4_0.gguf', hubUrl: hub.url, cacheDir, context: ctx, offline: true });
    expect(hub.log.length).toBe(before);
    expect([...(await offline.logits(ids)).logits]).toEqual([...first]);
    offline.dispose();
    // A URL without the cache: the header and each tensor by range requests, never the whole file.
    const url = `${hub.url}/org/tiny-gguf/resolve/main/model-Q4_0.gguf`;
    const ranged = await LlmModel.load(url, { cache: false, context: ctx, dtype: 'w4a8' });
    const ranges = hub.log.slice(before).filter((r) => r.path.endsWith('.gguf'));
    expect(ranges.length).toBeGreaterThan(2);
    expect(ranges.filter((r) => r.method === 'GET').every((r) => r.range !== undefined)).toBe(true);
    expect(ranged.dtype).toBe('w4a8');
    expect(cosine((await ranged.logits(ids)).logits, want)).toBeGreaterThanOrEqual(0.999);
    ranged.dispose();
    await expect(LlmModel.load('org/tiny-gguf', { file: 'model.safetensors', hubUrl: hub.url, cacheDir })).rejects.toMatchObject({ code: 'BAD_OPTION', message: expect.stringContaining('only a .gguf file') });
  } finally {
    await hub.close();
  }
});

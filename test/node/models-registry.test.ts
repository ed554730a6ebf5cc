// src/models/registry.ts is the one list of model types: every entry's tiny checkpoint (written in
// the Hugging Face layout by the fixtures) parses and resolves its weights, every architecture it
// lists is taken by the parser (and a decoder's wrong one refused), an unknown model_type's error
// lists them all, and `webq models` prints exactly that list.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.ts';
import { openCheckpoint } from '../../src/io/safetensors/checkpoint.ts';
import { resolveBertWeights } from '../../src/models/bert/bert-weights.ts';
import { parseModelConfig, SUPPORTED_MODEL_TYPES, type BertConfig } from '../../src/models/config.ts';
import type { LlamaConfig } from '../../src/models/llama/llama-config.ts';
import { resolveLlamaWeights } from '../../src/models/llama/llama-weights.ts';
import { MODEL_TYPES, tasksOf, type ModelTypeEntry } from '../../src/models/registry.ts';
import { writeTinyBert, type TinyEncoderFamily } from '../../fixtures/tiny-bert.ts';
import { writeTinyLlama, type TinyModelType } from '../../fixtures/tiny-llama.ts';
import { writeTinyGemma } from '../../fixtures/tiny-gemma.ts';
import { writeTinyModernBert } from '../../fixtures/tiny-modernbert.ts';

const ENTRIES = MODEL_TYPES as readonly ModelTypeEntry[];

/**
 * The fixture that writes each model type's tiny checkpoint: a new registry line needs its line
 * here (e.g. gemma2: (at) => writeTinyGemma(at, { modelType: 'gemma2' })), or the test says so.
 */
const bert = (family: TinyEncoderFamily) => (at: string) => writeTinyBert(at, { family, hidden: 32 });
const llama = (modelType: TinyModelType) => (at: string) => writeTinyLlama(at, { modelType });
const WRITERS: Record<string, (at: string) => Promise<{ config: Record<string, unknown> }>> = {
  bert: bert('bert'),
  roberta: bert('roberta'),
  'xlm-roberta': bert('xlm-roberta'),
  distilbert: bert('distilbert'),
  mpnet: bert('mpnet'),
  modernbert: (at) => writeTinyModernBert(at),
  llama: llama('llama'),
  mistral: llama('mistral'),
  qwen2: llama('qwen2'),
  qwen3: llama('qwen3'),
  granite: llama('granite'),
  olmo2: llama('olmo2'),
  smollm3: llama('smollm3'),
  phi3: llama('phi3'),
  gemma2: (at) => writeTinyGemma(at, { modelType: 'gemma2' }),
  gemma3_text: (at) => writeTinyGemma(at, { modelType: 'gemma3_text' }),
};

let dir: string;
const configs: Record<string, Record<string, unknown>> = {};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'webq-registry-'));
  for (const e of ENTRIES) if (WRITERS[e.modelType]) configs[e.modelType] = (await WRITERS[e.modelType](join(dir, e.modelType))).config;
}, 120_000);

afterAll(() => rm(dir, { recursive: true, force: true }));

describe('the model-type registry', () => {
  it('lists each model_type once, with at least one architecture and task', () => {
    expect(new Set(SUPPORTED_MODEL_TYPES).size).toBe(ENTRIES.length);
    expect(SUPPORTED_MODEL_TYPES).toEqual(ENTRIES.map((e) => e.modelType));
    for (const e of ENTRIES) {
      expect(Object.keys(e.architectures).length).toBeGreaterThan(0);
      expect(tasksOf(e).length).toBeGreaterThan(0);
    }
  });

  for (const e of ENTRIES) {
    it(`${e.modelType}: its tiny checkpoint parses and resolves every tensor; each listed architecture parses`, async () => {
      expect(WRITERS[e.modelType], `no tiny checkpoint writer for model_type ${e.modelType}: add one to WRITERS`).toBeDefined();
      const store = await openCheckpoint(join(dir, e.modelType));
      const cfg = parseModelConfig(configs[e.modelType]);
      if (e.forward === 'encoder') {
        expect(cfg.modelType).toBe('bert');
        expect((cfg as BertConfig).family).toBe(e.modelType);
        const refs = resolveBertWeights(store, cfg as BertConfig);
        expect((refs.modern ?? refs).layers.length).toBe(cfg.numLayers);
      } else {
        expect(cfg.modelType).toBe(e.modelType);
        expect(resolveLlamaWeights(store, cfg as LlamaConfig).layers.length).toBe(cfg.numLayers);
      }
      for (const [arch, tasks] of Object.entries(e.architectures)) {
        const parsed = parseModelConfig({ ...configs[e.modelType], architectures: [arch], ...(tasks.includes('token-classify') && { id2label: { 0: 'O', 1: 'B-PER' } }) });
        if (e.forward === 'encoder') expect((parsed as BertConfig).head === 'token').toBe(tasks.includes('token-classify'));
      }
      if (e.forward === 'decoder') {
        expect(() => parseModelConfig({ ...configs[e.modelType], architectures: ['SomethingForSequenceClassification'] })).toThrow(/is not supported for model_type/);
      }
    });
  }

  it("an unknown model_type's error names every supported one", () => {
    let err: unknown;
    try {
      parseModelConfig({ model_type: 'gpt_neox', hidden_size: 8 });
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'CONFIG_UNSUPPORTED_MODEL_TYPE' });
    for (const t of SUPPORTED_MODEL_TYPES) expect((err as Error).message).toMatch(new RegExp(`[ ,]${t}[ ,]`));
    expect((err as Error).message).toContain('webq models');
  });
});

describe('webq models', () => {
  const run = async (argv: string[]) => {
    let out = '';
    const code = await main(['models', ...argv], { stdout: (t) => void (out += t), stderr: () => undefined });
    return { code, out };
  };
  it('--json is the registry; the table names every model_type, architecture and task', async () => {
    const j = await run(['--json']);
    expect(j.code).toBe(0);
    const rows = JSON.parse(j.out) as { model_type: string; forward: string; architectures: Record<string, string[]>; tasks: string[]; differs: string }[];
    expect(rows).toEqual(ENTRIES.map((e) => ({ model_type: e.modelType, forward: e.forward, architectures: e.architectures, tasks: tasksOf(e), differs: e.differs })));
    expect(rows.find((r) => r.model_type === 'bert')!.architectures.BertForTokenClassification).toEqual(['token-classify']);
    const t = await run([]);
    expect(t.code).toBe(0);
    for (const e of ENTRIES) {
      expect(t.out).toContain(`  ${e.modelType} `);
      for (const a of Object.keys(e.architectures)) expect(t.out).toContain(a);
    }
    expect(t.out).toMatch(/^encoders:\n/);
    expect(t.out).toContain('decoders:\n');
    expect((await run(['--bogus'])).code).toBe(1);
  });
});

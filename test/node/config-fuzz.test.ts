// config.json is what a model repo says about itself (issue 29): mutated configs of every family
// (sizes huge, negative, fractional, strings, wrong types, missing; keys such as __proto__) must
// parse to a config within CONFIG_BOUNDS or end in one typed error naming the file and the field,
// in milliseconds. The exact reproducers, quantization_config lookups and a few real loads (which
// must refuse before the GPU and write nothing) are checked one by one. Every fuzz failure is
// listed with its seed. FUZZ_SEED=n FUZZ_CASES=m rerun other cases.
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BertModel } from '../../src/api/bert.ts';
import { LlmModel } from '../../src/api/llm.ts';
import { WebqError } from '../../src/errors.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { CONFIG_BOUNDS, parseModelConfig, type ModelConfig } from '../../src/models/config.ts';
import { checkKvFits } from '../../src/models/llama/llama-config.ts';
import { parseQuantizationConfig } from '../../src/quant/imports/index.ts';
import { slowRegexReason } from '../../src/quant/imports/compressed-tensors.ts';
import { parseGenerationConfig } from '../../src/text/generation-config.ts';
import { rng } from '../kernels/check.ts';
import { writeTinyBert } from '../../fixtures/tiny-bert.ts';
import { writeTinyLlama } from '../../fixtures/tiny-llama.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const FIRST_SEED = Number(process.env.FUZZ_SEED ?? 1);
const CASES = Number(process.env.FUZZ_CASES ?? 2000);
const SOURCE = 'fuzz/config.json';
const tmp = useTempDir('webq-cfgfuzz-');

/** What a parse gave: a value, or the typed error (anything else fails the test). */
function outcome<T>(f: () => T): { value?: T; error?: WebqError } {
  try {
    return { value: f() };
  } catch (e) {
    if (!(e instanceof WebqError) || typeof e.code !== 'string') throw new Error(`untyped ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    return { error: e };
  }
}

/** A parsed config must be within bounds and self-consistent, whatever the file said. */
function invariants(c: ModelConfig): string[] {
  const bad: string[] = [];
  const within = (name: string, v: number, max: number) => {
    if (!Number.isSafeInteger(v) || v < 1 || v > max) bad.push(`${name} ${v} not an integer in 1..${max}`);
  };
  within('vocabSize', c.vocabSize, CONFIG_BOUNDS.vocab);
  within('hiddenSize', c.hiddenSize, CONFIG_BOUNDS.hidden);
  within('numLayers', c.numLayers, CONFIG_BOUNDS.layers);
  within('numHeads', c.numHeads, CONFIG_BOUNDS.heads);
  within('intermediateSize', c.intermediateSize, CONFIG_BOUNDS.intermediate);
  within('maxPositions', c.maxPositions, CONFIG_BOUNDS.positions);
  if (c.modelType === 'bert') {
    if (c.headDim * c.numHeads !== c.hiddenSize) bad.push('headDim * numHeads != hiddenSize');
    within('typeVocabSize', c.typeVocabSize, CONFIG_BOUNDS.types);
    if (!(c.padTokenId >= 0 && c.padTokenId < c.vocabSize)) bad.push(`padTokenId ${c.padTokenId}`);
    if (!(Number.isFinite(c.layerNormEps) && c.layerNormEps > 0)) bad.push(`layerNormEps ${c.layerNormEps}`);
  } else {
    within('numKvHeads', c.numKvHeads, c.numHeads);
    if (c.numHeads % c.numKvHeads !== 0) bad.push('numHeads % numKvHeads');
    if (!(c.headDim % 4 === 0 && c.headDim >= 4 && c.headDim <= 256)) bad.push(`headDim ${c.headDim}`);
    if (c.slidingWindow.length !== c.numLayers || !c.slidingWindow.every((w) => Number.isSafeInteger(w) && w >= 0)) bad.push('slidingWindow');
    if (![...c.eosTokenIds, c.bosTokenId ?? 0].every((id) => Number.isSafeInteger(id) && id >= 0 && id < c.vocabSize)) bad.push('token ids');
    for (const [k, v] of [['rmsNormEps', c.rmsNormEps], ['ropeTheta', c.ropeTheta]] as const) if (!(Number.isFinite(v) && v > 0)) bad.push(`${k} ${v}`);
  }
  return bad;
}

const HOSTILE: unknown[] = [
  2147483648, 1e12, 2 ** 53 - 1, 2 ** 53, 2 ** 32, 1e308, -1e308, -1, 0, 0.5, 63.5, 1e-300, 1025, 65537, 4194305, 16777217,
  'NaN', 'Infinity', '-Infinity', '64', '', 'x'.repeat(20_000), true, false, null, [], [64], [[[]]], {}, { value: 64 }, [2147483648],
];
const SPECIAL_KEYS = ['__proto__', 'constructor', 'toString', 'valueOf', 'hasOwnProperty', '__defineGetter__'];
const FIELDS = [
  'vocab_size', 'hidden_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'head_dim', 'intermediate_size',
  'max_position_embeddings', 'type_vocab_size', 'pad_token_id', 'bos_token_id', 'eos_token_id', 'layer_norm_eps', 'rms_norm_eps',
  'rope_theta', 'rope_scaling', 'sliding_window', 'max_window_layers', 'use_sliding_window', 'tie_word_embeddings', 'hidden_act',
  'model_type', 'architectures', 'id2label', 'num_labels', 'partial_rotary_factor', 'attention_bias', 'quantization_config',
  'position_embedding_type', 'original_max_position_embeddings', ...SPECIAL_KEYS,
];
const QUANT_METHODS = ['gptq', 'awq', 'compressed-tensors', 'bitsandbytes', 'GPTQ', 'exl2', ...SPECIAL_KEYS, 5, null, 'y'.repeat(5000)];
const QUANT_FIELDS = ['bits', 'group_size', 'desc_act', 'sym', 'checkpoint_format', 'format', 'version', 'w_bit', 'load_in_8bit', 'load_in_4bit', 'config_groups', 'zero_point', ...SPECIAL_KEYS];

/** JSON text with keys in order, `__proto__` included as a plain key. */
function serialize(entries: [string, unknown][]): string {
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v) ?? 'null'}`).join(',')}}`;
}

function mutate(base: Record<string, unknown>, seed: number): string {
  const r = rng(seed);
  const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const entries: [string, unknown][] = Object.entries(base);
  const set = (k: string, v: unknown) => {
    const i = entries.findIndex(([key]) => key === k);
    if (i >= 0) entries[i] = [k, v];
    else entries.push([k, v]);
  };
  const quant = (): unknown => {
    const method = pick(QUANT_METHODS);
    const qc: [string, unknown][] = [['quant_method', method], ['bits', pick([4, 8, 3, ...HOSTILE])], ['group_size', pick([128, -1, 32, ...HOSTILE])]];
    if (method === 'compressed-tensors') {
      const target = pick(['Linear', 're:.*q_proj$', 're:(.*)*x', 're:(a|a)*b', 're:.*.*.*.*.*x', 're:[', 're:\\1', '__proto__']);
      qc.push(['format', pick(['pack-quantized', 'int-quantized', ...SPECIAL_KEYS, 'float-quantized'])]);
      qc.push(['config_groups', JSON.parse(serialize([[pick(['group_0', ...SPECIAL_KEYS]), { targets: [target], weights: { num_bits: pick([4, 8, ...HOSTILE]), type: pick(['int', 'float', ...SPECIAL_KEYS]), strategy: pick(['group', 'channel', '__proto__']), group_size: pick([128, ...HOSTILE]), symmetric: true } }]]))]);
    }
    for (let i = 0; i < 2; i++) qc.push([pick(QUANT_FIELDS), pick(HOSTILE)]);
    return JSON.parse(serialize(qc));
  };
  const rope = () => JSON.parse(serialize([[pick(['rope_type', 'type']), pick(['llama3', 'linear', 'default', 'yarn', ...SPECIAL_KEYS])], ['factor', pick([8, ...HOSTILE])], ['low_freq_factor', pick([1, ...HOSTILE])], ['high_freq_factor', pick([4, ...HOSTILE])], ['original_max_position_embeddings', pick([8192, ...HOSTILE])]]));
  for (let m = 1 + Math.floor(r() * 3); m > 0; m--) {
    const k = pick(FIELDS);
    const what = r();
    if (what < 0.15) entries.splice(entries.findIndex(([key]) => key === k) >>> 0, 1); // missing
    else if (k === 'quantization_config') set(k, quant());
    else if (k === 'rope_scaling') set(k, rope());
    else if (k === 'id2label') set(k, JSON.parse(serialize([[pick(['0', '1', '01', '__proto__', '-1']), pick(['A', 5, null])]])));
    else if (what < 0.25) entries.push([k, pick(HOSTILE)]); // a duplicate key
    else set(k, pick(HOSTILE));
  }
  return serialize(entries);
}

describe('config.json fuzz', () => {
  const bases: [string, Record<string, unknown>][] = [];
  beforeAll(async () => {
    bases.push(['bert', (await writeTinyBert(join(tmp.dir, 'bert'), { labels: ['NEG', 'POS'] })).config]);
    for (const modelType of ['llama', 'mistral', 'qwen2', 'qwen3'] as const) {
      bases.push([modelType, (await writeTinyLlama(join(tmp.dir, modelType), { modelType, slidingWindow: modelType === 'llama' ? null : 8, ropeScaling: modelType === 'llama' ? { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 } : null })).config]);
    }
  });

  it(`${CASES} mutations per family from seed ${FIRST_SEED}: a bounded config or a typed error, both as text and as JSON.parse gives it`, () => {
    const failures: string[] = [];
    const counts = { parsed: 0, refused: 0, quantRefused: 0 };
    const t0 = performance.now();
    for (const [family, base] of bases) {
      for (let seed = FIRST_SEED; seed < FIRST_SEED + CASES; seed++) {
        const text = mutate(base, seed * 8 + family.length);
        const fail = (why: string) => failures.push(`${family} seed ${seed}: ${why}\n  config: ${text.slice(0, 300)}`);
        const start = performance.now();
        try {
          const strict = outcome(() => parseModelConfig(text, SOURCE));
          const loose = outcome(() => parseModelConfig(JSON.parse(text) as object, SOURCE));
          for (const o of [strict, loose]) {
            if (o.error && !o.error.message.startsWith(SOURCE)) fail(`error does not name the file: ${o.error.message.slice(0, 200)}`);
            if (o.error && o.error.message.length > 2000) fail(`error message of ${o.error.message.length} characters`);
            if (o.value) for (const b of invariants(o.value)) fail(`parsed out of bounds: ${b}`);
          }
          // JSON.parse keeps the last of duplicate keys where the strict reader refuses: only then may they differ.
          if (strict.value && !loose.value) fail(`strict text parsed, JSON.parse object refused: ${loose.error!.message}`);
          const cfg = loose.value;
          if (cfg) {
            counts.parsed++;
            const q = outcome(() => parseQuantizationConfig(cfg.quantizationConfig ?? undefined, SOURCE));
            if (q.error) {
              counts.quantRefused++;
              if (!q.error.message.includes('quantization_config') && !q.error.message.includes(SOURCE)) fail(`quant error names nothing: ${q.error.message}`);
            } else if (q.value && typeof q.value.linear !== 'function') fail('quantization format without a reader');
          } else counts.refused++;
        } catch (e) {
          fail((e as Error).message);
        }
        const ms = performance.now() - start;
        if (ms > 1000) fail(`took ${ms.toFixed(0)} ms`);
      }
    }
    console.log(`config fuzz: ${bases.length} x ${CASES} configs in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${counts.parsed} parsed (${counts.quantRefused} with quantization_config refused), ${counts.refused} refused`);
    expect(failures, failures.slice(0, 30).join('\n')).toEqual([]);
    expect(counts.parsed).toBeGreaterThan(CASES / 10);
    expect(counts.refused).toBeGreaterThan(CASES / 2);
  });
});

describe('issue 29 config reproducers', () => {
  const llama = { model_type: 'llama', hidden_size: 64, num_attention_heads: 4, num_hidden_layers: 2, intermediate_size: 128, vocab_size: 256 };
  const refused = (cfg: object, code: string, ...parts: string[]) => {
    const t0 = performance.now();
    const o = outcome(() => parseModelConfig(JSON.parse(JSON.stringify(cfg)) as object, SOURCE));
    expect(o.error?.code).toBe(code);
    for (const p of parts) expect(o.error!.message).toContain(p);
    expect(performance.now() - t0).toBeLessThan(100);
  };

  it('num_hidden_layers 2147483648, 1e12 and 2**53-1 are CONFIG_BAD_FIELD naming the field and the bound', () => {
    for (const n of [2147483648, 1e12, 2 ** 53 - 1, 1025]) refused({ ...llama, num_hidden_layers: n }, 'CONFIG_BAD_FIELD', SOURCE, '"num_hidden_layers"', 'from 1 to 1024');
    refused({ ...llama, vocab_size: 2 ** 40 }, 'CONFIG_BAD_FIELD', '"vocab_size"', `to ${CONFIG_BOUNDS.vocab}`);
    refused({ ...llama, hidden_size: '64' }, 'CONFIG_BAD_FIELD', '"hidden_size"', 'got string "64"');
    refused({ ...llama, num_attention_heads: 4.5 }, 'CONFIG_BAD_FIELD', '"num_attention_heads"');
    refused({ ...llama, num_key_value_heads: 3 }, 'CONFIG_BAD_FIELD', '"num_key_value_heads"', 'divisor');
    refused({ ...llama, hidden_size: 66 }, 'CONFIG_BAD_FIELD', '"hidden_size"', 'divisible');
    refused({ ...llama, max_position_embeddings: 2 ** 31 }, 'CONFIG_BAD_FIELD', '"max_position_embeddings"');
    refused({ ...llama, vocab_size: undefined }, 'CONFIG_MISSING_FIELD', '"vocab_size"');
    refused({ ...llama, model_type: 'bert', num_hidden_layers: 1e12, type_vocab_size: 2 }, 'CONFIG_BAD_FIELD', '"num_hidden_layers"');
    refused({ ...llama, model_type: 'x'.repeat(100_000) }, 'CONFIG_UNSUPPORTED_MODEL_TYPE');
    const long = outcome(() => parseModelConfig({ ...llama, hidden_act: 'x'.repeat(100_000) }, SOURCE));
    expect(long.error!.message.length).toBeLessThan(500);
  });

  it('quant_method "__proto__", "constructor", "toString" are named as unsupported, not looked up on Object.prototype', () => {
    for (const method of ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf']) {
      const qc = JSON.parse(`{"quant_method": ${JSON.stringify(method)}, "bits": 4}`);
      const o = outcome(() => parseQuantizationConfig(qc, SOURCE));
      expect(o.error?.code).toBe('QUANT_IMPORT_UNSUPPORTED');
      expect(o.error!.message).toContain(`quant_method "${method}" is not supported`);
      expect(o.error!.message).not.toMatch(/native code|function/);
    }
    const gptq = outcome(() => parseQuantizationConfig(JSON.parse('{"quant_method": "gptq", "bits": 4, "checkpoint_format": "constructor"}'), SOURCE));
    expect(gptq.error?.code).toBe('QUANT_IMPORT_CONFIG');
    const ct = (format: string, target = 'Linear') =>
      outcome(() => parseQuantizationConfig(JSON.parse(JSON.stringify({ quant_method: 'compressed-tensors', format, config_groups: { g: { targets: [target], weights: { num_bits: 4, type: 'int', strategy: 'group', group_size: 32, symmetric: true } } } })), SOURCE));
    for (const format of ['__proto__', 'constructor', 'toString']) {
      expect(ct(format).error?.code).toBe('QUANT_IMPORT_UNSUPPORTED');
      expect(ct(format).error!.message).not.toMatch(/native code|function/);
    }
    expect(ct('pack-quantized').value?.method).toBe('compressed-tensors');
  });

  it('compressed-tensors "re:" targets that could backtrack for ever are refused before any match', () => {
    const ct = (target: string) =>
      outcome(() => parseQuantizationConfig(JSON.parse(JSON.stringify({ quant_method: 'compressed-tensors', format: 'pack-quantized', config_groups: { g: { targets: [target], weights: { num_bits: 4, type: 'int', strategy: 'channel', symmetric: true } } } })), SOURCE));
    for (const t of ['re:(.*)*x', 're:(a|a)*b', 're:(a+)+$', 're:.*.*.*.*x', 're:(x+){3}', 're:a{100000}', 're:(a)\\1']) {
      expect(ct(t).error?.code, t).toBe('QUANT_IMPORT_UNSUPPORTED');
      expect(ct(t).error!.message).toContain('could make matching slow');
    }
    // What llm-compressor writes is run.
    for (const t of ['re:.*q_proj$', 're:model.layers.\\d+.mlp.(gate|up)_proj', 're:.*self_attn.(q|k|v)_proj$', 'lm_head', 'Linear']) expect(ct(t).value, t).toBeTruthy();
    expect(slowRegexReason('(ab)*c')).toBeNull();
    expect(slowRegexReason('[(]+x')).toBeNull(); // a paren inside a class is no group
  });

  it('generation_config.json values are checked and messages stay short', () => {
    for (const [k, v] of [['top_k', -1], ['top_p', 2], ['temperature', 'hot'], ['max_new_tokens', 0.5], ['eos_token_id', ['x'.repeat(10_000)]]] as const) {
      const o = outcome(() => parseGenerationConfig({ [k]: v }, 'fuzz/generation_config.json'));
      expect(o.error?.code, k).toBe('GENERATION_CONFIG');
      expect(o.error!.message.length).toBeLessThan(400);
    }
  });

  it('the KV cache is checked against the adapter limits before anything is uploaded', () => {
    const limits = { maxBufferSize: 2 ** 30, maxStorageBufferBindingSize: 2 ** 27 };
    expect(() => checkKvFits({ numKvHeads: 8, headDim: 128 }, 4096, 'f16', limits, SOURCE)).not.toThrow(); // 8 MiB
    const o = outcome(() => checkKvFits({ numKvHeads: 8, headDim: 128 }, 131072, 'f32', limits, SOURCE));
    expect(o.error?.code).toBe('BUFFER_TOO_LARGE');
    expect(o.error!.message).toContain('contextLength 32768 or less'); // 2^27 / (8 * 128 * 4)
  });
});

/** Every file under `dir` with its sha256: what a refused load must leave as it was. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const p = join(e.parentPath, e.name);
    out[p.slice(dir.length)] = createHash('sha256').update(await readFile(p)).digest('hex');
  }
  return out;
}

describe('loads from a folder with a hostile config.json refuse before the GPU and write nothing', () => {
  let ctx: GpuContext;
  let llmDir: string;
  let bertDir: string;
  let llmConfig: Record<string, unknown>;
  let bertConfig: Record<string, unknown>;
  beforeAll(async () => {
    ctx = await GpuContext.create();
    // Wide heads (2 KV heads of 256) so the largest context config.json may name cannot fit any adapter.
    const l = await writeTinyLlama(join(tmp.dir, 'load-llama'), { tokenizer: 'llama2', hidden: 32, heads: 2, kvHeads: 2, headDim: 256, intermediate: 64, layers: 1, maxPositions: 64 });
    llmDir = l.dir;
    llmConfig = l.config;
    const b = await writeTinyBert(join(tmp.dir, 'load-bert'));
    bertDir = b.dir;
    bertConfig = b.config;
  });
  afterAll(() => ctx?.dispose());

  async function refusedLoad(load: () => Promise<{ dispose(): void }>, dir: string, code: string, contains: string): Promise<void> {
    const before = await snapshot(dir);
    const t0 = performance.now();
    const err = await load().then(
      (m) => (m.dispose(), new Error('loaded')),
      (e: unknown) => e,
    );
    expect(err, String(err)).toBeInstanceOf(WebqError);
    expect((err as WebqError).code).toBe(code);
    expect((err as WebqError).message).toContain(contains);
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(await snapshot(dir)).toEqual(before);
  }

  const withConfig = async (dir: string, base: Record<string, unknown>, patch: Record<string, unknown>) =>
    writeFile(join(dir, 'config.json'), JSON.stringify({ ...base, ...patch }));

  it('LlmModel.load: layers, vocab, quant_method and a context the adapter cannot hold', async () => {
    const cases: [Record<string, unknown>, string, string][] = [
      [{ num_hidden_layers: 2147483648 }, 'CONFIG_BAD_FIELD', 'num_hidden_layers'],
      [{ num_hidden_layers: 1e12 }, 'CONFIG_BAD_FIELD', 'num_hidden_layers'],
      [{ num_hidden_layers: 2 ** 53 - 1 }, 'CONFIG_BAD_FIELD', 'num_hidden_layers'],
      [{ vocab_size: 2 ** 40 }, 'CONFIG_BAD_FIELD', 'vocab_size'],
      [{ quantization_config: JSON.parse('{"quant_method": "__proto__"}') }, 'QUANT_IMPORT_UNSUPPORTED', '__proto__'],
      [{ quantization_config: { quant_method: 'constructor' } }, 'QUANT_IMPORT_UNSUPPORTED', 'constructor'],
    ];
    for (const [patch, code, contains] of cases) {
      await withConfig(llmDir, llmConfig, patch);
      await refusedLoad(() => LlmModel.load(llmDir, { context: ctx }), llmDir, code, contains);
    }
    // 2^24 positions of f32 keys: 32 GiB a layer, past any adapter's buffer limit.
    expect(2 ** 24 * 2 * 256 * 4).toBeGreaterThan(Math.min(ctx.caps.maxBufferSize, ctx.caps.maxStorageBufferBindingSize));
    await withConfig(llmDir, llmConfig, { max_position_embeddings: 2 ** 24 });
    await refusedLoad(() => LlmModel.load(llmDir, { context: ctx, contextLength: 2 ** 24, kv: 'f32', dtype: 'f32' }), llmDir, 'BUFFER_TOO_LARGE', 'contextLength');
    await withConfig(llmDir, llmConfig, {});
    const m = await LlmModel.load(llmDir, { context: ctx, dtype: 'f32' });
    m.dispose();
  });

  it('BertModel.load: heads, layers, quant_method and sentence-transformers files that are not objects', async () => {
    for (const [patch, code, contains] of [
      [{ num_attention_heads: 0 }, 'CONFIG_BAD_FIELD', 'num_attention_heads'],
      [{ num_hidden_layers: 2147483648 }, 'CONFIG_BAD_FIELD', 'num_hidden_layers'],
      [{ quantization_config: { quant_method: 'toString' } }, 'QUANT_IMPORT_UNSUPPORTED', 'toString'],
    ] as const) {
      await withConfig(bertDir, bertConfig, patch);
      await refusedLoad(() => BertModel.load(bertDir, { context: ctx }), bertDir, code, contains);
    }
    await withConfig(bertDir, bertConfig, {});
    await mkdir(join(bertDir, '1_Pooling'), { recursive: true });
    for (const pooling of ['null', '[]', '5', '"x"']) {
      await writeFile(join(bertDir, '1_Pooling/config.json'), pooling);
      await refusedLoad(() => BertModel.load(bertDir, { context: ctx }), bertDir, 'CONFIG_NOT_JSON', '1_Pooling/config.json');
    }
    await writeFile(join(bertDir, '1_Pooling/config.json'), JSON.stringify({ pooling_mode_mean_tokens: true }));
    await writeFile(join(bertDir, 'modules.json'), '[null, 5, {"type": null}]');
    const m = await BertModel.load(bertDir, { context: ctx, dtype: 'f32' });
    expect(m.pooling).toEqual({ pooling: 'mean', normalize: false });
    m.dispose();
  });
});

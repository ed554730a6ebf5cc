/**
 * Model folders as an attacker who publishes a model would write them: a tiny valid Llama (llama2
 * tokenizer, ChatML template) and a tiny valid BERT, each copied and one file replaced by a hostile
 * one -- config.json sizes the device cannot hold, NaN / negative / absurd / wrong-typed fields,
 * files of hundreds of megabytes (sparse: nothing is written), nesting a million deep, tokenizer
 * regexes that backtrack forever, merges naming missing tokens, chat templates that loop, recurse,
 * print megabytes or reach for globals, quantization configs with wrong shapes. Each must end in a
 * typed error (or, where the file is merely odd, a working model) within seconds and without
 * growing memory: test/node/hostile-cli.test.ts runs every webq command on them.
 */
import { copyFile, link, mkdir, readdir, readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CHATML } from './llm-fixture.ts';
import { writeTinyBert } from '../../fixtures/tiny-bert.ts';
import { writeTinyLlama } from '../../fixtures/tiny-llama.ts';

export interface HostileModel {
  name: string;
  kind: 'llm' | 'bert';
  dir: string;
}

type Json = Record<string, unknown>;
type Edit = (dir: string) => Promise<void>;

const json = async (dir: string, file: string, f: (j: Json) => void) => {
  const j = JSON.parse(await readFile(join(dir, file), 'utf8')) as Json;
  f(j);
  await writeFile(join(dir, file), JSON.stringify(j));
};
const config = (f: (c: Json) => void): Edit => (dir) => json(dir, 'config.json', f);
const tokenizer = (f: (t: Json) => void): Edit => (dir) => json(dir, 'tokenizer.json', f);
const template = (src: string): Edit => (dir) => json(dir, 'tokenizer_config.json', (t) => void (t.chat_template = src));
const sparse = (file: string, bytes: number): Edit => async (dir) => {
  await writeFile(join(dir, file), '');
  await truncate(join(dir, file), bytes);
};
const text = (file: string, body: string): Edit => (dir) => writeFile(join(dir, file), body);

const DEEP = `{"a":${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}}`;

const BOTH: [string, Edit][] = [
  ['vocab-1e9', config((c) => void (c.vocab_size = 1e9))],
  ['layers-1e6', config((c) => void (c.num_hidden_layers = 1e6))],
  ['hidden-max-bound', config((c) => Object.assign(c, { hidden_size: 65536, intermediate_size: 1 << 20, vocab_size: 1 << 22 }))],
  ['heads-not-dividing', config((c) => void (c.num_attention_heads = 7))],
  ['nan-strings', config((c) => Object.assign(c, { hidden_size: 'NaN', layer_norm_eps: 'Infinity', rms_norm_eps: -1 }))],
  ['negative-sizes', config((c) => Object.assign(c, { intermediate_size: -64, max_position_embeddings: -1 }))],
  ['wrong-types', config((c) => Object.assign(c, { num_hidden_layers: [2], vocab_size: { n: 1 }, model_type: 5 }))],
  ['missing-fields', config((c) => void Object.keys(c).forEach((k) => k !== 'model_type' && delete c[k]))],
  ['proto-keys', text('config.json', '{"__proto__":{"polluted":true},"constructor":{"prototype":{"x":1}},"model_type":"llama"}')],
  ['config-300MB', sparse('config.json', 300 << 20)],
  ['config-deep', text('config.json', DEEP)],
  ['config-not-json', text('config.json', '{"model_type": "llama", ')],
  ['tokenizer-300MB', sparse('tokenizer.json', 300 << 20)],
  ['tokenizer-deep-sequence', async (dir) => writeFile(join(dir, 'tokenizer.json'), (await readFile(join(dir, 'tokenizer.json'), 'utf8')).replace(/"normalizer":\s*(null|\{)/, (_, m: string) => `"normalizer":${'{"type":"Sequence","normalizers":['.repeat(100_000)}{"type":"Lowercase"}${']}'.repeat(100_000)},"x":${m}`))],
  ['tokenizer-evil-regex', tokenizer((t) => void (t.pre_tokenizer = { type: 'Split', pattern: { Regex: '(a+)+$' }, behavior: 'Isolated', invert: false }))],
  ['tokenizer-missing-merge-tokens', tokenizer((t) => void ((t.model as Json).merges = ['zzq qqz', ...(((t.model as Json).merges as unknown[]) ?? [])]))],
  ['tokenizer-added-id-1e9', tokenizer((t) => void (t.added_tokens as Json[]).push({ id: 1e9, content: '<evil>', special: true, single_word: false, lstrip: false, rstrip: false, normalized: false }))],
  ['tokenizer-wrong-types', tokenizer((t) => void (t.model = { type: 'BPE', vocab: 'all of them', merges: 5 }))],
  ['quant-bits-3', config((c) => void (c.quantization_config = { quant_method: 'gptq', bits: 3, group_size: 128 }))],
  ['quant-group-0', config((c) => void (c.quantization_config = { quant_method: 'awq', bits: 4, group_size: 0, version: 'gemm', zero_point: true }))],
  ['quant-proto', config((c) => void (c.quantization_config = JSON.parse('{"quant_method":"__proto__"}')))],
];

const LLM_ONLY: [string, Edit][] = [
  ['positions-16M', config((c) => void (c.max_position_embeddings = 1 << 24))],
  ['rope-nan', config((c) => void (c.rope_scaling = { rope_type: 'llama3', factor: 'NaN', low_freq_factor: -1, high_freq_factor: 4, original_max_position_embeddings: 1e12 }))],
  ['eos-out-of-range', config((c) => void (c.eos_token_id = [1e9, -1]))],
  ['generation-huge', text('generation_config.json', '{"max_new_tokens": 1000000000000, "temperature": -5, "top_k": 1e12}')],
  ['template-infinite-loop', template('{% for i in range(10**9) %}{{ i }}{% endfor %}')],
  ['template-recursion', template('{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}')],
  ['template-megabytes', template("{{ 'x' * 100000000 }}")],
  ['template-globals', template("{{ cycler.__init__.__globals__.os.popen('id').read() }}{{ process }}{{ globalThis }}")],
  ['template-huge-file', sparse('tokenizer_config.json', 200 << 20)],
];

const BERT_ONLY: [string, Edit][] = [
  ['type-vocab-1e9', config((c) => void (c.type_vocab_size = 1e9))],
  ['pad-out-of-range', config((c) => void (c.pad_token_id = 1e9))],
  ['pooling-hostile', async (dir) => {
    await mkdir(join(dir, '1_Pooling'), { recursive: true });
    await writeFile(join(dir, '1_Pooling/config.json'), JSON.stringify({ word_embedding_dimension: 1e9, pooling_mode_cls_token: true, pooling_mode_mean_tokens: true }));
  }],
];

/** Writes the valid bases and every hostile copy under `root`. */
export async function writeHostileModels(root: string): Promise<{ llm: string; bert: string; models: HostileModel[] }> {
  const llm = (await writeTinyLlama(join(root, 'base-llm'), { tokenizer: 'llama2', chatTemplate: CHATML, hidden: 64, layers: 2, maxPositions: 256, seed: 3 })).dir;
  const bert = (await writeTinyBert(join(root, 'base-bert'))).dir;
  const models: HostileModel[] = [];
  for (const [kind, base, list] of [['llm', llm, [...BOTH, ...LLM_ONLY]], ['bert', bert, [...BOTH, ...BERT_ONLY]]] as const) {
    for (const [name, edit] of list) {
      const dir = join(root, `${kind}-${name}`);
      // The checkpoint is linked, not copied (a Llama's is 16 MB): edits only replace side files.
      await mkdir(dir);
      for (const f of await readdir(base)) await (f.endsWith('.safetensors') ? link : copyFile)(join(base, f), join(dir, f));
      await edit(dir);
      models.push({ name, kind, dir });
    }
  }
  return { llm, bert, models };
}

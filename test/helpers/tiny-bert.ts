/**
 * Writes tiny BERT checkpoints in exactly the Hugging Face layout (config.json, model.safetensors
 * or two shards + index, tokenizer.json, tokenizer_config.json), with seeded random weights.
 *
 * Scales: embeddings N(0, 0.02) as transformers initialises them ([PAD]'s row zeroed, as
 * padding_idx does); LayerNorm weight N(1, 0.1) and bias N(0, 0.02); linear biases N(0, 0.02).
 * Linear weights use N(0, 0.1) rather than transformers' 0.02: at 0.02 and hidden 32 the attention
 * scores have std ~0.01, so every head is uniform and masking or position bugs hide; at 0.1 the
 * scores' std is ~0.3 and attention is visibly non-uniform.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DType } from '../../src/io/safetensors/dtypes.ts';
import { bf16ArrayToF32, f16ArrayToF32, f32ArrayToBf16, f32ArrayToF16 } from '../../src/io/safetensors/half.ts';
import { writeSafetensorsFile, type TensorToWrite } from '../../src/io/safetensors/writer.ts';
import { tinyVocab } from './tiny-bert-vocab.ts';
import { tinyTokenizerFiles } from './tiny-tokenizer.ts';

export interface TinyBertOptions {
  hidden?: number; // 32
  layers?: number; // 2
  heads?: number; // 4
  intermediate?: number; // 64
  maxPositions?: number; // 64
  typeVocab?: number; // 2
  /** 'bert.' (a task model's layout) or '' (bare BertModel); default ''. */
  prefix?: '' | 'bert.';
  dtype?: 'F32' | 'F16' | 'BF16';
  /** Adds classifier.* (and id2label/label2id, BertForSequenceClassification). */
  labels?: readonly string[];
  /** Writes pooler.dense.*; default true (BertModel has one), forced on with labels. */
  pooler?: boolean;
  /** Two shards + model.safetensors.index.json instead of model.safetensors. */
  sharded?: boolean;
  /** LayerNorm parameters named gamma/beta, as very old exports do. */
  oldNormNames?: boolean;
  /** Writes tokenizer.json + tokenizer_config.json; default true. */
  tokenizer?: boolean;
  seed?: number;
  linearStd?: number; // 0.1
  /**
   * Outlier dimensions as trained BERTs have (a few hidden channels whose LayerNorm weight is many
   * times the rest, so every layer's input carries them): this factor on two channels' LayerNorm
   * weights; default none. Drawn after everything else, so the other values do not change.
   */
  normOutliers?: number;
  /** Canonical tensor names to leave out of the checkpoint (for missing-tensor tests). */
  omit?: readonly string[];
}

export interface TinyBert {
  dir: string;
  config: Record<string, unknown>;
  /** Canonical name (unprefixed, .weight/.bias) -> values exactly as stored (after dtype rounding). */
  weights: Record<string, Float32Array>;
  /** Tensor names as written in the file(s). */
  tensorNames: string[];
  vocab: string[];
  files: string[];
}

import { rng } from '../kernels/check.ts';

export { rng };

export function normal(rand: () => number, n: number, mean: number, std: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    // Box-Muller; 1 - u keeps log() away from 0.
    const u = 1 - rand();
    const v = rand();
    out[i] = mean + std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  return out;
}

/** The bytes to write and the f32 values they read back as. */
export function encode(values: Float32Array, dtype: DType): { data: ArrayBufferView; stored: Float32Array } {
  if (dtype === 'F16') {
    const bits = f32ArrayToF16(values);
    return { data: bits, stored: f16ArrayToF32(bits) };
  }
  if (dtype === 'BF16') {
    const bits = f32ArrayToBf16(values);
    return { data: bits, stored: bf16ArrayToF32(bits) };
  }
  return { data: values, stored: values };
}

export async function writeTinyBert(dir: string, opts: TinyBertOptions = {}): Promise<TinyBert> {
  const H = opts.hidden ?? 32;
  const L = opts.layers ?? 2;
  const heads = opts.heads ?? 4;
  const I = opts.intermediate ?? 64;
  const P = opts.maxPositions ?? 64;
  const TV = opts.typeVocab ?? 2;
  const prefix = opts.prefix ?? '';
  const dtype = opts.dtype ?? 'F32';
  const labels = opts.labels;
  const withPooler = labels !== undefined || (opts.pooler ?? true);
  const std = opts.linearStd ?? 0.1;
  const rand = rng(opts.seed ?? 1234);
  const vocab = tinyVocab();
  // Real checkpoints often round the embedding table up; config vocab_size >= tokenizer vocab.
  const V = Math.ceil(vocab.length / 8) * 8;

  const tensors: (TensorToWrite & { key: string })[] = [];
  const weights: Record<string, Float32Array> = {};
  const add = (key: string, shape: number[], values: Float32Array, outside = false) => {
    const { data, stored } = encode(values, dtype);
    if (opts.omit?.includes(key)) return;
    weights[key] = stored;
    const fileKey = opts.oldNormNames ? key.replace(/LayerNorm\.weight$/, 'LayerNorm.gamma').replace(/LayerNorm\.bias$/, 'LayerNorm.beta') : key;
    tensors.push({ key, name: (outside ? '' : prefix) + fileKey, dtype, shape, data });
  };
  const linear = (base: string, out: number, inp: number, outside = false) => {
    add(`${base}.weight`, [out, inp], normal(rand, out * inp, 0, std), outside);
    add(`${base}.bias`, [out], normal(rand, out, 0, 0.02), outside);
  };
  const norm = (base: string) => {
    add(`${base}.weight`, [H], normal(rand, H, 1, 0.1));
    add(`${base}.bias`, [H], normal(rand, H, 0, 0.02));
  };

  const word = normal(rand, V * H, 0, 0.02);
  word.fill(0, 0, H); // [PAD] is id 0
  add('embeddings.word_embeddings.weight', [V, H], word);
  add('embeddings.position_embeddings.weight', [P, H], normal(rand, P * H, 0, 0.02));
  add('embeddings.token_type_embeddings.weight', [TV, H], normal(rand, TV * H, 0, 0.02));
  norm('embeddings.LayerNorm');
  for (let l = 0; l < L; l++) {
    const b = `encoder.layer.${l}`;
    linear(`${b}.attention.self.query`, H, H);
    linear(`${b}.attention.self.key`, H, H);
    linear(`${b}.attention.self.value`, H, H);
    linear(`${b}.attention.output.dense`, H, H);
    norm(`${b}.attention.output.LayerNorm`);
    linear(`${b}.intermediate.dense`, I, H);
    linear(`${b}.output.dense`, H, I);
    norm(`${b}.output.LayerNorm`);
  }
  if (withPooler) linear('pooler.dense', H, H);
  if (labels) linear('classifier', labels.length, H, true);
  if (opts.normOutliers !== undefined) {
    for (const [k, w] of Object.entries(weights)) {
      if (!/LayerNorm\.weight$/.test(k)) continue;
      for (const c of [Math.floor(H / 3), H - 3]) w[c] *= opts.normOutliers;
      const t = tensors.find((x) => x.key === k)!;
      t.data = encode(w, dtype).data;
      weights[k] = encode(w, dtype).stored;
    }
  }

  const architectures = labels ? ['BertForSequenceClassification'] : ['BertModel'];
  const config: Record<string, unknown> = {
    _name_or_path: 'webq-tiny-bert',
    architectures,
    attention_probs_dropout_prob: 0.1,
    classifier_dropout: null,
    gradient_checkpointing: false,
    hidden_act: 'gelu',
    hidden_dropout_prob: 0.1,
    hidden_size: H,
    ...(labels && {
      id2label: Object.fromEntries(labels.map((n, i) => [String(i), n])),
      label2id: Object.fromEntries(labels.map((n, i) => [n, i])),
    }),
    initializer_range: 0.02,
    intermediate_size: I,
    layer_norm_eps: 1e-12,
    max_position_embeddings: P,
    model_type: 'bert',
    num_attention_heads: heads,
    num_hidden_layers: L,
    pad_token_id: 0,
    position_embedding_type: 'absolute',
    torch_dtype: { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[dtype],
    transformers_version: '4.46.3',
    type_vocab_size: TV,
    use_cache: true,
    vocab_size: V,
  };

  await mkdir(dir, { recursive: true });
  const files = ['config.json'];
  await writeFile(join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  const meta = { format: 'pt' };
  if (opts.sharded) {
    // Embeddings and the first half of the layers in shard 1, the rest in shard 2, as
    // save_pretrained's size-based split tends to produce.
    const cut = `encoder.layer.${Math.ceil(L / 2)}.`;
    const second = (k: string) => k.startsWith(cut) || k.startsWith('pooler.') || k.startsWith('classifier.');
    const first = tensors.findIndex((t) => second(t.key));
    const split = first > 0 ? first : Math.ceil(tensors.length / 2);
    const shards = [tensors.slice(0, split), tensors.slice(split)];
    const names = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
    const weightMap: Record<string, string> = {};
    let total = 0;
    for (let s = 0; s < 2; s++) {
      await writeSafetensorsFile(join(dir, names[s]), shards[s], meta);
      for (const t of shards[s]) {
        weightMap[t.name] = names[s];
        total += t.data.byteLength;
      }
    }
    const index = { metadata: { total_size: total }, weight_map: weightMap };
    await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify(index, null, 2) + '\n');
    files.push(...names, 'model.safetensors.index.json');
  } else {
    await writeSafetensorsFile(join(dir, 'model.safetensors'), tensors, meta);
    files.push('model.safetensors');
  }
  if (opts.tokenizer ?? true) {
    const { tokenizerJson, tokenizerConfig } = tinyTokenizerFiles(P, vocab);
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson, null, 2) + '\n');
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig, null, 2) + '\n');
    files.push('tokenizer.json', 'tokenizer_config.json');
  }
  return { dir, config, weights, tensorNames: tensors.map((t) => t.name), vocab, files };
}

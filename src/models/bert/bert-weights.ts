/**
 * BERT checkpoints -> a typed weight table. Hugging Face saves the encoder either bare (BertModel,
 * sentence-transformers: `embeddings.word_embeddings.weight`) or inside a task model
 * (BertForSequenceClassification: `bert.embeddings...` plus `classifier.*`), and very old exports
 * name LayerNorm parameters `gamma`/`beta`. Everything is resolved and shape-checked against
 * config.json up front, so a wrong checkpoint fails here with the tensor's name, not mid-forward.
 */
import { hasQuantized } from '../../quant/prequantized.ts';
import { WebqError } from '../../errors.ts';
import type { DType } from '../../io/safetensors/dtypes.ts';
import type { TensorStore } from '../../io/safetensors/reader.ts';
import { exactDequant, parseQuantizationConfig, readImported, type ImportedLinear, type ImportFormat } from '../../quant/imports/index.ts';
import type { BertConfig, EncoderFamily } from '../config.ts';
import { resolveModernBertWeights, type ModernBertRefs } from './modernbert-weights.ts';
import { FLOAT_DTYPES, importedRef, shapeText, type WeightRef } from '../weight-ref.ts';

export type BertWeightsErrorCode =
  | 'WEIGHTS_MISSING' // a required tensor is not in the checkpoint
  | 'WEIGHTS_SHAPE' // a tensor's shape disagrees with config.json
  | 'WEIGHTS_DTYPE' // a tensor is not floating point
  | 'WEIGHTS_EXTRA_LAYER'; // the checkpoint has more encoder layers than config.json says

/** The checkpoint does not match the BERT layout or config.json. */
export class BertWeightsError extends WebqError {
  declare readonly code: BertWeightsErrorCode;
  constructor(code: BertWeightsErrorCode, message: string) {
    super(code, message);
  }
}

/** A PyTorch nn.Linear: weight [out, in] (y = x W^T + b), bias [out]. */
export interface LinearRefs {
  readonly weight: WeightRef;
  readonly bias: WeightRef;
}

/** LayerNorm: weight (gamma) [H], bias (beta) [H]. */
export type NormRefs = LinearRefs;

export interface BertLayerRefs {
  readonly query: LinearRefs; // [H, H]
  readonly key: LinearRefs; // [H, H]
  readonly value: LinearRefs; // [H, H]
  readonly attnOut: LinearRefs; // [H, H]
  readonly attnNorm: NormRefs; // [H]
  readonly intermediate: LinearRefs; // [I, H]
  readonly output: LinearRefs; // [H, I]
  readonly outNorm: NormRefs; // [H]
}

export interface BertWeights {
  /** 'bert.' / 'roberta.' / 'distilbert.' when the encoder sits inside a task model, '' for a bare one. */
  readonly prefix: string;
  readonly embeddings: {
    readonly word: WeightRef; // [V, H]
    readonly position: WeightRef | null; // [P, H]; ModernBERT has none (RoPE)
    readonly tokenType: WeightRef | null; // [TV, H]; DistilBERT has none
    readonly norm: NormRefs | null; // [H]; ModernBERT's (maybe without bias) is in `modern`
  };
  readonly layers: readonly BertLayerRefs[];
  /** MPNet's relative position bias table [buckets, heads] (encoder.relative_attention_bias.weight), else null. */
  readonly relativeBias: WeightRef | null;
  /**
   * The head's dense [H, H] on the first token's state (BertConfig.head): BERT's pooler.dense,
   * RoBERTa's classifier.dense, DistilBERT's pre_classifier; absent in many sentence-transformers exports.
   */
  readonly pooler: LinearRefs | null;
  /** [numLabels, H]: classifier (BERT, DistilBERT) or classifier.out_proj (RoBERTa), in *ForSequenceClassification checkpoints. */
  readonly classifier: LinearRefs | null;
  /** ModernBERT's layers, norms and head (its own layout; `layers` is empty then), else null. */
  readonly modern: ModernBertRefs | null;
  /** Every resolved tensor, in forward order. */
  readonly all: readonly WeightRef[];
}


/** The prefix a *ForSequenceClassification (or other task) model puts before the encoder's tensors. */
export const TASK_PREFIX: Readonly<Record<EncoderFamily, string>> = { bert: 'bert.', roberta: 'roberta.', 'xlm-roberta': 'roberta.', distilbert: 'distilbert.', mpnet: 'mpnet.', modernbert: 'model.' };

/** DistilBERT's names for BERT's canonical ones (transformers' modeling_distilbert.py); the rest are the same. */
const DISTILBERT_NAMES: readonly [RegExp, string][] = [
  [/^encoder\.layer\.(\d+)\.attention\.self\.query\./, 'transformer.layer.$1.attention.q_lin.'],
  [/^encoder\.layer\.(\d+)\.attention\.self\.key\./, 'transformer.layer.$1.attention.k_lin.'],
  [/^encoder\.layer\.(\d+)\.attention\.self\.value\./, 'transformer.layer.$1.attention.v_lin.'],
  [/^encoder\.layer\.(\d+)\.attention\.output\.dense\./, 'transformer.layer.$1.attention.out_lin.'],
  [/^encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\./, 'transformer.layer.$1.sa_layer_norm.'],
  [/^encoder\.layer\.(\d+)\.intermediate\.dense\./, 'transformer.layer.$1.ffn.lin1.'],
  [/^encoder\.layer\.(\d+)\.output\.dense\./, 'transformer.layer.$1.ffn.lin2.'],
  [/^encoder\.layer\.(\d+)\.output\.LayerNorm\./, 'transformer.layer.$1.output_layer_norm.'],
];

/** MPNet's (modeling_mpnet.py: attention.attn.q/k/v/o, attention.LayerNorm); the rest are BERT's. */
const MPNET_NAMES: readonly [RegExp, string][] = [
  [/^encoder\.layer\.(\d+)\.attention\.self\.query\./, 'encoder.layer.$1.attention.attn.q.'],
  [/^encoder\.layer\.(\d+)\.attention\.self\.key\./, 'encoder.layer.$1.attention.attn.k.'],
  [/^encoder\.layer\.(\d+)\.attention\.self\.value\./, 'encoder.layer.$1.attention.attn.v.'],
  [/^encoder\.layer\.(\d+)\.attention\.output\.dense\./, 'encoder.layer.$1.attention.attn.o.'],
  [/^encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\./, 'encoder.layer.$1.attention.LayerNorm.'],
];

/** A canonical (BERT, unprefixed) tensor name as `family` spells it in the file, before the prefix. */
export function familyTensorName(family: EncoderFamily, key: string): string {
  const names = family === 'distilbert' ? DISTILBERT_NAMES : family === 'mpnet' ? MPNET_NAMES : [];
  for (const [re, to] of names) if (re.test(key)) return key.replace(re, to);
  return key;
}

/** The head's two Linears, by their names in the file (outside the encoder's prefix). */
const HEAD_NAMES: Readonly<Record<BertConfig['head'], { dense: string; out: string }>> = {
  pooler: { dense: 'pooler.dense', out: 'classifier' }, // pooler.dense sits inside the prefix (below)
  'dense-tanh': { dense: 'classifier.dense', out: 'classifier.out_proj' },
  'dense-relu': { dense: 'pre_classifier', out: 'classifier' },
  token: { dense: '', out: 'classifier' }, // *ForTokenClassification: the classifier alone, on every token
  'dense-gelu-norm': { dense: 'head.dense', out: 'classifier' }, // modernbert-weights.ts resolves it
};

/**
 * Resolves every BERT tensor in `store` against `cfg`. Unknown extra tensors (e.g.
 * `embeddings.position_ids`, masked-LM heads) are ignored; missing or misshapen ones are errors
 * naming the tensor, the checkpoint and the config field the shape comes from.
 */
export function resolveBertWeights(store: TensorStore, cfg: BertConfig): BertWeights {
  if (cfg.modern) return resolveModernBertWeights(store, cfg);
  const H = cfg.hiddenSize;
  const I = cfg.intermediateSize;
  // GPTQ, AWQ, compressed-tensors or bitsandbytes, from config.json (an unsupported one throws here).
  const format = parseQuantizationConfig(cfg.quantizationConfig ?? undefined, 'config.json');
  const present = (name: string) => store.has(name) || hasQuantized(store, name);
  const fam = cfg.family;
  const task = TASK_PREFIX[fam];
  const prefix = present(`${task}embeddings.word_embeddings.weight`) ? task : '';
  const file = (key: string) => prefix + familyTensorName(fam, key);
  const all: WeightRef[] = [];

  const check = (key: string, name: string, shape: readonly number[], why: string): WeightRef => {
    const t = store.get(name)!;
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new BertWeightsError(
        'WEIGHTS_SHAPE',
        `${store.name}: tensor "${name}" has shape ${shapeText(t.shape)}, expected ${shapeText(shape)} (${why})`,
      );
    }
    if (!FLOAT_DTYPES.has(t.dtype)) {
      throw new BertWeightsError('WEIGHTS_DTYPE', `${store.name}: tensor "${name}" is ${t.dtype}; expected a float dtype (F32, F16, BF16 or F64)`);
    }
    const ref = { key, name, shape, dtype: t.dtype };
    all.push(ref);
    return ref;
  };
  /** `key` is canonical and unprefixed; `alt` is the old-style name (gamma/beta) if any. */
  const need = (key: string, shape: readonly number[], why: string, alt?: string): WeightRef => {
    for (const candidate of alt ? [key, alt] : [key]) {
      if (store.has(file(candidate))) return check(key, file(candidate), shape, why);
    }
    const also = alt ? ` (or "${file(alt)}")` : '';
    const layout = prefix ? `${fam} task-model layout with prefix "${prefix}"` : `bare ${fam} layout (no "${task}" prefix)`;
    throw new BertWeightsError('WEIGHTS_MISSING', `${store.name}: missing tensor "${file(key)}"${also}; expected ${shapeText(shape)} in a ${layout}`);
  };
  /** A Linear weight (or the word table) may also be stored pre-quantized; its packed tensors are checked on read. */
  const weight = (key: string, name: string, shape: readonly number[], why: string): WeightRef => {
    const imported = importedRef(store, format, key, name, shape);
    if (imported) {
      all.push(imported);
      return imported;
    }
    if (!store.has(name) && hasQuantized(store, name)) {
      const ref = { key, name, shape, dtype: 'F32' as DType, quantized: true };
      all.push(ref);
      return ref;
    }
    return store.has(name) ? check(key, name, shape, why) : need(key, shape, why);
  };
  const linear = (base: string, out: number, inp: number, why: string): LinearRefs => ({
    weight: weight(`${base}.weight`, file(`${base}.weight`), [out, inp], why),
    bias: need(`${base}.bias`, [out], why),
  });
  const norm = (base: string): NormRefs => ({
    weight: need(`${base}.weight`, [H], 'config.json hidden_size', `${base}.gamma`),
    bias: need(`${base}.bias`, [H], 'config.json hidden_size', `${base}.beta`),
  });

  const wordName = `${prefix}embeddings.word_embeddings.weight`;
  if (!store.has(wordName) && !hasQuantized(store, wordName)) {
    throw new BertWeightsError(
      'WEIGHTS_MISSING',
      `${store.name}: missing tensor "embeddings.word_embeddings.weight" (also looked for "${task}embeddings.word_embeddings.weight"); is this a ${fam} checkpoint (config.json model_type)?`,
    );
  }
  const embeddings = {
    // The table may be stored packed too (webq-quant-2).
    word: weight('embeddings.word_embeddings.weight', wordName, [cfg.vocabSize, H], 'config.json vocab_size x hidden_size'),
    position: need('embeddings.position_embeddings.weight', [cfg.maxPositions, H], 'config.json max_position_embeddings x hidden_size'),
    tokenType: cfg.typeVocabSize > 0 ? need('embeddings.token_type_embeddings.weight', [cfg.typeVocabSize, H], 'config.json type_vocab_size x hidden_size') : null,
    norm: norm('embeddings.LayerNorm'),
  };

  const hh = 'config.json hidden_size x hidden_size';
  const layers: BertLayerRefs[] = [];
  for (let i = 0; i < cfg.numLayers; i++) {
    const L = `encoder.layer.${i}`;
    layers.push({
      query: linear(`${L}.attention.self.query`, H, H, hh),
      key: linear(`${L}.attention.self.key`, H, H, hh),
      value: linear(`${L}.attention.self.value`, H, H, hh),
      attnOut: linear(`${L}.attention.output.dense`, H, H, hh),
      attnNorm: norm(`${L}.attention.output.LayerNorm`),
      intermediate: linear(`${L}.intermediate.dense`, I, H, 'config.json intermediate_size x hidden_size'),
      output: linear(`${L}.output.dense`, H, I, 'config.json hidden_size x intermediate_size'),
      outNorm: norm(`${L}.output.LayerNorm`),
    });
  }
  const relativeBias = cfg.relativeBuckets > 0 ? need('encoder.relative_attention_bias.weight', [cfg.relativeBuckets, cfg.numHeads], 'config.json relative_attention_num_buckets x num_attention_heads') : null;
  const extra = `${prefix}${fam === 'distilbert' ? 'transformer' : 'encoder'}.layer.${cfg.numLayers}.`;
  if (store.tensors.some((t) => t.name.startsWith(extra))) {
    throw new BertWeightsError(
      'WEIGHTS_EXTRA_LAYER',
      `${store.name}: has tensors for encoder layer ${cfg.numLayers} (e.g. "${store.tensors.find((t) => t.name.startsWith(extra))!.name}"), but config.json num_hidden_layers is ${cfg.numLayers}`,
    );
  }

  const stored = (name: string, shape: readonly number[]) => present(name) || importedRef(store, format, name, name, shape) !== null;
  // The classification head sits outside the encoder's prefix (BERT's pooler inside it).
  const head = HEAD_NAMES[cfg.head];
  const outside = (base: string, out: number, why: string): LinearRefs | null => {
    if (!stored(`${base}.weight`, [out, H])) return null;
    const w = weight(`${base}.weight`, `${base}.weight`, [out, H], why);
    if (!store.has(`${base}.bias`)) {
      throw new BertWeightsError('WEIGHTS_MISSING', `${store.name}: missing tensor "${base}.bias"; expected [${out}] beside "${base}.weight"`);
    }
    return { weight: w, bias: check(`${base}.bias`, `${base}.bias`, [out], why) };
  };
  const pooler =
    cfg.head === 'token' ? null : cfg.head === 'pooler' ? (stored(`${prefix}pooler.dense.weight`, [H, H]) ? linear('pooler.dense', H, H, hh) : null) : outside(head.dense, H, hh);
  const classifier = outside(head.out, cfg.numLabels, 'config.json num_labels (or id2label size) x hidden_size');
  if (cfg.head === 'token' && !classifier) {
    throw new BertWeightsError('WEIGHTS_MISSING', `${store.name}: config.json architectures ${cfg.architectures.join(', ')} needs the token classifier "classifier.weight" [${cfg.numLabels}, ${H}] and "classifier.bias"`);
  }
  if (cfg.head !== 'pooler' && cfg.head !== 'token' && (pooler === null) !== (classifier === null)) {
    const [has, lacks] = pooler ? [head.dense, head.out] : [head.out, head.dense];
    throw new BertWeightsError('WEIGHTS_MISSING', `${store.name}: has "${has}.weight" but no "${lacks}.weight"; a ${fam} classification head needs both`);
  }
  return { prefix, embeddings, layers, relativeBias, pooler, classifier, modern: null, all };
}

/**
 * Reads every resolved tensor as f32 into a record keyed by canonical name (unprefixed,
 * `.weight`/`.bias`), the form the CPU reference (src/reference/bert.ts) takes.
 */
export async function readBertWeightsF32(store: TensorStore, weights: BertWeights): Promise<Record<string, Float32Array>> {
  const out: Record<string, Float32Array> = Object.create(null);
  // An imported weight reads as its exact dequantization (the formats' reference).
  for (const ref of weights.all) out[ref.key] = ref.imported ? exactDequant(await readImported(ref.imported)) : await store.readAs(ref.name, 'f32');
  return out;
}

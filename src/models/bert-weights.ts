/**
 * BERT checkpoints -> a typed weight table. Hugging Face saves the encoder either bare (BertModel,
 * sentence-transformers: `embeddings.word_embeddings.weight`) or inside a task model
 * (BertForSequenceClassification: `bert.embeddings...` plus `classifier.*`), and very old exports
 * name LayerNorm parameters `gamma`/`beta`. Everything is resolved and shape-checked against
 * config.json up front, so a wrong checkpoint fails here with the tensor's name, not mid-forward.
 */
import { hasQuantized } from '../quant/prequantized.ts';
import { WebqError } from '../errors.ts';
import type { DType } from '../io/safetensors/dtypes.ts';
import type { TensorStore } from '../io/safetensors/reader.ts';
import { exactDequant, parseQuantizationConfig, readImported, type ImportedLinear, type ImportFormat } from '../quant/imports/index.ts';
import type { BertConfig } from './config.ts';

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

/** One resolved tensor: its canonical name (unprefixed, `.weight`/`.bias`), its name in the file. */
export interface WeightRef {
  /** e.g. `encoder.layer.0.attention.output.LayerNorm.weight`, whatever the file calls it. */
  readonly key: string;
  /** e.g. `bert.encoder.layer.0.attention.output.LayerNorm.gamma`: pass this to the store. */
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: DType;
  /**
   * Stored pre-quantized: by webq (`name.qvalues` / `.qscales` / `.qzeros`, src/quant/prequantized.ts),
   * or, with `imported`, by another tool.
   */
  readonly quantized?: boolean;
  /** Stored pre-quantized by another tool (GPTQ, AWQ, ...; src/quant/imports), its headers checked. */
  readonly imported?: ImportedLinear;
  /** Rows `start` .. start + count - 1 of the stored tensor `name` (a fused Linear's part: Phi-3's qkv_proj); `shape` is the part's. */
  readonly rows?: { readonly start: number; readonly count: number };
}

/**
 * The Linear weight `name` ("<base>.weight", [out, in]) as another tool's quantized tensors, or
 * null when it is stored as a float (or there is no import format).
 */
export function importedRef(store: TensorStore, format: ImportFormat | null, key: string, name: string, shape: readonly number[]): WeightRef | null {
  if (!format || !name.endsWith('.weight')) return null;
  const imported = format.linear(store, name.slice(0, -'.weight'.length), shape[0], shape[1]);
  return imported ? { key, name, shape, dtype: 'F32', quantized: true, imported } : null;
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
  /** 'bert.' when the encoder sits inside a task model, '' for a bare BertModel. */
  readonly prefix: '' | 'bert.';
  readonly embeddings: {
    readonly word: WeightRef; // [V, H]
    readonly position: WeightRef; // [P, H]
    readonly tokenType: WeightRef; // [TV, H]
    readonly norm: NormRefs; // [H]
  };
  readonly layers: readonly BertLayerRefs[];
  /** dense [H, H] + tanh on the [CLS] state; absent in many sentence-transformers exports. */
  readonly pooler: LinearRefs | null;
  /** [numLabels, H]; present in BertForSequenceClassification checkpoints. */
  readonly classifier: LinearRefs | null;
  /** Every resolved tensor, in forward order. */
  readonly all: readonly WeightRef[];
}

const FLOAT_DTYPES: ReadonlySet<DType> = new Set(['F32', 'F16', 'BF16', 'F64']);

function shapeText(s: readonly number[]): string {
  return `[${s.join(', ')}]`;
}

/**
 * Resolves every BERT tensor in `store` against `cfg`. Unknown extra tensors (e.g.
 * `embeddings.position_ids`, masked-LM heads) are ignored; missing or misshapen ones are errors
 * naming the tensor, the checkpoint and the config field the shape comes from.
 */
export function resolveBertWeights(store: TensorStore, cfg: BertConfig): BertWeights {
  const H = cfg.hiddenSize;
  const I = cfg.intermediateSize;
  // GPTQ, AWQ, compressed-tensors or bitsandbytes, from config.json (an unsupported one throws here).
  const format = parseQuantizationConfig(cfg.quantizationConfig ?? undefined, 'config.json');
  const present = (name: string) => store.has(name) || hasQuantized(store, name);
  const prefix = present('bert.embeddings.word_embeddings.weight') ? 'bert.' : '';
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
      if (store.has(prefix + candidate)) return check(key, prefix + candidate, shape, why);
    }
    const also = alt ? ` (or "${prefix}${alt}")` : '';
    const layout = prefix ? 'BertForSequenceClassification-style layout with prefix "bert."' : 'bare BertModel layout (no "bert." prefix)';
    throw new BertWeightsError('WEIGHTS_MISSING', `${store.name}: missing tensor "${prefix}${key}"${also}; expected ${shapeText(shape)} in a ${layout}`);
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
    weight: weight(`${base}.weight`, `${prefix}${base}.weight`, [out, inp], why),
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
      `${store.name}: missing tensor "embeddings.word_embeddings.weight" (also looked for "bert.embeddings.word_embeddings.weight"); is this a BERT checkpoint?`,
    );
  }
  const embeddings = {
    // The table may be stored packed too (webq-quant-2).
    word: weight('embeddings.word_embeddings.weight', wordName, [cfg.vocabSize, H], 'config.json vocab_size x hidden_size'),
    position: need('embeddings.position_embeddings.weight', [cfg.maxPositions, H], 'config.json max_position_embeddings x hidden_size'),
    tokenType: need('embeddings.token_type_embeddings.weight', [cfg.typeVocabSize, H], 'config.json type_vocab_size x hidden_size'),
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
  const extra = `${prefix}encoder.layer.${cfg.numLayers}.`;
  if (store.tensors.some((t) => t.name.startsWith(extra))) {
    throw new BertWeightsError(
      'WEIGHTS_EXTRA_LAYER',
      `${store.name}: has tensors for encoder layer ${cfg.numLayers} (e.g. "${store.tensors.find((t) => t.name.startsWith(extra))!.name}"), but config.json num_hidden_layers is ${cfg.numLayers}`,
    );
  }

  const stored = (name: string, shape: readonly number[]) => present(name) || importedRef(store, format, name, name, shape) !== null;
  const pooler = stored(`${prefix}pooler.dense.weight`, [H, H]) ? linear('pooler.dense', H, H, hh) : null;
  let classifier: LinearRefs | null = null;
  // The classification head sits outside the "bert." prefix.
  if (stored('classifier.weight', [cfg.numLabels, H])) {
    const why = 'config.json num_labels (or id2label size) x hidden_size';
    const w = weight('classifier.weight', 'classifier.weight', [cfg.numLabels, H], why);
    if (!store.has('classifier.bias')) {
      throw new BertWeightsError('WEIGHTS_MISSING', `${store.name}: missing tensor "classifier.bias"; expected [${cfg.numLabels}] beside "classifier.weight"`);
    }
    classifier = { weight: w, bias: check('classifier.bias', 'classifier.bias', [cfg.numLabels], why) };
  }
  return { prefix, embeddings, layers, pooler, classifier, all };
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

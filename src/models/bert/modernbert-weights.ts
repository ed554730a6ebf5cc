/**
 * ModernBERT checkpoints -> a typed weight table (transformers' modeling_modernbert.py names).
 * ModernBertModel saves the encoder bare (`embeddings.tok_embeddings.weight`, `layers.N.*`,
 * `final_norm.*`: gte-modernbert-base, ModernBERT-embed); ModernBertForSequenceClassification puts
 * it under `model.` beside `head.dense`, `head.norm` and `classifier`. Biases exist only where
 * config.json says (norm_bias, attention_bias, mlp_bias, classifier_bias); layer 0 has no attn_norm
 * (an Identity there). Everything is shape-checked against config.json up front.
 */
import { hasQuantized } from '../../quant/prequantized.ts';
import type { DType } from '../../io/safetensors/dtypes.ts';
import type { TensorStore } from '../../io/safetensors/reader.ts';
import { parseQuantizationConfig } from '../../quant/imports/index.ts';
import { BertWeightsError, TASK_PREFIX, type BertWeights } from './bert-weights.ts';
import { FLOAT_DTYPES, importedRef, shapeText, type WeightRef } from '../weight-ref.ts';
import type { BertConfig } from '../config.ts';

/** A Linear or LayerNorm whose bias config.json may turn off. */
export interface MaybeBiased {
  readonly weight: WeightRef;
  readonly bias: WeightRef | null;
}

export interface ModernBertLayerRefs {
  readonly attnNorm: MaybeBiased | null; // [H]; null on layer 0 (Identity)
  readonly qkv: MaybeBiased; //     attn.Wqkv [3H, H]: query | key | value rows
  readonly attnOut: MaybeBiased; // attn.Wo [H, H]
  readonly mlpNorm: MaybeBiased; // [H]
  readonly wi: MaybeBiased; //      mlp.Wi [2I, H]: input | gate rows
  readonly mlpOut: MaybeBiased; //  mlp.Wo [H, I]
}

export interface ModernBertRefs {
  readonly embNorm: MaybeBiased; // embeddings.norm [H]
  readonly layers: readonly ModernBertLayerRefs[];
  readonly finalNorm: MaybeBiased; // [H]
  /** head.dense [H, H] + activation + head.norm [H], then classifier [labels, H] (bias always); null without a head. */
  readonly head: { readonly dense: MaybeBiased; readonly norm: MaybeBiased; readonly classifier: MaybeBiased } | null;
}

export function resolveModernBertWeights(store: TensorStore, cfg: BertConfig): BertWeights {
  const m = cfg.modern!;
  const H = cfg.hiddenSize;
  const I = cfg.intermediateSize;
  const format = parseQuantizationConfig(cfg.quantizationConfig ?? undefined, 'config.json');
  const present = (name: string) => store.has(name) || hasQuantized(store, name);
  const task = TASK_PREFIX.modernbert;
  const prefix = present(`${task}embeddings.tok_embeddings.weight`) ? task : '';
  const all: WeightRef[] = [];
  const layout = prefix ? `modernbert task-model layout with prefix "${prefix}"` : `bare modernbert layout (no "${task}" prefix)`;

  const check = (key: string, name: string, shape: readonly number[], why: string): WeightRef => {
    const t = store.get(name)!;
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new BertWeightsError('WEIGHTS_SHAPE', `${store.name}: tensor "${name}" has shape ${shapeText(t.shape)}, expected ${shapeText(shape)} (${why})`);
    }
    if (!FLOAT_DTYPES.has(t.dtype)) throw new BertWeightsError('WEIGHTS_DTYPE', `${store.name}: tensor "${name}" is ${t.dtype}; expected a float dtype (F32, F16, BF16 or F64)`);
    const ref = { key, name, shape, dtype: t.dtype };
    all.push(ref);
    return ref;
  };
  /** `key` is the unprefixed name; `base` is the prefix it sits under in the file ('' for the head). */
  const need = (key: string, shape: readonly number[], why: string, base = prefix): WeightRef => {
    if (store.has(base + key)) return check(key, base + key, shape, why);
    throw new BertWeightsError('WEIGHTS_MISSING', `${store.name}: missing tensor "${base + key}"; expected ${shapeText(shape)} in a ${layout}`);
  };
  /** A Linear weight (or the word table) may also be stored pre-quantized; its packed tensors are checked on read. */
  const weight = (key: string, shape: readonly number[], why: string, base = prefix): WeightRef => {
    const name = base + key;
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
    return need(key, shape, why, base);
  };
  /** The bias is required when `biased`, and must be absent otherwise (a file that disagrees with config.json). */
  const bias = (key: string, n: number, biased: boolean, field: string, base = prefix): WeightRef | null => {
    if (biased) return need(key, [n], `config.json ${field} true`, base);
    if (store.has(base + key)) throw new BertWeightsError('WEIGHTS_SHAPE', `${store.name}: has tensor "${base + key}" but config.json ${field} is false; the forward would leave it out`);
    return null;
  };
  const linear = (b: string, out: number, inp: number, biased: boolean, field: string, why: string, base = prefix): MaybeBiased => ({
    weight: weight(`${b}.weight`, [out, inp], why, base),
    bias: bias(`${b}.bias`, out, biased, field, base),
  });
  const norm = (b: string, base = prefix): MaybeBiased => ({
    weight: need(`${b}.weight`, [H], 'config.json hidden_size', base),
    bias: bias(`${b}.bias`, H, m.normBias, 'norm_bias', base),
  });

  const wordKey = 'embeddings.tok_embeddings.weight';
  if (!present(prefix + wordKey)) {
    throw new BertWeightsError('WEIGHTS_MISSING', `${store.name}: missing tensor "${wordKey}" (also looked for "${task}${wordKey}"); is this a modernbert checkpoint (config.json model_type)?`);
  }
  const word = weight(wordKey, [cfg.vocabSize, H], 'config.json vocab_size x hidden_size');
  const embNorm = norm('embeddings.norm');
  const hh = 'config.json hidden_size x hidden_size';
  const layers: ModernBertLayerRefs[] = [];
  for (let i = 0; i < cfg.numLayers; i++) {
    const L = `layers.${i}`;
    if (i === 0 && store.has(`${prefix}${L}.attn_norm.weight`)) {
      throw new BertWeightsError('WEIGHTS_SHAPE', `${store.name}: has "${prefix}${L}.attn_norm.weight", but ModernBERT's first layer has no attn_norm (an Identity)`);
    }
    layers.push({
      attnNorm: i === 0 ? null : norm(`${L}.attn_norm`),
      qkv: linear(`${L}.attn.Wqkv`, 3 * H, H, m.attentionBias, 'attention_bias', '3 x config.json hidden_size x hidden_size'),
      attnOut: linear(`${L}.attn.Wo`, H, H, m.attentionBias, 'attention_bias', hh),
      mlpNorm: norm(`${L}.mlp_norm`),
      wi: linear(`${L}.mlp.Wi`, 2 * I, H, m.mlpBias, 'mlp_bias', '2 x config.json intermediate_size x hidden_size'),
      mlpOut: linear(`${L}.mlp.Wo`, H, I, m.mlpBias, 'mlp_bias', 'config.json hidden_size x intermediate_size'),
    });
  }
  const extra = `${prefix}layers.${cfg.numLayers}.`;
  const over = store.tensors.find((t) => t.name.startsWith(extra));
  if (over) throw new BertWeightsError('WEIGHTS_EXTRA_LAYER', `${store.name}: has tensors for encoder layer ${cfg.numLayers} (e.g. "${over.name}"), but config.json num_hidden_layers is ${cfg.numLayers}`);
  const finalNorm = norm('final_norm');

  // The head sits outside the encoder's prefix (ModernBertForSequenceClassification: model.*, head.*, classifier.*).
  const stored = (name: string, shape: readonly number[]) => present(name) || importedRef(store, format, name, name, shape) !== null;
  const hasDense = stored('head.dense.weight', [H, H]);
  const hasClassifier = stored('classifier.weight', [cfg.numLabels, H]);
  if (hasDense !== hasClassifier && hasClassifier) {
    throw new BertWeightsError('WEIGHTS_MISSING', `${store.name}: has "classifier.weight" but no "head.dense.weight"; a modernbert classification head needs both`);
  }
  // A masked-LM checkpoint has head.* and a decoder, no classifier: the encoder alone is used.
  const head = hasClassifier
    ? {
        dense: linear('head.dense', H, H, m.classifierBias, 'classifier_bias', hh, ''),
        norm: norm('head.norm', ''),
        classifier: { weight: weight('classifier.weight', [cfg.numLabels, H], 'config.json num_labels (or id2label size) x hidden_size', ''), bias: need('classifier.bias', [cfg.numLabels], 'config.json num_labels', '') },
      }
    : null;
  return {
    prefix,
    embeddings: { word, position: null, tokenType: null, norm: null },
    layers: [],
    relativeBias: null,
    pooler: null,
    classifier: null,
    modern: { embNorm, layers, finalNorm, head },
    all,
  };
}

/**
 * Hugging Face config.json -> typed model configs. Only what the runtime needs is kept; every field
 * is checked for type and range here, so a forward pass never sees a half-valid config.
 */
import type { JsonObject, JsonValue } from '../io/json.ts';
import { CONFIG_BOUNDS, describe, fields, isObject, ModelConfigError, shortJson, toJson } from './config-json.ts';
import { refuseGemma3Multimodal } from './llama/gemma-config.ts';
import { parseLlamaConfig, type LlamaConfig } from './llama/llama-config.ts';
import { parseModernBertConfig, type ModernBertOptions } from './bert/modernbert-config.ts';
import { architectureFor, MODEL_TYPES, modelTypeEntry, type EncoderFamily, type SupportedModelType } from './registry.ts';

export { CONFIG_BOUNDS, ModelConfigError, type ModelConfigErrorCode } from './config-json.ts';
export type { EncoderFamily, SupportedModelType } from './registry.ts';
export type { ModernBertOptions } from './bert/modernbert-config.ts';

/** model_type values webq runs (src/models/registry.ts). */
export const SUPPORTED_MODEL_TYPES: readonly SupportedModelType[] = MODEL_TYPES.map((e) => e.modelType);

/** The encoder families one BERT forward runs; what differs is configuration (see BertConfig). */
export const ENCODER_FAMILIES = MODEL_TYPES.filter((e) => e.forward === 'encoder').map((e) => e.modelType) as readonly EncoderFamily[];

export interface BertConfig {
  /** Every encoder family parses to this one config (the decoders' is LlamaConfig). */
  readonly modelType: 'bert';
  /** config.json model_type: which HF tensor names and heads the checkpoint has. */
  readonly family: EncoderFamily;
  /**
   * Position ids: 'absolute' counts 0..T-1 in every row (BERT, DistilBERT); 'after-padding' is
   * RoBERTa's: padTokenId + 1 + (index among the row's non-padding tokens), and padTokenId for a
   * padding token (transformers' create_position_ids_from_input_ids).
   */
  readonly positions: 'absolute' | 'after-padding';
  /** The padding index 'after-padding' positions count from: pad_token_id (RoBERTa), 1 (MPNet hard-codes it). */
  readonly paddingIdx: number;
  /** Longest input in tokens the position table allows: maxPositions, less paddingIdx + 1 for 'after-padding'. */
  readonly maxTokens: number;
  /**
   * MPNet: buckets of the relative position bias shared by every layer (encoder.relative_attention_bias
   * [buckets, heads], added to the attention scores); 0 for the other families.
   */
  readonly relativeBuckets: number;
  /**
   * The sequence-classification head on the first token's state: 'pooler' is BERT's (pooler.dense +
   * tanh, then classifier), 'dense-tanh' RoBERTa's (classifier.dense + tanh, classifier.out_proj),
   * 'dense-relu' DistilBERT's (pre_classifier + ReLU, classifier), 'dense-gelu-norm' ModernBERT's
   * (head.dense + GELU + head.norm, classifier, on the pooling ModernBertOptions.classifierPooling says).
   * 'token' is every family's *ForTokenClassification head instead (config.json architectures says
   * so): one Linear `classifier` on every token's last hidden state, no pooler.
   */
  readonly head: 'pooler' | 'dense-tanh' | 'dense-relu' | 'dense-gelu-norm' | 'token';
  /** ModernBERT's layout (pre-norm GeGLU layers, RoPE, alternating local attention); null for the other families. */
  readonly modern: ModernBertOptions | null;
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  /** hiddenSize / numHeads */
  readonly headDim: number;
  readonly intermediateSize: number;
  readonly maxPositions: number;
  /** 0 for DistilBERT, which has no token type embeddings. */
  readonly typeVocabSize: number;
  readonly layerNormEps: number;
  /** Exact (erf) GELU, the only activation implemented. */
  readonly hiddenAct: 'gelu';
  readonly padTokenId: number;
  /** e.g. ['BertModel'] or ['BertForSequenceClassification']; empty when the field is absent. */
  readonly architectures: readonly string[];
  /** Label names by class index, or null when config.json has none. */
  readonly id2label: Readonly<Record<number, string>> | null;
  /** Classifier width: id2label's size, else num_labels, else 2 (transformers' default). */
  readonly numLabels: number;
  /** config.json's quantization_config as written (GPTQ, AWQ, ...: read by src/quant/imports), or null. */
  readonly quantizationConfig: JsonValue | null;
}

export type ModelConfig = BertConfig | LlamaConfig;

/** Reads id2label ({"0": "NEGATIVE", ...}): keys must be exactly 0..n-1. */
export function readLabels(json: JsonObject, source: string): Record<number, string> | null {
  const raw = json.id2label;
  if (raw === undefined || raw === null) return null;
  if (!isObject(raw)) throw new ModelConfigError('CONFIG_BAD_FIELD', `${source}: field "id2label" must be an object of index -> label name, got ${describe(raw)}`);
  const out: Record<number, string> = {};
  const keys = Object.keys(raw);
  if (keys.length > CONFIG_BOUNDS.types) throw new ModelConfigError('CONFIG_BAD_FIELD', `${source}: id2label has ${keys.length} labels; expected at most ${CONFIG_BOUNDS.types}`);
  for (const k of keys) {
    const name = raw[k];
    if (!/^(0|[1-9]\d*)$/.test(k) || Number(k) >= keys.length || typeof name !== 'string') {
      throw new ModelConfigError(
        'CONFIG_BAD_FIELD',
        `${source}: id2label[${shortJson(k)}] = ${shortJson(name)}: expected keys "0".."${keys.length - 1}" mapping to label strings`,
      );
    }
    out[Number(k)] = name;
  }
  return out;
}

function readArchitectures(json: JsonObject, f: ReturnType<typeof fields>): string[] {
  if (!f.has('architectures')) return [];
  const a = json.architectures;
  if (!Array.isArray(a) || !a.every((x) => typeof x === 'string')) throw f.bad('architectures', 'an array of strings');
  return a as string[];
}

/**
 * Parses config.json (text or parsed JSON) of a BERT-family encoder. `source` names the file in
 * errors. Fields transformers defaults (type_vocab_size 2, layer_norm_eps 1e-12, hidden_act gelu,
 * pad_token_id 0) get the same defaults; the sizes that shape the weights are required.
 */
export function parseBertConfig(input: string | JsonValue | object, source = 'config.json'): BertConfig {
  const json = toJson(input, source);
  const modelType = checkModelType(json, source);
  if (!(ENCODER_FAMILIES as readonly string[]).includes(modelType)) {
    throw new ModelConfigError('CONFIG_UNSUPPORTED_MODEL_TYPE', `${source}: model_type '${modelType}' is a decoder; an encoder is one of ${ENCODER_FAMILIES.join(', ')}`);
  }
  const family = modelType as EncoderFamily;
  const f = fields(json, source);
  if (family === 'modernbert') return parseModernBertConfig(json, source, { architectures: readArchitectures(json, f), id2label: readLabels(json, source) });
  const distil = family === 'distilbert';
  // DistilBERT spells the sizes its own way (dim, n_heads, n_layers, hidden_dim, activation).
  const name = { hidden: distil ? 'dim' : 'hidden_size', heads: distil ? 'n_heads' : 'num_attention_heads', layers: distil ? 'n_layers' : 'num_hidden_layers', inter: distil ? 'hidden_dim' : 'intermediate_size', act: distil ? 'activation' : 'hidden_act' };
  const hiddenSize = f.int(name.hidden, 1, CONFIG_BOUNDS.hidden);
  const numHeads = f.int(name.heads, 1, CONFIG_BOUNDS.heads);
  if (hiddenSize % numHeads !== 0) {
    throw new ModelConfigError(
      'CONFIG_BAD_FIELD',
      `${source}: ${name.hidden} ${hiddenSize} is not divisible by ${name.heads} ${numHeads}; each head needs ${name.hidden} / ${name.heads} dimensions`,
    );
  }
  const act = f.str(name.act) ?? 'gelu';
  if (act !== 'gelu') {
    throw new ModelConfigError(
      'CONFIG_UNSUPPORTED_FEATURE',
      `${source}: ${name.act} ${shortJson(act)} is not supported; webq implements "gelu" (exact erf form) for ${family}`,
    );
  }
  // sinusoidal_pos_embds only chooses how the position table was initialized: it is stored either way.
  if (distil && f.has('sinusoidal_pos_embds') && typeof json.sinusoidal_pos_embds !== 'boolean') throw f.bad('sinusoidal_pos_embds', 'a boolean');
  const posType = f.str('position_embedding_type') ?? 'absolute';
  if (posType !== 'absolute') {
    throw new ModelConfigError(
      'CONFIG_UNSUPPORTED_FEATURE',
      `${source}: position_embedding_type ${shortJson(posType)} is not supported; webq implements "absolute"`,
    );
  }
  const architectures = readArchitectures(json, f);
  const id2label = readLabels(json, source);
  const declared = f.has('num_labels') ? f.int('num_labels', 1, CONFIG_BOUNDS.types) : undefined;
  const labelCount = id2label ? Object.keys(id2label).length : undefined;
  if (declared !== undefined && labelCount !== undefined && declared !== labelCount) {
    throw new ModelConfigError('CONFIG_BAD_FIELD', `${source}: num_labels is ${declared} but id2label has ${labelCount} entries`);
  }
  const vocabSize = f.int('vocab_size', 1, CONFIG_BOUNDS.vocab);
  const roberta = family === 'roberta' || family === 'xlm-roberta';
  const mpnet = family === 'mpnet';
  // transformers' RobertaConfig and XLMRobertaConfig default pad_token_id to 1, BERT's and DistilBERT's to 0.
  const padTokenId = f.int('pad_token_id', 0, CONFIG_BOUNDS.vocab, roberta ? 1 : 0);
  if (padTokenId >= vocabSize) throw f.bad('pad_token_id', `an integer below vocab_size (${vocabSize})`);
  const numLayers = f.int(name.layers, 1, CONFIG_BOUNDS.layers);
  const intermediateSize = f.int(name.inter, 1, CONFIG_BOUNDS.intermediate);
  const maxPositions = f.int('max_position_embeddings', 1, CONFIG_BOUNDS.positions);
  // MPNetEmbeddings counts positions from padding_idx = 1 whatever pad_token_id says.
  const paddingIdx = mpnet ? 1 : padTokenId;
  const afterPadding = roberta || mpnet;
  const maxTokens = afterPadding ? maxPositions - paddingIdx - 1 : maxPositions;
  if (maxTokens < 1) throw f.bad('max_position_embeddings', `more than ${paddingIdx + 1}: ${family} positions start after the padding index`);
  // transformers' MPNetEncoder computes 32 buckets (max distance 128) whatever the table's size.
  const relativeBuckets = mpnet ? f.int('relative_attention_num_buckets', 1, CONFIG_BOUNDS.types, 32) : 0;
  if (mpnet && relativeBuckets !== 32) throw f.bad('relative_attention_num_buckets', '32 (transformers\' MPNet computes 32 buckets)');
  return Object.freeze({
    modelType: 'bert',
    family,
    positions: afterPadding ? 'after-padding' : 'absolute',
    paddingIdx,
    maxTokens,
    relativeBuckets,
    head: architectures.includes(architectureFor(modelTypeEntry(family)!, 'token-classify')!) ? 'token' : afterPadding ? 'dense-tanh' : distil ? 'dense-relu' : 'pooler',
    modern: null,
    vocabSize,
    hiddenSize,
    numLayers,
    numHeads,
    headDim: hiddenSize / numHeads,
    intermediateSize,
    maxPositions,
    // DistilBERT and MPNet have no token type embeddings.
    typeVocabSize: distil || mpnet ? 0 : f.int('type_vocab_size', 1, CONFIG_BOUNDS.types, 2),
    // DistilBERT's LayerNorms are built with eps 1e-12 and the config has no field for it.
    layerNormEps: distil ? 1e-12 : f.num('layer_norm_eps', 1e-12),
    hiddenAct: 'gelu',
    padTokenId,
    architectures: Object.freeze(architectures),
    id2label: id2label && Object.freeze(id2label),
    numLabels: labelCount ?? declared ?? 2,
    quantizationConfig: json.quantization_config ?? null,
  } as const satisfies BertConfig);
}

export function checkModelType(json: JsonObject, source: string): SupportedModelType {
  const t = json.model_type;
  const list = (forward: string) => MODEL_TYPES.filter((e) => e.forward === forward).map((e) => e.modelType).join(', ');
  const supported = `webq runs the encoders ${list('encoder')} and the decoders ${list('decoder')} (\`webq models\` lists their architectures and tasks)`;
  if (typeof t !== 'string') {
    throw new ModelConfigError(
      'CONFIG_UNSUPPORTED_MODEL_TYPE',
      `${source}: field "model_type" is ${t === undefined ? 'missing' : `not a string (${describe(t)})`}; ${supported}`,
    );
  }
  if (!(SUPPORTED_MODEL_TYPES as readonly string[]).includes(t)) {
    throw new ModelConfigError('CONFIG_UNSUPPORTED_MODEL_TYPE', `${source}: unsupported model_type '${t.length > 80 ? `${t.slice(0, 80)}...` : t}': ${supported}`);
  }
  return t as SupportedModelType;
}

/** Parses any supported config.json, dispatching on model_type. */
export function parseModelConfig(input: string | JsonValue | object, source = 'config.json'): ModelConfig {
  const json = toJson(input, source);
  if (json.model_type === 'gemma3') refuseGemma3Multimodal(json, source);
  const forward = modelTypeEntry(checkModelType(json, source))!.forward;
  return forward === 'encoder' ? parseBertConfig(json, source) : parseLlamaConfig(json, source);
}

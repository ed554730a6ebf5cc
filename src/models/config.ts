/**
 * Hugging Face config.json -> typed model configs. Only what the runtime needs is kept; every field
 * is checked for type and range here, so a forward pass never sees a half-valid config.
 */
import type { JsonObject, JsonValue } from '../io/json.ts';
import { CONFIG_BOUNDS, describe, fields, isObject, ModelConfigError, shortJson, toJson } from './config-json.ts';
import { parseLlamaConfig, type LlamaConfig } from './llama-config.ts';

export { CONFIG_BOUNDS, ModelConfigError, type ModelConfigErrorCode } from './config-json.ts';

/** model_type values webq runs. */
export const SUPPORTED_MODEL_TYPES = ['bert', 'llama', 'mistral', 'qwen2', 'qwen3', 'granite', 'olmo2', 'smollm3', 'phi3'] as const;
export type SupportedModelType = (typeof SUPPORTED_MODEL_TYPES)[number];

export interface BertConfig {
  readonly modelType: 'bert';
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  /** hiddenSize / numHeads */
  readonly headDim: number;
  readonly intermediateSize: number;
  readonly maxPositions: number;
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
function readLabels(json: JsonObject, source: string): Record<number, string> | null {
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

/**
 * Parses config.json (text or parsed JSON) of a BERT-family encoder. `source` names the file in
 * errors. Fields transformers defaults (type_vocab_size 2, layer_norm_eps 1e-12, hidden_act gelu,
 * pad_token_id 0) get the same defaults; the sizes that shape the weights are required.
 */
export function parseBertConfig(input: string | JsonValue | object, source = 'config.json'): BertConfig {
  const json = toJson(input, source);
  checkModelType(json, source);
  const f = fields(json, source);
  const hiddenSize = f.int('hidden_size', 1, CONFIG_BOUNDS.hidden);
  const numHeads = f.int('num_attention_heads', 1, CONFIG_BOUNDS.heads);
  if (hiddenSize % numHeads !== 0) {
    throw new ModelConfigError(
      'CONFIG_BAD_FIELD',
      `${source}: hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numHeads}; each head needs hidden_size / num_attention_heads dimensions`,
    );
  }
  const act = f.str('hidden_act') ?? 'gelu';
  if (act !== 'gelu') {
    throw new ModelConfigError(
      'CONFIG_UNSUPPORTED_FEATURE',
      `${source}: hidden_act ${shortJson(act)} is not supported; webq implements "gelu" (exact erf form) for bert`,
    );
  }
  const posType = f.str('position_embedding_type') ?? 'absolute';
  if (posType !== 'absolute') {
    throw new ModelConfigError(
      'CONFIG_UNSUPPORTED_FEATURE',
      `${source}: position_embedding_type ${shortJson(posType)} is not supported; webq implements "absolute"`,
    );
  }
  let architectures: string[] = [];
  if (f.has('architectures')) {
    const a = json.architectures;
    if (!Array.isArray(a) || !a.every((x) => typeof x === 'string')) throw f.bad('architectures', 'an array of strings');
    architectures = a as string[];
  }
  const id2label = readLabels(json, source);
  const declared = f.has('num_labels') ? f.int('num_labels', 1, CONFIG_BOUNDS.types) : undefined;
  const labelCount = id2label ? Object.keys(id2label).length : undefined;
  if (declared !== undefined && labelCount !== undefined && declared !== labelCount) {
    throw new ModelConfigError('CONFIG_BAD_FIELD', `${source}: num_labels is ${declared} but id2label has ${labelCount} entries`);
  }
  const vocabSize = f.int('vocab_size', 1, CONFIG_BOUNDS.vocab);
  const padTokenId = f.int('pad_token_id', 0, CONFIG_BOUNDS.vocab, 0);
  if (padTokenId >= vocabSize) throw f.bad('pad_token_id', `an integer below vocab_size (${vocabSize})`);
  return Object.freeze({
    modelType: 'bert',
    vocabSize,
    hiddenSize,
    numLayers: f.int('num_hidden_layers', 1, CONFIG_BOUNDS.layers),
    numHeads,
    headDim: hiddenSize / numHeads,
    intermediateSize: f.int('intermediate_size', 1, CONFIG_BOUNDS.intermediate),
    maxPositions: f.int('max_position_embeddings', 1, CONFIG_BOUNDS.positions),
    typeVocabSize: f.int('type_vocab_size', 1, CONFIG_BOUNDS.types, 2),
    layerNormEps: f.num('layer_norm_eps', 1e-12),
    hiddenAct: 'gelu',
    padTokenId,
    architectures: Object.freeze(architectures),
    id2label: id2label && Object.freeze(id2label),
    numLabels: labelCount ?? declared ?? 2,
    quantizationConfig: json.quantization_config ?? null,
  } as const);
}

export function checkModelType(json: JsonObject, source: string): SupportedModelType {
  const t = json.model_type;
  const supported = `webq runs ${SUPPORTED_MODEL_TYPES.join(', ')} (BERT-family encoders such as MiniLM, bge, e5 and sentence-transformers models; Llama, Mistral, Qwen2, Qwen3, Granite, OLMo 2, SmolLM3 and Phi-3/4 decoders)`;
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
  switch (checkModelType(json, source)) {
    case 'bert':
      return parseBertConfig(json, source);
    default:
      return parseLlamaConfig(json, source);
  }
}

/**
 * config.json of a LLaMA-family decoder -> LlamaConfig. Llama (2, 3, 3.1/3.2, SmolLM), Mistral,
 * Qwen2 and Qwen3 share one forward (src/models/llama.ts); what differs between them is data here:
 *
 *   llama    optional attention_bias / mlp_bias, rope_scaling 'linear' or 'llama3'
 *   mistral  sliding_window on every layer when set
 *   qwen2    q/k/v biases always; sliding window only with use_sliding_window, from max_window_layers
 *   qwen3    per-head RMSNorm of q and k (q_norm, k_norm) before RoPE; explicit head_dim
 *
 * Defaults are transformers' own for each model_type; the sizes that shape the weights are required.
 */
import { WebqError } from '../errors.ts';
import type { JsonObject, JsonValue } from '../io/json.ts';
import { CONFIG_BOUNDS, describe, fields, isObject, ModelConfigError, shortJson, toJson } from './config-json.ts';

export type LlamaModelType = 'llama' | 'mistral' | 'qwen2' | 'qwen3';

/** The architectures (config.json "architectures") this forward runs, by model_type. */
export const LLAMA_ARCHITECTURES: Readonly<Record<LlamaModelType, string>> = {
  llama: 'LlamaForCausalLM',
  mistral: 'MistralForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  qwen3: 'Qwen3ForCausalLM',
};

export type RopeScaling =
  | { readonly type: 'linear'; readonly factor: number }
  | { readonly type: 'llama3'; readonly factor: number; readonly lowFreqFactor: number; readonly highFreqFactor: number; readonly originalMaxPositions: number };

export interface LlamaConfig {
  readonly modelType: LlamaModelType;
  readonly architecture: string;
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  /** Grouped-query attention: numHeads / numKvHeads query heads share each K/V head. */
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly intermediateSize: number;
  readonly maxPositions: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
  readonly ropeScaling: RopeScaling | null;
  /** Biases on the q, k and v projections (Qwen2 always; Llama with attention_bias). */
  readonly qkvBias: boolean;
  /** Bias on o_proj (Llama with attention_bias). */
  readonly oBias: boolean;
  /** Biases on gate/up/down (Llama with mlp_bias). */
  readonly mlpBias: boolean;
  /** Qwen3: RMSNorm over each head of q and k (weights [headDim]) before RoPE. */
  readonly qkNorm: boolean;
  /** The LM head is the embedding table. */
  readonly tieWordEmbeddings: boolean;
  /** Per layer: how many past positions a query sees (its own included), 0 = all. */
  readonly slidingWindow: readonly number[];
  readonly bosTokenId: number | null;
  /** config.json eos_token_id (one id or several); generation_config.json may add more. */
  readonly eosTokenIds: readonly number[];
  /** config.json's quantization_config as written (GPTQ, AWQ, ...: read by src/quant/imports), or null. */
  readonly quantizationConfig: JsonValue | null;
}

interface Defaults {
  maxPositions: number;
  ropeTheta: number;
  rmsNormEps: number;
}

const DEFAULTS: Record<LlamaModelType, Defaults> = {
  llama: { maxPositions: 2048, ropeTheta: 10000, rmsNormEps: 1e-6 },
  mistral: { maxPositions: 4096 * 32, ropeTheta: 10000, rmsNormEps: 1e-6 },
  qwen2: { maxPositions: 32768, ropeTheta: 10000, rmsNormEps: 1e-6 },
  qwen3: { maxPositions: 32768, ropeTheta: 10000, rmsNormEps: 1e-6 },
};

function tokenIds(json: JsonObject, key: string, source: string): number[] {
  const v = json[key];
  if (v === undefined || v === null) return [];
  const list = Array.isArray(v) ? v : [v];
  if (!list.every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0)) {
    throw new ModelConfigError('CONFIG_BAD_FIELD', `${source}: field "${key}" must be a token id or a list of token ids, got ${describe(v)}`);
  }
  return list as number[];
}

function readRopeScaling(json: JsonObject, source: string, maxPositions: number): RopeScaling | null {
  const raw = json.rope_scaling;
  if (raw === undefined || raw === null) return null;
  if (!isObject(raw)) throw new ModelConfigError('CONFIG_BAD_FIELD', `${source}: field "rope_scaling" must be an object or null, got ${describe(raw)}`);
  const where = `${source}: rope_scaling`;
  const f = fields(raw, where);
  const type = f.str('rope_type') ?? f.str('type');
  if (type === undefined || type === 'default') return null;
  if (type === 'linear') return { type, factor: f.num('factor', 1) };
  if (type === 'llama3') {
    const need = (k: string) => {
      if (!f.has(k)) throw new ModelConfigError('CONFIG_MISSING_FIELD', `${where}: type "llama3" needs field "${k}" (a positive number)`);
      return f.num(k, 1);
    };
    const r = {
      type,
      factor: need('factor'),
      lowFreqFactor: need('low_freq_factor'),
      highFreqFactor: need('high_freq_factor'),
      originalMaxPositions: f.has('original_max_position_embeddings') ? f.int('original_max_position_embeddings', 1, CONFIG_BOUNDS.positions) : maxPositions,
    } as const;
    if (r.highFreqFactor <= r.lowFreqFactor) throw f.bad('high_freq_factor', `above low_freq_factor (${r.lowFreqFactor})`);
    return r;
  }
  throw new ModelConfigError(
    'CONFIG_UNSUPPORTED_FEATURE',
    `${where}: type ${shortJson(type)} is not supported; webq implements rope_scaling types "default", "linear" and "llama3"`,
  );
}

/** Parses config.json (text or parsed JSON) of a Llama, Mistral, Qwen2 or Qwen3 decoder. */
export function parseLlamaConfig(input: string | JsonValue | object, source = 'config.json'): LlamaConfig {
  const json = toJson(input, source);
  const modelType = json.model_type as LlamaModelType;
  if (!Object.hasOwn(LLAMA_ARCHITECTURES, modelType as string)) {
    throw new ModelConfigError('CONFIG_UNSUPPORTED_MODEL_TYPE', `${source}: model_type ${shortJson(modelType)} is not a decoder webq runs (${Object.keys(LLAMA_ARCHITECTURES).join(', ')})`);
  }
  const f = fields(json, source);
  const expected = LLAMA_ARCHITECTURES[modelType];
  if (f.has('architectures')) {
    const a = json.architectures;
    if (!Array.isArray(a) || !a.every((x) => typeof x === 'string')) throw f.bad('architectures', 'an array of strings');
    if (!a.includes(expected)) {
      throw new ModelConfigError(
        'CONFIG_UNSUPPORTED_FEATURE',
        `${source}: architectures ${shortJson(a, 200)} is not supported for model_type "${modelType}"; webq runs ${expected} (text generation)`,
      );
    }
  }
  const d = DEFAULTS[modelType];
  const hiddenSize = f.int('hidden_size', 1, CONFIG_BOUNDS.hidden);
  const numHeads = f.int('num_attention_heads', 1, CONFIG_BOUNDS.heads);
  const numKvHeads = f.int('num_key_value_heads', 1, CONFIG_BOUNDS.heads, numHeads);
  if (numHeads % numKvHeads !== 0) throw f.bad('num_key_value_heads', `a divisor of num_attention_heads (${numHeads})`);
  let headDim: number;
  if (f.has('head_dim')) headDim = f.int('head_dim', 2, CONFIG_BOUNDS.hidden);
  else {
    if (hiddenSize % numHeads !== 0) throw f.bad('hidden_size', `divisible by num_attention_heads (${numHeads}), or give head_dim`);
    headDim = hiddenSize / numHeads;
  }
  if (headDim % 4 !== 0 || headDim > 256) throw new ModelConfigError('CONFIG_UNSUPPORTED_FEATURE', `${source}: head dimension ${headDim} is not supported; webq needs a multiple of 4 up to 256`);
  const act = f.str('hidden_act') ?? 'silu';
  if (act !== 'silu') {
    throw new ModelConfigError('CONFIG_UNSUPPORTED_FEATURE', `${source}: hidden_act ${shortJson(act)} is not supported; webq implements "silu" (SwiGLU) for ${modelType}`);
  }
  if (f.has('partial_rotary_factor') && json.partial_rotary_factor !== 1) {
    throw new ModelConfigError('CONFIG_UNSUPPORTED_FEATURE', `${source}: partial_rotary_factor ${describe(json.partial_rotary_factor)} is not supported; webq rotates the whole head (1.0)`);
  }
  const numLayers = f.int('num_hidden_layers', 1, CONFIG_BOUNDS.layers);
  const maxPositions = f.int('max_position_embeddings', 1, CONFIG_BOUNDS.positions, d.maxPositions);
  const vocabSize = f.int('vocab_size', 1, CONFIG_BOUNDS.vocab);
  const attentionBias = f.bool('attention_bias', false);

  // Sliding windows: Mistral on every layer when set; Qwen2/3 only with use_sliding_window, from
  // layer max_window_layers on (transformers' layer_types rule); Llama never.
  let window = 0;
  if (f.has('sliding_window') && modelType !== 'llama') window = f.int('sliding_window', 1, CONFIG_BOUNDS.window);
  let windowFrom = 0;
  if (modelType === 'qwen2' || modelType === 'qwen3') {
    if (!f.bool('use_sliding_window', false)) window = 0;
    windowFrom = f.int('max_window_layers', 0, CONFIG_BOUNDS.window, numLayers);
  }
  const slidingWindow = Array.from({ length: numLayers }, (_, i) => (i >= windowFrom ? window : 0));

  const ids = (k: string) => {
    const list = tokenIds(json, k, source);
    for (const id of list) if (id >= vocabSize) throw f.bad(k, `a token id below vocab_size (${vocabSize})`);
    return list;
  };
  const bos = ids('bos_token_id');
  return Object.freeze({
    modelType,
    architecture: expected,
    vocabSize,
    hiddenSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    intermediateSize: f.int('intermediate_size', 1, CONFIG_BOUNDS.intermediate),
    maxPositions,
    rmsNormEps: f.num('rms_norm_eps', d.rmsNormEps),
    ropeTheta: f.num('rope_theta', d.ropeTheta),
    ropeScaling: readRopeScaling(json, source, maxPositions),
    qkvBias: modelType === 'qwen2' || attentionBias,
    oBias: modelType !== 'qwen2' && attentionBias,
    mlpBias: modelType === 'llama' && f.bool('mlp_bias', false),
    qkNorm: modelType === 'qwen3',
    tieWordEmbeddings: f.bool('tie_word_embeddings', false),
    slidingWindow: Object.freeze(slidingWindow),
    bosTokenId: bos[0] ?? null,
    eosTokenIds: Object.freeze(ids('eos_token_id')),
    quantizationConfig: json.quantization_config ?? null,
  });
}

/**
 * Refuses a context whose KV cache cannot exist on this device: one layer's keys (or values),
 * [num_key_value_heads, positions, head_dim], and the RoPE table [positions, head_dim] f32 are
 * each one buffer bound whole. Checked before any weight is uploaded, so such a load fails in
 * milliseconds, and says how large a context would fit.
 */
export function checkKvFits(
  cfg: Pick<LlamaConfig, 'numKvHeads' | 'headDim'>,
  positions: number,
  kv: 'f16' | 'f32' | 'int8',
  limits: { readonly maxBufferSize: number; readonly maxStorageBufferBindingSize: number },
  source: string,
): void {
  const limit = Math.min(limits.maxBufferSize, limits.maxStorageBufferBindingSize);
  const perPosition = Math.max(cfg.numKvHeads * cfg.headDim * (kv === 'f32' ? 4 : kv === 'f16' ? 2 : 1), cfg.headDim * 4);
  if (positions * perPosition <= limit) return;
  throw new WebqError(
    'BUFFER_TOO_LARGE',
    `${source}: a KV cache of ${positions} positions needs ${positions * perPosition} bytes per layer buffer (num_key_value_heads ${cfg.numKvHeads} x head_dim ${cfg.headDim}, kv ${kv}), ` +
      `more than this device's buffer limit of ${limit} bytes; load with contextLength ${Math.floor(limit / perPosition)} or less${kv === 'int8' ? '' : ", or kv 'int8'"}`,
  );
}

/**
 * RoPE inverse frequencies [headDim / 2] in Hugging Face's rotate-half layout (dimension i pairs
 * with i + headDim/2), with rope_scaling applied, rounded to f32 as transformers computes them.
 */
export function ropeInvFreq(cfg: Pick<LlamaConfig, 'headDim' | 'ropeTheta' | 'ropeScaling'>): Float32Array {
  const half = cfg.headDim / 2;
  const out = new Float32Array(half);
  const s = cfg.ropeScaling;
  for (let i = 0; i < half; i++) {
    let f = 1 / Math.pow(cfg.ropeTheta, (2 * i) / cfg.headDim);
    if (s?.type === 'linear') f /= s.factor;
    if (s?.type === 'llama3') {
      // Llama 3.1: long wavelengths slowed by `factor`, short ones kept, a smooth blend between.
      const wavelen = (2 * Math.PI) / f;
      const lowWavelen = s.originalMaxPositions / s.lowFreqFactor;
      const highWavelen = s.originalMaxPositions / s.highFreqFactor;
      if (wavelen > lowWavelen) f /= s.factor;
      else if (wavelen >= highWavelen) {
        const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
        f = (1 - smooth) * (f / s.factor) + smooth * f;
      }
    }
    out[i] = f;
  }
  return out;
}

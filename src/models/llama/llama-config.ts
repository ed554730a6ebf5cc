/**
 * config.json of a LLaMA-family decoder -> LlamaConfig. Llama (2, 3, 3.1/3.2, SmolLM), Mistral,
 * Qwen2, Qwen3, Granite, OLMo 2, SmolLM3 and Phi-3/4 share one forward (src/models/llama/llama.ts); what
 * differs between them is data here:
 *
 *   llama    optional attention_bias / mlp_bias, rope_scaling 'linear' or 'llama3'
 *   mistral  sliding_window on every layer when set
 *   qwen2    q/k/v biases always; sliding window only with use_sliding_window, from max_window_layers
 *   qwen3    per-head RMSNorm of q and k (q_norm, k_norm) before RoPE; explicit head_dim
 *   granite  embedding_multiplier, residual_multiplier (on each sublayer's output), attention_multiplier
 *            (the q.k scale, instead of 1/sqrt(head_dim)), logits_scaling (logits divided by it)
 *   olmo2    norms after the sublayers (post_attention_layernorm, post_feedforward_layernorm, on the
 *            attention / MLP output before the residual add; none before), q/k RMSNorm over all heads
 *   smollm3  NoPE layers: no_rope_layers[i] = 0 skips RoPE (default: every no_rope_layer_interval-th)
 *   phi3     fused qkv_proj / gate_up_proj (split at load), sliding_window on every layer, rope_scaling
 *            'longrope', partial_rotary_factor (Phi-4-mini; allowed for every type, as transformers)
 *   gemma2, gemma3_text  see gemma-config.ts: (1 + w) norms, four per layer, GeGLU, softcaps,
 *            alternating sliding layers, Gemma 3's q/k norms and local RoPE base
 *
 * Defaults are transformers' own for each model_type; the sizes that shape the weights are required.
 */
import { WebqError } from '../../errors.ts';
import type { JsonObject, JsonValue } from '../../io/json.ts';
import { CONFIG_BOUNDS, describe, fields, isObject, ModelConfigError, shortJson, toJson } from '../config-json.ts';
import { flattenGemmaRope, GEMMA_DEFAULTS, isGemma, readGemmaFields, refuseGemma3Multimodal } from './gemma-config.ts';
import { MODEL_TYPES, type DecoderModelType } from '../registry.ts';

export type LlamaModelType = DecoderModelType;

/** The architecture (config.json "architectures") this forward runs, by model_type: src/models/registry.ts's decoders. */
export const LLAMA_ARCHITECTURES = Object.fromEntries(
  MODEL_TYPES.filter((e) => e.forward === 'decoder').map((e) => [e.modelType, Object.keys(e.architectures)[0]]),
) as Readonly<Record<LlamaModelType, string>>;

export type RopeScaling =
  | { readonly type: 'linear'; readonly factor: number }
  | { readonly type: 'llama3'; readonly factor: number; readonly lowFreqFactor: number; readonly highFreqFactor: number; readonly originalMaxPositions: number }
  /**
   * Phi-3/4: each frequency divided by its short_factor (webq runs up to original_max_position_embeddings,
   * where transformers uses short_factor; past it transformers switches every position to long_factor,
   * which webq does not do: maxPositions stops there), cos and sin times attentionFactor.
   */
  | { readonly type: 'longrope'; readonly shortFactor: readonly number[]; readonly attentionFactor: number; readonly originalMaxPositions: number };

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
  /** RMSNorm of q and k before RoPE (q_norm, k_norm): Qwen3, OLMo 2. */
  readonly qkNorm: boolean;
  /** What q_norm / k_norm normalize: each head (Qwen3, weights [headDim]) or all of q and of k (OLMo 2, [heads x headDim]). */
  readonly qkNormOver: 'head' | 'projection';
  /**
   * Where each layer's RMSNorms sit: 'pre' (LLaMA: input_layernorm before attention,
   * post_attention_layernorm before the MLP) or 'post' (OLMo 2: post_attention_layernorm on the
   * attention output and post_feedforward_layernorm on the MLP output, before each residual add),
   * or 'sandwich' (Gemma: input_layernorm, post_attention_layernorm on the attention output,
   * pre_feedforward_layernorm, post_feedforward_layernorm on the MLP output).
   */
  readonly norms: 'pre' | 'post' | 'sandwich';
  /** Added to every RMSNorm weight (q/k norms too) as stored: Gemma's norms scale by 1 + w (1), others by w (0). */
  readonly normOffset: number;
  /** The MLP's gate activation: SwiGLU (silu) or Gemma's GeGLU with the tanh-approximated GELU. */
  readonly mlpActivation: 'silu' | 'gelu_tanh';
  /** Attention scores s -> cap tanh(s / cap) after scaling (Gemma 2's attn_logit_softcapping); 0: none. */
  readonly attnSoftcap: number;
  /** The logits' softcap, the same map (final_logit_softcapping); 0: none. */
  readonly finalSoftcap: number;
  /** Gemma 3: RoPE base of the sliding layers (`localRopeLayers`), which have no rope_scaling; null: one RoPE. */
  readonly localRopeTheta: number | null;
  /** Per layer: rotates with localRopeTheta (Gemma 3's sliding layers). */
  readonly localRopeLayers: readonly boolean[];
  /** Per layer: RoPE on q and k (false: a NoPE layer, SmolLM3's no_rope_layers 0). */
  readonly ropeLayers: readonly boolean[];
  /** Dimensions of each head RoPE rotates, the first ones: headDim x partial_rotary_factor (an even count). */
  readonly rotaryDim: number;
  /** q.k is multiplied by this before the softmax: 1/sqrt(headDim), or Granite's attention_multiplier. */
  readonly attentionScale: number;
  /** Granite's multipliers (1 elsewhere): the embeddings and each sublayer's output are multiplied, the logits divided by `logits`. */
  readonly multipliers: { readonly embedding: number; readonly residual: number; readonly logits: number };
  /** Phi-3: q/k/v stored as one qkv_proj, gate/up as one gate_up_proj (rows in that order). */
  readonly fusedProjections: boolean;
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
  granite: { maxPositions: 2048, ropeTheta: 10000, rmsNormEps: 1e-6 },
  olmo2: { maxPositions: 2048, ropeTheta: 10000, rmsNormEps: 1e-5 },
  smollm3: { maxPositions: 32768, ropeTheta: 2000000, rmsNormEps: 1e-6 },
  phi3: { maxPositions: 4096, ropeTheta: 10000, rmsNormEps: 1e-5 },
  ...GEMMA_DEFAULTS,
};

/** Tied embeddings unless config.json says otherwise (transformers' default per model_type). */
const TIED_BY_DEFAULT: ReadonlySet<LlamaModelType> = new Set(['smollm3', 'gemma2', 'gemma3_text']);

function tokenIds(json: JsonObject, key: string, source: string): number[] {
  const v = json[key];
  if (v === undefined || v === null) return [];
  const list = Array.isArray(v) ? v : [v];
  if (!list.every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0)) {
    throw new ModelConfigError('CONFIG_BAD_FIELD', `${source}: field "${key}" must be a token id or a list of token ids, got ${describe(v)}`);
  }
  return list as number[];
}

/** rope_scaling.`key` (longrope's short_factor / long_factor): `n` positive numbers, one per rotated frequency. */
function factorList(raw: JsonObject, key: string, n: number, where: string): number[] {
  const v = raw[key];
  if (v === undefined || v === null) throw new ModelConfigError('CONFIG_MISSING_FIELD', `${where}: type "longrope" needs field "${key}" (${n} positive numbers, one per rotated frequency)`);
  if (!Array.isArray(v) || v.length !== n || !v.every((x) => typeof x === 'number' && Number.isFinite(x) && x > 0)) {
    throw new ModelConfigError('CONFIG_BAD_FIELD', `${where}: field "${key}" must be ${n} positive numbers (rotated dimensions / 2), got ${shortJson(v)}`);
  }
  return v as number[];
}

/**
 * rope_scaling, or transformers 5's rope_parameters (rope_theta, rope_type and its fields in one
 * object, saved instead of rope_theta / rope_scaling at the top level) where there is none.
 */
function readRopeScaling(json: JsonObject, source: string, maxPositions: number, rotaryDim: number): RopeScaling | null {
  const key = (json.rope_scaling === undefined || json.rope_scaling === null) && isObject(json.rope_parameters) ? 'rope_parameters' : 'rope_scaling';
  const raw = json[key];
  if (raw === undefined || raw === null) return null;
  if (!isObject(raw)) throw new ModelConfigError('CONFIG_BAD_FIELD', `${source}: field "${key}" must be an object or null, got ${describe(raw)}`);
  const where = `${source}: ${key}`;
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
  if (type === 'longrope') {
    // Phi-3/4 keep the pretrained length at the top level (transformers 5: in rope_parameters);
    // the attention factor's `factor` is then max_position_embeddings / original_max_position_embeddings.
    const top = fields(json, source);
    const orig = top.has('original_max_position_embeddings')
      ? top.int('original_max_position_embeddings', 1, CONFIG_BOUNDS.positions)
      : f.has('original_max_position_embeddings') ? f.int('original_max_position_embeddings', 1, CONFIG_BOUNDS.positions) : maxPositions;
    const factor = top.has('original_max_position_embeddings') || !f.has('factor') ? maxPositions / orig : f.num('factor', 1);
    const shortFactor = factorList(raw, 'short_factor', rotaryDim / 2, where);
    factorList(raw, 'long_factor', rotaryDim / 2, where);
    const attentionFactor = f.has('attention_factor') ? f.num('attention_factor', 1) : factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(orig));
    return { type, shortFactor: Object.freeze([...shortFactor]), attentionFactor, originalMaxPositions: orig };
  }
  throw new ModelConfigError(
    'CONFIG_UNSUPPORTED_FEATURE',
    `${where}: type ${shortJson(type)} is not supported; webq implements RoPE types "default", "linear", "llama3" and (Phi-3/4) "longrope"`,
  );
}

/**
 * transformers 5 keeps rope_theta and partial_rotary_factor inside rope_parameters: read there
 * where the top level has none (readRopeScaling reads the rest of it).
 */
function withRopeParameters(json: JsonObject, source: string): JsonObject {
  const rp = json.rope_parameters;
  if (rp === undefined || rp === null) return json;
  if (!isObject(rp)) throw fields(json, source).bad('rope_parameters', 'an object or null');
  const out: JsonObject = { ...json };
  for (const k of ['rope_theta', 'partial_rotary_factor']) if ((out[k] === undefined || out[k] === null) && rp[k] !== undefined) out[k] = rp[k];
  return out;
}

/** SmolLM3's no_rope_layers (1: RoPE, 0: NoPE; at least one per layer), else every no_rope_layer_interval-th layer NoPE. */
function noRopeLayers(json: JsonObject, source: string, numLayers: number): boolean[] {
  const f = fields(json, source);
  if (!f.has('no_rope_layers')) {
    const every = f.int('no_rope_layer_interval', 1, CONFIG_BOUNDS.layers, 4);
    return Array.from({ length: numLayers }, (_, i) => (i + 1) % every !== 0);
  }
  const v = json.no_rope_layers;
  if (!Array.isArray(v) || v.length < numLayers || !v.every((x) => x === 0 || x === 1)) throw f.bad('no_rope_layers', `a list of 0 or 1 per layer (${numLayers} or more)`);
  return v.slice(0, numLayers).map((x) => x === 1);
}

/** layer_types ("full_attention" / "sliding_attention" per layer), else `byDefault`. */
function layerTypes(json: JsonObject, source: string, numLayers: number, byDefault: (i: number) => string): string[] {
  const f = fields(json, source);
  if (!f.has('layer_types')) return Array.from({ length: numLayers }, (_, i) => byDefault(i));
  const v = json.layer_types;
  if (!Array.isArray(v) || v.length !== numLayers || !v.every((x) => x === 'full_attention' || x === 'sliding_attention')) {
    throw f.bad('layer_types', `a list of "full_attention" or "sliding_attention", one per layer (${numLayers})`);
  }
  return v as string[];
}

/** Parses config.json (text or parsed JSON) of a decoder of one of LLAMA_ARCHITECTURES' model types. */
export function parseLlamaConfig(input: string | JsonValue | object, source = 'config.json'): LlamaConfig {
  const raw = toJson(input, source);
  if (raw.model_type === 'gemma3') refuseGemma3Multimodal(raw, source);
  const json = withRopeParameters(flattenGemmaRope(raw, source), source);
  const modelType = json.model_type as LlamaModelType;
  const gemmaType = isGemma(modelType);
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
  const act = gemmaType ? 'silu' : (f.str('hidden_act') ?? 'silu'); // Gemma's: readGemmaFields
  if (act !== 'silu') {
    throw new ModelConfigError('CONFIG_UNSUPPORTED_FEATURE', `${source}: hidden_act ${shortJson(act)} is not supported; webq implements "silu" (SwiGLU) for ${modelType}`);
  }
  // transformers rotates the first int(head_dim x partial_rotary_factor) dimensions of each head.
  const partial = f.has('partial_rotary_factor') ? json.partial_rotary_factor : 1;
  if (typeof partial !== 'number' || !(partial > 0 && partial <= 1)) throw f.bad('partial_rotary_factor', 'a number above 0, at most 1');
  const rotaryDim = Math.floor(headDim * partial);
  if (rotaryDim % 2 !== 0) {
    throw new ModelConfigError('CONFIG_UNSUPPORTED_FEATURE', `${source}: partial_rotary_factor ${partial} rotates ${rotaryDim} of head_dim ${headDim} dimensions; webq needs an even count`);
  }
  const numLayers = f.int('num_hidden_layers', 1, CONFIG_BOUNDS.layers);
  const maxPositions = f.int('max_position_embeddings', 1, CONFIG_BOUNDS.positions, d.maxPositions);
  const vocabSize = f.int('vocab_size', 1, CONFIG_BOUNDS.vocab);
  const attentionBias = f.bool('attention_bias', false);

  // Sliding windows: Mistral on every layer when set; Qwen2/3 only with use_sliding_window, from
  // layer max_window_layers on (transformers' layer_types rule); Llama never.
  // Phi-3 as Mistral (every layer); SmolLM3 only with use_sliding_window, on its "sliding_attention"
  // layer_types (by default its NoPE layers). Granite and OLMo 2 have none.
  let window = 0;
  if (f.has('sliding_window') && ['mistral', 'qwen2', 'qwen3', 'phi3', 'smollm3'].includes(modelType)) window = f.int('sliding_window', 1, CONFIG_BOUNDS.window);
  let windowFrom = 0;
  if (modelType === 'qwen2' || modelType === 'qwen3' || modelType === 'smollm3') {
    if (!f.bool('use_sliding_window', false)) window = 0;
  }
  if (modelType === 'qwen2' || modelType === 'qwen3') windowFrom = f.int('max_window_layers', 0, CONFIG_BOUNDS.window, numLayers);
  const ropeLayers = modelType === 'smollm3' ? noRopeLayers(json, source, numLayers) : Array<boolean>(numLayers).fill(true);
  const sliding = modelType === 'smollm3' ? layerTypes(json, source, numLayers, (i) => (ropeLayers[i] ? 'full_attention' : 'sliding_attention')) : null;
  const gemma = gemmaType ? readGemmaFields(json, source, modelType, numLayers) : null;
  const slidingWindow = gemma
    ? gemma.sliding.map((s) => (s ? gemma.window : 0))
    : Array.from({ length: numLayers }, (_, i) => (i >= windowFrom && (sliding === null || sliding[i] === 'sliding_attention') ? window : 0));
  const granite = modelType === 'granite';
  const ropeScaling = readRopeScaling(json, source, maxPositions, rotaryDim);
  if (gemma && ropeScaling && ropeScaling.type !== 'linear') {
    throw new ModelConfigError('CONFIG_UNSUPPORTED_FEATURE', `${source}: field "rope_scaling" type "${ropeScaling.type}" is not supported for ${modelType}; webq implements "linear" (Gemma 3's global layers)`);
  }

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
    // longrope: webq stops where transformers would switch to long_factor (see RopeScaling).
    maxPositions: ropeScaling?.type === 'longrope' ? Math.min(maxPositions, ropeScaling.originalMaxPositions) : maxPositions,
    rmsNormEps: f.num('rms_norm_eps', d.rmsNormEps),
    ropeTheta: f.num('rope_theta', d.ropeTheta),
    ropeScaling,
    // Phi-3 has no biases; OLMo 2, Granite and SmolLM3 put attention_bias on q/k/v/o, as Llama does.
    qkvBias: modelType === 'qwen2' || (modelType !== 'phi3' && attentionBias),
    oBias: modelType !== 'qwen2' && modelType !== 'phi3' && attentionBias,
    mlpBias: (modelType === 'llama' || granite || modelType === 'smollm3') && f.bool('mlp_bias', false),
    qkNorm: modelType === 'qwen3' || modelType === 'olmo2' || modelType === 'gemma3_text',
    qkNormOver: modelType === 'olmo2' ? 'projection' : 'head',
    norms: gemma ? 'sandwich' : modelType === 'olmo2' ? 'post' : 'pre',
    normOffset: gemma ? 1 : 0,
    mlpActivation: gemma ? 'gelu_tanh' : 'silu',
    attnSoftcap: gemma?.attnSoftcap ?? 0,
    finalSoftcap: gemma?.finalSoftcap ?? 0,
    localRopeTheta: gemma?.localRopeTheta ?? null,
    localRopeLayers: Object.freeze(gemma?.localRopeTheta ? gemma.sliding : Array<boolean>(numLayers).fill(false)),
    ropeLayers: Object.freeze(ropeLayers),
    rotaryDim,
    attentionScale: granite ? f.num('attention_multiplier', 1) : gemma ? gemma.attentionScale : 1 / Math.sqrt(headDim),
    multipliers: Object.freeze({
      // Gemma: sqrt(hidden_size), in the activations' dtype (the GPU's [1] tensor rounds it so).
      embedding: granite ? f.num('embedding_multiplier', 1) : gemma ? Math.sqrt(hiddenSize) : 1,
      residual: granite ? f.num('residual_multiplier', 1) : 1,
      logits: granite ? f.num('logits_scaling', 1) : 1,
    }),
    fusedProjections: modelType === 'phi3',
    tieWordEmbeddings: f.bool('tie_word_embeddings', TIED_BY_DEFAULT.has(modelType)),
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
 * with i + rotaryDim/2), with rope_scaling applied, rounded to f32 as transformers computes them.
 * Only the first rotaryDim / 2 are used; the rest (a partial rotary factor) are 0.
 */
export function ropeInvFreq(cfg: Pick<LlamaConfig, 'headDim' | 'rotaryDim' | 'ropeTheta' | 'ropeScaling'>): Float32Array {
  const out = new Float32Array(cfg.headDim / 2);
  const dim = cfg.rotaryDim;
  const s = cfg.ropeScaling;
  for (let i = 0; i < dim / 2; i++) {
    let f = 1 / Math.pow(cfg.ropeTheta, (2 * i) / dim);
    if (s?.type === 'linear') f /= s.factor;
    if (s?.type === 'longrope') f /= s.shortFactor[i];
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

/** What RoPE multiplies cos and sin by: longrope's attention factor, else 1. */
export function ropeAmplitude(cfg: Pick<LlamaConfig, 'ropeScaling'>): number {
  return cfg.ropeScaling?.type === 'longrope' ? cfg.ropeScaling.attentionFactor : 1;
}

/** Gemma 3's sliding layers: RoPE with rope_local_base_freq and no scaling; null where the model has one RoPE. */
export function ropeLocalInvFreq(cfg: Pick<LlamaConfig, 'headDim' | 'rotaryDim' | 'localRopeTheta'>): Float32Array | null {
  return cfg.localRopeTheta === null ? null : ropeInvFreq({ headDim: cfg.headDim, rotaryDim: cfg.rotaryDim, ropeTheta: cfg.localRopeTheta, ropeScaling: null });
}

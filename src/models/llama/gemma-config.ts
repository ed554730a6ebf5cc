/**
 * What Gemma 2 (model_type gemma2) and Gemma 3 text (gemma3_text) configs add to the one LLaMA
 * forward, read from config.json as transformers' Gemma2Config / Gemma3TextConfig do:
 *
 *   both     RMSNorm weights stored as offsets (the norm scales by 1 + w); embeddings times
 *            sqrt(hidden_size); GeGLU MLP with hidden_activation "gelu_pytorch_tanh"; four norms per
 *            layer (input, post_attention, pre_feedforward, post_feedforward); q.k scaled by
 *            query_pre_attn_scalar^-0.5; attn_logit_softcapping and final_logit_softcapping
 *            (x -> cap tanh(x / cap)); sliding_window on the "sliding_attention" layers
 *   gemma2   even layers sliding (layer_idx % 2 == 0); softcaps 50 / 30 by default
 *   gemma3   per-head q_norm / k_norm; every sliding_window_pattern-th layer full (else layer_types);
 *            sliding layers rotate with rope_local_base_freq and no scaling, full layers with
 *            rope_theta and rope_scaling ("linear" only); no softcaps by default
 *
 * gemma3 (Gemma3ForConditionalGeneration, text + vision) keeps its text weights under another
 * prefix and is refused by name; its text_config is not read.
 */
import type { JsonObject } from '../../io/json.ts';
import { CONFIG_BOUNDS, fields, isObject, ModelConfigError, shortJson } from '../config-json.ts';

export type GemmaType = 'gemma2' | 'gemma3_text';

export interface GemmaFields {
  /** Per layer: sliding (true) or full attention. */
  readonly sliding: readonly boolean[];
  readonly window: number;
  readonly attentionScale: number;
  readonly attnSoftcap: number;
  readonly finalSoftcap: number;
  /** Gemma 3: the RoPE base of the sliding layers (no rope_scaling on them); null: one RoPE for all. */
  readonly localRopeTheta: number | null;
}

export const GEMMA_DEFAULTS = {
  gemma2: { maxPositions: 8192, ropeTheta: 10000, rmsNormEps: 1e-6 },
  gemma3_text: { maxPositions: 131072, ropeTheta: 1000000, rmsNormEps: 1e-6 },
} as const;

export const isGemma = (t: string): t is GemmaType => t === 'gemma2' || t === 'gemma3_text';

/**
 * transformers 5 saves Gemma 3's RoPE as rope_parameters keyed by layer type ({ full_attention: {...},
 * sliding_attention: {...} }): read as rope_theta / rope_scaling (full) and rope_local_base_freq
 * (sliding). Other configs pass through unchanged.
 */
export function flattenGemmaRope(json: JsonObject, source: string): JsonObject {
  const rp = json.rope_parameters;
  if (!isObject(rp) || !(isObject(rp.full_attention) || isObject(rp.sliding_attention))) return json;
  const full = isObject(rp.full_attention) ? rp.full_attention : {};
  const local = isObject(rp.sliding_attention) ? rp.sliding_attention : {};
  const lt = local.rope_type ?? local.type;
  if (lt !== undefined && lt !== null && lt !== 'default') {
    throw new ModelConfigError('CONFIG_UNSUPPORTED_FEATURE', `${source}: rope_parameters.sliding_attention: type ${shortJson(lt)} is not supported; webq rotates sliding layers with the default RoPE`);
  }
  const out: JsonObject = { ...json, rope_parameters: full };
  if (out.rope_local_base_freq === undefined && local.rope_theta !== undefined) out.rope_local_base_freq = local.rope_theta;
  return out;
}

/** Refuses a field webq does not run (one line, naming config.json and the field). */
function unsupported(source: string, key: string, value: unknown, what: string): ModelConfigError {
  return new ModelConfigError('CONFIG_UNSUPPORTED_FEATURE', `${source}: field "${key}" ${shortJson(value)} is not supported; ${what}`);
}

export function readGemmaFields(json: JsonObject, source: string, type: GemmaType, numLayers: number): GemmaFields {
  const f = fields(json, source);
  const actKey = f.has('hidden_activation') ? 'hidden_activation' : 'hidden_act';
  const act = f.str(actKey) ?? 'gelu_pytorch_tanh';
  if (act !== 'gelu_pytorch_tanh') throw unsupported(source, actKey, act, `webq implements "gelu_pytorch_tanh" (GeGLU) for ${type}`);
  if (f.bool('use_bidirectional_attention', false)) throw unsupported(source, 'use_bidirectional_attention', true, 'webq runs Gemma as a causal decoder');
  if (type === 'gemma2' && f.has('rope_scaling')) throw unsupported(source, 'rope_scaling', json.rope_scaling, 'Gemma 2 has no RoPE scaling');
  // Both softcaps are a positive number or null (none).
  const cap = (k: string, fallback: number) => (json[k] === null ? 0 : f.num(k, fallback));
  const dflt = type === 'gemma2' ? { attn: 50, final: 30 } : { attn: 0, final: 0 };
  const pattern = type === 'gemma3_text' ? f.int('sliding_window_pattern', 1, CONFIG_BOUNDS.layers, 6) : 2;
  // gemma2: layer i slides when i is even; gemma3: unless (i + 1) is a multiple of the pattern.
  const byDefault = (i: number) => (type === 'gemma2' ? i % 2 === 0 : (i + 1) % pattern !== 0);
  let sliding = Array.from({ length: numLayers }, (_, i) => byDefault(i));
  if (f.has('layer_types')) {
    const v = json.layer_types;
    if (!Array.isArray(v) || v.length !== numLayers || !v.every((x) => x === 'full_attention' || x === 'sliding_attention')) {
      throw f.bad('layer_types', `a list of "full_attention" or "sliding_attention", one per layer (${numLayers})`);
    }
    sliding = v.map((x) => x === 'sliding_attention');
  }
  return {
    sliding,
    window: f.has('sliding_window') ? f.int('sliding_window', 1, CONFIG_BOUNDS.window) : 0,
    // transformers' default is 256 whatever head_dim is (both configs).
    attentionScale: 1 / Math.sqrt(f.num('query_pre_attn_scalar', 256)),
    attnSoftcap: cap('attn_logit_softcapping', dflt.attn),
    finalSoftcap: cap('final_logit_softcapping', dflt.final),
    localRopeTheta: type === 'gemma3_text' ? f.num('rope_local_base_freq', 10000) : null,
  };
}

/** gemma3 (text + vision): refused with what to load instead. */
export function refuseGemma3Multimodal(json: JsonObject, source: string): never {
  const tc = json.text_config;
  const textType = isObject(tc) ? tc.model_type : undefined;
  throw new ModelConfigError(
    'CONFIG_UNSUPPORTED_MODEL_TYPE',
    `${source}: model_type "gemma3" (Gemma3ForConditionalGeneration, text_config ${shortJson(textType ?? null)}) is not supported; webq runs text-only Gemma 3 checkpoints (model_type "gemma3_text", Gemma3ForCausalLM)`,
  );
}

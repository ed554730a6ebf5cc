/**
 * config.json of a ModernBERT encoder (transformers' ModernBertConfig; gte-modernbert-base,
 * ModernBERT-embed) -> the one BertConfig every encoder family parses to, with its own part in
 * `modern`. Defaults are ModernBertConfig's; the sizes that shape the weights are required. What the
 * forward does not do (another activation, scaled RoPE, layer_types off the every-n pattern) is an
 * error naming config.json and the field.
 */
import type { JsonObject, JsonValue } from '../../io/json.ts';
import { CONFIG_BOUNDS, fields, isObject, ModelConfigError, shortJson } from '../config-json.ts';
import type { BertConfig } from '../config.ts';

/** The activations the head's dense may use (the Linear epilogue's). */
export const MODERNBERT_HEAD_ACTIVATIONS = ['gelu', 'tanh', 'relu', 'silu'] as const;

export interface ModernBertOptions {
  /** RoPE base of the global layers (global_rope_theta, default 160000). */
  readonly globalRopeTheta: number;
  /** RoPE base of the local layers (local_rope_theta, default 10000). */
  readonly localRopeTheta: number;
  /** Layer i attends globally when i % globalEvery == 0 (global_attn_every_n_layers, default 3). */
  readonly globalEvery: number;
  /** A local layer's query i sees keys j with |i - j| <= localHalfWindow: local_attention / 2, rounded down (default 128 / 2). */
  readonly localHalfWindow: number;
  /** LayerNorms have a bias (norm_bias, default false). */
  readonly normBias: boolean;
  /** Wqkv and Wo have biases (attention_bias, default false). */
  readonly attentionBias: boolean;
  /** Wi and Wo of the MLP have biases (mlp_bias, default false). */
  readonly mlpBias: boolean;
  /** head.dense has a bias (classifier_bias, default false); `classifier` always has one. */
  readonly classifierBias: boolean;
  /** head.dense's activation (classifier_activation, default gelu). */
  readonly classifierActivation: (typeof MODERNBERT_HEAD_ACTIVATIONS)[number];
  /** What the sequence-classification head reads: the first token's state or the mean over real tokens (classifier_pooling, default cls). */
  readonly classifierPooling: 'cls' | 'mean';
}

/** Whether layer `i` attends within the local window (transformers: layer_id % global_attn_every_n_layers != 0). */
export function isLocalLayer(m: ModernBertOptions, i: number): boolean {
  return i % m.globalEvery !== 0;
}

const unsupported = (source: string, what: string) => new ModelConfigError('CONFIG_UNSUPPORTED_FEATURE', `${source}: ${what}`);

/**
 * Newer transformers write rope_parameters ({full_attention: {rope_type, rope_theta}, sliding_attention: ...})
 * and layer_types instead of global_rope_theta / local_rope_theta: read either, refuse scaled RoPE.
 */
function ropeThetas(json: JsonObject, f: ReturnType<typeof fields>, source: string): { global: number; local: number } {
  const out = { global: f.num('global_rope_theta', 160000), local: f.num('local_rope_theta', 10000) };
  if (f.has('rope_scaling')) throw unsupported(source, `rope_scaling ${shortJson(json.rope_scaling)} is not supported; webq implements ModernBERT's plain RoPE`);
  if (!f.has('rope_parameters')) return out;
  const rp = json.rope_parameters as JsonValue;
  if (!isObject(rp)) throw f.bad('rope_parameters', 'an object of layer type -> {rope_type, rope_theta}');
  for (const [kind, key] of [['full_attention', 'global'], ['sliding_attention', 'local']] as const) {
    const p = rp[kind];
    if (p === undefined || p === null) continue;
    if (!isObject(p) || typeof p.rope_theta !== 'number' || !(p.rope_theta > 0)) throw f.bad('rope_parameters', `{${kind}: {rope_theta: a positive number}}`);
    if (p.rope_type !== undefined && p.rope_type !== 'default') throw unsupported(source, `rope_parameters.${kind}.rope_type ${shortJson(p.rope_type)} is not supported; webq implements "default"`);
    out[key] = p.rope_theta;
  }
  return out;
}

export function parseModernBertConfig(json: JsonObject, source: string, read: { architectures: string[]; id2label: Record<number, string> | null }): BertConfig {
  const f = fields(json, source);
  const hiddenSize = f.int('hidden_size', 1, CONFIG_BOUNDS.hidden);
  const numHeads = f.int('num_attention_heads', 1, CONFIG_BOUNDS.heads);
  if (hiddenSize % numHeads !== 0 || (hiddenSize / numHeads) % 2 !== 0) {
    throw new ModelConfigError('CONFIG_BAD_FIELD', `${source}: hidden_size ${hiddenSize} / num_attention_heads ${numHeads} must be a whole, even head size (RoPE rotates pairs of dimensions)`);
  }
  const act = f.str('hidden_activation') ?? 'gelu';
  if (act !== 'gelu') throw unsupported(source, `hidden_activation ${shortJson(act)} is not supported; webq implements "gelu" (exact erf form) for modernbert`);
  const headAct = f.str('classifier_activation') ?? 'gelu';
  if (!(MODERNBERT_HEAD_ACTIVATIONS as readonly string[]).includes(headAct)) {
    throw unsupported(source, `classifier_activation ${shortJson(headAct)} is not supported; webq implements ${MODERNBERT_HEAD_ACTIVATIONS.join(', ')}`);
  }
  const pooling = f.str('classifier_pooling') ?? 'cls';
  if (pooling !== 'cls' && pooling !== 'mean') throw unsupported(source, `classifier_pooling ${shortJson(pooling)} is not supported; webq implements "cls" and "mean"`);
  const numLayers = f.int('num_hidden_layers', 1, CONFIG_BOUNDS.layers);
  const globalEvery = f.int('global_attn_every_n_layers', 1, CONFIG_BOUNDS.layers, 3);
  const localAttention = f.int('local_attention', 1, CONFIG_BOUNDS.window, 128);
  if (f.has('layer_types')) {
    const lt = json.layer_types;
    const want = Array.from({ length: numLayers }, (_, i) => (i % globalEvery === 0 ? 'full_attention' : 'sliding_attention'));
    if (!Array.isArray(lt) || lt.length !== numLayers || lt.some((t, i) => t !== want[i])) {
      throw unsupported(source, `layer_types ${shortJson(lt)} is not supported; webq implements ModernBERT's pattern, a full_attention layer every global_attn_every_n_layers (${globalEvery}): ${shortJson(want)}`);
    }
  }
  const rope = ropeThetas(json, f, source);
  const vocabSize = f.int('vocab_size', 1, CONFIG_BOUNDS.vocab);
  const padTokenId = f.int('pad_token_id', 0, CONFIG_BOUNDS.vocab, 50283);
  if (padTokenId >= vocabSize) throw f.bad('pad_token_id', `an integer below vocab_size (${vocabSize})`);
  const declared = f.has('num_labels') ? f.int('num_labels', 1, CONFIG_BOUNDS.types) : undefined;
  const labelCount = read.id2label ? Object.keys(read.id2label).length : undefined;
  if (declared !== undefined && labelCount !== undefined && declared !== labelCount) {
    throw new ModelConfigError('CONFIG_BAD_FIELD', `${source}: num_labels is ${declared} but id2label has ${labelCount} entries`);
  }
  const maxPositions = f.int('max_position_embeddings', 1, CONFIG_BOUNDS.positions, 8192);
  return Object.freeze({
    modelType: 'bert',
    family: 'modernbert',
    positions: 'absolute',
    paddingIdx: padTokenId,
    maxTokens: maxPositions,
    relativeBuckets: 0,
    head: 'dense-gelu-norm',
    modern: Object.freeze({
      globalRopeTheta: rope.global,
      localRopeTheta: rope.local,
      globalEvery,
      localHalfWindow: Math.floor(localAttention / 2),
      normBias: f.bool('norm_bias', false),
      attentionBias: f.bool('attention_bias', false),
      mlpBias: f.bool('mlp_bias', false),
      classifierBias: f.bool('classifier_bias', false),
      classifierActivation: headAct as ModernBertOptions['classifierActivation'],
      classifierPooling: pooling,
    }),
    vocabSize,
    hiddenSize,
    numLayers,
    numHeads,
    headDim: hiddenSize / numHeads,
    intermediateSize: f.int('intermediate_size', 1, CONFIG_BOUNDS.intermediate),
    maxPositions,
    typeVocabSize: 0,
    layerNormEps: f.num('norm_eps', 1e-5),
    hiddenAct: 'gelu',
    padTokenId,
    architectures: Object.freeze(read.architectures),
    id2label: read.id2label && Object.freeze(read.id2label),
    numLabels: labelCount ?? declared ?? 2,
    quantizationConfig: json.quantization_config ?? null,
  } as const satisfies BertConfig);
}

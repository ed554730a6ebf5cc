/**
 * webq's own estimate of what a model will hold on the GPU, from config.json alone (so it can be
 * checked before anything is read, uploaded or allocated):
 *
 *   weights      every Linear at the load dtype (codes, scales and zero points), the embedding
 *                table as the architecture stores it by default, norms and biases
 *   KV cache     layers x 2 x KV heads x context x head dim at the cache dtype (int8: + a scale per
 *                position and head), and the RoPE table
 *   activations  the live intermediates at the peak of one forward: an LLM prefilling its whole
 *                context in one pass, a BERT batch of `tokens` tokens (the pool rounds each buffer
 *                up by at most 1/8)
 *
 * The single buffers that grow with the config (a KV cache layer, the widest activation, one weight
 * row: weights are split into row chunks that each fit a binding) are checked against the
 * adapter's maxBufferSize and maxStorageBufferBindingSize: a config or a context the device cannot
 * hold is refused before the load allocates anything, naming the field and the size that fits.
 * WebGPU reports no total memory, so the total is printed (`webq info`) but not checked.
 */
import { WebqError } from '../errors.ts';
import type { LinearDType } from '../ops/linear.ts';
import type { BertConfig } from './config.ts';
import type { LlamaConfig } from './llama-config.ts';

export interface MemoryEstimate {
  dtype: LinearDType;
  /** Activation precision: f16 where the device has it and the dtype allows, else f32. */
  activations_dtype: 'f16' | 'f32';
  /** LLM: positions of the KV cache and of the prefill the activations are for; BERT: tokens of one batch. */
  tokens: number;
  kv: 'f16' | 'f32' | 'int8' | null;
  weights: number;
  kv_cache: number;
  activations: number;
  total: number;
  /** The largest single buffers, each with the config field that sets its size. */
  buffers: { what: string; field: string; bytes: number; perUnit: number; unit: string }[];
}

const ACT_BYTES = { f16: 2, f32: 4 } as const;

/** Bytes per weight at a dtype: codes, plus a scale (and a zero point for q4 / w4a8) per group. */
function perParam(dtype: LinearDType, act: number): number {
  switch (dtype) {
    case 'f32':
      return 4;
    case 'f16':
      return 2;
    case 'q8':
      return 1 + act / 128;
    case 'w8a8':
      return 1;
    case 'q4':
    case 'w4a8':
      return 0.5 + (2 * act) / 32;
  }
}

function activationsDtype(dtype: LinearDType, f16: boolean): 'f16' | 'f32' {
  return dtype === 'f32' || !f16 ? 'f32' : 'f16';
}

/** An LLM loaded at `dtype` with a KV cache of `context` positions. */
export function estimateLlm(cfg: LlamaConfig, o: { dtype: LinearDType; context: number; kv: 'f16' | 'f32' | 'int8'; f16: boolean }): MemoryEstimate {
  const actDtype = activationsDtype(o.dtype, o.f16);
  const act = ACT_BYTES[actDtype];
  const { hiddenSize: H, numHeads: nh, numKvHeads: nkv, headDim: D, intermediateSize: I, vocabSize: V, numLayers: L } = cfg;
  const linear = H * (nh + 2 * nkv) * D + nh * D * H + 3 * H * I;
  const quantized = o.dtype !== 'f32' && o.dtype !== 'f16';
  const table = V * H * (!quantized ? perParam(o.dtype, act) : cfg.tieWordEmbeddings ? 1 + 4 / 32 : act);
  const head = cfg.tieWordEmbeddings ? 0 : V * H * perParam(o.dtype, act);
  const weights = Math.ceil(L * (linear * perParam(o.dtype, act) + 2 * H * act) + table + head + H * act);
  const kvPer = 2 * nkv * D * (o.kv === 'f32' ? 4 : o.kv === 'f16' ? 2 : 1) + (o.kv === 'int8' ? 2 * nkv * 4 : 0);
  const kvCache = L * o.context * kvPer + o.context * D * 4;
  const T = o.context;
  const widest = Math.max(2 * I, (nh + 2 * nkv) * D, H);
  const activations = T * act * Math.max(H + 3 * I, 2 * H + (nh + 2 * nkv) * D + nh * D) + V * 4;
  return {
    dtype: o.dtype, activations_dtype: actDtype, tokens: T, kv: o.kv, weights, kv_cache: kvCache, activations, total: weights + kvCache + activations,
    buffers: [
      { what: `a KV cache layer's keys (kv ${o.kv})`, field: 'num_key_value_heads x head_dim', bytes: T * kvPer / 2, perUnit: kvPer / 2, unit: 'position' },
      { what: `the widest prefill activation [${T}, ${widest}]`, field: widest === 2 * I ? 'intermediate_size' : 'num_attention_heads x head_dim', bytes: T * widest * act, perUnit: widest * act, unit: 'position' },
      { what: 'one row of the LM head', field: 'hidden_size', bytes: H * 4, perUnit: H * 4, unit: 'row' },
    ],
  };
}

/** A BERT loaded at `dtype`, running a batch of `tokens` tokens (texts x longest row). */
export function estimateBert(cfg: BertConfig, o: { dtype: LinearDType; tokens: number; f16: boolean }): MemoryEstimate {
  const actDtype = activationsDtype(o.dtype, o.f16);
  const act = ACT_BYTES[actDtype];
  const { hiddenSize: H, intermediateSize: I, vocabSize: V, numLayers: L } = cfg;
  const quantized = o.dtype !== 'f32' && o.dtype !== 'f16';
  const linear = 4 * H * H + 2 * H * I;
  const tables = V * H * (quantized ? 1 + 4 / H : perParam(o.dtype, act)) + (cfg.maxPositions + cfg.typeVocabSize) * H * act;
  const weights = Math.ceil(L * (linear * perParam(o.dtype, act) + (9 * H + I) * act) + tables + 2 * H * act + (H * H + H * cfg.numLabels) * 4);
  const widest = Math.max(I, 3 * H);
  const activations = o.tokens * act * Math.max(5 * H, 2 * H + I);
  return {
    dtype: o.dtype, activations_dtype: actDtype, tokens: o.tokens, kv: null, weights, kv_cache: 0, activations, total: weights + activations,
    buffers: [
      { what: `the widest activation of ${o.tokens} tokens [${o.tokens}, ${widest}]`, field: widest === I ? 'intermediate_size' : 'hidden_size', bytes: o.tokens * widest * act, perUnit: widest * act, unit: 'token' },
      { what: 'one row of the word embeddings', field: 'hidden_size', bytes: H * 4, perUnit: H * 4, unit: 'row' },
    ],
  };
}

/**
 * Refuses an estimate whose single buffers exceed the device's limits (BUFFER_TOO_LARGE), naming
 * `source`'s field and the most positions / tokens that fit.
 */
export function checkEstimate(e: MemoryEstimate, limits: { readonly maxBufferSize: number; readonly maxStorageBufferBindingSize: number }, source: string, remedy: (fit: number) => string): void {
  const limit = Math.min(limits.maxBufferSize, limits.maxStorageBufferBindingSize);
  for (const b of e.buffers) {
    if (b.bytes <= limit) continue;
    const fit = Math.floor(limit / b.perUnit);
    throw new WebqError(
      'BUFFER_TOO_LARGE',
      `${source}: ${b.what} needs ${b.bytes} bytes (${b.field}: ${b.perUnit} bytes per ${b.unit}), more than this device's buffer limit of ${limit} bytes; ${fit >= 1 && b.unit !== 'row' ? remedy(fit) : 'the device cannot hold this model'}`,
    );
  }
}

/** Refuses a BERT batch of `tokens` tokens whose activations the device cannot hold (before anything is allocated). */
export function checkBertBatch(cfg: BertConfig, dtype: LinearDType, f16: boolean, tokens: number, limits: { readonly maxBufferSize: number; readonly maxStorageBufferBindingSize: number }, what: string): void {
  const b = estimateBert(cfg, { dtype, tokens, f16 }).buffers[0];
  const limit = Math.min(limits.maxBufferSize, limits.maxStorageBufferBindingSize);
  if (b.bytes > limit) {
    throw new WebqError('BATCH_TOO_LARGE', `${what}: ${b.what} needs ${b.bytes} bytes, more than this device's buffer limit of ${limit} bytes; send at most ${Math.floor(limit / b.perUnit)} tokens (texts x longest text) per call`);
  }
}

/** "1.5 GiB" for messages and `webq info`. */
export function gib(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

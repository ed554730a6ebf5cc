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
import { bertQuantDefaults, bertTableDefault } from './bert/bert.ts';
import type { BertConfig } from './config.ts';
import type { LlamaConfig } from './llama/llama-config.ts';

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

/** Columns per quantization group by dtype (src/models/prepare-linear.ts defaults); rows are padded to a whole group. */
const GROUP: Partial<Record<LinearDType, number>> = { q8: 128, q4: 32, w4a8: 32 };

/** Bytes of an [N, K] Linear at a dtype: codes (rows padded to whole groups), scales and q4's zero points. */
function linBytes(N: number, K: number, dtype: LinearDType, act: number): number {
  const G = GROUP[dtype];
  switch (dtype) {
    case 'f32':
      return N * K * 4;
    case 'f16':
      return N * K * 2;
    case 'w8a8':
      return N * K + N * 4;
    case 'q8':
      return N * Math.ceil(K / G!) * (G! + act);
    case 'q4':
    case 'w4a8':
      return N * Math.ceil(K / G!) * (G! / 2 + 2 * act);
  }
}

/** Bytes per value of a table (f32 / f16 as the dtype says, else the int8 table's per-row or per-32 scales). */
function perParam(dtype: LinearDType, act: number): number {
  return dtype === 'f32' ? 4 : dtype === 'f16' ? 2 : act;
}

function activationsDtype(dtype: LinearDType, f16: boolean): 'f16' | 'f32' {
  return dtype === 'f32' || !f16 ? 'f32' : 'f16';
}

/** An LLM loaded at `dtype` with a KV cache of `context` positions. */
export function estimateLlm(cfg: LlamaConfig, o: { dtype: LinearDType; context: number; kv: 'f16' | 'f32' | 'int8'; f16: boolean }): MemoryEstimate {
  const actDtype = activationsDtype(o.dtype, o.f16);
  const act = ACT_BYTES[actDtype];
  const { hiddenSize: H, numHeads: nh, numKvHeads: nkv, headDim: D, intermediateSize: I, vocabSize: V, numLayers: L } = cfg;
  const lin = (n: number, k: number) => linBytes(n, k, o.dtype, act);
  const layer = lin((nh + 2 * nkv) * D, H) + lin(H, nh * D) + lin(2 * I, H) + lin(H, I) + 2 * H * act;
  const quantized = o.dtype !== 'f32' && o.dtype !== 'f16';
  // A tied table is also the LM head: int8 in groups of 32 under quantized dtypes; an untied one is only gathered (f16).
  const table = V * H * (!quantized ? perParam(o.dtype, act) : cfg.tieWordEmbeddings ? 1 + 4 / 32 : act);
  const head = cfg.tieWordEmbeddings ? 0 : lin(V, H);
  const weights = Math.ceil(L * layer + table + head + H * act);
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
  // BERT's own 4-bit default (bertQuantDefaults: symmetric groups, a scale each); else as linBytes says.
  const d = bertQuantDefaults(o.dtype);
  const lin = (n: number, k: number) => (d.group && d.symmetric ? n * Math.ceil(k / d.group) * (d.group / 2 + act) : linBytes(n, k, o.dtype, act));
  // ModernBERT: Wi is [2I, H] (input | gate), and no position or token type table (RoPE).
  const modern = cfg.modern !== null;
  const layer = lin(3 * H, H) + lin(H, H) + lin(modern ? 2 * I : I, H) + lin(H, I) + (9 * H + I) * act;
  // The word table (bertTableDefault): int8 with a scale per row, or int4 in groups of 32.
  const word = !quantized ? V * H * perParam(o.dtype, act) : bertTableDefault(o.dtype) === 'int4' ? V * Math.ceil(H / 32) * (16 + 2 * act) : V * (H + act);
  const tables = word + (modern ? 0 : (cfg.maxPositions + cfg.typeVocabSize) * H * act);
  // The pooler is a Linear at the dtype (a classifier's head beside it is a few hundred values).
  const weights = Math.ceil(L * layer + tables + 2 * H * act + lin(H, H) + H * act);
  const wideI = modern ? 2 * I : I;
  const widest = Math.max(wideI, 3 * H);
  const activations = o.tokens * act * Math.max(5 * H, 2 * H + (modern ? 3 * I : I));
  return {
    dtype: o.dtype, activations_dtype: actDtype, tokens: o.tokens, kv: null, weights, kv_cache: 0, activations, total: weights + activations,
    buffers: [
      { what: `the widest activation of ${o.tokens} tokens [${o.tokens}, ${widest}]`, field: widest === wideI ? 'intermediate_size' : 'hidden_size', bytes: o.tokens * widest * act, perUnit: widest * act, unit: 'token' },
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

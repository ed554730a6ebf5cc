/**
 * KV caches for a decoder config: the shape and RoPE frequencies come from the model's config, so
 * callers name only the context cap and the cache dtype. (In generate/, not ops/: ops do not read
 * model configs.)
 */
import type { GpuContext } from '../gpu/context.ts';
import { ropeInvFreq, ropeLocalInvFreq, type LlamaConfig } from '../models/llama/llama-config.ts';
import { KvCache, KvShared, type KvCacheShape, type KvDType } from '../ops/kv-cache.ts';

/** The cache shape of `config`'s model for `cap` positions in `dtype`. */
export function kvShape(config: LlamaConfig, cap: number, dtype: KvDType): KvCacheShape {
  return { layers: config.numLayers, heads: config.numHeads, kvHeads: config.numKvHeads, headDim: config.headDim, cap, dtype };
}

/** A one-sequence KV cache of `config`'s model (its shared tables freed with it). */
export function kvCacheFor(ctx: GpuContext, config: LlamaConfig, cap: number, dtype: KvDType): KvCache {
  return KvCache.create(ctx, kvShape(config, cap, dtype), ropeInvFreq(config), ropeLocalInvFreq(config));
}

/** The per-model part alone, for several sequences (KvCache.forShared). */
export function kvSharedFor(ctx: GpuContext, config: LlamaConfig, cap: number, dtype: KvDType): KvShared {
  return KvShared.create(ctx, kvShape(config, cap, dtype), ropeInvFreq(config), ropeLocalInvFreq(config));
}

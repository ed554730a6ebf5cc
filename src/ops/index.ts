/** Float ops: each records one dispatch into a Recorder. */
export { add, mul } from './elementwise.ts';
export { gelu, geglu, silu, swiglu } from './activation.ts';
export { layerNorm, rmsNorm } from './norm.ts';
export { softmax } from './softmax.ts';
export { embedding } from './embedding.ts';
export { matmul, type MatmulOptions } from './matmul.ts';
export { KvCache, KvShared, KV_DTYPES, type KvDType, type KvCacheShape } from './kv-cache.ts';
export { ropeKv, type RopeKvOptions } from './rope-kv.ts';
export { decoderAttention, type DecoderAttentionOptions } from './decoder-attention.ts';
export { sampleToken, validateSamplingParams, samplerUniform, type SamplingParams, type SamplerState } from './sample.ts';

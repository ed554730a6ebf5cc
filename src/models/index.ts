/** Model configs and weight tables (the GPU forward builds on these). */
export {
  parseModelConfig,
  parseBertConfig,
  ModelConfigError,
  SUPPORTED_MODEL_TYPES,
  type BertConfig,
  type ModelConfig,
  type ModelConfigErrorCode,
  type SupportedModelType,
} from './config.ts';
export {
  resolveBertWeights,
  readBertWeightsF32,
  BertWeightsError,
  type BertWeights,
  type BertWeightsErrorCode,
  type BertLayerRefs,
  type LinearRefs,
  type NormRefs,
} from './bert/bert-weights.ts';
export type { WeightRef } from './weight-ref.ts';
export { parseLlamaConfig, ropeInvFreq, LLAMA_ARCHITECTURES, type LlamaConfig, type LlamaModelType, type RopeScaling } from './llama/llama-config.ts';
export { resolveLlamaWeights, LlamaWeightsError, type LlamaWeights, type LlamaLayerRefs } from './llama/llama-weights.ts';
export { uploadLlamaWeights, llamaForward, llamaQuantDefaults, type LlamaGpuWeights, type ForwardStep } from './llama/llama.ts';
export { EMBEDDING_DTYPES, type EmbeddingDType } from './upload.ts';
export { MODEL_TYPES, modelTypeEntry, tasksOf, type ModelTypeEntry, type ModelTask } from './registry.ts';

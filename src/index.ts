/**
 * webq: quantized Transformer inference on WebGPU in browsers, Node and Deno.
 * This is the package's public surface; deeper modules may change between versions.
 */
// The declarations name GPUDevice, GPUBuffer, ... through src/gpu/webgpu-types.ts and declare no
// WebGPU global, so they compile beside TypeScript's own lib.dom WebGPU types (TypeScript >= 6).
export { WebqError, WebGPUUnavailableError, GPUDeviceError, ShapeError } from './errors.ts';
export { createDevice, WebqDevice, type Capabilities, type DeviceOptions } from './gpu/device.ts';
export { GpuContext, type HostArray } from './gpu/context.ts';
export { Recorder, type KernelTiming } from './gpu/recorder.ts';
export { Tensor, type DType } from './gpu/tensor.ts';
export type { Precision, Variant } from './gpu/shaders.ts';
export * as ops from './ops/index.ts';
export * as io from './io/index.ts';
export { CacheQuotaError } from './io/hub/cache-quota.ts';
export * as quant from './quant/index.ts';
export * as models from './models/index.ts';
export * as delta from './delta/index.ts';
export * as gguf from './gguf/index.ts';
export { GgufError, type GgufErrorCode } from './gguf/errors.ts';
export { openDelta, DeltaError, type Delta, type ModelVersion } from './delta/index.ts';
export type { ApplyDeltaOptions, DeltaApplied, DeltaInput } from './delta/loaded-update.ts';
export {
  TextTokenizer,
  loadTokenizer,
  TokenizerError,
  type TokenizerErrorCode,
  type EncodeBatchOptions,
  type EncodedBatch,
  type EncodeOptions,
  type TextTokenizerOptions,
} from './text/tokenizer.ts';
export { BertModel, DEFAULT_EMBED_MODEL, type BertLoadOptions, type EmbedOptions, type EmbedResult, type TextOptions, type Classification } from './api/bert.ts';
export type { Aggregation, EntityGroup, TokenClassification, TokenClassifyOptions, TokenEntity } from './api/token-classification.ts';
export { ACTIVATIONS, LINEAR_DTYPES, type Activations, type LinearDType } from './ops/linear.ts';
export { cosineSimilarity } from './api/similarity.ts';
export {
  LlmModel,
  DEFAULT_CONTEXT,
  DEFAULT_MAX_TOKENS,
  type LlmLoadOptions,
  type GenerateOptions,
  type GenerationChunk,
  type GenerationResult,
  type StreamingGeneration,
  type FinishReason,
  type Usage,
} from './api/llm.ts';
export { MAX_DRAFT_TOKENS, SPECULATIVE_METHODS, type SpeculativeOptions, type SpeculativeMethod } from './generate/speculative.ts';
export { evaluate, EVAL_CONTEXT, type EvaluateOptions, type EvaluateResult } from './api/evaluate.ts';
export type {
  ChatCompletionRequest,
  ChatCompletion,
  ChatCompletionChunk,
  ChatUsage,
  ChatRequestMessage,
  ChatCompletionMessage,
  ChatFinishReason,
  ChatLogprobs,
  ChatTokenLogprob,
  ToolCallDelta,
  ChatTool,
  ToolCall,
  ToolChoice,
} from './api/chat.ts';
export type { TokenLogprob, ConstraintOptions } from './api/generate-extras.ts';
export type { EmbeddingRequest, EmbeddingResponse, Embedding } from './api/embeddings.ts';
export type { ResponseFormat, JsonSchemaFormat } from './structured/constraint.ts';
export { ConstraintError, type ConstraintErrorCode } from './structured/errors.ts';
export type { ConstrainedStats } from './generate/constrained.ts';
export { LimitError, type CallLimits, type LimitErrorCode } from './api/limits.ts';
export type { ContextStats } from './gpu/context.ts';
export type { CacheCounters } from './gpu/binding-cache.ts';
export { ChatTemplate, type ChatMessage } from './text/chat-template.ts';
export { KV_DTYPES, type KvDType } from './ops/kv-cache.ts';
export type { SamplingParams } from './ops/sample.ts';
export {
  WebqWorker,
  WorkerBertModel,
  WorkerLlmModel,
  WorkerChatCompletions,
  type WorkerStartOptions,
  type WorkerModelOptions,
  type WorkerBertLoadOptions,
  type WorkerLlmLoadOptions,
} from './worker/index.ts';

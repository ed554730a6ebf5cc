/** The options of LlmModel.load and LlmModel.generate. */
import type { CallLimits } from './limits.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { OpenModelOptions } from '../io/hub/model-files.ts';
import type { EmbeddingDType } from '../models/upload.ts';
import type { KvDType } from '../ops/kv-cache.ts';
import type { Activations, LinearDType } from '../ops/linear.ts';
import type { SpeculativeOptions } from '../generate/speculative.ts';
import type { ConstraintOptions } from './generate-extras.ts';

export interface LlmLoadOptions extends Pick<OpenModelOptions, 'revision' | 'onProgress' | 'cache' | 'hubUrl' | 'cacheDir' | 'fetch' | 'headers' | 'offline' | 'refresh' | 'recheckMs' | 'timeoutMs'> {
  /**
   * Linear-layer weights: f32, f16, q8, q4 (default), w8a8, w4a8; a pre-quantized checkpoint's own
   * by default. A GPTQ/AWQ/compressed-tensors/bitsandbytes checkpoint keeps its weights' bits; the
   * dtype picks q* or w* kernels (see `activations`), or f32/f16 dequantized weights.
   */
  dtype?: LinearDType;
  /**
   * What q8/q4 Linears (and a packed LM head) do with their input, the same in prefill and decode:
   * 'float' (the default) keeps it f16/f32, weight-only kernels (W8A16/W4A16, what GPTQ, AWQ and
   * compressed-tensors compute); 'int8' quantizes it per block of 32 for dot4I8Packed kernels.
   * float is the default for its accuracy (q8: 2-3x lower KL against fp32 on models with massive
   * channels) and its faster decode (llamaQuantDefaults, README "Activations"). w8a8/w4a8 are int8
   * and f32/f16 float ('BAD_OPTION' otherwise).
   */
  activations?: Activations;
  /** KV cache: f16 (default where the device has shader-f16), f32, or int8 (one scale per token and KV head). */
  kv?: KvDType;
  /** Positions the KV cache holds; default the smaller of max_position_embeddings and 4096. */
  contextLength?: number;
  /**
   * Sequences decoded together (generateBatch, chat/completions `n`), 1 to 16: their KV caches
   * (batchSize x contextLength positions) and buffers are made at load. Default 1: made on the
   * first batched call, for its size.
   */
  batchSize?: number;
  /**
   * Concurrent generate / chat.completions.create calls that share decode forwards, 1 to 16
   * (src/api/concurrent-generate.ts): calls made together run as one batch of up to this many,
   * each with its own options, stream and usage, and the tokens it gives alone. Default 1: calls
   * run one after another. Calls with responseFormat, tools, logitBias, logprobs or speculative
   * always run alone, in the queue.
   */
  concurrency?: number;
  group?: number | 'channel';
  symmetric?: boolean;
  /**
   * The embedding table (and a tied LM head) of a float checkpoint: int8 (default under quantized
   * dtypes, groups of 32), int4, f16 or f32. A pre-quantized checkpoint's is as stored.
   */
  embeddings?: EmbeddingDType;
  /** Share a device; otherwise the model makes its own and dispose() destroys it. */
  context?: GpuContext;
  f16?: boolean;
  kernels?: 'gpu' | 'cpu';
  /**
   * A GGUF file inside `location` (a hub id, folder URL or folder), e.g. 'model-Q4_0.gguf'; a
   * location ending in .gguf names one itself (src/gguf/files.ts).
   */
  file?: string;
  /**
   * After a device loss, call recover() by itself: the calls running then reject with a
   * GPUDeviceError, the next ones wait for the model to be on a new device (default false).
   */
  autoRecover?: boolean;
  /** maxInputTokens (prompt tokens), maxQueue, a default timeoutMs per call: see src/api/limits.ts. */
  limits?: CallLimits;
}

/** Sampling, stops and limits; ConstraintOptions adds responseFormat, logitBias and logprobs. */
export interface GenerateOptions extends ConstraintOptions {
  /** Most new tokens (default: generation_config.json max_new_tokens, else 256). */
  maxTokens?: number;
  /** 0 = greedy. Unset sampling options come from generation_config.json when it samples, else greedy. */
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repetitionPenalty?: number;
  /** Same seed, same tokens (default: a random seed). */
  seed?: number;
  /** Text that ends the generation (not included in the result). */
  stop?: string | readonly string[];
  /** Keep going past the model's end-of-sequence tokens. */
  ignoreEos?: boolean;
  signal?: AbortSignal;
  /** String prompts: add the tokenizer's special tokens (BOS where its config adds one); default true. */
  addSpecialTokens?: boolean;
  /** Token ids read back per batch while decoding (default 8): larger runs further ahead of the CPU. */
  readEvery?: number;
  /** Reject with a LimitError 'TIMEOUT' after this many ms, waiting in the queue included (default limits.timeoutMs). */
  timeoutMs?: number;
  /**
   * Speculative decoding: drafts up to k (1..16, default 4) tokens per step and verifies them in
   * one target forward; the output is the same as without it (sampled too: the same seed draws the
   * same tokens from the same logits). Drafters: { method: 'lookup' } (n-grams of the text so far),
   * { method: 'self', layers? } (the checkpoint's q4 copy, or its first `layers` layers),
   * { method: 'draft', model } (an LlmModel with the same vocabulary on the same context, or a path).
   * Not with repetitionPenalty, responseFormat, tools, logitBias or logprobs ('BAD_OPTION'
   * otherwise). See src/generate/speculative.ts and src/api/llm-speculative.ts.
   */
  speculative?: SpeculativeOptions;
}

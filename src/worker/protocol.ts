/**
 * The messages between the main thread (src/worker/connection.ts) and a webq worker
 * (src/worker/worker.ts). Every request carries an id; the worker answers it with any number of
 * progress, warmup and chunk messages, then exactly one result or error. `abort` names the request
 * to stop. Vectors and logits travel as transferred Float32Arrays (no copy).
 *
 *   main -> worker                              worker -> main (same id)
 *   init     { device }                         result Capabilities
 *   load     { kind, location, options, warmup} progress*, warmup?, result ModelInfo
 *   embed / classify / tokenClassify / logits   result
 *   applyDelta { delta, options }               result { applied, version, weightBytes }
 *   generate { stream }  /  chat                chunk*, result
 *   recover  { model }                          result { recovered, weightBytes }
 *   loseDevice                                  result null (destroys the worker's device: tests)
 *   dispose  { model }                          result null
 *   abort    { id }                             (the aborted request ends with an error)
 */
import type { BertLoadOptions, Classification, EmbedOptions, TextOptions } from '../api/bert.ts';
import type { TokenClassification, TokenClassifyOptions } from '../api/token-classification.ts';
import type { ChatCompletion, ChatCompletionChunk, ChatCompletionRequest } from '../api/chat.ts';
import type { GenerateOptions, GenerationChunk, GenerationResult, LlmLoadOptions } from '../api/llm.ts';
import type { ApplyDeltaOptions, DeltaApplied } from '../delta/loaded-update.ts';
import type { Capabilities } from '../gpu/device.ts';
import type { DownloadProgress } from '../io/hub/progress.ts';
import type { Activations, LinearDType } from '../ops/linear.ts';
import type { BertConfig } from '../models/config.ts';
import type { LlamaConfig } from '../models/llama/llama-config.ts';
import type { KvDType } from '../ops/kv-cache.ts';
import type { GenerationDefaults } from '../text/generation-config.ts';

/** What cannot cross to a worker: callbacks, a fetch function, a device, a signal (sent as `abort`). */
type Local = 'onProgress' | 'fetch' | 'context' | 'f16' | 'kernels';
export type BertWorkerLoadOptions = Omit<BertLoadOptions, Local>;
export type LlmWorkerLoadOptions = Omit<LlmLoadOptions, Local>;
export type GenerateWorkerOptions = Omit<GenerateOptions, 'signal'>;
/** A delta as it crosses: an absolute URL or a path, a Blob, or its bytes (copied). */
export type WorkerDeltaInput = string | Blob | ArrayBuffer | Uint8Array;

export interface BertInfo {
  kind: 'bert';
  config: BertConfig;
  dtype: LinearDType;
  activations: Activations;
  describe: string;
  weightBytes: number;
  version: string | null;
  pooling: Required<Pick<EmbedOptions, 'pooling' | 'normalize'>>;
  /** Load (download, upload) and warm-up times in ms; warm-up 0 when it was off. */
  loadMs: number;
  warmupMs: number;
}

export interface LlmInfo {
  kind: 'llm';
  config: LlamaConfig;
  dtype: LinearDType;
  activations: Activations;
  kv: KvDType;
  describe: string;
  weightBytes: number;
  version: string | null;
  kvBytes: number;
  contextLength: number;
  generationDefaults: GenerationDefaults;
  eosTokenIds: number[];
  hasChatTemplate: boolean;
  loadMs: number;
  warmupMs: number;
}

export type Request =
  | { id: number; op: 'init'; device: { f16?: boolean; kernels?: 'gpu' | 'cpu' } }
  | { id: number; op: 'load'; kind: 'bert'; location: string; options: BertWorkerLoadOptions; warmup: boolean }
  | { id: number; op: 'load'; kind: 'llm'; location: string; options: LlmWorkerLoadOptions; warmup: boolean }
  | { id: number; op: 'embed'; model: number; texts: string[]; options: EmbedOptions & TextOptions }
  | { id: number; op: 'classify'; model: number; texts: string[]; options: TextOptions }
  | { id: number; op: 'tokenClassify'; model: number; texts: string[]; options: TokenClassifyOptions & TextOptions }
  | { id: number; op: 'logits'; model: number; prompt: string | number[]; options: { addSpecialTokens?: boolean } }
  | { id: number; op: 'generate'; model: number; prompt: string | number[]; options: GenerateWorkerOptions; stream: boolean }
  | { id: number; op: 'chat'; model: number; request: ChatCompletionRequest }
  | { id: number; op: 'applyDelta'; model: number; delta: WorkerDeltaInput; options: ApplyDeltaOptions }
  | { id: number; op: 'recover'; model: number }
  | { id: number; op: 'loseDevice' }
  | { id: number; op: 'dispose'; model: number }
  /** Stops request `id` (a load, generate or chat); it is not answered itself. */
  | { id: number; op: 'abort' };

export type Op = Exclude<Request['op'], 'abort'>;

/** A request as a caller writes it: the connection adds the id. */
export type RequestBody = Exclude<Request, { op: 'abort' }> extends infer R ? (R extends unknown ? Omit<R, 'id'> : never) : never;

/** The result of each op. A load answers with the model's handle beside its description. */
export interface Results {
  init: Capabilities;
  load: { model: number; info: BertInfo | LlmInfo };
  embed: Float32Array[];
  classify: Classification[];
  tokenClassify: TokenClassification[];
  logits: { ids: number[]; logits: Float32Array };
  generate: GenerationResult;
  chat: ChatCompletion | null;
  applyDelta: { applied: DeltaApplied; version: string | null; weightBytes: number };
  recover: { recovered: boolean; weightBytes: number };
  loseDevice: null;
  dispose: null;
}

/** An error as it crosses: WebqErrors keep their code; others their constructor's name. */
export interface SerializedError {
  name: string;
  message: string;
  code?: string;
}

export type Reply =
  | { id: number; type: 'progress'; event: DownloadProgress }
  | { id: number; type: 'warmup' }
  | { id: number; type: 'chunk'; chunk: GenerationChunk | ChatCompletionChunk }
  | { id: number; type: 'result'; value: Results[Op] }
  | { id: number; type: 'error'; error: SerializedError };

/**
 * WorkerLlmModel: LlmModel in a dedicated worker. generate (whole or `stream: true`), logits and
 * chat.completions.create (whole or streamed) behave as LlmModel's: text chunks and their token
 * ids stream back as the worker makes them, an AbortSignal stops the generation in the worker, and
 * the worker's errors arrive as WebqErrors with the same code and message.
 */
import type { ChatCompletion, ChatCompletionChunk, ChatCompletionRequest } from '../api/chat.ts';
import type { GenerateOptions, GenerationChunk, GenerationResult, LlmLoadOptions, StreamingGeneration } from '../api/llm.ts';
import type { ApplyDeltaOptions, DeltaApplied } from '../delta/loaded-update.ts';
import { WebqError } from '../errors.ts';
import type { LlamaConfig } from '../models/llama-config.ts';
import type { KvDType } from '../ops/kv-cache.ts';
import type { Activations, LinearDType } from '../ops/linear.ts';
import type { GenerationDefaults } from '../text/generation-config.ts';
import { Channel, deltaForWorker, splitOptions, workerFor, type WebqWorker, type WorkerModelOptions } from './connection.ts';
import type { LlmInfo, RequestBody, Results } from './protocol.ts';

export type WorkerLlmLoadOptions = Omit<LlmLoadOptions, 'onProgress' | 'fetch' | 'context'> & WorkerModelOptions;

type Prompt = string | readonly number[];

export class WorkerLlmModel {
  readonly config: LlamaConfig;
  readonly dtype: LinearDType;
  /** What the quantized Linears do with their input (LlmModel.activations). */
  readonly activations: Activations;
  readonly kv: KvDType;
  readonly describe: string;
  /** KV cache bytes on the GPU (allocated at load for the whole context). */
  readonly kvBytes: number;
  readonly contextLength: number;
  readonly generationDefaults: GenerationDefaults;
  readonly eosTokenIds: readonly number[];
  /** Whether the model has a chat template (LlmModel.chatTemplate is not null), so chat works. */
  readonly hasChatTemplate: boolean;
  readonly loadMs: number;
  readonly warmupMs: number;
  readonly worker: WebqWorker;
  readonly chat: { completions: WorkerChatCompletions };
  private readonly handle: number;
  private bytes: number;
  private modelVersion: string | null;
  private readonly ownsWorker: boolean;
  private disposed: Promise<void> | undefined;

  private constructor(worker: WebqWorker, ownsWorker: boolean, handle: number, info: LlmInfo) {
    this.worker = worker;
    this.ownsWorker = ownsWorker;
    this.handle = handle;
    this.config = info.config;
    this.dtype = info.dtype;
    this.activations = info.activations;
    this.kv = info.kv;
    this.describe = info.describe;
    this.bytes = info.weightBytes;
    this.modelVersion = info.version;
    this.kvBytes = info.kvBytes;
    this.contextLength = info.contextLength;
    this.generationDefaults = info.generationDefaults;
    this.eosTokenIds = info.eosTokenIds;
    this.hasChatTemplate = info.hasChatTemplate;
    this.loadMs = info.loadMs;
    this.warmupMs = info.warmupMs;
    this.chat = { completions: new WorkerChatCompletions((req, signal, chunk) => this.call({ op: 'chat', model: this.handle, request: req }, signal, chunk)) };
  }

  /** Loads `location` (a folder URL or a hub id) in a worker: see LlmLoadOptions and WorkerModelOptions. */
  static async load(location: string, opts: WorkerLlmLoadOptions = {}): Promise<WorkerLlmModel> {
    const { local, remote } = splitOptions(opts);
    const { worker, owned } = await workerFor(local);
    try {
      const { model, info } = await worker.request(
        { op: 'load', kind: 'llm', location: String(location), options: remote, warmup: local.warmup ?? true },
        { progress: local.onProgress, warmup: local.onWarmup, signal: local.signal },
      );
      if (info.kind !== 'llm') throw new WebqError('WORKER_PROTOCOL', `the worker loaded a ${info.kind} model for WorkerLlmModel`);
      return new WorkerLlmModel(worker, owned, model, info);
    } catch (e) {
      if (owned) worker.terminate();
      throw e;
    }
  }

  /** Weight bytes on the GPU. */
  get weightBytes(): number {
    return this.bytes;
  }

  /** The model's version, as LlmModel.version (moved by applyDelta). */
  get version(): string | null {
    return this.modelVersion;
  }

  /**
   * LlmModel.applyDelta in the worker: the delta as a URL (a string is resolved against the page), a
   * Blob or its bytes (copied to the worker).
   */
  async applyDelta(delta: string | URL | Blob | ArrayBuffer | Uint8Array, opts: ApplyDeltaOptions = {}): Promise<DeltaApplied> {
    this.check();
    const r = await this.worker.request({ op: 'applyDelta', model: this.handle, delta: deltaForWorker(delta), options: opts });
    this.bytes = r.weightBytes;
    this.modelVersion = r.version;
    return r.applied;
  }

  private check(): void {
    if (this.disposed) throw new WebqError('DISPOSED', `${this.describe}: this model was disposed`);
  }

  private call<K extends 'generate' | 'chat'>(req: RequestBody & { op: K }, signal: AbortSignal | undefined, chunk?: (c: unknown) => void): Promise<Results[K]> {
    this.check();
    return this.worker.request<K>(req, { signal, chunk });
  }

  /** Logits over the vocabulary at the prompt's last position (transferred, not copied). */
  async logits(prompt: Prompt, opts: { addSpecialTokens?: boolean } = {}): Promise<{ ids: number[]; logits: Float32Array }> {
    this.check();
    return this.worker.request({ op: 'logits', model: this.handle, prompt: typeof prompt === 'string' ? prompt : [...prompt], options: opts });
  }

  /** As LlmModel.generate: the whole result, or with `stream: true` text chunks as the worker makes them. */
  generate(prompt: Prompt, opts: GenerateOptions & { stream: true }): StreamingGeneration;
  generate(prompt: Prompt, opts?: GenerateOptions & { stream?: false }): Promise<GenerationResult>;
  generate(prompt: Prompt, opts: GenerateOptions & { stream?: boolean } = {}): StreamingGeneration | Promise<GenerationResult> {
    const { signal, stream, ...options } = opts;
    const ids = typeof prompt === 'string' ? prompt : [...prompt];
    const send = (chunk?: (c: unknown) => void, stop?: AbortSignal) =>
      Promise.resolve().then(() => this.call({ op: 'generate', model: this.handle, prompt: ids, options, stream: chunk !== undefined }, either(signal, stop), chunk));
    if (!stream) return send();
    // As LlmModel's: the generation starts when the stream is first read.
    const holder: { resolve?: (r: GenerationResult) => void; reject?: (e: unknown) => void } = {};
    const result = new Promise<GenerationResult>((res, rej) => Object.assign(holder, { resolve: res, reject: rej }));
    result.catch(() => {}); // observed by whoever awaits it; errors also reach the reader
    return {
      result,
      [Symbol.asyncIterator]: () => {
        const stop = new AbortController();
        const ch = new Channel<GenerationChunk>(() => stop.abort());
        send((c) => ch.push(c as GenerationChunk), stop.signal).then(
          (r) => (holder.resolve!(r), ch.end()),
          (e) => (holder.reject!(e), ch.fail(e)),
        );
        return ch[Symbol.asyncIterator]();
      },
    };
  }

  /**
   * As recover() of the model in the worker: after a device loss, a new device for the worker and
   * the weights uploaded again; calls wait for it. False when there was nothing to do.
   */
  async recover(): Promise<boolean> {
    this.check();
    const r = await this.worker.request({ op: 'recover', model: this.handle });
    this.bytes = r.weightBytes;
    return r.recovered;
  }

  /** Frees the model in the worker, and ends the worker if the model started it. */
  dispose(): Promise<void> {
    return (this.disposed ??= this.worker.request({ op: 'dispose', model: this.handle }).then(
      () => (this.ownsWorker ? this.worker.terminate() : undefined),
      () => (this.ownsWorker ? this.worker.terminate() : undefined),
    ));
  }
}

/** The caller's signal, and ours that a reader leaving a stream early fires. */
function either(a: AbortSignal | undefined, b: AbortSignal | undefined): AbortSignal | undefined {
  return a && b ? AbortSignal.any([a, b]) : (a ?? b);
}

type ChatCall = (req: ChatCompletionRequest, signal: AbortSignal | undefined, chunk?: (c: unknown) => void) => Promise<ChatCompletion | null>;

/** `model.chat.completions.create()` of a WorkerLlmModel: the worker runs LlmModel's and sends its chunks. */
export class WorkerChatCompletions {
  constructor(private readonly send: ChatCall) {}

  create(req: ChatCompletionRequest & { stream: true }, opts?: { signal?: AbortSignal }): AsyncIterable<ChatCompletionChunk>;
  create(req: ChatCompletionRequest & { stream?: false | null }, opts?: { signal?: AbortSignal }): Promise<ChatCompletion>;
  create(req: ChatCompletionRequest, opts: { signal?: AbortSignal } = {}): AsyncIterable<ChatCompletionChunk> | Promise<ChatCompletion> {
    if (!req?.stream) return Promise.resolve().then(() => this.send(req, opts.signal) as Promise<ChatCompletion>);
    const send = this.send;
    return {
      [Symbol.asyncIterator]() {
        const stop = new AbortController();
        const ch = new Channel<ChatCompletionChunk>(() => stop.abort());
        Promise.resolve()
          .then(() => send(req, either(opts.signal, stop.signal), (c) => ch.push(c as ChatCompletionChunk)))
          .then(
            () => ch.end(),
            (e) => ch.fail(e),
          );
        return ch[Symbol.asyncIterator]();
      },
    };
  }
}

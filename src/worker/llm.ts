/**
 * WorkerLlmModel: LlmModel in a dedicated worker. generate (whole or `stream: true`), logits and
 * chat.completions.create (whole or streamed) behave as LlmModel's: text chunks and their token
 * ids stream back as the worker makes them, an AbortSignal stops the generation in the worker, and
 * the worker's errors arrive as WebqErrors with the same code and message.
 */
import type { ChatCompletion, ChatCompletionChunk, ChatCompletionRequest } from '../api/chat.ts';
import type { GenerateOptions, GenerationChunk, GenerationResult, LlmLoadOptions, StreamingGeneration } from '../api/llm.ts';
import type { KvDType } from '../ops/kv-cache.ts';
import type { GenerationDefaults } from '../text/generation-config.ts';
import { Channel, type WebqWorker, type WorkerModelOptions } from './connection.ts';
import { WorkerModel } from './model.ts';
import type { LlmInfo, RequestBody, Results } from './protocol.ts';

export type WorkerLlmLoadOptions = Omit<LlmLoadOptions, 'onProgress' | 'fetch' | 'context'> & WorkerModelOptions;

type Prompt = string | readonly number[];

export class WorkerLlmModel extends WorkerModel<LlmInfo> {
  readonly kv: KvDType;
  /** KV cache bytes on the GPU (allocated at load for the whole context). */
  readonly kvBytes: number;
  readonly contextLength: number;
  readonly generationDefaults: GenerationDefaults;
  readonly eosTokenIds: readonly number[];
  /** Whether the model has a chat template (LlmModel.chatTemplate is not null), so chat works. */
  readonly hasChatTemplate: boolean;
  readonly chat: { completions: WorkerChatCompletions };

  private constructor(worker: WebqWorker, ownsWorker: boolean, handle: number, info: LlmInfo) {
    super(worker, ownsWorker, handle, info);
    this.kv = info.kv;
    this.kvBytes = info.kvBytes;
    this.contextLength = info.contextLength;
    this.generationDefaults = info.generationDefaults;
    this.eosTokenIds = info.eosTokenIds;
    this.hasChatTemplate = info.hasChatTemplate;
    this.chat = { completions: new WorkerChatCompletions((req, signal, chunk) => this.call({ op: 'chat', model: this.handle, request: req }, signal, chunk)) };
  }

  /** Loads `location` (a folder URL or a hub id) in a worker: see LlmLoadOptions and WorkerModelOptions. */
  static load(location: string, opts: WorkerLlmLoadOptions = {}): Promise<WorkerLlmModel> {
    return WorkerModel.loadIn('llm', location, opts, (w, owned, handle, info) => new WorkerLlmModel(w, owned, handle, info));
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

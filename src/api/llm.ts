/**
 * LlmModel: load a LLaMA-family decoder (Llama, Mistral, Qwen2, Qwen3, SmolLM) from a folder, a
 * folder URL or a hub id, then generate text, stream it, or chat in the OpenAI shape. Generation
 * runs on the GPU end to end (src/generate/decoder.ts); this layer turns prompts into ids and ids
 * into text, applies stops, measures, and queues calls so two generations never interleave.
 */
import type { ApplyDeltaOptions, DeltaApplied, DeltaInput } from '../delta/loaded-update.ts';
import { WebqError } from '../errors.ts';
import { decoderError } from '../quant/guard.ts';
import { GpuContext } from '../gpu/context.ts';
import { openLlmFiles } from '../gguf/files.ts';
import { loadHolding } from '../io/hub/cache-lock.ts';
import type { ModelFiles } from '../io/hub/model-files.ts';
import type { TensorStore } from '../io/safetensors/reader.ts';
import { Decoder } from '../generate/decoder.ts';
import { checkSpeculativeCall } from '../generate/speculative.ts';
import { kvCacheFor } from '../generate/kv.ts';
import { uploadLlamaWeights, type LlamaGpuWeights } from '../models/llama/llama.ts';
import { checkKvFits, parseLlamaConfig, type LlamaConfig } from '../models/llama/llama-config.ts';
import { resolveLlamaWeights } from '../models/llama/llama-weights.ts';
import { checkEstimate, estimateLlm } from '../models/memory-estimate.ts';
import { KV_DTYPES, type KvDType } from '../ops/kv-cache.ts';
import type { Activations, LinearDType } from '../ops/linear.ts';
import { validateSamplingParams, type SamplingParams } from '../ops/sample.ts';
import { ChatTemplate, requireChatTemplate, type ChatMessage } from '../text/chat-template.ts';
import { readGenerationConfig, type GenerationDefaults } from '../text/generation-config.ts';
import { loadTokenizer, type TextTokenizer } from '../text/tokenizer.ts';
import { batchable, BatchSlot, checkBatchSize, generateBatch } from './batch-generate.ts';
import { checkConcurrency, ConcurrentCalls } from './concurrent-generate.ts';
import { ChatCompletions } from './chat.ts';
import { decodeTurn } from './llm-decode.ts';
import { ConstraintTools, prepareExtras } from './generate-extras.ts';
import { abortable, callTimeout, CallCounter, deadline, LimitError, resolveLimits, type Limits } from './limits.ts';
import { SpeculativeDrafters } from './llm-speculative.ts';
import { checkLoadOptions, loadCheckpoint, LoadedWeights, type Upload } from './model-weights.ts';
import { staleError } from './recovery.ts';

/** Default context cap: the model's own, but no more than this many positions. */
export const DEFAULT_CONTEXT = 4096;
export const DEFAULT_MAX_TOKENS = 256;

export type { GenerateOptions, LlmLoadOptions } from './llm-options.ts';
import type { GenerateOptions, LlmLoadOptions } from './llm-options.ts';
export type { FinishReason, GenerationChunk, GenerationResult, StreamingGeneration, Usage } from './llm-results.ts';
import type { GenerationChunk, GenerationResult, StreamingGeneration } from './llm-results.ts';


export class LlmModel {
  readonly config: LlamaConfig;
  readonly dtype: LinearDType;
  readonly kv: KvDType;
  readonly describe: string;
  readonly ctx: GpuContext;
  readonly tokenizer: TextTokenizer;
  readonly chatTemplate: ChatTemplate | null;
  readonly generationDefaults: GenerationDefaults;
  /** End-of-sequence ids from config.json, generation_config.json and the tokenizer. */
  readonly eosTokenIds: readonly number[];
  readonly chat: { completions: ChatCompletions };
  /** The constraint engine for responseFormat and tool calls, made on first use. */
  readonly constraints: ConstraintTools;
  /** The weights the decoder runs on, the model's version and how to upload it again (src/api/model-weights.ts). */
  private readonly weights: LoadedWeights<LlamaGpuWeights>;
  private decoder: Decoder;
  private readonly ownsContext: boolean;
  private readonly limits: Limits;
  private readonly calls: CallCounter;
  private readonly stopWatching: () => void;
  private queue: Promise<void> = Promise.resolve();
  private readonly drafters = new SpeculativeDrafters(this);
  private disposed = false;
  /** Batched decoding's buffers (generateBatch, n > 1): LlmLoadOptions.batchSize. */
  private readonly batch: BatchSlot;
  /** Concurrent generate calls sharing forwards (LlmLoadOptions.concurrency > 1), else null. */
  private readonly shared: ConcurrentCalls | null;

  private constructor(a: {
    config: LlamaConfig; dtype: LinearDType; kv: KvDType; describe: string; ctx: GpuContext; tokenizer: TextTokenizer; chatTemplate: ChatTemplate | null;
    generationDefaults: GenerationDefaults; weights: LoadedWeights<LlamaGpuWeights>; decoder: Decoder; ownsContext: boolean; autoRecover: boolean; limits: Limits; batchSize: number; concurrency: number;
  }) {
    this.config = a.config;
    this.dtype = a.dtype;
    this.kv = a.kv;
    this.describe = a.describe;
    this.ctx = a.ctx;
    this.tokenizer = a.tokenizer;
    this.chatTemplate = a.chatTemplate;
    this.generationDefaults = a.generationDefaults;
    this.weights = a.weights;
    this.decoder = a.decoder;
    this.ownsContext = a.ownsContext;
    this.limits = a.limits;
    this.calls = new CallCounter(a.describe);
    this.stopWatching = a.autoRecover ? a.ctx.onFailure(() => void this.recover().catch(() => undefined)) : () => undefined;
    const eos = new Set([...a.config.eosTokenIds, ...a.generationDefaults.eosTokenIds]);
    const tokEos = a.tokenizer.eosTokenId;
    if (tokEos !== undefined) eos.add(tokEos);
    this.eosTokenIds = [...eos];
    this.chat = { completions: new ChatCompletions(this) };
    this.constraints = new ConstraintTools(a.tokenizer, a.config.vocabSize, this.eosTokenIds);
    this.batch = new BatchSlot(a.ctx, a.config, a.decoder.cache.shared, Math.max(a.batchSize, a.concurrency));
    this.shared = a.concurrency > 1 ? new ConcurrentCalls(this.batchHost(), a.concurrency) : null;
  }

  static async load(location: string, opts: LlmLoadOptions = {}): Promise<LlmModel> {
    checkLoadOptions(opts);
    if (opts.kv !== undefined && !KV_DTYPES.includes(opts.kv)) throw new WebqError('BAD_OPTION', `unknown kv '${opts.kv}': use one of ${KV_DTYPES.join(', ')}`);
    checkBatchSize(opts.batchSize);
    checkConcurrency(opts.concurrency);
    const limits = resolveLimits(opts.limits);
    const files = await openLlmFiles(location, opts);
    const model = await loadHolding(files, () => LlmModel.loadFrom(files, opts, limits));
    model.drafters.source = { location, opts }; // 'self' loads the same checkpoint at q4 from here
    return model;
  }

  /** The rest of load(), holding a cached model's lock (src/io/hub/cache-lock.ts): it reads one version of the files. */
  private static async loadFrom(files: ModelFiles, opts: LlmLoadOptions, limits: Limits): Promise<LlmModel> {
    const config = parseLlamaConfig(await files.readJson('config.json'), `${files.describe}/config.json`);
    const cap = opts.contextLength ?? Math.min(config.maxPositions, DEFAULT_CONTEXT);
    if (!Number.isSafeInteger(cap) || cap < 2 || cap > config.maxPositions) {
      throw new WebqError('BAD_OPTION', `contextLength must be an integer from 2 to max_position_embeddings (${config.maxPositions}), got ${opts.contextLength}`);
    }
    const tokenizer = await loadTokenizer(files, { name: files.describe });
    const chatTemplate = await ChatTemplate.load(files);
    const generationDefaults = await readGenerationConfig(files);
    const arch = { fallback: 'q4' as const, quantizationConfig: config.quantizationConfig, check: (s: TensorStore) => void resolveLlamaWeights(s, config) };
    return loadCheckpoint(files, opts, arch, async ({ store, ctx, dtype, prequant, version, uploadOptions, hold }) => {
      const kv = opts.kv ?? (ctx.caps.f16 ? 'f16' : 'f32');
      checkKvFits(config, cap, kv, ctx.caps, `${files.describe}/config.json`);
      checkEstimate(estimateLlm(config, { dtype, context: cap, kv, f16: ctx.caps.f16 }), ctx.caps, `${files.describe}/config.json`, (n) => `load with contextLength ${n} or less`);
      const upload: Upload<LlamaGpuWeights> = (s, prequant, reuse) => uploadLlamaWeights(ctx, s, config, resolveLlamaWeights(s, config), dtype, { ...uploadOptions, prequant, reuse });
      const weights = hold(await upload(store, prequant));
      const cache = kvCacheFor(ctx, config, cap, kv);
      const decoder = hold(new Decoder(ctx, config, weights, hold(cache)));
      const loaded = new LoadedWeights(ctx, { describe: files.describe, files, dtype }, upload, weights, version);
      return new LlmModel({ config, dtype, kv, describe: files.describe, ctx, tokenizer, chatTemplate, generationDefaults, weights: loaded, decoder, ownsContext: !opts.context, autoRecover: opts.autoRecover === true, limits, batchSize: opts.batchSize ?? 1, concurrency: opts.concurrency ?? 1 });
    });
  }

  /** Weight bytes on the GPU. */
  get weightBytes(): number {
    return this.weights.current.bytes;
  }

  /** What the quantized Linears do with their input (LlmLoadOptions.activations, as resolved). */
  get activations(): Activations {
    return this.weights.current.activations;
  }

  /** The model's version (`webq quantize` records it; applyDelta moves it), or null for a file without one. */
  get version(): string | null {
    return this.weights.version?.version ?? null;
  }

  /** KV cache bytes on the GPU. */
  get kvBytes(): number {
    return this.decoder.cache.bytes;
  }

  get contextLength(): number {
    return this.decoder.contextLength;
  }

  private check(): void {
    if (this.disposed) throw new WebqError('DISPOSED', `${this.describe}: this model was disposed`);
  }

  /** check(), and that the weights live on the context's current device (see recover()). */
  private checkLive(): void {
    this.check();
    if (this.weights.stale) throw staleError(this.describe);
  }

  /** Prompt ids as the model's tokenizer makes them (special tokens where its config adds them). */
  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    if (typeof text !== 'string') throw new WebqError('BAD_PROMPT', `the prompt must be a string or an array of token ids, got ${text === null ? 'null' : typeof text}`);
    return this.tokenizer.encode(text, { addSpecialTokens: opts.addSpecialTokens ?? true, truncation: false, maxLength: Number.MAX_SAFE_INTEGER }).ids;
  }

  private promptIds(prompt: string | readonly number[], addSpecialTokens?: boolean): number[] {
    return Array.isArray(prompt) ? [...(prompt as number[])] : this.encode(prompt as string, { addSpecialTokens });
  }

  /** Waits for the calls before this one, so generations run one after another (or until `signal` aborts). */
  private async acquire(signal?: AbortSignal): Promise<() => void> {
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const prev = this.queue;
    this.queue = prev.then(() => mine);
    try {
      await abortable(prev, signal);
    } catch (e) {
      void prev.then(release); // our turn still passes, to the call after us
      throw e;
    }
    return release;
  }

  /** @internal The decoder, held (its queue) until release(): a draft model lent to another's speculation. */
  async lendDecoder(signal?: AbortSignal): Promise<{ decoder: Decoder; release: () => void }> {
    const release = await this.acquire(signal);
    if (this.disposed || this.weights.stale) release(); // checkLive() throws below
    this.checkLive();
    return { decoder: this.decoder, release };
  }

  /** Logits over the vocabulary at the prompt's last position. */
  async logits(prompt: string | readonly number[], opts: { addSpecialTokens?: boolean } = {}): Promise<{ ids: number[]; logits: Float32Array }> {
    this.check();
    const ids = this.promptIds(prompt, opts.addSpecialTokens);
    this.checkInput(ids);
    const out = this.calls.enter(this.limits);
    try {
      const release = await this.acquire();
      try {
        this.checkLive();
        return { ids, logits: await this.decoder.logits(ids) };
      } finally {
        release();
      }
    } finally {
      out();
    }
  }

  private checkInput(ids: readonly number[]): void {
    if (ids.length > this.limits.maxInputTokens) {
      throw new LimitError('INPUT_TOO_LONG', `${this.describe}: the prompt is ${ids.length} tokens, more than limits.maxInputTokens (${this.limits.maxInputTokens}); shorten it`);
    }
  }

  /**
   * Logits [n, V] at every position from `from` (default 0) of a token sequence: row i is the
   * next-token distribution after ids[0..from+i]. Reuses the cached common prefix, so a long text
   * can be scored in pieces (`webq eval`, src/api/evaluate.ts).
   */
  async logitsAll(ids: readonly number[], opts: { from?: number } = {}): Promise<Float32Array> {
    this.check();
    const release = await this.acquire();
    try {
      return await this.decoder.logitsFrom(ids, opts.from ?? 0);
    } finally {
      release();
    }
  }

  /** The sampling parameters for a call: the caller's, else generation_config.json's when it samples, else greedy. */
  samplingFor(o: GenerateOptions): SamplingParams {
    const d = this.generationDefaults;
    const sample = d.doSample === true;
    return validateSamplingParams({
      temperature: o.temperature ?? (sample ? d.temperature ?? 1 : 0),
      topK: o.topK ?? (sample ? d.topK ?? 0 : 0),
      topP: o.topP ?? (sample ? d.topP ?? 1 : 1),
      minP: o.minP ?? (sample ? d.minP ?? 0 : 0),
      repetitionPenalty: o.repetitionPenalty ?? d.repetitionPenalty ?? 1,
      seed: o.seed ?? Math.floor(Math.random() * 0x100000000),
    });
  }

  /** Generates after `prompt` (text, or token ids): the whole result, or with `stream: true` text chunks as they come. */
  generate(prompt: string | readonly number[], opts: GenerateOptions & { stream: true }): StreamingGeneration;
  generate(prompt: string | readonly number[], opts?: GenerateOptions & { stream?: false }): Promise<GenerationResult>;
  generate(prompt: string | readonly number[], opts: GenerateOptions & { stream?: boolean } = {}): StreamingGeneration | Promise<GenerationResult> {
    const holder: { resolve?: (r: GenerationResult) => void; reject?: (e: unknown) => void } = {};
    const result = new Promise<GenerationResult>((res, rej) => Object.assign(holder, { resolve: res, reject: rej }));
    result.catch(() => {}); // observed by whoever awaits it; a stream's errors reach its reader too
    const run = () => this.session(prompt, opts, holder);
    if (opts.stream) return { result, [Symbol.asyncIterator]: () => run()[Symbol.asyncIterator]() };
    return (async () => {
      for await (const _ of run()) {
        // drain
      }
      return result;
    })();
  }

  /** Generates after each prompt, decoding them together: see src/api/batch-generate.ts. */
  generateBatch(prompts: readonly (string | readonly number[])[], opts: GenerateOptions | readonly GenerateOptions[] = {}): Promise<GenerationResult[]> {
    this.check();
    return generateBatch(this, prompts, opts, {
      ids: (p, o) => (this.checkInput(p = this.promptIds(p, o.addSpecialTokens)), p as number[]),
      turn: { calls: this.calls, limits: this.limits, acquire: (s) => this.acquire(s), checkLive: () => this.checkLive() },
      decoder: (rows) => ({ dec: this.batch.get(this.decoder.cache.shared, rows), weights: this.decoder.weights }),
    });
  }

  /** What concurrent calls' groups need (src/api/concurrent-generate.ts). */
  private batchHost() {
    return {
      tokenizer: this.tokenizer,
      eosTokenIds: this.eosTokenIds,
      acquire: () => this.acquire(),
      checkLive: () => this.checkLive(),
      decoder: (rows: number) => ({ dec: this.batch.get(this.decoder.cache.shared, rows), weights: this.decoder.weights }),
    };
  }

  private async *session(prompt: string | readonly number[], o: GenerateOptions, result: { resolve?: (r: GenerationResult) => void; reject?: (e: unknown) => void }): AsyncGenerator<GenerationChunk> {
    try {
      this.check();
      const maxTokens = o.maxTokens ?? this.generationDefaults.maxNewTokens ?? DEFAULT_MAX_TOKENS;
      if (!Number.isSafeInteger(maxTokens) || maxTokens < 1) throw new WebqError('BAD_OPTION', `maxTokens must be a positive integer, got ${maxTokens}`);
      const stop = o.stop === undefined ? [] : typeof o.stop === 'string' ? [o.stop] : [...o.stop];
      if (stop.some((s) => typeof s !== 'string' || s.length === 0)) throw new WebqError('BAD_OPTION', `stop must be a non-empty string or a list of them, got ${JSON.stringify(o.stop)}`);
      const params = this.samplingFor(o);
      const k = o.speculative === undefined ? 0 : checkSpeculativeCall(o.speculative, params, { responseFormat: o.responseFormat != null, tools: o.constraint != null, logitBias: o.logitBias != null, logprobs: o.logprobs != null });
      const ids = this.promptIds(prompt, o.addSpecialTokens);
      this.checkInput(ids);
      const extras = await prepareExtras(this.constraints, this.config.vocabSize, this.eosTokenIds, o);
      try {
        const ms = callTimeout(o.timeoutMs, this.limits);
        const out = this.calls.enter(this.limits);
        const limit = deadline(ms, `${this.describe}: generate`, o.signal);
        try {
          limit.signal?.throwIfAborted();
          if (this.shared && k === 0 && batchable(o)) {
            // Context checks here: one call's bad prompt must not fail the batch it would join.
            if (ids.length === 0) throw new WebqError('EMPTY_PROMPT', 'the prompt has no tokens; give at least one');
            if (ids.length > this.contextLength) throw new WebqError('CONTEXT_FULL', `the prompt is ${ids.length} tokens, more than the context of ${this.contextLength}; shorten it or load the model with a larger contextLength`);
            const job = { ids, params, maxTokens: Math.min(maxTokens, this.contextLength - ids.length + 1), stop, ignoreEos: o.ignoreEos === true };
            result.resolve?.(yield* this.shared.run(job, limit.signal));
            return;
          }
          const release = await this.acquire(limit.signal);
          try {
            this.checkLive();
            const held = o.speculative ? await this.drafters.resolve(o.speculative, () => ({ decoder: this.decoder, weights: this.weights.current }), limit.signal) : null;
            try {
              result.resolve?.(yield* decodeTurn(this.decoder, this.tokenizer, this.eosTokenIds, ids, params, extras, { maxTokens, stop, ignoreEos: o.ignoreEos, readEvery: o.readEvery, signal: limit.signal, k, drafter: held?.drafter }));
            } finally {
              held?.release();
            }
          } finally {
            release();
          }
        } finally {
          out();
          limit.done();
        }
      } finally {
        extras.dispose();
      }
    } catch (e) {
      result.reject?.(e);
      throw e;
    }
  }

  /** Renders a conversation with the model's chat template (with the assistant's turn opened). */
  renderChat(messages: readonly ChatMessage[], extra?: Record<string, unknown>): string {
    return requireChatTemplate(this.chatTemplate, this.describe).render(messages, { addGenerationPrompt: true, extra });
  }

  /**
   * Moves the loaded model to the version `delta` makes (a `webq diff` output: a Delta, its path
   * or URL, a Blob or its bytes) without reloading it. The delta is checked against the model's
   * version and every unit hash, and only the weights of groups that touch a changed unit are read
   * and uploaded (while calls run); the swap then waits its turn in the queue of calls, so a
   * generation started before finishes on the old version and one started after runs on the new.
   * The cached prompt prefix is dropped (its keys and values came from the old weights). With
   * `check`, the next-token distributions over every position of check.texts are compared before
   * the swap, and past check.maxError (mean KL(old || new) per token) the update is dropped
   * (DeltaError 'DELTA_GUARD'). Any failure leaves the model as it was. Updates run one after another.
   */
  applyDelta(delta: DeltaInput, opts: ApplyDeltaOptions = {}): Promise<DeltaApplied> {
    return this.weights.apply(delta, opts, {
      check: () => this.checkLive(),
      guard: (texts) => {
        const ids = texts.map((t) => this.encode(t));
        return {
          what: 'the mean KL(old || new) per token over check.texts',
          measure: async (old, next) => {
            const [before, after] = [[], []] as Float32Array[][];
            for (const p of ids) {
              before.push(await this.decoder.logitsAt(p, old));
              after.push(await this.decoder.logitsAt(p, next));
            }
            return decoderError(before, after, this.config.vocabSize).kl!;
          },
        };
      },
      exclusive: async (swap) => {
        const release = await this.acquire();
        try {
          return await swap();
        } finally {
          release();
        }
      },
      swap: (next) => this.decoder.setWeights(next),
    });
  }

  /**
   * Brings the model back after its GPU device was lost (the calls running then rejected with a
   * GPUDeviceError): a new device for the context (shared with other models or not), then the
   * weights uploaded again from where they came from, at the version the model is at (see
   * src/api/recovery.ts), and an empty KV cache; the next call prefills its whole prompt again,
   * so a chat goes on from its messages. Waits for the calls before it; calls after it wait for
   * it. Resolves to false when there was nothing to do (the device works and the model is on it).
   * A failed recovery can be tried again.
   */
  async recover(): Promise<boolean> {
    this.check();
    const release = await this.acquire();
    try {
      this.check();
      const replaced = await this.ctx.recover();
      if (!this.weights.stale) return replaced;
      const built = await this.weights.reload((w) => new Decoder(this.ctx, this.config, w, kvCacheFor(this.ctx, this.config, this.decoder.cache.shape.cap, this.decoder.cache.shape.dtype)));
      // What the old decoder holds is on the dead device; destroying it frees the host side.
      this.batch.dispose();
      this.decoder.dispose();
      this.decoder = built;
      return true;
    } finally {
      release();
    }
  }

  /** Frees the weights and the cache, and the device if the model made it. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.stopWatching();
    this.drafters.dispose();
    this.batch.dispose();
    this.decoder.dispose();
    this.constraints.dispose();
    this.weights.dispose();
    if (this.ownsContext) this.ctx.dispose();
  }
}


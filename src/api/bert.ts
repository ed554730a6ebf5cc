/**
 * BertModel: load a BERT-family encoder (MiniLM, bge, e5, sentence-transformers, classifiers)
 * from a folder, a folder URL or a hub id, then embed or classify texts. Each call tokenizes the
 * batch (padding to its longest text, truncating at maxLength), records one forward pass into one
 * command encoder, and reads back only the pooled vectors or the logits.
 *
 * Texts are numbered from 1 in messages ("text 3" is the third), as `webq embed` numbers its output.
 */
import { Embeddings } from './embeddings.ts';
import type { ApplyDeltaOptions, DeltaApplied, DeltaInput } from '../delta/loaded-update.ts';
import { WebqError } from '../errors.ts';
import { encoderError } from '../quant/guard.ts';
import { GpuContext } from '../gpu/context.ts';
import { openModelFiles } from '../io/hub/hub.ts';
import { loadHolding } from '../io/hub/cache-lock.ts';
import type { ModelFiles, OpenModelOptions } from '../io/hub/model-files.ts';
import type { TensorStore } from '../io/safetensors/reader.ts';
import { bertClassifierHead, bertForward, freeBertBatch, uploadBertBatch, uploadBertWeights, type BertBatch, type BertGpuWeights } from '../models/bert/bert.ts';
import { resolveBertWeights } from '../models/bert/bert-weights.ts';
import { checkBertBatch } from '../models/memory-estimate.ts';
import type { EmbeddingDType } from '../models/upload.ts';
import { parseBertConfig, type BertConfig } from '../models/config.ts';
import { pool } from '../ops/encoder-io.ts';
import type { Activations, LinearDType } from '../ops/linear.ts';
import { loadTokenizer, type TextTokenizer } from '../text/tokenizer.ts';
import { abortable, callTimeout, CallCounter, deadline, LimitError, resolveLimits, type CallLimits, type Limits } from './limits.ts';
import { checkLoadOptions, loadCheckpoint, LoadedWeights, type Upload } from './model-weights.ts';
import { staleError } from './recovery.ts';
import { checkRerank, checkTexts, noClassifier, type Reranked } from './bert-inputs.ts';
import { checkDimensions, truncateEmbedding } from './matryoshka.ts';
import { sentenceTransformersConfig, type SentenceTransformersConfig } from './sentence-transformers.ts';
import { checkTokenClassify, groupTokens, tokenLogits, type TokenClassification, type TokenClassifyOptions } from './token-classification.ts';

export const DEFAULT_EMBED_MODEL = 'sentence-transformers/all-MiniLM-L6-v2';

export interface BertLoadOptions extends Pick<OpenModelOptions, 'revision' | 'onProgress' | 'cache' | 'hubUrl' | 'cacheDir' | 'fetch' | 'headers' | 'offline' | 'refresh' | 'recheckMs' | 'timeoutMs'> {
  /** Linear-layer weights: f32, f16, q8 (default), q4, w8a8, w4a8; a pre-quantized checkpoint's own by default. */
  dtype?: LinearDType;
  /**
   * What q8/q4 Linears do with their input: 'int8' (the default) quantizes it per block of 32 for
   * dot4I8Packed kernels, 1.2-1.8x faster than weight-only for an encoder on lavapipe at a cosine
   * cost under 1e-3 (BERT_ACTIVATIONS, README "Activations"); 'float' keeps it f16/f32
   * (weight-only kernels, what GPTQ, AWQ and compressed-tensors compute: their default). w8a8/w4a8
   * are int8 and f32/f16 float ('BAD_OPTION' otherwise).
   */
  activations?: Activations;
  /** Quantization group along K (32, 64, 128 or 'channel'); default per dtype (src/models/prepare-linear.ts). */
  group?: number | 'channel';
  /** Symmetric or asymmetric (zero points) integer weights; default the dtype's (q4: symmetric groups of 64, bertQuantDefaults). */
  symmetric?: boolean;
  /**
   * The word-embedding table of a float checkpoint: int8 (default under quantized dtypes, one
   * scale per row), int4, f16 or f32 (default for f32/f16). A pre-quantized checkpoint's is as
   * stored (`webq quantize --embeddings`); asking for another is an error.
   */
  embeddings?: EmbeddingDType;
  /** Share a device; otherwise the model makes its own and dispose() destroys it. */
  context?: GpuContext;
  /** Allow shader-f16 when the model makes its own device (default true). */
  f16?: boolean;
  /** Kernel family when the model makes its own device (see Capabilities.kernels); default by adapter. */
  kernels?: 'gpu' | 'cpu';
  /**
   * After a device loss, call recover() by itself: the calls running then reject with a
   * GPUDeviceError, the next ones wait for the model to be on a new device (default false).
   */
  autoRecover?: boolean;
  /** maxBatch (texts per call), maxInputTokens (texts x longest row), maxQueue, a default timeoutMs: see src/api/limits.ts. */
  limits?: CallLimits;
}

export interface EmbedOptions {
  pooling?: 'mean' | 'cls';
  normalize?: boolean;
  /** Matryoshka: keep the first D values of each vector, normalized again when normalize is on (src/api/matryoshka.ts). */
  dimensions?: number;
}

export interface TextOptions {
  /**
   * A text longer than the model's maxLength tokens is cut to fit (default true, keeping the final
   * [SEP], as sentence-transformers does); false makes it a TokenizerError 'TOKENIZER_TOO_LONG'
   * naming the text, its length and the limit.
   */
  truncate?: boolean;
  /** Reject with a LimitError 'TIMEOUT' after this many ms (default limits.timeoutMs); the GPU work already submitted still ends. */
  timeoutMs?: number;
}

export interface Classification {
  label: string;
  score: number;
  scores: { label: string; score: number }[];
  /** The text was longer than the model's maxLength tokens: only its beginning was classified. */
  truncated: boolean;
}

export interface EmbedResult {
  /** One vector per text, in order: what embed() returns. */
  vectors: Float32Array[];
  /** Per text: it was longer than the model's maxLength tokens, so only its beginning was embedded. */
  truncated: boolean[];
}

export class BertModel {
  readonly config: BertConfig;
  readonly dtype: LinearDType;
  /** Where the model came from, for messages. */
  readonly describe: string;
  readonly ctx: GpuContext;
  private readonly tokenizer: TextTokenizer;
  /** The weight versions, the model's version and how to upload it again (src/api/model-weights.ts). */
  private readonly weights: LoadedWeights<BertGpuWeights>;
  private recovering: Promise<boolean> | null = null;
  private readonly limits: Limits;
  private readonly calls: CallCounter;
  private readonly stopWatching: () => void;
  private readonly ownsContext: boolean;
  /** From a sentence-transformers export (1_Pooling/config.json, modules.json), else mean / none. */
  readonly pooling: Required<Pick<EmbedOptions, 'pooling' | 'normalize'>>;
  /**
   * Longest input in tokens, special tokens included, as sentence-transformers takes it:
   * sentence_bert_config.json max_seq_length when the model has one (256 for all-MiniLM-L6-v2),
   * else tokenizer_config.json model_max_length, never more than max_position_embeddings.
   */
  readonly maxLength: number;
  /** sentence_bert_config.json do_lower_case: texts are lowercased before tokenizing. */
  readonly lowerCase: boolean;
  /** OpenAI's embeddings.create over embed(). */
  readonly embeddings: Embeddings;
  private disposed = false;

  private constructor(args: {
    config: BertConfig; dtype: LinearDType; describe: string; ctx: GpuContext; tokenizer: TextTokenizer; weights: LoadedWeights<BertGpuWeights>; ownsContext: boolean; st: SentenceTransformersConfig;
    autoRecover: boolean; limits: Limits;
  }) {
    this.config = args.config;
    this.dtype = args.dtype;
    this.describe = args.describe;
    this.ctx = args.ctx;
    this.tokenizer = args.tokenizer;
    this.weights = args.weights;
    this.ownsContext = args.ownsContext;
    this.limits = args.limits;
    this.calls = new CallCounter(args.describe);
    this.stopWatching = args.autoRecover ? args.ctx.onFailure(() => void this.recover().catch(() => undefined)) : () => undefined;
    this.pooling = args.st.pooling;
    this.maxLength = Math.min(args.config.maxTokens, args.st.maxSeqLength ?? args.tokenizer.modelMaxLength ?? Infinity);
    this.lowerCase = args.st.lowerCase;
    const count = (t: string) => this.tokenizer.encode(this.lowerCase ? t.toLowerCase() : t, { maxLength: this.maxLength, truncation: true }).ids.length;
    this.embeddings = new Embeddings(this, count);
  }

  static async load(location: string, opts: BertLoadOptions = {}): Promise<BertModel> {
    checkLoadOptions(opts);
    const limits = resolveLimits(opts.limits);
    const files = await openModelFiles(location, opts);
    return loadHolding(files, () => BertModel.loadFrom(files, opts, limits));
  }

  /** The rest of load(), holding a cached model's lock (src/io/hub/cache-lock.ts): it reads one version of the files. */
  private static async loadFrom(files: ModelFiles, opts: BertLoadOptions, limits: Limits): Promise<BertModel> {
    const config = parseBertConfig(await files.readJson('config.json'), `${files.describe}/config.json`);
    const tokenizer = await loadTokenizer(files, { name: files.describe, padTokenId: config.padTokenId });
    const st = await sentenceTransformersConfig(files);
    const arch = { fallback: 'q8' as const, quantizationConfig: config.quantizationConfig, check: (s: TensorStore) => void resolveBertWeights(s, config) };
    return loadCheckpoint(files, opts, arch, async ({ store, ctx, dtype, prequant, version, uploadOptions, hold }) => {
      const upload: Upload<BertGpuWeights> = (s, prequant, reuse) => uploadBertWeights(ctx, s, config, resolveBertWeights(s, config), dtype, { ...uploadOptions, prequant, reuse });
      const weights = new LoadedWeights(ctx, { describe: files.describe, files, dtype }, upload, hold(await upload(store, prequant)), version);
      return new BertModel({ config, dtype, describe: files.describe, ctx, tokenizer, weights, ownsContext: !opts.context, st, autoRecover: opts.autoRecover === true, limits });
    });
  }

  /** Weight bytes on the GPU (quantized codes, scales and zero points included). */
  get weightBytes(): number {
    return this.weights.current.bytes;
  }

  /** What the quantized Linears do with their input (BertLoadOptions.activations, as resolved). */
  get activations(): Activations {
    return this.weights.current.activations;
  }

  /** The model's version (`webq quantize` records it; applyDelta moves it), or null for a file without one. */
  get version(): string | null {
    return this.weights.version?.version ?? null;
  }

  /**
   * Tokenizes and uploads a batch; ids are checked against the vocabulary here, not on the GPU. An
   * empty or whitespace-only text is refused (EMPTY_TEXT): it has no word to embed, and a vector of
   * [CLS] [SEP] alone would sit in a search index as if it meant something.
   */
  private batch(texts: string[], opts: TextOptions, method: string, pairs?: string[]): BertBatch & { truncated: boolean[] } {
    checkTexts(texts, method);
    if (texts.length > this.limits.maxBatch) throw new LimitError('BATCH_TOO_LARGE', `${method}(): ${texts.length} texts, more than limits.maxBatch (${this.limits.maxBatch}); split them into smaller calls`);
    const lower = (a: string[]) => (this.lowerCase ? a.map((t) => t.toLowerCase()) : a);
    const enc = this.tokenizer.encodeBatch(lower(texts), { maxLength: this.maxLength, truncation: opts.truncate ?? true, pairs: pairs && lower(pairs) });
    const empty = enc.lengths.findIndex((n) => n <= this.tokenizer.specialTokenCount(pairs !== undefined));
    if (empty >= 0) {
      const what = texts[empty].trim() === '' ? 'is empty or only whitespace' : 'has no tokens (only characters the tokenizer drops)';
      throw new WebqError('EMPTY_TEXT', `text ${empty + 1} of ${texts.length} ${what}: there is nothing in it to ${method === 'classify' ? 'classify' : 'embed'}; leave it out`);
    }
    const n = enc.batch * enc.seqLen;
    checkBertBatch(this.config, this.dtype, this.ctx.caps.f16, n, this.ctx.caps, `${method}()`);
    if (n > this.limits.maxInputTokens) throw new LimitError('INPUT_TOO_LONG', `${method}(): ${enc.batch} texts padded to ${enc.seqLen} tokens are ${n} tokens, more than limits.maxInputTokens (${this.limits.maxInputTokens}); send fewer or shorter texts`);
    for (let i = 0; i < n; i++) {
      if (enc.ids[i] < 0 || enc.ids[i] >= this.config.vocabSize) {
        throw new WebqError('TOKEN_OUT_OF_RANGE', `${this.describe}: token id ${enc.ids[i]} is outside the model's vocabulary of ${this.config.vocabSize}: tokenizer.json and config.json disagree`);
      }
    }
    return { ...uploadBertBatch(this.ctx, this.config, enc), truncated: enc.truncated };
  }

  /** The last hidden state [B, T, H] with the batch's shape (for tests and custom pooling). */
  hidden(texts: string[], opts: TextOptions = {}): Promise<{ data: Float32Array; batch: number; seqLen: number; hidden: number; mask: Uint32Array }> {
    return this.call(opts, 'hidden', async (weights) => {
      const b = this.batch(texts, opts, 'hidden');
      try {
        const rec = this.ctx.record({ label: 'bert:hidden' });
        const h = bertForward(this.ctx, rec, weights, this.config, b);
        await rec.submit();
        const data = await this.ctx.readFloat(h);
        h.dispose();
        return { data, batch: b.B, seqLen: b.T, hidden: this.config.hiddenSize, mask: (await this.ctx.read(b.mask)) as Uint32Array };
      } finally {
        freeBertBatch(b);
      }
    });
  }

  /**
   * Runs one call on the current weights (held until it ends: an update between its start and its
   * end does not touch them, src/delta/loaded-versions.ts), within the caller's limits, after a
   * recovery in progress.
   */
  private call<T>(opts: TextOptions, method: string, fn: (weights: BertGpuWeights) => Promise<T>): Promise<T> {
    try {
      this.check();
      const ms = callTimeout(opts.timeoutMs, this.limits);
      const out = this.calls.enter(this.limits);
      const work = (async () => {
        await this.recovering?.catch(() => undefined);
        this.check();
        if (this.weights.stale) throw staleError(this.describe);
        const held = this.weights.versions.use();
        try {
          return await fn(held.weights);
        } finally {
          held.release();
        }
      })().finally(out);
      const limit = deadline(ms, `${this.describe}: ${method}`);
      return abortable(work, limit.signal).finally(limit.done);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  private check(): void {
    if (this.disposed) throw new WebqError('DISPOSED', `${this.describe}: this model was disposed`);
  }

  /**
   * One vector per text, in order: mean pooling over real tokens or [CLS], normalized or not; the
   * defaults are the model's own when it is a sentence-transformers export, else mean, unnormalized.
   * A text longer than maxLength tokens is cut silently, as sentence-transformers does:
   * embedWithInfo() says which were. `texts` is an array even for one text; an empty or
   * whitespace-only text is a WebqError 'EMPTY_TEXT' naming it.
   */
  async embed(texts: string[], opts: EmbedOptions & TextOptions = {}): Promise<Float32Array[]> {
    return (await this.run(texts, opts, 'embed')).vectors;
  }

  /** embed(), and which texts were longer than maxLength tokens and cut to fit (to warn about them). */
  embedWithInfo(texts: string[], opts: EmbedOptions & TextOptions = {}): Promise<EmbedResult> {
    return this.run(texts, opts, 'embedWithInfo');
  }

  private run(texts: string[], opts: EmbedOptions & TextOptions, method: string): Promise<EmbedResult> {
    return this.call(opts, method, (weights) => this.pooled(weights, texts, opts, method));
  }

  private async pooled(weights: BertGpuWeights, texts: string[], opts: EmbedOptions & TextOptions, method: string): Promise<EmbedResult> {
    const mode = opts.pooling ?? this.pooling.pooling;
    if (mode !== 'mean' && mode !== 'cls') throw new WebqError('BAD_OPTION', `pooling must be 'mean' or 'cls', got '${mode}'`);
    const [H, normalize] = [this.config.hiddenSize, opts.normalize ?? this.pooling.normalize];
    const D = checkDimensions(opts.dimensions, H, `${method}()`) ?? H;
    const b = this.batch(texts, opts, method);
    try {
      const rec = this.ctx.record({ label: 'bert:embed' });
      const h = bertForward(this.ctx, rec, weights, this.config, b);
      const pooled = pool(this.ctx, rec, h, b.mask, b.B, { mode, normalize });
      h.dispose();
      await rec.submit();
      const flat = await this.ctx.readFloat(pooled);
      pooled.dispose();
      return { vectors: Array.from({ length: b.B }, (_, i) => truncateEmbedding(flat.subarray(i * H, (i + 1) * H), D, normalize && D < H)), truncated: b.truncated };
    } finally {
      freeBertBatch(b);
    }
  }

  /**
   * Labels and softmax scores; needs a *ForSequenceClassification checkpoint. Texts are taken
   * as by embed(); each result says whether its text was cut to maxLength tokens.
   */
  classify(texts: string[], opts: TextOptions = {}): Promise<Classification[]> {
    return this.call(opts, 'classify', (weights) => this.classifyWith(weights, texts, opts));
  }

  private async classifyWith(weights: BertGpuWeights, texts: string[], opts: TextOptions): Promise<Classification[]> {
    const { flat, B, truncated } = await this.logits(weights, texts, opts, 'classify');
    const L = this.config.numLabels;
    const name = (i: number) => this.config.id2label?.[i] ?? `LABEL_${i}`;
    return Array.from({ length: B }, (_, r) => {
      const row = flat.subarray(r * L, (r + 1) * L);
      const max = Math.max(...row);
      const exps = Array.from(row, (v) => Math.exp(v - max));
      const sum = exps.reduce((s, v) => s + v, 0);
      const scores = exps.map((v, i) => ({ label: name(i), score: v / sum })).sort((x, y) => y.score - x.score);
      return { label: scores[0].label, score: scores[0].score, scores, truncated: truncated[r] };
    });
  }

  /**
   * Labels each text's tokens with a *ForTokenClassification checkpoint (NER) as transformers'
   * token-classification pipeline does: per token, or grouped into entity spans (src/api/token-groups.ts).
   */
  tokenClassify(texts: string[], opts: TokenClassifyOptions & TextOptions = {}): Promise<TokenClassification[]> {
    return this.call(opts, 'tokenClassify', async (weights) => {
      const aggregation = checkTokenClassify(opts, this.config, this.describe);
      const b = this.batch(texts, opts, 'tokenClassify');
      const flat = await tokenLogits(this.ctx, weights, this.config, b).finally(() => freeBertBatch(b));
      const [L, tok] = [this.config.numLabels, this.tokenizer];
      const labels = Array.from({ length: L }, (_, i) => this.config.id2label?.[i] ?? `LABEL_${i}`);
      const o = { aggregation, labels, ignoreLabels: opts.ignoreLabels, unkTokenId: tok.unkTokenId, continuingSubwordPrefix: tok.continuingSubwordPrefix, decode: (ids: number[]) => tok.decode(ids, { skipSpecialTokens: true }) };
      return texts.map((t, r) => {
        const row = tok.encodeWithOffsets(t, { maxLength: this.maxLength, truncation: opts.truncate ?? true, lowerCase: this.lowerCase }, r);
        return groupTokens(t, row, flat.subarray(r * b.T * L, (r + 1) * b.T * L), o);
      });
    });
  }

  /** The classification head's logits [B, numLabels] of texts (and their pairs: sentence B). */
  private async logits(weights: BertGpuWeights, texts: string[], opts: TextOptions, method: string, pairs?: string[]): Promise<{ flat: Float32Array; B: number; truncated: boolean[] }> {
    this.needHead(weights);
    const b = this.batch(texts, opts, method, pairs);
    try {
      const rec = this.ctx.record({ label: `bert:${method}` });
      const h = bertForward(this.ctx, rec, weights, this.config, b);
      // ModernBERT's head may read the mean over real tokens (classifier_pooling); the others' read [CLS].
      const cls = pool(this.ctx, rec, h, b.mask, b.B, { mode: this.config.modern?.classifierPooling ?? 'cls', normalize: false });
      h.dispose();
      const logits = bertClassifierHead(this.ctx, rec, weights, this.config, cls);
      cls.dispose();
      await rec.submit();
      const flat = await this.ctx.readFloat(logits);
      logits.dispose();
      return { flat, B: b.B, truncated: b.truncated };
    } finally {
      freeBertBatch(b);
    }
  }

  private needHead(weights: BertGpuWeights): void {
    if (weights.modern ? !weights.modern.head : !weights.pooler || !weights.classifier) throw noClassifier(this.config, this.describe);
  }

  /**
   * Scores each document against `query` with a cross-encoder (a *ForSequenceClassification
   * checkpoint with one label, e.g. bge-reranker, ms-marco-MiniLM): the pair (query, doc) is
   * encoded as sentence A and B, and the score is sigmoid(logit), as sentence-transformers'
   * CrossEncoder.rank does. Results are sorted by score, highest first; `index` is the document's
   * position in `docs`.
   */
  rerank(query: string, docs: string[], opts: TextOptions = {}): Promise<Reranked[]> {
    return this.call(opts, 'rerank', async (weights) => {
      this.needHead(weights);
      checkRerank(query, docs, this.config.numLabels, this.describe);
      const { flat } = await this.logits(weights, docs.map(() => query), opts, 'rerank', docs);
      return Array.from(flat, (v, index) => ({ index, score: 1 / (1 + Math.exp(-v)) })).sort((a, b) => b.score - a.score || a.index - b.index);
    });
  }

  /**
   * Moves the loaded model to the version `delta` makes (a `webq diff` output: a Delta, its path
   * or URL, a Blob or its bytes) without reloading it. The delta is checked against the model's
   * version and against every unit hash; only the weights of groups that touch a changed unit are
   * read and uploaded; the new weights replace the old ones between two calls: a call started
   * before returns the old version's result, one started after the new one's. With `check`, the
   * old and new embeddings of check.texts are compared first, and past check.maxError (1 - cosine)
   * the update is dropped (DeltaError 'DELTA_GUARD'). Any failure leaves the model as it was.
   * Updates run one after another.
   */
  applyDelta(delta: DeltaInput, opts: ApplyDeltaOptions = {}): Promise<DeltaApplied> {
    return this.weights.apply(delta, opts, {
      check: () => {
        this.check();
        if (this.weights.stale) throw staleError(this.describe);
      },
      guard: (texts) => ({
        what: 'the largest 1 - cosine between embeddings of check.texts before and after',
        measure: async (old, next) => {
          const o = { truncate: true };
          const [a, b] = [await this.pooled(old, [...texts], o, 'applyDelta'), await this.pooled(next, [...texts], o, 'applyDelta')];
          return 1 - encoderError(a.vectors, b.vectors).cosine!.min;
        },
      }),
    });
  }

  /**
   * Brings the model back after its GPU device was lost (the calls running then rejected with a
   * GPUDeviceError): a new device for the context (shared with other models or not), then the
   * weights uploaded again from where they came from, at the version the model is at (see
   * src/api/recovery.ts). Calls made meanwhile wait for it. Resolves to false when there was
   * nothing to do. A failed recovery can be tried again.
   */
  recover(): Promise<boolean> {
    if (this.disposed) return Promise.reject(new WebqError('DISPOSED', `${this.describe}: this model was disposed`));
    return (this.recovering ??= (async () => {
      try {
        const replaced = await this.ctx.recover();
        if (!this.weights.stale) return replaced;
        await this.weights.reload();
        return true;
      } finally {
        this.recovering = null;
      }
    })());
  }

  /** Frees the weights (every version still held), and the device if the model made it. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.stopWatching();
    this.weights.dispose();
    if (this.ownsContext) this.ctx.dispose();
  }
}


/**
 * BertModel: load a BERT-family encoder (MiniLM, bge, e5, sentence-transformers, classifiers)
 * from a folder, a folder URL or a hub id, then embed or classify texts. Each call tokenizes the
 * batch (padding to its longest text, truncating at max_position_embeddings), records one forward
 * pass into one command encoder, and reads back only the pooled vectors or the logits.
 */
import { WebqError } from '../errors.ts';
import { GpuContext } from '../gpu/context.ts';
import { openModelFiles } from '../io/hub.ts';
import type { ModelFiles, OpenModelOptions } from '../io/model-files.ts';
import { bertClassifierHead, bertForward, uploadBertWeights, type BertBatch, type BertGpuWeights } from '../models/bert.ts';
import { resolveBertWeights } from '../models/bert-weights.ts';
import { EMBEDDING_DTYPES, type EmbeddingDType } from '../models/upload.ts';
import { parseBertConfig, type BertConfig } from '../models/config.ts';
import { pool } from '../ops/encoder-io.ts';
import { LINEAR_DTYPES, type LinearDType } from '../ops/linear.ts';
import { readPrequantInfo } from '../quant/prequantized.ts';
import { loadTokenizer, type TextTokenizer } from '../text/tokenizer.ts';

export const DEFAULT_EMBED_MODEL = 'sentence-transformers/all-MiniLM-L6-v2';

export interface BertLoadOptions extends Pick<OpenModelOptions, 'revision' | 'onProgress' | 'cache' | 'hubUrl' | 'cacheDir' | 'fetch' | 'headers' | 'offline' | 'refresh' | 'recheckMs' | 'timeoutMs'> {
  /** Linear-layer weights: f32, f16, q8 (default), q4, w8a8, w4a8; a pre-quantized checkpoint's own by default. */
  dtype?: LinearDType;
  /** Quantization group along K (32, 64, 128 or 'channel'); default per dtype (src/ops/linear.ts). */
  group?: number | 'channel';
  /** Symmetric (default) or asymmetric (zero points) integer weights. */
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
}

export interface EmbedOptions {
  pooling?: 'mean' | 'cls';
  normalize?: boolean;
}

export interface TextOptions {
  /**
   * A text longer than max_position_embeddings tokens is cut to fit (default true, keeping the
   * final [SEP]); false makes it a TokenizerError naming the text, its length and the limit.
   */
  truncate?: boolean;
}

export interface Classification {
  label: string;
  score: number;
  scores: { label: string; score: number }[];
}

/**
 * sentence-transformers exports say how they pool: 1_Pooling/config.json (pooling_mode_cls_token,
 * pooling_mode_mean_tokens) and a Normalize module in modules.json. Other pooling modes (max,
 * weighted mean) are not implemented: such a model gets a clear error rather than wrong vectors.
 */
async function sentenceTransformersPooling(files: ModelFiles): Promise<Required<EmbedOptions>> {
  const fallback: Required<EmbedOptions> = { pooling: 'mean', normalize: false };
  if (!(await files.exists('1_Pooling/config.json'))) return fallback;
  const cfg = (await files.readJson('1_Pooling/config.json')) as Record<string, unknown>;
  const modes = Object.keys(cfg).filter((k) => k.startsWith('pooling_mode_') && cfg[k] === true);
  if (modes.length !== 1 || !['pooling_mode_cls_token', 'pooling_mode_mean_tokens'].includes(modes[0])) {
    throw new WebqError('UNSUPPORTED_POOLING', `${files.describe}/1_Pooling/config.json enables ${modes.join(' + ') || 'no pooling mode'}; webq implements exactly one of pooling_mode_mean_tokens or pooling_mode_cls_token`);
  }
  let normalize = false;
  if (await files.exists('modules.json')) {
    const mods = await files.readJson('modules.json');
    normalize = Array.isArray(mods) && mods.some((m) => typeof (m as { type?: unknown }).type === 'string' && (m as { type: string }).type.endsWith('.Normalize'));
  }
  return { pooling: modes[0] === 'pooling_mode_cls_token' ? 'cls' : 'mean', normalize };
}

export class BertModel {
  readonly config: BertConfig;
  readonly dtype: LinearDType;
  /** Where the model came from, for messages. */
  readonly describe: string;
  readonly ctx: GpuContext;
  private readonly tokenizer: TextTokenizer;
  private readonly weights: BertGpuWeights;
  private readonly ownsContext: boolean;
  /** From a sentence-transformers export (1_Pooling/config.json, modules.json), else mean / none. */
  readonly pooling: Required<EmbedOptions>;
  private disposed = false;

  private constructor(args: { config: BertConfig; dtype: LinearDType; describe: string; ctx: GpuContext; tokenizer: TextTokenizer; weights: BertGpuWeights; ownsContext: boolean; pooling: Required<EmbedOptions> }) {
    this.pooling = args.pooling;
    this.config = args.config;
    this.dtype = args.dtype;
    this.describe = args.describe;
    this.ctx = args.ctx;
    this.tokenizer = args.tokenizer;
    this.weights = args.weights;
    this.ownsContext = args.ownsContext;
  }

  static async load(location: string, opts: BertLoadOptions = {}): Promise<BertModel> {
    if (opts.dtype !== undefined && !LINEAR_DTYPES.includes(opts.dtype)) throw new WebqError('UNKNOWN_DTYPE', `unknown dtype '${opts.dtype}': use one of ${LINEAR_DTYPES.join(', ')}`);
    if (opts.embeddings !== undefined && !EMBEDDING_DTYPES.includes(opts.embeddings)) throw new WebqError('BAD_OPTION', `unknown embeddings '${opts.embeddings}': use one of ${EMBEDDING_DTYPES.join(', ')}`);
    const files = await openModelFiles(location, opts);
    const config = parseBertConfig(await files.readJson('config.json'), `${files.describe}/config.json`);
    const tokenizer = await loadTokenizer(files, { name: files.describe, padTokenId: config.padTokenId });
    const pooling = await sentenceTransformersPooling(files);
    const store = await files.checkpoint();
    // A webq pre-quantized checkpoint fixes the dtype (its weights are already packed).
    const prequant = readPrequantInfo(store);
    const dtype = (opts.dtype ?? prequant?.dtype ?? 'q8') as LinearDType;
    if (prequant && dtype !== prequant.dtype) {
      await store.close?.();
      throw new WebqError('DTYPE_MISMATCH', `${files.describe}: is pre-quantized as ${prequant.dtype}; load it with dtype '${prequant.dtype}' (or quantize the float checkpoint to ${dtype})`);
    }
    const refs = resolveBertWeights(store, config);
    const ctx = opts.context ?? (await GpuContext.create({ f16: opts.f16, kernels: opts.kernels }));
    try {
      const weights = await uploadBertWeights(ctx, store, config, refs, dtype, { group: opts.group, symmetric: opts.symmetric, embeddings: opts.embeddings, prequant });
      return new BertModel({ config, dtype, describe: files.describe, ctx, tokenizer, weights, ownsContext: !opts.context, pooling });
    } catch (e) {
      if (!opts.context) ctx.dispose();
      throw e;
    } finally {
      await store.close?.();
    }
  }

  /** Weight bytes on the GPU (quantized codes, scales and zero points included). */
  get weightBytes(): number {
    return this.weights.bytes;
  }

  /** Tokenizes and uploads a batch; ids are checked against the vocabulary here, not on the GPU. */
  private batch(texts: string[], opts: TextOptions = {}): BertBatch {
    if (this.disposed) throw new WebqError('DISPOSED', `${this.describe}: this model was disposed`);
    if (!Array.isArray(texts) || texts.length === 0) throw new WebqError('EMPTY_BATCH', 'no texts to encode: pass at least one string');
    const enc = this.tokenizer.encodeBatch(texts, { maxLength: this.config.maxPositions, truncation: opts.truncate ?? true });
    const n = enc.batch * enc.seqLen;
    for (let i = 0; i < n; i++) {
      if (enc.ids[i] < 0 || enc.ids[i] >= this.config.vocabSize) {
        throw new WebqError('TOKEN_OUT_OF_RANGE', `${this.describe}: token id ${enc.ids[i]} is outside the model's vocabulary of ${this.config.vocabSize}: tokenizer.json and config.json disagree`);
      }
    }
    const u32 = (a: Int32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);
    return {
      ids: this.ctx.write(u32(enc.ids), [n], 'u32', 'input_ids'),
      types: this.ctx.write(u32(enc.tokenTypeIds), [n], 'u32', 'token_type_ids'),
      mask: this.ctx.write(u32(enc.attentionMask), [n], 'u32', 'attention_mask'),
      B: enc.batch,
      T: enc.seqLen,
    };
  }

  private static free(b: BertBatch): void {
    b.ids.dispose();
    b.types.dispose();
    b.mask.dispose();
  }

  /** The last hidden state [B, T, H] with the batch's shape (for tests and custom pooling). */
  async hidden(texts: string[], opts: TextOptions = {}): Promise<{ data: Float32Array; batch: number; seqLen: number; hidden: number; mask: Uint32Array }> {
    const b = this.batch(texts, opts);
    try {
      const rec = this.ctx.record({ label: 'bert:hidden' });
      const h = bertForward(this.ctx, rec, this.weights, this.config, b);
      await rec.submit();
      const data = await this.ctx.readFloat(h);
      h.dispose();
      return { data, batch: b.B, seqLen: b.T, hidden: this.config.hiddenSize, mask: (await this.ctx.read(b.mask)) as Uint32Array };
    } finally {
      BertModel.free(b);
    }
  }

  /**
   * One vector per text, in order: mean pooling over real tokens or [CLS], normalized or not; the
   * defaults are the model's own when it is a sentence-transformers export, else mean, unnormalized.
   */
  async embed(texts: string[], opts: EmbedOptions & TextOptions = {}): Promise<Float32Array[]> {
    const mode = opts.pooling ?? this.pooling.pooling;
    if (mode !== 'mean' && mode !== 'cls') throw new WebqError('BAD_OPTION', `pooling must be 'mean' or 'cls', got '${mode}'`);
    const b = this.batch(texts, opts);
    try {
      const rec = this.ctx.record({ label: 'bert:embed' });
      const h = bertForward(this.ctx, rec, this.weights, this.config, b);
      const pooled = pool(this.ctx, rec, h, b.mask, b.B, { mode, normalize: opts.normalize ?? this.pooling.normalize });
      h.dispose();
      await rec.submit();
      const flat = await this.ctx.readFloat(pooled);
      pooled.dispose();
      const H = this.config.hiddenSize;
      return Array.from({ length: b.B }, (_, i) => flat.slice(i * H, (i + 1) * H));
    } finally {
      BertModel.free(b);
    }
  }

  /** Labels and softmax scores; needs a BertForSequenceClassification checkpoint. */
  async classify(texts: string[], opts: TextOptions = {}): Promise<Classification[]> {
    if (!this.weights.pooler || !this.weights.classifier) {
      throw new WebqError('NO_CLASSIFIER', `${this.describe}: has no pooler/classifier weights (architectures: ${this.config.architectures.join(', ') || 'none'}); use a BertForSequenceClassification checkpoint`);
    }
    const b = this.batch(texts, opts);
    try {
      const rec = this.ctx.record({ label: 'bert:classify' });
      const h = bertForward(this.ctx, rec, this.weights, this.config, b);
      const cls = pool(this.ctx, rec, h, b.mask, b.B, { mode: 'cls', normalize: false });
      h.dispose();
      const logits = bertClassifierHead(this.ctx, rec, this.weights, cls);
      cls.dispose();
      await rec.submit();
      const flat = await this.ctx.readFloat(logits);
      logits.dispose();
      const L = this.config.numLabels;
      const name = (i: number) => this.config.id2label?.[i] ?? `LABEL_${i}`;
      return Array.from({ length: b.B }, (_, r) => {
        const row = flat.subarray(r * L, (r + 1) * L);
        const max = Math.max(...row);
        const exps = Array.from(row, (v) => Math.exp(v - max));
        const sum = exps.reduce((s, v) => s + v, 0);
        const scores = exps.map((v, i) => ({ label: name(i), score: v / sum })).sort((x, y) => y.score - x.score);
        return { label: scores[0].label, score: scores[0].score, scores };
      });
    } finally {
      BertModel.free(b);
    }
  }

  /** Frees the weights, and the device if the model made it. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.weights.dispose();
    if (this.ownsContext) this.ctx.dispose();
  }
}

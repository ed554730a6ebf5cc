/**
 * evaluate(): how far a quantized model is from its float original on a text, the numbers to read
 * before shipping it (`webq eval`; llama.cpp's `llama-perplexity --kl-divergence` for webq's
 * formats). Both models run on the GPU; only logits or embeddings come back.
 *
 *   decoders  the text is one token stream, cut into chunks of `contextLength` tokens (each after
 *             the tokenizer's own prefix, e.g. BOS). At every position both models' next-token
 *             distributions are compared: KL(float || quantized) per token (mean, 99th percentile,
 *             largest), top-1 agreement, and each model's perplexity on the tokens that came next
 *   encoders  each non-empty line is one text: cosine of the float and quantized embeddings
 *             (the model's pooling), mean and minimum
 *
 * The quantized model is the float checkpoint loaded with `dtype` (quantized at load), or a folder
 * made by `webq quantize` (or another tool's checkpoint) given as `quantized`.
 */
import { WebqError } from '../errors.ts';
import { GpuContext } from '../gpu/context.ts';
import { openModelFiles } from '../io/hub/hub.ts';
import type { OpenModelOptions } from '../io/hub/model-files.ts';
import { archOf } from '../models/archs.ts';
import { parseModelConfig } from '../models/config.ts';
import type { KvDType } from '../ops/kv-cache.ts';
import { LINEAR_DTYPES, type LinearDType } from '../ops/linear.ts';
import { compareLogits, encoderError, quantile } from '../quant/guard.ts';
import { BertModel } from './bert.ts';
import { LlmModel } from './llm.ts';

/** Decoders: positions per chunk unless told (llama-perplexity's default), at most the model's. */
export const EVAL_CONTEXT = 512;
/** Logits read back at once, at most (floats): a large vocabulary goes in pieces of positions. */
const LOGITS_PER_READ = 1 << 22;
const BERT_BATCH = 16;

export interface EvaluateOptions extends Pick<OpenModelOptions, 'revision' | 'cache' | 'hubUrl' | 'cacheDir' | 'fetch' | 'headers' | 'offline' | 'refresh' | 'recheckMs' | 'timeoutMs'> {
  /** The evaluation text: one token stream for decoders, one text per non-empty line for encoders. */
  text: string;
  /** Quantize the float model at load with this dtype (default q4), ... */
  dtype?: LinearDType;
  /** ... or compare with this quantized model (a folder, folder URL or hub id). */
  quantized?: string;
  /** Decoders: the quantized model's KV cache (default as LlmModel.load). The float model's is f32. */
  kv?: KvDType;
  /** Decoders: tokens per chunk, the tokenizer's prefix included (default 512, at most max_position_embeddings). */
  contextLength?: number;
  /** Decoders: stop after this many chunks (default: the whole text). */
  maxChunks?: number;
  /** Share a device; otherwise one is made and destroyed. */
  context?: GpuContext;
  /** Chunks (decoders) or batches of lines (encoders) done, of the total. */
  onProgress?: (done: number, total: number) => void;
}

export interface EvaluateResult {
  kind: 'decoder' | 'encoder';
  /** The float model and what it was compared with (a dtype quantized at load, or a folder). */
  model: string;
  quantized: { source: string; dtype: LinearDType; kv?: KvDType };
  /** Decoders: positions compared (every one with a next token), chunks and their length. */
  tokens?: number;
  chunks?: number;
  contextLength?: number;
  /** Decoders: perplexity of each model on the text, and quantized - float. */
  perplexity?: { float: number; quantized: number; delta: number };
  /** Decoders: KL(float || quantized) per token, nats. */
  kl?: { mean: number; p99: number; max: number };
  /** Decoders: fraction of positions whose likeliest next token is the same. */
  top1?: number;
  /** Encoders: texts (lines) compared and the cosine of their embeddings. */
  texts?: number;
  cosine?: { mean: number; min: number };
}

export async function evaluate(model: string, opts: EvaluateOptions): Promise<EvaluateResult> {
  if (typeof opts.text !== 'string' || !opts.text.trim()) throw new WebqError('BAD_OPTION', 'evaluate: the evaluation text is empty');
  if (opts.dtype !== undefined && opts.quantized !== undefined) throw new WebqError('BAD_OPTION', 'evaluate: give a dtype (quantize at load) or a quantized model, not both');
  if (opts.dtype !== undefined && (!LINEAR_DTYPES.includes(opts.dtype) || opts.dtype === 'f32')) throw new WebqError('UNKNOWN_DTYPE', `evaluate: dtype must be one of ${LINEAR_DTYPES.filter((d) => d !== 'f32').join(', ')}, got ${JSON.stringify(opts.dtype)}`);
  for (const [k, v, min] of [['contextLength', opts.contextLength, 2], ['maxChunks', opts.maxChunks, 1]] as const) {
    if (v !== undefined && !(Number.isSafeInteger(v) && v >= min)) throw new WebqError('BAD_OPTION', `evaluate: ${k} must be an integer of at least ${min}, got ${v}`);
  }
  const { text: _t, dtype: _d, quantized: _q, kv: _k, contextLength: _c, maxChunks: _m, context: _x, onProgress: _p, ...hub } = opts;
  const files = await openModelFiles(model, hub);
  const config = parseModelConfig(await files.readJson('config.json'), `${files.describe}/config.json`);
  const ctx = opts.context ?? (await GpuContext.create());
  try {
    // The forward (registry.ts) picks the API class the comparison loads: BertModel or LlmModel.
    return archOf(config).forward === 'encoder' ? await evaluateEncoder(model, ctx, hub, opts) : await evaluateDecoder(model, ctx, hub, opts, config.maxPositions);
  } finally {
    if (!opts.context) ctx.dispose();
  }
}

/** The float model, with a clear error when it is not one. */
async function loadFloat<T>(model: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (e) {
    if (e instanceof WebqError && e.code === 'DTYPE_MISMATCH') throw new WebqError('BAD_OPTION', `evaluate: ${model} is pre-quantized; give the float checkpoint as the model and the quantized one as quantized (--quantized)`, { cause: e });
    throw e;
  }
}

type Hub = Omit<EvaluateOptions, 'text' | 'dtype' | 'quantized' | 'kv' | 'contextLength' | 'maxChunks' | 'context' | 'onProgress'>;

async function evaluateDecoder(model: string, ctx: GpuContext, hub: Hub, opts: EvaluateOptions, maxPositions: number): Promise<EvaluateResult> {
  const T = Math.min(opts.contextLength ?? EVAL_CONTEXT, maxPositions);
  if (opts.contextLength !== undefined && opts.contextLength > maxPositions) throw new WebqError('BAD_OPTION', `evaluate: contextLength ${opts.contextLength} is more than the model's max_position_embeddings (${maxPositions})`);
  const float = await loadFloat(model, () => LlmModel.load(model, { ...hub, dtype: 'f32', kv: 'f32', contextLength: T, context: ctx }));
  let quant: LlmModel | null = null;
  try {
    quant = await LlmModel.load(opts.quantized ?? model, { ...hub, dtype: opts.quantized ? undefined : (opts.dtype ?? 'q4'), kv: opts.kv, contextLength: T, context: ctx });
    const V = float.config.vocabSize;
    if (quant.config.vocabSize !== V) throw new WebqError('MODEL_MISMATCH', `evaluate: ${quant.describe} has a vocabulary of ${quant.config.vocabSize}, ${float.describe} of ${V}: not the same model`);
    const prefix = float.tokenizer.encode('', { addSpecialTokens: true }).ids;
    const stream = float.tokenizer.encode(opts.text, { addSpecialTokens: false, maxLength: Infinity }).ids;
    const step = T - prefix.length;
    if (step < 1) throw new WebqError('BAD_OPTION', `evaluate: contextLength ${T} leaves no room after the tokenizer's ${prefix.length} prefix tokens`);
    const chunks = Math.min(Math.ceil(stream.length / step), opts.maxChunks ?? Infinity);
    const kls: Float64Array[] = [];
    let [agree, nllF, nllQ, scored] = [0, 0, 0, 0];
    const piece = Math.max(1, Math.floor(LOGITS_PER_READ / V));
    for (let c = 0; c < chunks; c++) {
      opts.onProgress?.(c, chunks);
      const ids = [...prefix, ...stream.slice(c * step, (c + 1) * step)];
      if (ids.length < 2) continue;
      // Positions 0..n-2 predict ids 1..n-1 (the last position has nothing to score).
      for (let a = 0; a < ids.length - 1; a += piece) {
        const b = Math.min(a + piece, ids.length - 1);
        const part = ids.slice(0, b);
        const lf = await float.logitsAll(part, { from: a });
        const lq = await quant.logitsAll(part, { from: a });
        const r = compareLogits(lf, lq, V, ids.slice(a + 1, b + 1));
        kls.push(r.kl);
        agree += r.agree;
        nllF += r.nllRef;
        nllQ += r.nllGot;
        scored += r.scored;
      }
    }
    opts.onProgress?.(chunks, chunks);
    if (!scored) throw new WebqError('BAD_OPTION', 'evaluate: the text has fewer than two tokens; nothing to score');
    const all = new Float64Array(scored);
    kls.reduce((o, k) => (all.set(k, o), o + k.length), 0);
    const mean = all.reduce((s, v) => s + v, 0) / scored;
    const [pf, pq] = [Math.exp(nllF / scored), Math.exp(nllQ / scored)];
    return {
      kind: 'decoder', model: float.describe, quantized: { source: opts.quantized ?? model, dtype: quant.dtype, kv: quant.kv },
      tokens: scored, chunks, contextLength: T,
      perplexity: { float: pf, quantized: pq, delta: pq - pf },
      kl: { mean, p99: quantile(all, 0.99), max: all.reduce((m, v) => Math.max(m, v), 0) },
      top1: agree / scored,
    };
  } finally {
    quant?.dispose();
    float.dispose();
  }
}

async function evaluateEncoder(model: string, ctx: GpuContext, hub: Hub, opts: EvaluateOptions): Promise<EvaluateResult> {
  if (opts.kv !== undefined || opts.contextLength !== undefined || opts.maxChunks !== undefined) throw new WebqError('BAD_OPTION', 'evaluate: kv, contextLength and maxChunks are for decoders; an encoder embeds each line');
  const lines = opts.text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length > 0);
  const float = await loadFloat(model, () => BertModel.load(model, { ...hub, dtype: 'f32', context: ctx }));
  let quant: BertModel | null = null;
  try {
    quant = await BertModel.load(opts.quantized ?? model, { ...hub, dtype: opts.quantized ? undefined : (opts.dtype ?? 'q4'), context: ctx });
    const ref: Float32Array[] = [];
    const got: Float32Array[] = [];
    const batches = Math.ceil(lines.length / BERT_BATCH);
    for (let b = 0; b < batches; b++) {
      opts.onProgress?.(b, batches);
      const texts = lines.slice(b * BERT_BATCH, (b + 1) * BERT_BATCH);
      ref.push(...(await float.embed(texts)));
      got.push(...(await quant.embed(texts)));
    }
    opts.onProgress?.(batches, batches);
    const e = encoderError(ref, got);
    return { kind: 'encoder', model: float.describe, quantized: { source: opts.quantized ?? model, dtype: quant.dtype }, texts: lines.length, cosine: e.cosine };
  } finally {
    quant?.dispose();
    float.dispose();
  }
}

/**
 * Running a model on calibration text for `webq quantize`: the float model (or a quantized file)
 * on the GPU, each text through the architecture's own forward, with a tap on every Linear unit's
 * input (units.ts) that adds the batch's rows to running totals on the GPU
 * (src/ops/calib-stats.ts). Outputs come back for error measurement: mean-pooled embeddings
 * (encoders) or every position's logits (decoders).
 *
 * A TransformedStore presents a checkpoint with per-channel scales applied on read (SmoothQuant
 * and AWQ: weight columns multiplied, norms and rows of the op before divided), so the same loader
 * builds the smoothed float model for a second calibration pass.
 */
import { WebqError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Recorder } from '../gpu/recorder.ts';
import type { Tensor } from '../gpu/tensor.ts';
import type { ReadAsResult, ReadTarget } from '../io/safetensors/convert.ts';
import type { TensorInfo } from '../io/safetensors/dtypes.ts';
import type { TensorStore } from '../io/safetensors/reader.ts';
import { accumulateInputStats, createInputStats, readInputStats, type InputStats, type InputStatsGpu } from '../ops/calib-stats.ts';
import { pool } from '../ops/encoder-io.ts';
import type { KvCache } from '../ops/kv-cache.ts';
import { kvCacheFor } from '../generate/kv.ts';
import type { LinearDType } from '../ops/linear.ts';
import type { PrequantInfo } from '../quant/prequantized.ts';
import type { TextTokenizer } from '../text/tokenizer.ts';
import { bertClassifierHead, bertForward, bertTokenHead, freeBertBatch, uploadBertBatch, uploadBertWeights, type BertGpuWeights } from '../models/bert.ts';
import { resolveBertWeights } from '../models/bert-weights.ts';
import type { ModelConfig } from '../models/config.ts';
import { bertUnits, llamaUnits, type LinearUnit } from './units.ts';
import { llamaForward, uploadLlamaWeights, type LlamaGpuWeights } from '../models/llama.ts';
import { resolveLlamaWeights } from '../models/llama-weights.ts';

/** Longest calibration text, in tokens (longer ones are cut). */
export const CALIB_MAX_TOKENS = 128;
const BERT_BATCH = 8;

/** A sample's rows for a tap: all of x, or those whose mask is set (padding in a batch). */
export type UnitTap = (rec: Recorder, unit: string, x: Tensor, mask?: { mask: Tensor; rows: number }) => void;

/** Token ids past the model's vocabulary mean tokenizer.json and config.json disagree. */
function checkIds(ids: ArrayLike<number>, vocab: number, what: string): void {
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] < 0 || ids[i] >= vocab) throw new WebqError('TOKEN_OUT_OF_RANGE', `${what}: token id ${ids[i]} is outside the model's vocabulary of ${vocab}: tokenizer.json and config.json disagree`);
  }
}

/** A calibration or evaluation sample: a text, or (decoders) token ids as the model reads them. */
export type CalibSample = string | readonly number[];

export interface ModelRunner {
  kind: 'encoder' | 'decoder';
  units: LinearUnit[];
  weights: BertGpuWeights | LlamaGpuWeights;
  /** Vocabulary size (decoders' logits rows). */
  vocab: number;
  /** Runs every sample; with `outputs`, returns one output per sample (see the top of this file). */
  run(texts: readonly CalibSample[], opts?: { tap?: UnitTap; outputs?: boolean }): Promise<Float32Array[]>;
  /** Token count of the samples as this model reads them. */
  tokens(texts: readonly CalibSample[]): number;
  dispose(): void;
}

/**
 * Loads `store` (float, or pre-quantized with `prequant`) for calibration runs; `activations`
 * overrides the quantized Linears' default (weight-only 'float' measures the weights alone).
 */
export async function openRunner(ctx: GpuContext, store: TensorStore, config: ModelConfig, tokenizer: TextTokenizer, dtype: LinearDType = 'f32', prequant: PrequantInfo | null = null, opts: { activations?: 'float' | 'int8' } = {}): Promise<ModelRunner> {
  if (config.modelType === 'bert') {
    const refs = resolveBertWeights(store, config);
    const w = await uploadBertWeights(ctx, store, config, refs, dtype, { prequant, activations: opts.activations });
    const maxLength = Math.min(config.maxTokens, CALIB_MAX_TOKENS);
    const encode = (texts: readonly CalibSample[]) => {
      if (texts.some((t) => typeof t !== 'string')) throw new WebqError('CALIBRATION', `${store.name}: an encoder calibrates on texts, not token ids`);
      return tokenizer.encodeBatch(texts as string[], { maxLength, truncation: true });
    };
    return {
      kind: 'encoder', units: bertUnits(refs), weights: w, vocab: config.vocabSize,
      tokens: (texts) => Array.from(encode(texts).lengths).reduce((s, n) => s + n, 0),
      async run(texts, opts = {}) {
        const out: Float32Array[] = [];
        for (let i = 0; i < texts.length; i += BERT_BATCH) {
          const enc = encode(texts.slice(i, i + BERT_BATCH));
          checkIds(enc.ids, config.vocabSize, store.name);
          const n = enc.batch * enc.seqLen;
          const b = uploadBertBatch(ctx, config, enc);
          const rows = Array.from(enc.lengths).reduce((s, v) => s + v, 0);
          const tap = opts.tap && ((rec: Recorder, unit: string, x: Tensor) => opts.tap!(rec, unit, x, x.size / x.shape[x.shape.length - 1] === n ? { mask: b.mask, rows } : undefined));
          const rec = ctx.record({ label: 'quantize:calibrate' });
          const h = bertForward(ctx, rec, w, config, b, tap);
          const pooled = pool(ctx, rec, h, b.mask, b.B, { mode: 'mean', normalize: false });
          if (w.pooler && w.classifier) {
            const cls = pool(ctx, rec, h, b.mask, b.B, { mode: 'cls', normalize: false });
            bertClassifierHead(ctx, rec, w, config, cls, tap).dispose();
            cls.dispose();
          } else if (w.classifier) bertTokenHead(ctx, rec, w, h, tap).dispose(); // a token classifier sees every token
          h.dispose();
          await rec.submit();
          if (opts.outputs) {
            const flat = await ctx.readFloat(pooled);
            const H = config.hiddenSize;
            for (let r = 0; r < b.B; r++) out.push(flat.slice(r * H, (r + 1) * H));
          }
          pooled.dispose();
          freeBertBatch(b);
        }
        return out;
      },
      dispose: () => w.dispose(),
    };
  }
  const refs = resolveLlamaWeights(store, config);
  const w = await uploadLlamaWeights(ctx, store, config, refs, dtype, { prequant, activations: opts.activations });
  const cap = Math.min(config.maxPositions, CALIB_MAX_TOKENS);
  let cache: KvCache;
  try {
    cache = kvCacheFor(ctx, config, cap, w.precision);
  } catch (e) {
    w.dispose();
    throw e;
  }
  const encode = (text: CalibSample) => (typeof text === 'string' ? tokenizer.encode(text, { maxLength: cap, truncation: true }).ids : text.slice(0, cap));
  return {
    kind: 'decoder', units: llamaUnits(refs, config), weights: w, vocab: config.vocabSize,
    tokens: (texts) => texts.reduce((s, t) => s + encode(t).length, 0),
    async run(texts, opts = {}) {
      const out: Float32Array[] = [];
      for (const text of texts) {
        const ids = encode(text);
        if (!ids.length) continue;
        checkIds(ids, config.vocabSize, store.name);
        cache.setPosition(ctx, 0);
        const idt = ctx.write(new Uint32Array(ids), [ids.length], 'u32');
        const rec = ctx.record({ label: 'quantize:calibrate' });
        const logits = llamaForward(ctx, rec, w, config, cache, { ids: idt, pos0: 0, lastOnly: false }, opts.tap && ((r, unit, x) => opts.tap!(r, unit, x)));
        await rec.submit();
        if (opts.outputs) out.push(await ctx.readFloat(logits));
        logits.dispose();
        idt.dispose();
      }
      return out;
    },
    dispose: () => (cache.dispose(), w.dispose()),
  };
}

/**
 * Collects every unit's input statistics over `texts`: pass 1 (no histogram ranges) gives absolute
 * maxima, means, sums and X^T X; a pass with `histRange` per unit gives the 2048-bin histograms.
 */
export async function collectStats(ctx: GpuContext, runner: ModelRunner, texts: readonly CalibSample[], opts: { gram: boolean; histRange?: ReadonlyMap<string, number>; units?: ReadonlySet<string> }): Promise<Map<string, InputStats>> {
  const gpu = new Map<string, InputStatsGpu>();
  try {
    for (const u of runner.units) {
      if (opts.units && !opts.units.has(u.id)) continue;
      gpu.set(u.id, createInputStats(ctx, u.K, { gram: opts.gram, histRange: opts.histRange?.get(u.id) }));
    }
    const tap: UnitTap = (rec, unit, x, m) => {
      const s = gpu.get(unit);
      if (s) accumulateInputStats(ctx, rec, x, s, m ? { mask: m.mask, maskRows: m.rows } : {});
    };
    await runner.run(texts, { tap });
    const out = new Map<string, InputStats>();
    for (const [id, s] of gpu) out.set(id, await readInputStats(ctx, s));
    return out;
  } finally {
    gpu.forEach((s) => s.dispose());
  }
}

/** Per-channel scales to apply on read: columns multiplied by `col`, rows (and 1-D tensors) divided by `row`. */
export interface ChannelScales {
  col?: Float32Array;
  row?: Float32Array;
}

/** A checkpoint seen through per-channel scales (f32 reads of the scaled tensors; others pass through). */
export class TransformedStore implements TensorStore {
  constructor(private readonly base: TensorStore, readonly scales: ReadonlyMap<string, ChannelScales>) {}
  get name() {
    return this.base.name;
  }
  get tensors(): readonly TensorInfo[] {
    return this.base.tensors;
  }
  get metadata() {
    return this.base.metadata;
  }
  get(name: string) {
    return this.base.get(name);
  }
  has(name: string) {
    return this.base.has(name);
  }
  readBytes(name: string): Promise<Uint8Array> {
    if (this.scales.has(name)) throw new WebqError('TRANSFORMED_READ', `${name}: a scaled tensor can only be read as f32`);
    return this.base.readBytes(name);
  }
  async readAs<T extends ReadTarget>(name: string, target: T): Promise<ReadAsResult[T]> {
    const sc = this.scales.get(name);
    if (!sc) return this.base.readAs(name, target);
    if (target !== 'f32') throw new WebqError('TRANSFORMED_READ', `${name}: a scaled tensor can only be read as f32`);
    const a = Float32Array.from((await this.base.readAs(name, 'f32')) as Float32Array);
    const shape = this.base.get(name)!.shape;
    const K = shape.length === 2 ? shape[1] : a.length;
    for (let i = 0; i < a.length; i++) {
      const r = Math.floor(i / K);
      if (sc.col) a[i] *= sc.col[i % K];
      if (sc.row) a[i] /= shape.length === 2 ? sc.row[r] : sc.row[i];
    }
    return a as ReadAsResult[T];
  }
  close(): Promise<void> {
    return this.base.close();
  }
}

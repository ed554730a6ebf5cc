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
import type { GpuContext } from '../gpu/context.ts';
import { WebqError } from '../errors.ts';
import type { ReadAsResult, ReadTarget } from '../io/safetensors/convert.ts';
import type { TensorInfo } from '../io/safetensors/dtypes.ts';
import type { TensorStore } from '../io/safetensors/reader.ts';
import { accumulateInputStats, createInputStats, readInputStats, type InputStats, type InputStatsGpu } from '../ops/calib-stats.ts';
import type { LinearDType } from '../ops/linear.ts';
import type { PrequantInfo } from '../quant/prequantized.ts';
import type { TextTokenizer } from '../text/tokenizer.ts';
import type { ModelArch } from '../models/arch.ts';
import { archOf } from '../models/archs.ts';
import type { ModelConfig } from '../models/config.ts';
import { openDecoderRunner } from './decoder-runner.ts';
import { openEncoderRunner } from './encoder-runner.ts';
import type { CalibSample, ModelRunner, UnitTap } from './runner.ts';

export { CALIB_MAX_TOKENS, type CalibSample, type ModelRunner, type UnitTap } from './runner.ts';

/**
 * Loads `store` (float, or pre-quantized with `prequant`) for calibration runs; `activations`
 * overrides the quantized Linears' default (weight-only 'float' measures the weights alone).
 */
export async function openRunner(ctx: GpuContext, store: TensorStore, config: ModelConfig, tokenizer: TextTokenizer, dtype: LinearDType = 'f32', prequant: PrequantInfo | null = null, opts: { activations?: 'float' | 'int8' } = {}): Promise<ModelRunner> {
  return RUNNERS[archOf(config).forward].open(ctx, store, config, tokenizer, dtype, prequant, opts);
}

/** Each forward's runner (by the registry entry's forward; method syntax: each takes its own config). */
const RUNNERS: { readonly [F in ModelArch['forward']]: { open(ctx: GpuContext, store: TensorStore, config: ModelConfig, tokenizer: TextTokenizer, dtype: LinearDType, prequant: PrequantInfo | null, opts: { activations?: 'float' | 'int8' }): Promise<ModelRunner> } } = {
  encoder: { open: openEncoderRunner },
  decoder: { open: openDecoderRunner },
};

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

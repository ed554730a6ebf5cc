/**
 * `webq quantize` when it needs the GPU: anything past plain round-to-nearest, or a measurement.
 *
 *   0. text        --calib, else (decoders) text the float model samples itself
 *                  (calibration-samples.ts), else (encoders) the built-in paragraph
 *   1. calibrate   the float model runs on the calibration text; every Linear unit's input gets
 *                  its per-channel max, mean |x|, mean x and X^T X (src/ops/calib-stats.ts)
 *   2. scales      --smooth ALPHA (SmoothQuant) or --method awq give per-channel scales, folded
 *                  into the op before each unit where the architecture allows (units.ts);
 *                  the checkpoint is read through them from here on (TransformedStore)
 *   3. static      w8a8-static: a second pass histograms each (scaled) input; minmax, percentile
 *                  or KL gives the fixed activation scale
 *   4. choose      mixed: each candidate layout of each unit is put alone into the float model on
 *                  the GPU and the model's output error measured; a knapsack picks within --budget
 *   5. quantize    per unit: rtn, gptq or awq; bias correction; the layer's error on calibration.
 *                  GPTQ quantizes every unit here, in order, each on statistics collected with the
 *                  earlier units quantized (sequential.ts)
 *   6. evaluate    the written file, loaded as every webq loader loads it, against the float model
 *                  on the evaluation text; past --max-error, each unit alone is measured to name
 *                  the costliest
 *
 * Units are quantized when the writer first asks for one of their tensors (tensors()), so only
 * one unit's float weights are held at a time. The statistics, X^T X included, are held for every
 * unit at once: K^2 floats per unit, fine for the models webq runs in a browser; a 7B model
 * would want one calibration pass per few layers (collectStats takes a unit filter for that).
 * GPTQ and AWQ run in TypeScript on the CPU: O(N K^2) per unit (AWQ: per alpha on its grid).
 */
import { GpuContext } from '../gpu/context.ts';
import { f32ArrayToF16 } from '../io/safetensors/half.ts';
import type { ModelFiles } from '../io/hub/model-files.ts';
import type { TensorStore } from '../io/safetensors/reader.ts';
import { SafetensorsFile } from '../io/safetensors/reader.ts';
import type { TensorToWrite } from '../io/safetensors/writer.ts';
import type { InputStats } from '../ops/calib-stats.ts';
import type { LinearDType, LinearWeight } from '../ops/linear.ts';
import { prepareQuantizedLinear, quantSpecFor, withStaticActivations } from '../models/prepare-linear.ts';
import { awqSearchScales } from '../quant/awq.ts';
import { modelError, type ModelError } from '../quant/guard.ts';
import { calibrationLines, checkCalibrationText, DEFAULT_CALIBRATION_TEXT, textCoverage, unknownShare } from './calibration-text.ts';
import { byteSizes, layoutFor, type QuantizedWeight, type QuantSpec } from '../quant/layout.ts';
import { chooseBits, type MixedCandidate } from '../quant/mixed.ts';
import { quantizedTensors, readPrequantInfo, readQuantized, sliceQuantized, specOf, stackQuantized, type LinearQuantMeta } from '../quant/prequantized.ts';
import { dequantizeWeight } from '../quant/rtn.ts';
import { columnAbsMax, smoothScales } from '../quant/smooth.ts';
import { staticActivationScale, type ActCalibration } from '../quant/static-act.ts';
import { loadTokenizer, type TextTokenizer } from '../text/tokenizer.ts';
import { WebqError } from '../errors.ts';
import { collectStats, openRunner, TransformedStore, type CalibSample, type ModelRunner } from './calibration.ts';
import { quantizeSequentially } from './sequential.ts';
import { archOf } from '../models/archs.ts';
import type { ModelConfig } from '../models/config.ts';
import { swapUnitWeight, tieChannels, type LinearUnit } from './units.ts';
import type { CalibratedSummary, CalibSource, LayerReport } from './options.ts';
import { biasCorrection, foldScales, noClipRowsOf, quantizeUnit, readUnit, relativeLayerError, unitGram, type QuantMethod } from './methods.ts';

/** Mixed precision measures each candidate on the first calibration texts, up to this many tokens. */
const SENSITIVITY_TOKENS = 512;

export interface CalibratedOptions {
  /** The Linears' spec (the file dtype's, with --group and symmetry applied). */
  spec: QuantSpec;
  fileDType: LinearDType;
  method: QuantMethod;
  mixedBudget?: number;
  /** Mixed: the one group for its 4- and 8-bit candidates (default: 4-bit at 32, 128 and channel; 8-bit per channel). */
  group?: number | 'channel';
  symmetric?: boolean;
  staticActs?: ActCalibration;
  smooth?: number;
  actOrder?: boolean;
  biasCorrection: boolean;
  calib?: readonly string[];
  eval?: readonly string[];
  /** Set: refused (CalibrationTextError) when the evaluation text is mostly unknown tokens. */
  maxError?: number;
  /** GPTQ: each unit calibrated with the earlier ones quantized (default true; sequential.ts). */
  sequential?: boolean;
  /** Without `calib`: decoders sample this many tokens themselves (calibration-samples.ts), seeded. */
  calibTokens?: number;
  calibSeed?: number;
  context?: GpuContext;
  onProgress?: (stage: string, done: number, total: number) => void;
}

export class CalibratedQuantization {
  private scales = new Map<string, Float32Array>();
  private alphas = new Map<string, number>();
  private stats = new Map<string, InputStats>();
  private actScales = new Map<string, number>();
  private chosen: Map<string, { all: MixedCandidate[]; pick: MixedCandidate; spec: QuantSpec | null }> | null = null;
  private view: TensorStore;
  /** Weight and bias names -> their unit; tensors read through the scales that no unit writes (norms). */
  private unitOf = new Map<string, LinearUnit>();
  private scaledSide = new Set<string>();
  /** Outputs of units quantized but not yet taken by the writer. */
  private pending = new Map<string, TensorToWrite[]>();
  private done = new Set<string>();
  private layers = new Map<string, LayerReport>();
  private scaledRunner: ModelRunner | null = null;
  private refEval: Float32Array[] | null = null;
  private constructor(
    private readonly ctx: GpuContext,
    private readonly ownsCtx: boolean,
    private readonly store: TensorStore,
    private readonly config: ModelConfig,
    private readonly tokenizer: TextTokenizer,
    private readonly float: ModelRunner,
    private readonly calib: readonly CalibSample[],
    private readonly calibSource: CalibSource,
    private readonly evalTexts: readonly CalibSample[],
    private readonly opts: CalibratedOptions,
  ) {
    this.view = store;
    for (const u of float.units) for (const p of u.parts) [p.weight, p.bias].forEach((r) => r && this.unitOf.set(r.name, u));
  }

  static async open(files: ModelFiles, store: TensorStore, config: ModelConfig, opts: CalibratedOptions): Promise<CalibratedQuantization> {
    let tokenizer: TextTokenizer;
    try {
      tokenizer = await loadTokenizer(files, { name: files.describe, padTokenId: archOf(config).padTokenId(config) });
    } catch (e) {
      throw new WebqError('CALIBRATION', `${files.describe}: calibration runs the model on text and needs its tokenizer: ${(e as Error).message}`);
    }
    // No --calib: a decoder writes its own calibration text (which its tokenizer can always read);
    // an encoder reads the built-in one. Text the tokenizer cannot read measures nothing, so
    // --max-error on it is refused here, before any work.
    const sampled = !opts.calib && archOf(config).calibration === 'sampled';
    const given = opts.calib ?? (sampled ? undefined : calibrationLines(DEFAULT_CALIBRATION_TEXT, 'built-in calibration text'));
    const measured = opts.eval ?? given;
    if (measured) checkCalibrationText(tokenizer, given ?? [], measured, { maxError: opts.maxError, describe: files.describe, evalWhat: opts.eval ? 'evaluation text (--eval)' : opts.calib ? 'calibration text (--calib)' : 'built-in calibration text' });
    const ctx = opts.context ?? (await GpuContext.create());
    let float: ModelRunner | null = null;
    try {
      float = await openRunner(ctx, store, config, tokenizer, 'f32');
      let calib: readonly CalibSample[];
      let source: CalibSource;
      if (opts.calib) [calib, source] = [opts.calib, 'file'];
      else if (sampled) {
        const onProgress = (d: number, t: number) => opts.onProgress?.('sample', d, t);
        [calib, source] = [await float.sample!(tokenizer, { tokens: opts.calibTokens, seed: opts.calibSeed, onProgress }), 'sampled'];
      } else [calib, source] = [given!, 'built-in'];
      return new CalibratedQuantization(ctx, !opts.context, store, config, tokenizer, float, calib, source, opts.eval ?? calib, opts);
    } catch (e) {
      float?.dispose();
      if (!opts.context) ctx.dispose();
      throw e;
    }
  }

  private progress(stage: string, done: number, total: number): void {
    this.opts.onProgress?.(stage, done, total);
  }

  /** Steps 1-4: statistics, scales, static activation scales, mixed precision's choice. */
  async prepare(): Promise<void> {
    const { opts, float } = this;
    const units = float.units;
    this.progress('calibrate', 0, 1);
    this.stats = await collectStats(this.ctx, float, this.calib, { gram: true });
    this.progress('calibrate', 1, 1);

    // 2. Per-channel scales, for units with somewhere to fold them.
    for (const u of units) {
      const st = this.stats.get(u.id);
      if (!u.fold || !st || !st.rows) continue;
      // Channels that share a fold row (GQA) get one scale: their statistics are tied first.
      if (opts.smooth !== undefined) {
        const w = await readUnit(this.store, u);
        this.scales.set(u.id, smoothScales(tieChannels(u, st.absMax, 'max'), tieChannels(u, columnAbsMax(w.W, w.N, w.K), 'max'), opts.smooth));
      } else if (opts.method === 'awq') {
        const w = await readUnit(this.store, u);
        const mean = tieChannels(u, st.sumAbs.map((v) => v / st.rows), 'mean');
        const found = awqSearchScales(w.W, w.N, w.K, opts.spec, mean, st.gram!, { noClipRows: noClipRowsOf(u, w.rows) });
        this.scales.set(u.id, found.scales);
        this.alphas.set(u.id, found.alpha);
      }
    }
    if (this.scales.size) {
      const view = new TransformedStore(this.store, foldScales(units, this.scales));
      for (const name of view.scales.keys()) if (!this.unitOf.has(name) || this.unitOf.get(name)!.parts.every((p) => p.weight.name !== name)) this.scaledSide.add(name);
      this.view = view;
    }

    // 3. Static activation scales on the scaled inputs.
    if (opts.staticActs) {
      const absMax = new Map<string, number>();
      for (const u of units) {
        const st = this.stats.get(u.id);
        if (!st?.rows) continue;
        const s = this.scales.get(u.id);
        absMax.set(u.id, st.absMax.reduce((m, v, j) => Math.max(m, s ? v / s[j] : v), 0));
      }
      let hists: Map<string, InputStats> | null = null;
      if (opts.staticActs !== 'minmax') {
        this.progress('histograms', 0, 1);
        hists = await collectStats(this.ctx, await this.scaled(), this.calib, { gram: false, histRange: absMax });
      }
      for (const [id, m] of absMax) {
        const h = hists?.get(id);
        this.actScales.set(id, staticActivationScale(opts.staticActs, { absMax: m, hist: h?.hist, histWidth: h?.histWidth }));
      }
    }
    if (opts.mixedBudget !== undefined) this.chosen = await this.chooseMixed(units);
    // 5, for GPTQ: every unit now, in order, each calibrated on the earlier ones' quantized outputs.
    if (opts.method === 'gptq' && opts.sequential !== false) {
      await quantizeSequentially(this.ctx, await this.scaled(), this.calib, (u, stats) => this.quantizeUnit(u, { stats }), (d, t) => this.progress('sequential', d, t));
    }
  }

  /** How Linear weight `name` is stored: its spec, or 16 (an F16 tensor). */
  layout(name: string): QuantSpec | 16 {
    const c = this.chosen?.get(this.unitOf.get(name)!.id);
    return c ? (c.spec ?? 16) : this.opts.spec;
  }

  /** What each Linear's metadata says (method, bits, static scale). */
  linearMeta(): Map<string, LinearQuantMeta> {
    const out = new Map<string, LinearQuantMeta>();
    for (const u of this.float.units) {
      for (const p of u.parts) {
        const l = this.layout(p.weight.name);
        out.set(p.weight.name, l === 16 ? { bits: 16, method: 'mixed' } : { bits: l.bits, group: l.group, symmetric: l.symmetric, method: this.chosen ? `mixed+${this.opts.method}` : this.opts.method, actScale: this.actScales.get(u.id) });
      }
    }
    return out;
  }

  /**
   * The tensors that replace planned tensor `name`'s default output: a Linear weight's (its unit
   * quantized on first request), a corrected bias, a scaled norm; null for the default.
   */
  async tensors(name: string): Promise<TensorToWrite[] | null> {
    const u = this.unitOf.get(name);
    if (u && !this.done.has(u.id)) await this.quantizeUnit(u);
    const t = this.pending.get(name);
    if (t) {
      this.pending.delete(name);
      return t;
    }
    if (this.scaledSide.has(name)) {
      const info = this.store.get(name)!;
      return [{ name, dtype: 'F16', shape: [...info.shape], data: f32ArrayToF16((await this.view.readAs(name, 'f32')) as Float32Array) }];
    }
    return null;
  }

  /**
   * Step 5 for one unit: its parts' tensors (and corrected biases) into `pending`; returns the
   * quantized weight (null: kept 16-bit). `sequential` gives statistics collected on the scaled
   * model with the earlier units quantized (sequential.ts), instead of the float pass's.
   */
  private async quantizeUnit(u: LinearUnit, sequential?: { stats: InputStats | undefined }): Promise<QuantizedWeight | null> {
    const { opts } = this;
    this.done.add(u.id);
    this.progress('quantize', this.done.size, this.float.units.length);
    const st = sequential ? sequential.stats : this.stats.get(u.id);
    // The float pass saw the unscaled inputs: its statistics are divided by the unit's scales.
    const s = sequential ? undefined : this.scales.get(u.id);
    const w = await readUnit(this.view, u);
    const cand = this.chosen?.get(u.id);
    const layer: LayerReport = { id: u.id, tensors: u.parts.map((p) => p.weight.name), params: w.N * w.K, bits: opts.spec.bits, method: opts.method, scaled: this.scales.has(u.id), sequential: !!sequential, candidates: cand?.all };
    this.layers.set(u.id, layer);
    const layout = this.layout(u.parts[0].weight.name);
    let n0 = 0;
    if (layout === 16) {
      for (const [j, p] of u.parts.entries()) {
        this.pending.set(p.weight.name, [{ name: p.weight.name, dtype: 'F16', shape: [...p.weight.shape], data: f32ArrayToF16(w.W.subarray(n0 * w.K, (n0 + w.rows[j]) * w.K)) }]);
        n0 += w.rows[j];
      }
      Object.assign(layer, { bits: 16, error: 0 });
      return null;
    }
    const gram = st?.rows ? unitGram(st, s) : null;
    const q = quantizeUnit(w, u, layout, gram ? opts.method : 'rtn', gram, { actOrder: opts.actOrder });
    const deq = dequantizeWeight(q);
    Object.assign(layer, { bits: layout.bits, group: layout.group, symmetric: layout.symmetric, error: gram ? relativeLayerError(w, deq, gram) : undefined, actScale: this.actScales.get(u.id), alpha: this.alphas.get(u.id) });
    // Bias correction: subtract the mean output error, (Wq - W) mean(x), on the inputs this unit
    // will see: the sequential pass's (earlier units quantized) where it ran, else the float pass's.
    const fs = sequential ? st : this.stats.get(u.id);
    const fscale = sequential ? undefined : this.scales.get(u.id);
    const corr = opts.biasCorrection && fs?.rows && u.parts.some((p) => p.bias) ? biasCorrection(w, deq, fs.sum.map((v, k) => v / fs.rows / (fscale ? fscale[k] : 1))) : null;
    layer.biasCorrected = !!corr;
    for (const [j, p] of u.parts.entries()) {
      this.pending.set(p.weight.name, quantizedTensors(p.weight.name, sliceQuantized(q, n0, w.rows[j])));
      if (corr && p.bias) {
        const b = Float32Array.from((await this.view.readAs(p.bias.name, 'f32')) as Float32Array);
        for (let r = 0; r < w.rows[j]; r++) b[r] -= corr[n0 + r];
        this.pending.set(p.bias.name, [{ name: p.bias.name, dtype: 'F16', shape: [...p.bias.shape], data: f32ArrayToF16(b) }]);
      }
      n0 += w.rows[j];
    }
    return q;
  }

  /** The report's per-layer part, in the model's order. */
  summary(): CalibratedSummary {
    const layers = this.float.units.map((u) => this.layers.get(u.id)).filter((l): l is LayerReport => !!l);
    const sensitivityTokens = this.chosen ? this.float.tokens(this.sensitivityTexts()) : undefined;
    return { layers, source: this.calibSource, texts: this.calib.length, tokens: this.float.tokens(this.calib), sensitivityTokens, unknownShare: unknownShare(textCoverage(this.tokenizer, this.calib)) };
  }

  /** The float model with the scales applied (for histograms and single-unit measurements). */
  private async scaled(): Promise<ModelRunner> {
    if (!this.scales.size) return this.float;
    this.scaledRunner ??= await openRunner(this.ctx, new TransformedStore(this.store, foldScales(this.float.units, this.scales)), this.config, this.tokenizer, 'f32');
    return this.scaledRunner;
  }

  /** The model's error on `texts` with `lin` in unit u's place (a float runner), against `ref`. */
  private async alone(runner: ModelRunner, u: LinearUnit, lin: LinearWeight, texts: readonly CalibSample[], ref: Float32Array[]): Promise<number> {
    const old = swapUnitWeight(runner.weights, u.id, lin);
    try {
      return modelError(runner.kind, ref, await runner.run(texts, { outputs: true }), runner.vocab).error;
    } finally {
      swapUnitWeight(runner.weights, u.id, old);
      lin.dispose();
    }
  }

  /** Each sensitivity measurement is a forward over these: the first samples, up to SENSITIVITY_TOKENS. */
  private sensitivityTexts(): CalibSample[] {
    const texts: CalibSample[] = [];
    for (let t = 0, i = 0; i < this.calib.length && (t < SENSITIVITY_TOKENS || !texts.length); i++) {
      texts.push(this.calib[i]);
      t += this.float.tokens([this.calib[i]]);
    }
    return texts;
  }

  /** Step 4: candidates per unit, each measured alone, and the knapsack's choice. */
  private async chooseMixed(units: readonly LinearUnit[]) {
    const { opts, stats } = this;
    const sym4 = opts.symmetric ?? false;
    // 4 bits at a few group sizes (finer groups cost more bits for scales), 8 bits per channel, 16.
    const groups4: (number | 'channel')[] = opts.group !== undefined ? [opts.group] : [32, 128, 'channel'];
    const layouts = [...groups4.map((group) => ({ bits: 4 as const, group, symmetric: sym4 })), { bits: 8 as const, group: opts.group ?? ('channel' as const), symmetric: true }];
    const texts = this.sensitivityTexts();
    const ref = await this.float.run(texts, { outputs: true });
    const per = new Map<string, { all: MixedCandidate[]; specs: (QuantSpec | null)[] }>();
    let done = 0;
    for (const u of units) {
      this.progress('sensitivity', done++, units.length);
      const st = stats.get(u.id);
      const w = await readUnit(this.view, u);
      const all: MixedCandidate[] = [];
      const specs: (QuantSpec | null)[] = [];
      for (const l of layouts) {
        const spec = quantSpecFor(l.bits === 4 ? 'q4' : 'q8', { group: l.group, symmetric: l.symmetric, clipSearch: opts.spec.clipSearch });
        // Skip a layout that is mostly padding, or the same as one already measured (channel = 128 at K = 128).
        const lay = layoutFor(w.K, spec);
        if (l.group !== 'channel' && lay.Kp > 1.25 * w.K && layouts.some((o) => o.bits === l.bits && o.group === 'channel')) continue;
        if (all.some((c) => c.bits === l.bits && c.group !== undefined && layoutFor(w.K, { ...spec, group: c.group }).groupSize === lay.groupSize)) continue;
        const gram = st?.rows ? unitGram(st, undefined) : null;
        const q = quantizeUnit(w, u, spec, gram ? opts.method : 'rtn', gram);
        const b = byteSizes(w.N, w.K, spec);
        const bytes = b.values + (b.scales + b.zeros) / 2; // scales and zeros are F16 in the file
        const error = st?.rows ? await this.alone(this.float, u, prepareQuantizedLinear(this.ctx, q, l.bits === 4 ? 'q4' : 'q8', { precision: 'f32', activations: 'float' }), texts, ref) : 0;
        all.push({ bits: l.bits, group: l.group, bytes, error });
        specs.push(spec);
      }
      all.push({ bits: 16, bytes: 2 * w.N * w.K, error: 0 });
      specs.push(null);
      per.set(u.id, { all, specs });
    }
    const pick = chooseBits(units.map((u) => ({ id: u.id, params: u.parts.reduce((s, p) => s + p.weight.shape[0] * u.K, 0), candidates: per.get(u.id)!.all })), opts.mixedBudget!);
    const out = new Map<string, { all: MixedCandidate[]; pick: MixedCandidate; spec: QuantSpec | null }>();
    units.forEach((u, i) => {
      const c = per.get(u.id)!;
      const k = pick.choice[i];
      out.set(u.id, { all: c.all, pick: c.all[k], spec: c.specs[k] });
    });
    return out;
  }

  /** Step 6: the written model (a pre-quantized safetensors file) against the float model. */
  async evaluate(file: string): Promise<ModelError> {
    this.refEval ??= await this.float.run(this.evalTexts, { outputs: true });
    const qstore = await SafetensorsFile.open(file);
    try {
      const prequant = readPrequantInfo(qstore);
      const runner = await openRunner(this.ctx, qstore, this.config, this.tokenizer, prequant!.dtype as LinearDType, prequant);
      try {
        return modelError(runner.kind, this.refEval, await runner.run(this.evalTexts, { outputs: true }), runner.vocab);
      } finally {
        runner.dispose();
      }
    } finally {
      await qstore.close();
    }
  }

  /** The model's error on the evaluation text with each unit alone quantized (as written in `file`), largest first. */
  async costliest(file: string): Promise<{ id: string; error: number }[]> {
    const runner = await this.scaled();
    const ref = runner === this.float ? (this.refEval ??= await this.float.run(this.evalTexts, { outputs: true })) : await runner.run(this.evalTexts, { outputs: true });
    const qstore = await SafetensorsFile.open(file);
    try {
      const prequant = readPrequantInfo(qstore)!;
      const out: { id: string; error: number }[] = [];
      for (const u of this.float.units) {
        if (this.layout(u.parts[0].weight.name) === 16) continue;
        const q = stackQuantized(await Promise.all(u.parts.map((p) => readQuantized(qstore, p.weight.name, p.weight.shape[0], u.K, specOf(prequant, p.weight.name)))));
        let lin = prepareQuantizedLinear(this.ctx, q, this.opts.fileDType, { precision: 'f32', activations: 'float' });
        const a = this.actScales.get(u.id);
        if (a !== undefined) lin = withStaticActivations(this.ctx, lin, a);
        out.push({ id: u.id, error: await this.alone(runner, u, lin, this.evalTexts, ref) });
      }
      return out.sort((a, b) => b.error - a.error);
    } finally {
      await qstore.close();
    }
  }

  dispose(): void {
    this.scaledRunner?.dispose();
    this.float.dispose();
    if (this.ownsCtx) this.ctx.dispose();
  }
}

/**
 * Load-time preparation of Linear weights for the op in src/ops/linear.ts: the dtype table (bits,
 * group, symmetry and activation handling of each quantized dtype), CPU quantization of float
 * weights (round-to-nearest, src/quant/rtn.ts), and the upload into the op's float or packed form.
 * The loaders reach it through the uploader (upload.ts); the offline quantizer uses it to measure.
 *
 * Float weights larger than one storage binding are split into row chunks like quantized ones.
 */
import { ShapeError, WebqError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Precision } from '../gpu/shaders.ts';
import { f32ArrayToF16 } from '../io/safetensors/half.ts';
import { ACTIVATIONS, type Activations, type FloatLinear, type LinearDType, type LinearWeight, type QuantLinear } from '../ops/linear.ts';
import type { ActQuant } from '../ops/qmatmul.ts';
import { rowsPerChunk, uploadQuantized } from '../ops/qweight.ts';
import type { QuantizedWeight, QuantSpec } from '../quant/layout.ts';
import { quantizeWeight } from '../quant/rtn.ts';

export interface PrepareOptions {
  /** Quantization group along K; defaults per dtype (see above). */
  group?: number | 'channel';
  symmetric?: boolean;
  /**
   * q4/q8: 'float' (default) keeps activations f16/f32 (weight-only); 'int8' quantizes them per
   * block of 32 and runs integer dot products, in decode and prefill alike. w8a8/w4a8 are int8 by
   * definition ('float' is refused); f32/f16 are float ('int8' is refused).
   */
  activations?: Activations;
  /** Activation precision for quantized dtypes (default: f16 when the device has it). */
  precision?: Precision;
  label?: string;
  /** Split weights into bindings of at most this many bytes (default: the device limit). */
  bindingLimit?: number;
  /**
   * Quantized dtypes: search each group's range for the least weight error (QuantSpec.clipSearch,
   * src/quant/range-search.ts). Default: symmetric 4-bit only; the LLM loader turns it on for its
   * 4-bit Linears (llamaQuantDefaults).
   */
  clipSearch?: boolean;
}

// 4-bit defaults are asymmetric (16 levels and a zero point per group, as GPTQ/AWQ store them):
// on the tiny BERT tests that lifts q4 embeddings from cosine ~0.989 to ~0.992 against fp32.
const QUANT: Record<Exclude<LinearDType, 'f32' | 'f16'>, { bits: 4 | 8; group: number | 'channel'; symmetric: boolean; act: 'float' | ActQuant }> = {
  q8: { bits: 8, group: 128, symmetric: true, act: 'float' },
  q4: { bits: 4, group: 32, symmetric: false, act: 'float' },
  w8a8: { bits: 8, group: 'channel', symmetric: true, act: 'token' },
  w4a8: { bits: 4, group: 32, symmetric: false, act: 'token' },
};

export function prepareLinear(ctx: GpuContext, w: Float32Array, N: number, K: number, dtype: LinearDType, opts: PrepareOptions = {}): LinearWeight {
  if (w.length !== N * K) throw new ShapeError(`prepareLinear(${opts.label ?? 'weight'}): expected ${N}x${K}=${N * K} values, got ${w.length}`);
  checkActivations(dtype, opts.activations, opts.label);
  const limit = Math.min(opts.bindingLimit ?? Infinity, ctx.caps.maxStorageBufferBindingSize);
  if (dtype === 'f32' || dtype === 'f16') {
    if (dtype === 'f16' && !ctx.caps.f16) throw new WebqError('NO_F16', `dtype f16 needs shader-f16, which this device (${ctx.caps.adapter}) lacks; use f32 or a quantized dtype`);
    const rows = rowsPerChunk(K * (dtype === 'f16' ? 2 : 4), N, limit);
    const chunks: FloatLinear['chunks'] = [];
    for (let n0 = 0; n0 < N; n0 += rows) {
      const n = Math.min(rows, N - n0);
      const part = w.subarray(n0 * K, (n0 + n) * K);
      chunks.push({ n0, N: n, w: dtype === 'f16' ? ctx.upload(f32ArrayToF16(part), [n, K], 'f16', opts.label) : ctx.upload(part, [n, K], 'f32', opts.label) });
    }
    const lin: FloatLinear = {
      kind: 'float', dtype, N, K, precision: dtype,
      bytes: chunks.reduce((s, c) => s + c.w.byteLength, 0),
      chunks,
      dispose: () => chunks.forEach((c) => c.w.dispose()),
    };
    return lin;
  }
  return prepareQuantizedLinear(ctx, quantizeWeight(w, N, K, quantSpecFor(dtype, opts)), dtype, opts);
}

/** What a dtype runs with: q4/q8 'float' unless asked for 'int8'; w8a8/w4a8 'int8'; f32/f16 'float'. */
export function activationsOf(dtype: LinearDType, asked?: Activations): Activations {
  return dtype === 'w8a8' || dtype === 'w4a8' ? 'int8' : dtype === 'q8' || dtype === 'q4' ? asked ?? 'float' : 'float';
}

/** Throws unless `asked` is a choice `dtype` has (see activationsOf). */
export function checkActivations(dtype: LinearDType, asked: unknown, label?: string): void {
  if (asked === undefined) return;
  const what = label ? ` (${label})` : '';
  if (!ACTIVATIONS.includes(asked as Activations)) throw new WebqError('BAD_OPTION', `unknown activations ${JSON.stringify(asked)}${what}: use 'float' (weight-only) or 'int8' (int8 activation blocks)`);
  if (asked !== activationsOf(dtype, asked as Activations)) {
    throw new WebqError('BAD_OPTION', `dtype ${dtype}${what} runs ${activationsOf(dtype)} activations by definition, not '${asked}'; ${asked === 'float' ? "use q8 or q4 for weight-only kernels" : 'use q8 or q4 for int8 activation blocks'}`);
  }
}

/** The quantization a quantized dtype uses, with the caller's overrides. */
export function quantSpecFor(dtype: LinearDType, opts: Pick<PrepareOptions, 'group' | 'symmetric' | 'clipSearch'> = {}): QuantSpec {
  const d = QUANT[dtype as keyof typeof QUANT];
  if (!d) throw new WebqError('UNKNOWN_DTYPE', `'${dtype}' is not a quantized dtype (one of ${Object.keys(QUANT).join(', ')})`);
  const symmetric = opts.symmetric ?? d.symmetric;
  // 4-bit codes are coarse enough that the least-squares range search pays off (see rtn.ts).
  return { bits: d.bits, group: opts.group ?? d.group, symmetric, clipSearch: d.bits === 4 && (opts.clipSearch ?? symmetric) };
}

/** A Linear from weights already quantized (on the CPU, or read from a pre-quantized file). */
export function prepareQuantizedLinear(ctx: GpuContext, q: QuantizedWeight, dtype: LinearDType, opts: PrepareOptions = {}): LinearWeight {
  const d = QUANT[dtype as keyof typeof QUANT];
  if (!d) throw new WebqError('UNKNOWN_DTYPE', `'${dtype}' is not a quantized dtype (one of ${Object.keys(QUANT).join(', ')})`);
  checkActivations(dtype, opts.activations, opts.label); // before anything is uploaded
  const precision = opts.precision ?? (ctx.caps.f16 ? 'f16' : 'f32');
  const { N, K } = q;
  const qw = uploadQuantized(ctx, q, precision, { label: opts.label, bindingLimit: opts.bindingLimit });
  const act = d.act === 'float' && opts.activations === 'int8' ? 'block' : d.act;
  const lin: QuantLinear = { kind: 'quant', dtype, N, K, precision, bytes: qw.bytes, q: qw, act, dispose: () => qw.dispose() };
  return lin;
}

/**
 * The same w8a8/w4a8 weight with static activation quantization: x is rounded to int8 with the
 * fixed `scale` (max |x| / 127 as calibrated, or a clipped threshold / 127) instead of a scale per
 * token. The result shares the packed weight; its dispose() frees the weight and the scale.
 */
export function withStaticActivations(ctx: GpuContext, w: LinearWeight, scale: number): LinearWeight {
  const lw = w as FloatLinear | QuantLinear;
  if (lw.kind !== 'quant' || lw.act !== 'token') throw new WebqError('STATIC_ACTIVATIONS', `a static activation scale needs a w8a8 or w4a8 weight, not ${lw.dtype}`);
  if (!(Number.isFinite(scale) && scale > 0)) throw new WebqError('STATIC_ACTIVATIONS', `a static activation scale must be a positive number, got ${scale}`);
  const actScale = ctx.upload(new Float32Array([scale]), [1], 'f32', 'webq:act-scale');
  const lin: QuantLinear = { ...lw, act: 'static', actScale, bytes: lw.bytes + 4, dispose: () => (lw.dispose(), actScale.dispose()) };
  return lin;
}


/**
 * Reading checkpoint tensors onto the GPU, shared by every architecture: each tensor is read once
 * (as f32, whatever the file stores), Linears with the same input are stacked into one weight
 * (rows, and biases, concatenated), pre-quantized Linears are read packed, and everything made is
 * tracked so that a failed load frees what it had uploaded.
 */
import { WebqError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Precision } from '../gpu/shaders.ts';
import type { Tensor } from '../gpu/tensor.ts';
import type { TensorStore } from '../io/safetensors.ts';
import { prepareLinear, prepareQuantizedLinear, type LinearDType, type LinearWeight, type PrepareOptions } from '../ops/linear.ts';
import { readQuantized, stackQuantized, type PrequantInfo } from '../quant/prequantized.ts';
import type { WeightRef } from './bert-weights.ts';

export interface UploadOptions extends Pick<PrepareOptions, 'group' | 'symmetric' | 'bindingLimit' | 'activations'> {
  onTensor?: (name: string) => void;
  prequant?: PrequantInfo | null;
}

/** A Linear to stack: its weight [out, in] and optional bias [out]. */
export interface LinearPart {
  readonly weight: WeightRef;
  readonly bias?: WeightRef | null;
}

export interface Uploader {
  precision: Precision;
  /** A float tensor (norm weights, biases, tables) in the activation precision. */
  vec(r: WeightRef): Promise<Tensor>;
  /** Stacked Linears as one weight in `dtype` (default: the model's), with the stacked bias if any. */
  lin(parts: readonly LinearPart[], dtype?: LinearDType, over?: Pick<PrepareOptions, 'group' | 'symmetric' | 'activations'>): Promise<{ w: LinearWeight; b: Tensor | null }>;
  /** Everything uploaded so far, in bytes. */
  bytes(): number;
  /** Frees everything uploaded (on failure). */
  dispose(): void;
}

/** Activation precision for a dtype: f32 and f16 are their own; quantized dtypes use f16 where the device has it. */
export function precisionFor(ctx: GpuContext, dtype: LinearDType): Precision {
  return dtype === 'f32' ? 'f32' : dtype === 'f16' ? 'f16' : ctx.caps.f16 ? 'f16' : 'f32';
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  parts.reduce((off, p) => (out.set(p, off), off + p.length), 0);
  return out;
}

export function makeUploader(ctx: GpuContext, store: TensorStore, dtype: LinearDType, opts: UploadOptions = {}): Uploader {
  const precision = precisionFor(ctx, dtype);
  const made: { dispose(): void; bytes?: number; byteLength?: number }[] = [];
  const keep = <T extends { dispose(): void }>(x: T): T => (made.push(x), x);
  const read = async (r: WeightRef) => {
    const a = (await store.readAs(r.name, 'f32')) as Float32Array;
    opts.onTensor?.(r.name);
    return a;
  };
  const vec = async (r: WeightRef) => keep(ctx.uploadFloat(await read(r), r.shape, precision, r.name));
  const lin = async (parts: readonly LinearPart[], as: LinearDType = dtype, over: Pick<PrepareOptions, 'group' | 'symmetric' | 'activations'> = {}) => {
    const N = parts.reduce((s, r) => s + r.weight.shape[0], 0);
    const K = parts[0].weight.shape[1];
    const label = parts.map((r) => r.weight.name).join('+');
    const popts = { precision, label, group: opts.group, symmetric: opts.symmetric, bindingLimit: opts.bindingLimit, activations: opts.activations, ...over };
    let w: LinearWeight;
    if (parts[0].weight.quantized) {
      if (!opts.prequant) throw new WebqError('PREQUANT', `${store.name}: ${label} is stored pre-quantized, but the file has no webq quantization metadata (webq.format)`);
      const q = await Promise.all(parts.map((r) => readQuantized(store, r.weight.name, r.weight.shape[0], K, opts.prequant!.spec)));
      parts.forEach((r) => opts.onTensor?.(r.weight.name));
      w = prepareQuantizedLinear(ctx, stackQuantized(q), as, popts);
    } else {
      w = prepareLinear(ctx, concat(await Promise.all(parts.map((r) => read(r.weight)))), N, K, as, popts);
    }
    keep(w);
    const biases = parts.map((r) => r.bias ?? null);
    if (biases.every((b) => b === null)) return { w, b: null };
    if (biases.some((b) => b === null)) throw new WebqError('WEIGHTS_MISSING', `${store.name}: ${label}: some of the stacked Linears have a bias and some do not`);
    const b = concat(await Promise.all(biases.map((r) => read(r!))));
    return { w, b: keep(ctx.uploadFloat(b, [N], precision, `${label}.bias`)) };
  };
  const bytes = () => made.reduce((s, x) => s + (x.bytes ?? x.byteLength ?? 0), 0);
  return { precision, vec, lin, bytes, dispose: () => made.forEach((x) => x.dispose()) };
}

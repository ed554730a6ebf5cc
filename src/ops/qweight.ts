/**
 * A quantized Linear weight on the GPU: packed codes, scales and zero points in separate buffers,
 * in the layout of src/quant/layout.ts. Scales and zeros are stored in the activation precision
 * (f16 on devices with shader-f16, else f32). A weight whose codes exceed the device's
 * maxStorageBufferBindingSize is split into chunks of whole rows, each bound on its own.
 */
import { WebqError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Precision } from '../gpu/shaders.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { f32ArrayToF16 } from '../io/safetensors/half.ts';
import { validateQuantizedWeight, type QuantizedWeight } from '../quant/layout.ts';

export interface QWeightChunk {
  /** First output row (column of the product) of this chunk, and its row count. */
  n0: number;
  N: number;
  values: Tensor;
  scales: Tensor;
  zeros: Tensor | null;
}

export interface QWeight {
  kind: 'quant';
  bits: 4 | 8;
  symmetric: boolean;
  N: number;
  K: number;
  Kp: number;
  groupSize: number;
  groups: number;
  precision: Precision;
  chunks: QWeightChunk[];
  /** Bytes on the GPU: codes + scales + zeros. */
  bytes: number;
  dispose(): void;
}

/** Rows per chunk so that no binding exceeds `limit` bytes (rows are multiples of 16 bytes). */
export function rowsPerChunk(rowBytes: number, N: number, limit: number): number {
  const rows = Math.floor(limit / rowBytes);
  if (rows < 1) throw new WebqError('TENSOR_TOO_LARGE', `one weight row of ${rowBytes} bytes exceeds the device's storage binding limit of ${limit} bytes`);
  return Math.min(N, rows);
}

export function uploadQuantized(ctx: GpuContext, q: QuantizedWeight, precision: Precision, opts: { label?: string; bindingLimit?: number } = {}): QWeight {
  validateQuantizedWeight(q);
  const label = opts.label ?? 'webq:qweight';
  const wordsPerRow = (q.Kp * q.bits) / 32;
  const limit = Math.min(opts.bindingLimit ?? Infinity, ctx.caps.maxStorageBufferBindingSize);
  const rows = rowsPerChunk(wordsPerRow * 4, q.N, limit);
  const toDevice = (a: Float32Array) => (precision === 'f16' ? f32ArrayToF16(a) : a);
  const chunks: QWeightChunk[] = [];
  let bytes = 0;
  for (let n0 = 0; n0 < q.N; n0 += rows) {
    const n = Math.min(rows, q.N - n0);
    const values = ctx.upload(q.values.subarray(n0 * wordsPerRow, (n0 + n) * wordsPerRow), [n * wordsPerRow], 'u32', `${label}.values[${n0}]`);
    const scales = ctx.upload(toDevice(q.scales.subarray(n0 * q.groups, (n0 + n) * q.groups)), [n * q.groups], precision, `${label}.scales[${n0}]`);
    const zeros = q.zeros ? ctx.upload(toDevice(q.zeros.subarray(n0 * q.groups, (n0 + n) * q.groups)), [n * q.groups], precision, `${label}.zeros[${n0}]`) : null;
    bytes += values.byteLength + scales.byteLength + (zeros?.byteLength ?? 0);
    chunks.push({ n0, N: n, values, scales, zeros });
  }
  return {
    kind: 'quant',
    bits: q.bits,
    symmetric: q.symmetric,
    N: q.N,
    K: q.K,
    Kp: q.Kp,
    groupSize: q.groupSize,
    groups: q.groups,
    precision,
    chunks,
    bytes,
    dispose() {
      for (const c of chunks) {
        c.values.dispose();
        c.scales.dispose();
        c.zeros?.dispose();
      }
      chunks.length = 0;
    },
  };
}

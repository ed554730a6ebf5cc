/**
 * A GPU tensor is a storage buffer (or a slice of one) with a shape and an element type.
 * Quantized weights use 'u32' tensors of packed codes (see src/quant/layout.ts).
 */
import { ShapeError } from '../errors.ts';
import type { GPUBuffer, GPUBufferBinding } from './webgpu-types.ts';

export type DType = 'f32' | 'f16' | 'u32' | 'i32';

export const DTYPE_BYTES: Readonly<Record<DType, number>> = { f32: 4, f16: 2, u32: 4, i32: 4 };

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeStr(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** Bytes a binding of `bytes` needs: storage bindings must be a multiple of 4 bytes. */
export function align4(bytes: number): number {
  return Math.max(4, Math.ceil(bytes / 4) * 4);
}

export class Tensor {
  readonly buffer: GPUBuffer;
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** Byte offset in `buffer` (a multiple of minStorageBufferOffsetAlignment when bound on its own). */
  readonly offset: number;
  private release: ((b: GPUBuffer) => void) | null;

  constructor(buffer: GPUBuffer, shape: readonly number[], dtype: DType, offset = 0, release: ((b: GPUBuffer) => void) | null = null) {
    this.buffer = buffer;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.offset = offset;
    this.release = release;
  }

  get size(): number {
    return numel(this.shape);
  }

  get byteLength(): number {
    return this.size * DTYPE_BYTES[this.dtype];
  }

  /** The binding for this tensor: its bytes rounded up to 4 (f16 tensors of odd length). */
  binding(): GPUBufferBinding {
    return { buffer: this.buffer, offset: this.offset, size: align4(this.byteLength) };
  }

  /** Same storage seen with another shape of the same element count. */
  view(shape: readonly number[]): Tensor {
    if (numel(shape) !== this.size) throw new ShapeError(`cannot view ${shapeStr(this.shape)} as ${shapeStr(shape)}: element counts differ`);
    return new Tensor(this.buffer, shape, this.dtype, this.offset, null);
  }

  /** Returns the buffer to its pool (or destroys it if it was not pooled). Views free nothing. */
  dispose(): void {
    if (this.release) {
      this.release(this.buffer);
      this.release = null;
    }
  }
}

/** Throws a ShapeError naming the op and argument unless `t` has the expected rank/dtype. */
export function expectTensor(op: string, arg: string, t: Tensor, opts: { rank?: number; dtype?: DType | readonly DType[] }): void {
  if (opts.rank !== undefined && t.shape.length !== opts.rank) {
    throw new ShapeError(`${op}: ${arg} must have rank ${opts.rank}, got shape ${shapeStr(t.shape)}`);
  }
  if (opts.dtype !== undefined) {
    const ok = Array.isArray(opts.dtype) ? opts.dtype.includes(t.dtype) : t.dtype === opts.dtype;
    if (!ok) throw new ShapeError(`${op}: ${arg} must be ${[opts.dtype].flat().join(' or ')}, got ${t.dtype}`);
  }
}

/**
 * Byte copy between tensors through a compute kernel (shaders/copy.wgsl, 16 bytes per thread).
 * Its main use is as the bandwidth reference in benchmarks: what a kernel that only streams
 * memory achieves on this device.
 */
import { ShapeError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Recorder } from '../gpu/recorder.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { grid1d } from './common.ts';

const WG = 256;

/** Copies src's bytes into dst (a new pooled tensor of src's shape and dtype when not given). */
export function copy(ctx: GpuContext, rec: Recorder, src: Tensor, dst?: Tensor): Tensor {
  // vec4<u32> elements: bindings must cover whole 16-byte elements, so odd sizes are refused
  // rather than silently leaving a tail uncopied.
  if (src.byteLength % 16 !== 0) throw new ShapeError(`copy: src is ${src.byteLength} bytes; the copy kernel needs a multiple of 16`);
  const out = dst ?? ctx.empty(src.shape, src.dtype);
  if (out.byteLength !== src.byteLength) throw new ShapeError(`copy: dst is ${out.byteLength} bytes but src is ${src.byteLength}`);
  if (out.buffer === src.buffer) throw new ShapeError('copy: src and dst share a buffer (a read and a read_write binding of one buffer is invalid)');
  const n = src.byteLength / 16;
  // The shader has no T; the f32 variant compiles on every device.
  rec.dispatch({ shader: 'copy', variant: { precision: 'f32' }, constants: { WG } }, { src, dst: out }, grid1d(n, WG), { n });
  return out;
}

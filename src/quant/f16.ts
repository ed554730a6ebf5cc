/**
 * Conversion of quantized-weight scales / zero points for devices that want f16 buffers.
 * Zero points (integers in -128..127 or 0..15) convert exactly. Scales lose precision (11-bit
 * significand, relative error <= 2^-11) and a scale below ~6e-5 becomes a subnormal with less
 * precision still (below ~3e-8 it becomes 0), so f16 results must be compared with looser bounds.
 */
import { f32ArrayToF16 } from '../io/half.ts';

/** Converts each element to IEEE binary16 bits (round-to-nearest-even), e.g. scales for an f16 buffer. */
export function toF16(arr: Float32Array): Uint16Array {
  return f32ArrayToF16(arr);
}

/**
 * The quantized-weight layout shared by the CPU quantizer (rtn.ts), the CPU references
 * (src/reference/qmatmul.ts) and the GPU kernels. The kernels read exactly this layout, so any
 * change here is a format change.
 *
 * A Linear weight W is [N, K] row-major (HF convention: y = x W^T + b, N outputs, K inputs). It is
 * quantized along K in groups of G elements (G = 32, 64 or 128, or 'channel' = one group per row).
 *
 *   Kp     = K rounded up to a multiple of G            (per-channel: K rounded up to 32, G = Kp)
 *   groups = Kp / G                                     (per-channel: 1)
 *
 * Padding elements K..Kp-1 of each row are weight 0: they are stored as the code that dequantizes
 * to exactly 0 (the zero point), and are ignored when the group's scale is computed.
 *
 * Three separate arrays (separate GPU buffers), each row-major by n, so a workgroup reading row n
 * walks contiguous memory along k:
 *
 *   values  Uint32Array   int8: [N, Kp/4]   int4: [N, Kp/8]
 *   scales  Float32Array  [N, groups]       index n*groups + g
 *   zeros   Float32Array  [N, groups]       asymmetric only (null when symmetric); integer-valued
 *
 * int8, word (n, j) at index n*(Kp/4) + j holds k = 4j..4j+3, one two's-complement int8 per byte:
 *
 *   bit  31      24 23      16 15       8 7        0
 *       +----------+----------+----------+----------+
 *       | k = 4j+3 | k = 4j+2 | k = 4j+1 | k = 4j+0 |     (little-endian: byte b = element 4j+b)
 *       +----------+----------+----------+----------+
 *
 *   symmetric:  w ~= q * scale,            q in -127..127, zero = 0 (zeros array is null)
 *   asymmetric: w ~= (q - zero) * scale,   q = u - 128 in -128..127, zero = z - 128
 *               (u, z in 0..255 are the usual unsigned code and zero point; shifting both by 128
 *               keeps the stored bytes signed so dot4I8Packed can consume them directly)
 *
 * int4, word (n, j) at index n*(Kp/8) + j holds k = 8j..8j+7 as unsigned nibbles; byte b holds
 * element 8j+b in its LOW nibble and element 8j+4+b in its HIGH nibble:
 *
 *   bit  31  28 27  24 23  20 19  16 15  12 11   8 7    4 3    0
 *       +------+------+------+------+------+------+------+------+
 *       | 8j+7 | 8j+3 | 8j+6 | 8j+2 | 8j+5 | 8j+1 | 8j+4 | 8j+0 |
 *       +------+------+------+------+------+------+------+------+
 *
 *   so `w & 0x0F0F0F0F` is elements 0..3 and `(w >> 4) & 0x0F0F0F0F` is elements 4..7, each as
 *   four int8 lanes in the same order as int8 activations packed 4 per u32 (activation words 2j
 *   and 2j+1), ready for dot4I8Packed.
 *
 *   symmetric:  w ~= (nibble - 8) * scale,    nibble in 1..15, implicit zero 8 (zeros is null)
 *   asymmetric: w ~= (nibble - zero) * scale, nibble in 0..15, zero in 0..15
 */
import { WebqError } from '../errors.ts';

export type QuantBits = 4 | 8;

/** How to quantize: bit width, group size along K (or one group per output row), symmetry. */
export interface QuantSpec {
  bits: QuantBits;
  group: number | 'channel';
  symmetric: boolean;
  /**
   * Per group, choose the scale (and zero point) with the least squared weight error instead of
   * the group's min-max range: symmetric, max|w|/qmax shrunk by up to 36% then refitted;
   * asymmetric, a few grid scales refitted by least squares (src/quant/rtn.ts). Clipped weights
   * then err by more than scale/2, the rest by less; codes stay round-to-nearest. No calibration.
   * Default off; 4-bit dtypes turn it on (quantSpecFor in src/models/prepare-linear.ts).
   */
  clipSearch?: boolean;
}

/** A quantized [N, K] weight in the layout described at the top of this file. */
export interface QuantizedWeight {
  N: number;
  K: number;
  /** K padded up to a multiple of groupSize. */
  Kp: number;
  /** Elements per group along K; equals Kp for per-channel. */
  groupSize: number;
  /** Groups per row: Kp / groupSize. */
  groups: number;
  bits: QuantBits;
  symmetric: boolean;
  /** Packed codes, [N, Kp/4] words for int8 or [N, Kp/8] words for int4. */
  values: Uint32Array;
  /** [N, groups] scales. */
  scales: Float32Array;
  /** [N, groups] integer zero points in the stored convention, or null when symmetric. */
  zeros: Float32Array | null;
}

/** The derived dimensions of a weight's layout. */
export interface QuantLayout {
  Kp: number;
  groupSize: number;
  groups: number;
  /** u32 words per row of `values`. */
  wordsPerRow: number;
}

/** Group sizes the kernels are written for. */
export const GROUP_SIZES: readonly number[] = [32, 64, 128];

/** Raised for an invalid QuantSpec or a QuantizedWeight whose arrays do not fit its dimensions. */
export class QuantSpecError extends WebqError {
  constructor(message: string) {
    super('QUANT_SPEC', message);
  }
}

/** Throws QuantSpecError unless `spec` is one of the supported combinations. */
export function validateSpec(spec: QuantSpec): void {
  if (spec === null || typeof spec !== 'object') {
    throw new QuantSpecError(`quant spec must be an object {bits, group, symmetric}, got ${String(spec)}`);
  }
  if (spec.bits !== 4 && spec.bits !== 8) {
    throw new QuantSpecError(`quant spec bits must be 4 or 8, got ${String(spec.bits)}`);
  }
  if (spec.group !== 'channel' && !GROUP_SIZES.includes(spec.group as number)) {
    throw new QuantSpecError(
      `quant spec group must be 32, 64, 128 or 'channel', got ${JSON.stringify(spec.group)}`,
    );
  }
  if (typeof spec.symmetric !== 'boolean') {
    throw new QuantSpecError(`quant spec symmetric must be a boolean, got ${String(spec.symmetric)}`);
  }
}

function checkDim(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) {
    throw new QuantSpecError(`${name} must be a positive integer, got ${v}`);
  }
}

/** Rounds v up to a multiple of m. */
export function roundUp(v: number, m: number): number {
  return Math.ceil(v / m) * m;
}

/** Kp, group size, group count and row width in words for a row of K inputs under `spec`. */
export function layoutFor(K: number, spec: QuantSpec): QuantLayout {
  validateSpec(spec);
  checkDim('K', K);
  // Per-channel pads to 32: the GPU kernels walk K in blocks of 32 (one vec4<u32> of int4 words,
  // two of int8), so every row must be whole blocks, as it is for groups of 32, 64 and 128.
  const Kp = spec.group === 'channel' ? roundUp(K, 32) : roundUp(K, spec.group);
  const groupSize = spec.group === 'channel' ? Kp : spec.group;
  return { Kp, groupSize, groups: Kp / groupSize, wordsPerRow: Kp / (32 / spec.bits) };
}

/** Byte sizes of the three arrays (zeros is 0 when symmetric), e.g. for GPU buffer allocation. */
export function byteSizes(
  N: number,
  K: number,
  spec: QuantSpec,
): { values: number; scales: number; zeros: number } {
  checkDim('N', N);
  const l = layoutFor(K, spec);
  const scales = N * l.groups * 4;
  return { values: N * l.wordsPerRow * 4, scales, zeros: spec.symmetric ? 0 : scales };
}

/** Throws QuantSpecError if q's arrays and dimensions disagree with each other. */
export function validateQuantizedWeight(q: QuantizedWeight): void {
  checkDim('N', q.N);
  checkDim('K', q.K);
  if (q.bits !== 4 && q.bits !== 8) throw new QuantSpecError(`quantized weight bits must be 4 or 8, got ${q.bits}`);
  const perChannel = q.groups === 1 && q.groupSize === q.Kp && q.Kp === roundUp(q.K, 32);
  const grouped =
    GROUP_SIZES.includes(q.groupSize) && q.Kp === roundUp(q.K, q.groupSize) && q.groups === q.Kp / q.groupSize;
  if (!perChannel && !grouped) {
    throw new QuantSpecError(
      `quantized weight has K=${q.K}, Kp=${q.Kp}, groupSize=${q.groupSize}, groups=${q.groups}; expected ` +
        `groupSize in 32/64/128 with Kp = K rounded up to groupSize and groups = Kp/groupSize, ` +
        `or per-channel with Kp = K rounded up to 32 = groupSize and groups = 1`,
    );
  }
  const words = q.N * (q.Kp / (32 / q.bits));
  if (q.values.length !== words) {
    throw new QuantSpecError(`quantized weight values has ${q.values.length} words, expected N*Kp/${32 / q.bits} = ${words}`);
  }
  if (q.scales.length !== q.N * q.groups) {
    throw new QuantSpecError(`quantized weight scales has ${q.scales.length} entries, expected N*groups = ${q.N * q.groups}`);
  }
  if (q.symmetric ? q.zeros !== null : q.zeros === null || q.zeros.length !== q.N * q.groups) {
    throw new QuantSpecError(
      q.symmetric
        ? 'symmetric quantized weight must have zeros = null'
        : `asymmetric quantized weight needs zeros of length N*groups = ${q.N * q.groups}, got ${q.zeros === null ? 'null' : q.zeros.length}`,
    );
  }
}

/** Where element (n, k) lives: the word index in `values` and the bit shift of its byte/nibble. */
export function elementPosition(bits: QuantBits, Kp: number, n: number, k: number): { word: number; shift: number } {
  if (bits === 8) return { word: n * (Kp >> 2) + (k >> 2), shift: (k & 3) << 3 };
  const e = k & 7;
  return { word: n * (Kp >> 3) + (k >> 3), shift: ((e & 3) << 3) + ((e >> 2) << 2) };
}

/**
 * Reads the stored code of element (n, k): a signed int8 (-128..127) for 8 bits, an unsigned
 * nibble (0..15) for 4 bits. Dequantize as (code - zero) * scale with zero = 0 (int8 symmetric),
 * 8 (int4 symmetric) or zeros[n*groups + g] (asymmetric).
 */
export function readCode(values: Uint32Array, bits: QuantBits, Kp: number, n: number, k: number): number {
  const { word, shift } = elementPosition(bits, Kp, n, k);
  const w = values[word];
  if (bits === 8) return (w << (24 - shift)) >> 24; // sign-extend the byte
  return (w >>> shift) & 0xf;
}

/** Writes a code (int8 -128..127 or nibble 0..15) for element (n, k), replacing what was there. */
export function writeCode(values: Uint32Array, bits: QuantBits, Kp: number, n: number, k: number, code: number): void {
  const { word, shift } = elementPosition(bits, Kp, n, k);
  const mask = bits === 8 ? 0xff : 0xf;
  values[word] = (values[word] & ~(mask << shift)) | ((code & mask) << shift);
}

/** The zero point a kernel subtracts for group (n, g): implicit for symmetric formats. */
export function zeroPoint(q: QuantizedWeight, n: number, g: number): number {
  if (q.zeros !== null) return q.zeros[n * q.groups + g];
  return q.bits === 4 ? 8 : 0;
}

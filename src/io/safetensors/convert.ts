/**
 * Converting raw little-endian tensor bytes to the typed arrays callers compute with. Every
 * platform WebGPU runs on is little-endian, so typed-array views over the bytes are the data.
 */
import type { DType } from './dtypes.ts';
import { SafetensorsError, q } from '../errors.ts';
import { bf16ArrayToF32, f16ArrayToF32, f16BitsToF32, f32ArrayToF16 } from './half.ts';

export type ReadTarget = 'f32' | 'f16' | 'i32' | 'u32' | 'i8' | 'u8';
export const READ_TARGETS: readonly ReadTarget[] = ['f32', 'f16', 'i32', 'u32', 'i8', 'u8'];

/**
 * Throws a typed error unless `target` is a ReadTarget. JavaScript callers (and `as` casts) can
 * pass anything, and 'F32' (a safetensors dtype) is an easy slip for 'f32'.
 */
export function checkReadTarget(target: unknown, where: string): asserts target is ReadTarget {
  if ((READ_TARGETS as readonly unknown[]).includes(target)) return;
  const shown = typeof target === 'string' ? q(target) : String(target);
  const hint = typeof target === 'string' && (READ_TARGETS as readonly string[]).includes(target.toLowerCase()) ? ` (did you mean '${target.toLowerCase()}'? targets are typed-array kinds, not safetensors dtypes)` : '';
  throw new SafetensorsError('SAFETENSORS_BAD_TARGET', `${where}: readAs target ${shown} is not one of ${READ_TARGETS.join(', ')}${hint}`);
}

/** What readAs returns per target; 'f16' is IEEE half bits in a Uint16Array. */
export interface ReadAsResult {
  f32: Float32Array;
  f16: Uint16Array;
  i32: Int32Array;
  u32: Uint32Array;
  i8: Int8Array;
  u8: Uint8Array;
}

type View =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

/** Typed-array view over `bytes` (which must be aligned for the dtype) without copying. */
function view(bytes: Uint8Array, dtype: DType): View {
  const { buffer: b, byteOffset: o, byteLength: n } = bytes;
  switch (dtype) {
    case 'F32':
      return new Float32Array(b, o, n / 4);
    case 'F64':
      return new Float64Array(b, o, n / 8);
    case 'I8':
      return new Int8Array(b, o, n);
    case 'I16':
      return new Int16Array(b, o, n / 2);
    case 'U16':
    case 'F16':
    case 'BF16':
      return new Uint16Array(b, o, n / 2);
    case 'I32':
      return new Int32Array(b, o, n / 4);
    case 'U32':
      return new Uint32Array(b, o, n / 4);
    case 'I64':
      return new BigInt64Array(b, o, n / 8);
    case 'U64':
      return new BigUint64Array(b, o, n / 8);
    default: // BOOL, U8, F8_*
      return bytes;
  }
}

// 256-entry decode tables for the 8-bit floats, built on first use.
let e4m3Table: Float32Array | undefined;
let e5m2Table: Float32Array | undefined;

/** OCP FP8 E4M3 ("FN"): bias 7, subnormals, no infinities, S.1111.111 is NaN. */
function e4m3(): Float32Array {
  if (e4m3Table) return e4m3Table;
  const t = new Float32Array(256);
  for (let b = 0; b < 256; b++) {
    const e = (b >> 3) & 0xf;
    const m = b & 7;
    const mag = e === 0xf && m === 7 ? NaN : e === 0 ? m * 2 ** -9 : 2 ** (e - 7) * (1 + m / 8);
    t[b] = b & 0x80 ? -mag : mag;
  }
  return (e4m3Table = t);
}

/** OCP FP8 E5M2 is the top byte of an f16. */
function e5m2(): Float32Array {
  if (e5m2Table) return e5m2Table;
  const t = new Float32Array(256);
  for (let b = 0; b < 256; b++) t[b] = f16BitsToF32(b << 8);
  return (e5m2Table = t);
}

function lookup(bytes: Uint8Array, table: Float32Array): Float32Array {
  const out = new Float32Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) out[i] = table[bytes[i]];
  return out;
}

function toF32(v: View, dtype: DType): Float32Array | undefined {
  switch (dtype) {
    case 'F32':
      return v as Float32Array;
    case 'F16':
      return f16ArrayToF32(v as Uint16Array);
    case 'BF16':
      return bf16ArrayToF32(v as Uint16Array);
    case 'F8_E4M3':
      return lookup(v as Uint8Array, e4m3());
    case 'F8_E5M2':
      return lookup(v as Uint8Array, e5m2());
    case 'BOOL': {
      const out = new Float32Array(v.length);
      for (let i = 0; i < v.length; i++) out[i] = v[i] ? 1 : 0;
      return out;
    }
    case 'I64':
    case 'U64': {
      const out = new Float32Array(v.length);
      for (let i = 0; i < v.length; i++) out[i] = Number(v[i]);
      return out;
    }
    default: // F64 and the small integer types convert by value (rounding to nearest f32)
      return Float32Array.from(v as Exclude<View, BigInt64Array | BigUint64Array>);
  }
}

const FLOATS: ReadonlySet<DType> = new Set(['F32', 'F16', 'BF16', 'F64', 'F8_E4M3', 'F8_E5M2']);
const INT_RANGE = {
  i32: [-0x8000_0000, 0x7fff_ffff, Int32Array, 'I32'],
  u32: [0, 0xffff_ffff, Uint32Array, 'U32'],
  i8: [-0x80, 0x7f, Int8Array, 'I8'],
  u8: [0, 0xff, Uint8Array, 'U8'],
} as const;

/**
 * Converts `bytes` (owned by the caller, aligned, dtype `dtype`) to `target`. Same-type reads
 * return a view over `bytes`. `where` ("file: tensor "x"") prefixes errors.
 */
export function convert<T extends ReadTarget>(bytes: Uint8Array, dtype: DType, target: T, where: string): ReadAsResult[T] {
  checkReadTarget(target, where);
  const v = view(bytes, dtype);
  const unsupported = (why: string) =>
    new SafetensorsError('SAFETENSORS_UNSUPPORTED_CONVERSION', `${where}: cannot read ${dtype} as ${target}: ${why}`);
  if (target === 'f32') return toF32(v, dtype) as ReadAsResult[T];
  if (target === 'f16') {
    if (dtype === 'F16') return v as ReadAsResult[T];
    if (!FLOATS.has(dtype)) throw unsupported('f16 output is for floating-point tensors; use f32 or an integer target');
    return f32ArrayToF16(toF32(v, dtype)!) as ReadAsResult[T];
  }
  const [min, max, Ctor, same] = INT_RANGE[target as 'i32' | 'u32' | 'i8' | 'u8'];
  if (dtype === same || (target === 'u8' && dtype === 'BOOL')) return new Ctor(v.buffer as ArrayBuffer, v.byteOffset, v.length) as ReadAsResult[T];
  if (FLOATS.has(dtype)) throw unsupported('integer output is for integer tensors; use f32 or f16');
  const out = new Ctor(v.length);
  for (let i = 0; i < v.length; i++) {
    const x = Number(v[i]);
    if (x < min || x > max) {
      throw new SafetensorsError(
        'SAFETENSORS_VALUE_OUT_OF_RANGE',
        `${where}: element ${i} is ${v[i]}, outside the ${target} range [${min}, ${max}]`,
      );
    }
    out[i] = x;
  }
  return out as ReadAsResult[T];
}

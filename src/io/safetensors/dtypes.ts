/** The safetensors dtypes webq understands, with their element sizes. */

export const DTYPES = [
  'BOOL',
  'U8',
  'I8',
  'F8_E5M2',
  'F8_E4M3',
  'I16',
  'U16',
  'F16',
  'BF16',
  'I32',
  'U32',
  'F32',
  'F64',
  'I64',
  'U64',
] as const;

export type DType = (typeof DTYPES)[number];

/** Bytes per element. */
export const DTYPE_SIZE: Readonly<Record<DType, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
};

const DTYPE_SET: ReadonlySet<string> = new Set(DTYPES);

export function isDType(x: unknown): x is DType {
  return typeof x === 'string' && DTYPE_SET.has(x);
}

/** Metadata of one tensor as laid out in a safetensors file. */
export interface TensorInfo {
  readonly name: string;
  readonly dtype: DType;
  /** Row-major dimensions; [] is a scalar (one element). */
  readonly shape: readonly number[];
  /** Product of the shape. */
  readonly elements: number;
  readonly byteLength: number;
  /** [begin, end) relative to the start of the data buffer (after the header). */
  readonly dataOffsets: readonly [number, number];
}

/**
 * Element count of `shape`, or undefined when it, or its byte size for an element of
 * `elementSize` bytes, exceeds Number.MAX_SAFE_INTEGER (beyond that, offsets can't be exact).
 */
export function elementCount(shape: readonly number[], elementSize: number): number | undefined {
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (n > Number.MAX_SAFE_INTEGER) return undefined;
  }
  return n * elementSize > Number.MAX_SAFE_INTEGER ? undefined : n;
}

/** "[2, 3]" style shape text for messages and listings. */
export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

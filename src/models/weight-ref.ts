/** What every family's weight table is made of: a resolved tensor, and the checks each resolver makes. */
import type { DType } from '../io/safetensors/dtypes.ts';
import type { TensorStore } from '../io/safetensors/reader.ts';
import type { ImportedLinear, ImportFormat } from '../quant/imports/index.ts';

/** One resolved tensor: its canonical name (unprefixed, `.weight`/`.bias`), its name in the file. */
export interface WeightRef {
  /** e.g. `encoder.layer.0.attention.output.LayerNorm.weight`, whatever the file calls it. */
  readonly key: string;
  /** e.g. `bert.encoder.layer.0.attention.output.LayerNorm.gamma`: pass this to the store. */
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: DType;
  /**
   * Stored pre-quantized: by webq (`name.qvalues` / `.qscales` / `.qzeros`, src/quant/prequantized.ts),
   * or, with `imported`, by another tool.
   */
  readonly quantized?: boolean;
  /** Stored pre-quantized by another tool (GPTQ, AWQ, ...; src/quant/imports), its headers checked. */
  readonly imported?: ImportedLinear;
  /** Rows `start` .. start + count - 1 of the stored tensor `name` (a fused Linear's part: Phi-3's qkv_proj); `shape` is the part's. */
  readonly rows?: { readonly start: number; readonly count: number };
  /** Added to every value on upload (a float vector only): Gemma's RMSNorm weights w scale by 1 + w. */
  readonly offset?: number;
}

/**
 * The Linear weight `name` ("<base>.weight", [out, in]) as another tool's quantized tensors, or
 * null when it is stored as a float (or there is no import format).
 */
export function importedRef(store: TensorStore, format: ImportFormat | null, key: string, name: string, shape: readonly number[]): WeightRef | null {
  if (!format || !name.endsWith('.weight')) return null;
  const imported = format.linear(store, name.slice(0, -'.weight'.length), shape[0], shape[1]);
  return imported ? { key, name, shape, dtype: 'F32', quantized: true, imported } : null;
}

/** The stored dtypes a weight may have (read as f32 / f16 on upload). */
export const FLOAT_DTYPES: ReadonlySet<DType> = new Set(['F32', 'F16', 'BF16', 'F64']);

export function shapeText(s: readonly number[]): string {
  return `[${s.join(', ')}]`;
}

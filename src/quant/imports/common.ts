/**
 * What every importer of another tool's quantized checkpoint shares: the error type, the
 * quantization_config field readers, tensor header checks that name the tensor, and reads of
 * packed int32 words (bit patterns, so never range-converted).
 */
import { WebqError } from '../../errors.ts';
import type { DType } from '../../io/safetensors/dtypes.ts';
import type { JsonObject, JsonValue } from '../../io/json.ts';
import type { TensorStore } from '../../io/safetensors/reader.ts';
import type { IntGroups } from './int-weight.ts';

export type ImportErrorCode =
  | 'QUANT_IMPORT_CONFIG' // quantization_config is malformed
  | 'QUANT_IMPORT_UNSUPPORTED' // a real format or variant webq does not run (named in the message)
  | 'QUANT_IMPORT_TENSOR' // a tensor contradicts quantization_config or is missing
  | 'QUANT_IMPORT_VALUES'; // a scale that is not finite or too large for its codes' products to be

/** A pre-quantized checkpoint of another tool that webq cannot read as it is. */
export class ImportError extends WebqError {
  declare readonly code: ImportErrorCode;
  constructor(code: ImportErrorCode, message: string) {
    super(code, message);
  }
}

/** The Linear dtypes an imported checkpoint runs with by default (src/models/prepare-linear.ts). */
export type ImportDType = 'q4' | 'q8' | 'w8a8';

/** One quantization method, as config.json's quantization_config declares it. */
export interface ImportFormat {
  /** quant_method: 'gptq', 'awq', 'compressed-tensors' or 'bitsandbytes'. */
  readonly method: string;
  /** One line for people: "GPTQ 4-bit, group 128, asymmetric, act-order (desc_act), v1 zero points". */
  readonly description: string;
  /** The dtype a load uses unless told otherwise. */
  readonly dtype: ImportDType;
  /** Suffix of the tensor that marks a quantized Linear (`.qweight`, `.weight_packed`, `.SCB`). */
  readonly marker: string;
  /**
   * The Linear `base` ([N, K] as in `base.weight`) as stored in this format, its tensor headers
   * checked against the config (bits, group, shapes); null when it is stored as a float weight.
   */
  linear(store: TensorStore, base: string, N: number, K: number): ImportedLinear | null;
  /** [N, K] of a quantized Linear found by its marker (for `webq info`; may read a small tensor). */
  shapeOf(store: TensorStore, base: string): Promise<[number, number]>;
}

/** A quantized Linear in a checkpoint, read in two steps: groups (small), then codes. */
export interface ImportedLinear {
  readonly base: string;
  readonly N: number;
  readonly K: number;
  readonly bits: 4 | 8;
  /** As quantization_config says (the zero points read decide for loading). */
  readonly symmetric: boolean;
  /** The tensors it is stored in. */
  readonly tensors: readonly string[];
  /** Each column's group ([K], checked): all `webq info` reads to tell how the Linear loads. */
  readGIdx(): Promise<Int32Array>;
  /** Scales, zero points and each column's group. */
  readGroups(): Promise<IntGroups>;
  /** The unsigned codes, [N, K] row-major. */
  readCodes(): Promise<Uint8Array>;
}

const shapeText = (s: readonly number[]) => `[${s.join(', ')}]`;

/** JSON of a config value for a message, cut to `max` characters (config.json may be hostile). */
export function shown(v: unknown, max = 80): string {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > max ? `${text.slice(0, max)}... (${text.length} characters)` : text;
}

/** A name from config.json for a message: as it is when short, else quoted and cut. */
export function named(name: string): string {
  return name.length <= 80 ? name : shown(name);
}

/** A table lookup by a name config.json gives: own entries only, never Object.prototype's. */
export function lookup<T>(table: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(table, key) ? table[key] : undefined;
}

/** Every integer in a quantization_config is a bit width or a group size: it fits 32 bits. */
const MAX_CONFIG_INT = 2 ** 31 - 1;

/** Typed readers over quantization_config, naming the field in every message. */
export function configFields(qc: JsonObject, source: string) {
  const where = `${source}: quantization_config`;
  const has = (k: string) => Object.hasOwn(qc, k) && qc[k] !== null;
  const bad = (k: string, want: string) => new ImportError('QUANT_IMPORT_CONFIG', `${where}.${k} must be ${want}, got ${shown(qc[k])}`);
  return {
    where,
    has,
    bad,
    int(k: string, fallback?: number): number {
      if (!has(k)) {
        if (fallback !== undefined) return fallback;
        throw new ImportError('QUANT_IMPORT_CONFIG', `${where} has no "${k}"`);
      }
      const v = qc[k];
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || Math.abs(v) > MAX_CONFIG_INT) throw bad(k, `an integer from -${MAX_CONFIG_INT} to ${MAX_CONFIG_INT}`);
      return v;
    },
    bool(k: string, fallback: boolean): boolean {
      if (!has(k)) return fallback;
      if (typeof qc[k] !== 'boolean') throw bad(k, 'true or false');
      return qc[k] as boolean;
    },
    str(k: string): string | undefined {
      if (!has(k)) return undefined;
      if (typeof qc[k] !== 'string') throw bad(k, 'a string');
      return qc[k] as string;
    },
  };
}

export function isJsonObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Only 4 and 8 bits map onto webq's layouts; anything else is named. */
export function checkBits(bits: number, where: string, what: string): 4 | 8 {
  if (bits === 4 || bits === 8) return bits;
  throw new ImportError('QUANT_IMPORT_UNSUPPORTED', `${where}: ${what} ${bits}-bit weights are not supported; webq runs 4- and 8-bit integer weights`);
}

/** Throws unless `name` exists with one of `dtypes` and exactly `shape`; says why that shape. */
export function expectTensor(store: TensorStore, name: string, dtypes: readonly DType[], shape: readonly number[], why: string): void {
  const t = store.get(name);
  if (!t) throw new ImportError('QUANT_IMPORT_TENSOR', `${store.name}: missing tensor "${name}"; expected ${dtypes.join(' or ')} ${shapeText(shape)} (${why})`);
  if (!dtypes.includes(t.dtype) || t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new ImportError('QUANT_IMPORT_TENSOR', `${store.name}: tensor "${name}" is ${t.dtype} ${shapeText(t.shape)}, expected ${dtypes.join(' or ')} ${shapeText(shape)} (${why})`);
  }
}

/** A tensor's int32 words as unsigned bit patterns (I32 or U32 alike). */
export async function readWords(store: TensorStore, name: string): Promise<Uint32Array> {
  const b = await store.readBytes(name);
  return new Uint32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

/** A tensor as f32 values (scales stored F16, BF16 or F32). */
export async function readF32(store: TensorStore, name: string): Promise<Float32Array> {
  return (await store.readAs(name, 'f32')) as Float32Array;
}

/** The group of each of K columns when groups are contiguous runs of G (the default g_idx). */
export function contiguousGroups(K: number, G: number): Int32Array {
  const g = new Int32Array(K);
  for (let k = 0; k < K; k++) g[k] = Math.floor(k / G);
  return g;
}

/** Reads a g_idx tensor ([K] I32/I64) and checks every entry is a group index below `groups`. */
export async function readGroupIndex(store: TensorStore, name: string, K: number, groups: number): Promise<Int32Array> {
  const g = (await store.readAs(name, 'i32')) as Int32Array;
  for (let k = 0; k < K; k++) {
    if (!(g[k] >= 0 && g[k] < groups)) {
      throw new ImportError('QUANT_IMPORT_TENSOR', `${store.name}: tensor "${name}" has g_idx[${k}] = ${g[k]}; expected a group index from 0 to ${groups - 1} (${groups} groups)`);
    }
  }
  return g;
}

/** "group 128" / "per channel" for messages. */
export function groupText(G: number, K: number): string {
  return G >= K ? 'per channel' : `group ${G}`;
}

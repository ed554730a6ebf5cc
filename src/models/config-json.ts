/**
 * Typed readers for config.json fields, shared by every architecture's config parser: each message
 * names the file and the field, and says what was expected.
 */
import { WebqError } from '../errors.ts';
import { parseStrictJson, type JsonObject, type JsonValue } from '../io/json.ts';

export type ModelConfigErrorCode =
  | 'CONFIG_NOT_JSON' // the text is not a JSON object
  | 'CONFIG_UNSUPPORTED_MODEL_TYPE' // model_type missing or not one webq runs
  | 'CONFIG_MISSING_FIELD' // a required field is absent
  | 'CONFIG_BAD_FIELD' // a field has the wrong type or an impossible value
  | 'CONFIG_UNSUPPORTED_FEATURE'; // valid for transformers, but not implemented here (activation, ...)

/**
 * Upper bounds on the sizes config.json gives, checked before anything is sized from them (a
 * per-layer list, a KV cache, a loop over layers). A model repo is untrusted input: a config with
 * num_hidden_layers 2147483648 must be one typed error, not a heap exhausted in Array.from. Each
 * bound is far above every released model (the largest, in brackets) and low enough that nothing
 * sized by it alone can exhaust memory; the tensors in the checkpoint must then match these sizes
 * exactly, and the adapter's buffer limits are checked where the GPU is known (api/llm.ts).
 */
export const CONFIG_BOUNDS = Object.freeze({
  /** num_hidden_layers (126: Llama 3.1 405B). */
  layers: 1024,
  /** hidden_size (16,384: Llama 3.1 405B). */
  hidden: 65_536,
  /** intermediate_size (53,248: Llama 3.1 405B). */
  intermediate: 1 << 20,
  /** num_attention_heads, num_key_value_heads (128: Llama 3.1 405B). */
  heads: 1024,
  /** vocab_size (262,144: Gemma 3). */
  vocab: 1 << 22,
  /** max_position_embeddings and other position counts (10,485,760: Llama 4 Scout). */
  positions: 1 << 24,
  /** type_vocab_size (2 in BERT), num_labels / id2label. */
  types: 1 << 16,
  /** sliding_window: a position count the shaders take as a 32-bit integer. */
  window: 2 ** 31 - 1,
});

/** config.json is malformed, or describes a model webq cannot run. */
export class ModelConfigError extends WebqError {
  declare readonly code: ModelConfigErrorCode;
  constructor(code: ModelConfigErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

export function isObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function toJson(input: string | JsonValue | object, source: string): JsonObject {
  let v: unknown = input;
  if (typeof input === 'string') {
    try {
      v = parseStrictJson(input);
    } catch (e) {
      throw new ModelConfigError('CONFIG_NOT_JSON', `${source}: not valid JSON: ${e instanceof Error ? e.message : e}`, { cause: e });
    }
  }
  if (!isObject(v as JsonValue)) throw new ModelConfigError('CONFIG_NOT_JSON', `${source}: expected a JSON object, got ${describe(v)}`);
  return v as JsonObject;
}

/** A value for a message: its kind, and a primitive's JSON cut to 80 characters (the file may be hostile). */
export function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'an array';
  if (v === null) return 'null';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${shortJson(v)}`;
}

/** JSON of a value, cut to `max` characters. */
export function shortJson(v: unknown, max = 80): string {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > max ? `${text.slice(0, max)}... (${text.length} characters)` : text;
}

/** Field readers bound to one file, so every message names the file and the field. */
export function fields(json: JsonObject, source: string) {
  const has = (k: string) => Object.hasOwn(json, k) && json[k] !== null;
  const bad = (k: string, want: string) =>
    new ModelConfigError('CONFIG_BAD_FIELD', `${source}: field "${k}" must be ${want}, got ${describe(json[k])}`);
  /** An integer from `min` to `max`; `fallback` when absent (required when there is none). */
  const int = (k: string, min: number, max: number, fallback?: number): number => {
    const want = `an integer from ${min} to ${max}`;
    if (!has(k)) {
      if (fallback !== undefined) return fallback;
      throw new ModelConfigError('CONFIG_MISSING_FIELD', `${source}: required field "${k}" is missing; expected ${want}`);
    }
    const v = json[k];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) throw bad(k, want);
    return v;
  };
  const num = (k: string, fallback: number): number => {
    if (!has(k)) return fallback;
    const v = json[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw bad(k, 'a positive number');
    return v;
  };
  const str = (k: string): string | undefined => {
    if (!has(k)) return undefined;
    const v = json[k];
    if (typeof v !== 'string') throw bad(k, 'a string');
    return v;
  };
  const bool = (k: string, fallback: boolean): boolean => {
    if (!has(k)) return fallback;
    const v = json[k];
    if (typeof v !== 'boolean') throw bad(k, 'true or false');
    return v;
  };
  return { has, bad, int, num, str, bool };
}


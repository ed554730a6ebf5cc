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

export function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'an array';
  if (v === null) return 'null';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)}`;
}

/** Field readers bound to one file, so every message names the file and the field. */
export function fields(json: JsonObject, source: string) {
  const has = (k: string) => Object.hasOwn(json, k) && json[k] !== null;
  const bad = (k: string, want: string) =>
    new ModelConfigError('CONFIG_BAD_FIELD', `${source}: field "${k}" must be ${want}, got ${describe(json[k])}`);
  const int = (k: string, min: number, fallback?: number): number => {
    if (!has(k)) {
      if (fallback !== undefined) return fallback;
      throw new ModelConfigError('CONFIG_MISSING_FIELD', `${source}: required field "${k}" is missing; expected an integer >= ${min}`);
    }
    const v = json[k];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw bad(k, `an integer >= ${min}`);
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


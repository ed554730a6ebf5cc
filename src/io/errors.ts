/**
 * Error classes for the io layer. Codes are closed unions so a typo in a throw site is a type error
 * and callers can switch on them exhaustively.
 */
import { WebqError } from '../errors.ts';

export type SafetensorsErrorCode =
  | 'SAFETENSORS_HEADER_TOO_SMALL'
  | 'SAFETENSORS_HEADER_TOO_LARGE'
  | 'SAFETENSORS_HEADER_PAST_EOF'
  | 'SAFETENSORS_HEADER_NOT_UTF8'
  | 'SAFETENSORS_HEADER_NOT_JSON'
  | 'SAFETENSORS_HEADER_NOT_OBJECT'
  | 'SAFETENSORS_BAD_ENTRY'
  | 'SAFETENSORS_UNKNOWN_DTYPE'
  | 'SAFETENSORS_BAD_SHAPE'
  | 'SAFETENSORS_SHAPE_OVERFLOW'
  | 'SAFETENSORS_INVALID_OFFSETS'
  | 'SAFETENSORS_OVERLAP'
  | 'SAFETENSORS_GAP'
  | 'SAFETENSORS_SIZE_MISMATCH'
  | 'SAFETENSORS_TRAILING_BYTES'
  | 'SAFETENSORS_DATA_PAST_EOF'
  | 'SAFETENSORS_BAD_METADATA'
  | 'SAFETENSORS_FORBIDDEN_NAME'
  | 'SAFETENSORS_DUPLICATE_NAME'
  | 'SAFETENSORS_TENSOR_NOT_FOUND'
  | 'SAFETENSORS_UNSUPPORTED_CONVERSION'
  | 'SAFETENSORS_BAD_TARGET'
  | 'SAFETENSORS_VALUE_OUT_OF_RANGE'
  | 'SAFETENSORS_SHARD_MISSING'
  | 'SAFETENSORS_SHARD_DUPLICATE'
  | 'SAFETENSORS_BAD_INDEX'
  | 'SAFETENSORS_NO_CHECKPOINT'
  | 'SAFETENSORS_WRITE_FAILED';

/** A safetensors file, index or checkpoint folder is malformed or inconsistent, or a read misuses it. */
export class SafetensorsError extends WebqError {
  declare readonly code: SafetensorsErrorCode;
  constructor(code: SafetensorsErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

export type SourceErrorCode =
  | 'SOURCE_NOT_FOUND' // no such file, or HTTP 404/410
  | 'SOURCE_HTTP' // any other non-OK HTTP status
  | 'SOURCE_NETWORK' // the request itself failed (DNS, refused connection, ...)
  | 'SOURCE_TIMEOUT' // the server sent nothing for the network timeout (headers or body)
  | 'SOURCE_OFFLINE' // offline mode, and the file is not in the cache
  | 'SOURCE_SHORT_READ' // fewer bytes than requested: truncated file or body
  | 'SOURCE_BAD_RANGE' // server answered a different range than asked for
  | 'SOURCE_IO' // other local I/O failure
  | 'SOURCE_UNSUPPORTED' // e.g. a local path in a browser
  | 'SOURCE_BAD_INPUT'; // not a path, URL, Blob, bytes or ByteSource at all

/** Reading raw bytes (file, Blob, URL) failed. */
export class SourceError extends WebqError {
  declare readonly code: SourceErrorCode;
  /** HTTP status when the failure was an HTTP answer. */
  readonly status: number | undefined;
  constructor(code: SourceErrorCode, message: string, options?: { cause?: unknown; status?: number }) {
    super(code, message, options);
    this.status = options?.status;
  }
}

/** Most characters of a name or value an error message quotes (a 100 MB name must not make a 100 MB message). */
export const MAX_QUOTED = 200;

/** `text` cut to `max` characters, saying how long it was. */
export function clip(text: string, max = MAX_QUOTED): string {
  return text.length <= max ? text : `${text.slice(0, max)}... (${text.length} characters)`;
}

/**
 * JSON.stringify for names in messages: shows empty names, quotes and newlines unambiguously.
 * Long names are cut to MAX_QUOTED characters.
 */
export function q(name: string): string {
  if (name.length <= MAX_QUOTED) return JSON.stringify(name);
  return `${JSON.stringify(name.slice(0, MAX_QUOTED))}... (${name.length} characters)`;
}

/** A JSON value for a message, cut to MAX_QUOTED characters. */
export function showJson(v: unknown): string {
  if (typeof v === 'string') return q(v);
  return clip(JSON.stringify(v) ?? String(v));
}

/**
 * Safetensors header validation. Mirrors the checks of the reference reader (huggingface/safetensors)
 * and adds the ones JSON.parse-based readers miss (duplicate names, `__proto__`), so a file that
 * passes here can be read tensor by tensor with plain offset arithmetic.
 */
import { DTYPES, DTYPE_SIZE, elementCount, formatShape, isDType, type TensorInfo } from './dtypes.ts';
import { SafetensorsError, clip, q, showJson } from '../errors.ts';
import { JsonDuplicateKeyError, parseStrictJson, type JsonObject, type JsonValue } from '../json.ts';

/** Same cap as the reference reader: a bigger header is corruption, not a real model. */
export const MAX_HEADER_BYTES = 100_000_000;

export interface ParsedHeader {
  /** Sorted by data offset, i.e. file order. */
  readonly tensors: readonly TensorInfo[];
  readonly metadata: Readonly<Record<string, string>>;
  /** File offset of the data buffer: 8 + header length. */
  readonly dataStart: number;
}

/**
 * Validates the 8-byte length prefix against the file size and returns the header length. Runs
 * before the header is read, so a corrupt length never turns into a huge allocation.
 */
export function checkHeaderLength(prefix: Uint8Array, fileSize: number, source: string): number {
  if (fileSize < 8 || prefix.length < 8) {
    throw new SafetensorsError(
      'SAFETENSORS_HEADER_TOO_SMALL',
      `${source}: file is ${fileSize} bytes; a safetensors file starts with an 8-byte header length`,
    );
  }
  const dv = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const lo = dv.getUint32(0, true);
  const hi = dv.getUint32(4, true);
  // Exact below 2^53; anything with hi > 0 is far past the cap anyway.
  const n = hi * 0x1_0000_0000 + lo;
  if (n > MAX_HEADER_BYTES) {
    throw new SafetensorsError(
      'SAFETENSORS_HEADER_TOO_LARGE',
      `${source}: header length field says ${n} bytes; at most ${MAX_HEADER_BYTES} are accepted (corrupt file, or not safetensors)`,
    );
  }
  if (8 + n > fileSize) {
    throw new SafetensorsError(
      'SAFETENSORS_HEADER_PAST_EOF',
      `${source}: header length field says ${n} bytes but only ${fileSize - 8} bytes follow it (truncated file?)`,
    );
  }
  return n;
}

function kind(v: JsonValue | undefined): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${showJson(v)}`;
}

/** How the reference reader (serde into usize) wants shape and offset numbers spelled. */
const PLAIN_UINT = /^(?:0|[1-9][0-9]*)$/;

/**
 * Rejects `2.0`, `8e0` and `-0` in a tensor's shape or data_offsets while parsing: they parse to
 * integers, but the reference reader refuses them, and a file must mean the same to both.
 */
function checkNumber(source: string) {
  return (literal: string, path: readonly string[]): void => {
    const [name, field] = path;
    if (path.length !== 2 || name === '__metadata__' || (field !== 'shape' && field !== 'data_offsets') || PLAIN_UINT.test(literal)) return;
    const code = field === 'shape' ? 'SAFETENSORS_BAD_SHAPE' : 'SAFETENSORS_BAD_ENTRY';
    throw new SafetensorsError(
      code,
      `${source}: tensor ${q(name)}: ${field} holds the number ${clip(literal, 40)}; expected non-negative integers written as plain digits (no fraction, exponent or sign)`,
    );
  };
}

function isObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function decodeJson(bytes: Uint8Array, source: string): JsonValue {
  let text: string;
  try {
    // fatal: invalid UTF-8 must fail, not become U+FFFD; ignoreBOM keeps a BOM so JSON rejects it
    // as the reference does.
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (e) {
    throw new SafetensorsError('SAFETENSORS_HEADER_NOT_UTF8', `${source}: header is not valid UTF-8 text`, { cause: e });
  }
  try {
    return parseStrictJson(text, { onNumber: checkNumber(source) });
  } catch (e) {
    if (e instanceof SafetensorsError) throw e;
    if (e instanceof JsonDuplicateKeyError) {
      const [top, ...rest] = e.path;
      if (top === undefined) {
        throw new SafetensorsError('SAFETENSORS_DUPLICATE_NAME', `${source}: tensor ${q(e.key)} appears twice in the header`, { cause: e });
      }
      if (top === '__metadata__' && rest.length === 0) {
        throw new SafetensorsError('SAFETENSORS_BAD_METADATA', `${source}: __metadata__ key ${q(e.key)} appears twice`, { cause: e });
      }
      throw new SafetensorsError('SAFETENSORS_BAD_ENTRY', `${source}: tensor ${q(top)}: field ${q(e.key)} appears twice`, { cause: e });
    }
    const detail = e instanceof Error ? e.message : String(e);
    throw new SafetensorsError('SAFETENSORS_HEADER_NOT_JSON', `${source}: header is not valid JSON: ${detail}`, { cause: e });
  }
}

function parseMetadata(v: JsonValue, source: string): Record<string, string> {
  if (!isObject(v)) {
    throw new SafetensorsError('SAFETENSORS_BAD_METADATA', `${source}: __metadata__ must be an object of strings, got ${kind(v)}`);
  }
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== 'string') {
      throw new SafetensorsError('SAFETENSORS_BAD_METADATA', `${source}: __metadata__ ${q(k)} must be a string, got ${kind(val)}`);
    }
  }
  return v as Record<string, string>;
}

function parseEntry(name: string, v: JsonValue, source: string): TensorInfo {
  const where = `${source}: tensor ${q(name)}`;
  const bad = (what: string) =>
    new SafetensorsError('SAFETENSORS_BAD_ENTRY', `${where}: ${what}; expected {"dtype", "shape", "data_offsets"}`);
  if (!isObject(v)) throw bad(`entry is ${kind(v)}, not an object`);
  for (const field of ['dtype', 'shape', 'data_offsets']) {
    if (!Object.hasOwn(v, field)) throw bad(`missing ${q(field)}`);
  }
  const { dtype, shape, data_offsets: offsets } = v;
  if (!isDType(dtype)) {
    throw new SafetensorsError('SAFETENSORS_UNKNOWN_DTYPE', `${where}: unknown dtype ${kind(dtype)}; expected one of ${DTYPES.join(', ')}`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) {
    throw new SafetensorsError('SAFETENSORS_BAD_SHAPE', `${where}: shape must be an array of non-negative integers, got ${showJson(shape)}`);
  }
  const dims = shape as number[];
  const size = DTYPE_SIZE[dtype];
  const elements = elementCount(dims, size);
  if (elements === undefined) {
    throw new SafetensorsError(
      'SAFETENSORS_SHAPE_OVERFLOW',
      `${where}: shape ${clip(formatShape(dims))} of ${dtype} has more bytes than ${Number.MAX_SAFE_INTEGER}`,
    );
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => typeof o === 'number' && Number.isSafeInteger(o) && o >= 0)
  ) {
    throw bad(`data_offsets must be [begin, end] with non-negative integers, got ${showJson(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) {
    throw new SafetensorsError('SAFETENSORS_INVALID_OFFSETS', `${where}: data_offsets [${begin}, ${end}] end before they begin`);
  }
  const byteLength = elements * size;
  if (end - begin !== byteLength) {
    throw new SafetensorsError(
      'SAFETENSORS_SIZE_MISMATCH',
      `${where}: data_offsets [${begin}, ${end}] span ${end - begin} bytes, but ${dtype} ${clip(formatShape(dims))} needs ${byteLength}`,
    );
  }
  return { name, dtype, shape: Object.freeze([...dims]), elements, byteLength, dataOffsets: Object.freeze([begin, end] as const) };
}

/**
 * Parses and validates header bytes. The header's length and `fileSize` locate the data buffer,
 * which the tensors must tile exactly: no overlap, no gap, nothing left over, nothing past the end.
 */
export function parseHeader(header: Uint8Array, fileSize: number, source: string): ParsedHeader {
  const root = decodeJson(header, source);
  if (!isObject(root)) {
    throw new SafetensorsError(
      'SAFETENSORS_HEADER_NOT_OBJECT',
      `${source}: header must be a JSON object mapping tensor names to entries, got ${kind(root)}`,
    );
  }
  let metadata: Record<string, string> = Object.create(null);
  const tensors: TensorInfo[] = [];
  for (const [name, entry] of Object.entries(root)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(entry, source);
      continue;
    }
    if (name === '__proto__') {
      throw new SafetensorsError('SAFETENSORS_FORBIDDEN_NAME', `${source}: tensor name "__proto__" is not allowed`);
    }
    tensors.push(parseEntry(name, entry, source));
  }

  // Same order as the reference: by offsets; names break ties between empty tensors.
  tensors.sort(
    (a, b) =>
      a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
  let cursor = 0;
  let prev: TensorInfo | undefined;
  for (const t of tensors) {
    const [begin, end] = t.dataOffsets;
    const after = prev ? `tensor ${q(prev.name)}, which ends at ${cursor}` : `the start of the data buffer (offset 0)`;
    if (begin < cursor) {
      throw new SafetensorsError('SAFETENSORS_OVERLAP', `${source}: tensor ${q(t.name)} data_offsets [${begin}, ${end}] overlap ${after}`);
    }
    if (begin > cursor) {
      throw new SafetensorsError(
        'SAFETENSORS_GAP',
        `${source}: tensor ${q(t.name)} starts at ${begin}, leaving a gap after ${after}; expected tensors to be contiguous`,
      );
    }
    cursor = end;
    prev = t;
  }

  const dataStart = 8 + header.length;
  const available = fileSize - dataStart;
  if (cursor > available) {
    // Name the first tensor that doesn't fit: that is where the truncation starts.
    const first = tensors.find((t) => t.dataOffsets[1] > available)!;
    throw new SafetensorsError(
      'SAFETENSORS_DATA_PAST_EOF',
      `${source}: tensor ${q(first.name)} ends at data offset ${first.dataOffsets[1]}, but the file has only ${available} data bytes (truncated file?)`,
    );
  }
  if (cursor < available) {
    throw new SafetensorsError(
      'SAFETENSORS_TRAILING_BYTES',
      `${source}: ${available - cursor} unexpected bytes after the last tensor (data should end at offset ${cursor}, file has ${available} data bytes)`,
    );
  }
  return { tensors, metadata: Object.freeze(metadata), dataStart };
}

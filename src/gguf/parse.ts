/**
 * Reading a GGUF file's header with @huggingface/gguf (the Hugging Face hub's own parser): the
 * typed metadata and the tensor table. The parser reads by HTTP range requests; here its fetch is
 * answered from any ByteSource (a local file, a cached download, a Blob, or a URL read by ranges),
 * so one code path serves every runtime and nothing but the header is read. The tensor table is
 * then checked against the file: known types, whole blocks per row, data inside the file, no
 * overlaps. GGUF dims are ggml's: ne0 (a row, the innermost) first; `shape` here is row-major
 * ([rows, ne0], as PyTorch and safetensors write it).
 */
import { gguf, GGUFValueType, type GGUFTypedMetadata } from '@huggingface/gguf';
import type { ByteSource } from '../io/source.ts';
import { GgufError } from './errors.ts';
import { ggmlType, rowBytes, type GgmlType } from './ggml-types.ts';

export type MetadataValue = string | number | bigint | boolean | MetadataValue[];

export interface GgufTensor {
  /** The GGUF name, e.g. "blk.0.attn_q.weight". */
  readonly name: string;
  readonly type: GgmlType;
  /** Row-major: [ne1, ne0] for a matrix, [ne0] for a vector. */
  readonly shape: readonly number[];
  readonly elements: number;
  /** Absolute offset of its data in the file, and its byte length. */
  readonly offset: number;
  readonly byteLength: number;
}

export interface GgufHeader {
  readonly name: string;
  readonly version: number;
  /** key -> value, with each array's element type for the tokenizer keys. */
  readonly metadata: ReadonlyMap<string, { value: MetadataValue; type: GGUFValueType; subType?: GGUFValueType }>;
  readonly tensors: readonly GgufTensor[];
  readonly fileSize: number;
}

/** A fetch answering Range requests from `source` (the parser asks for 2 MB chunks, maybe past the end). */
function sourceFetch(source: ByteSource, size: number): typeof fetch {
  return (async (_url: unknown, init?: { headers?: Record<string, string> }) => {
    const m = /bytes=(\d+)-(\d+)/.exec(init?.headers?.Range ?? '');
    const start = m ? Math.min(Number(m[1]), size) : 0;
    const end = m ? Math.min(Number(m[2]) + 1, size) : size;
    const bytes = end > start ? await source.read(start, end - start) : new Uint8Array(0);
    return new Response(bytes as Uint8Array<ArrayBuffer>, { status: 206, headers: { 'Content-Range': `bytes ${start}-${Math.max(start, end - 1)}/${size}` } });
  }) as typeof fetch;
}

/** Parses and checks the header of the GGUF file `source`. */
export async function readGgufHeader(source: ByteSource): Promise<GgufHeader> {
  const size = await source.size();
  const magic = size >= 4 ? await source.read(0, 4) : new Uint8Array(0);
  if (String.fromCharCode(...magic) !== 'GGUF') {
    throw new GgufError('GGUF_BAD_FILE', `${source.name}: not a GGUF file (it does not start with the bytes "GGUF"; ${size} bytes)`);
  }
  let parsed: Awaited<ReturnType<typeof gguf>> & { typedMetadata: GGUFTypedMetadata };
  try {
    // The URL is never fetched: the fetch above answers every range from the source.
    parsed = await gguf('https://webq.invalid/model.gguf', { fetch: sourceFetch(source, size), typedMetadata: true });
  } catch (e) {
    if (e instanceof GgufError) throw e;
    throw new GgufError('GGUF_BAD_FILE', `${source.name}: the GGUF header does not parse: ${e instanceof Error ? e.message : e}`, { cause: e });
  }
  const metadata = new Map(Object.entries(parsed.typedMetadata).map(([k, v]) => [k, v as { value: MetadataValue; type: GGUFValueType; subType?: GGUFValueType }]));
  const dataStart = Number(parsed.tensorDataOffset);
  const tensors: GgufTensor[] = [];
  const seen = new Set<string>();
  for (const info of parsed.tensorInfos) {
    const where = `${source.name}: tensor "${info.name}"`;
    if (seen.has(info.name)) throw new GgufError('GGUF_TENSOR', `${where} appears twice in the tensor table`);
    seen.add(info.name);
    const type = ggmlType(info.dtype, where);
    const dims = info.shape.map(Number);
    if (dims.length === 0 || dims.length > 2 || dims.some((d) => !Number.isSafeInteger(d) || d < 1)) {
      throw new GgufError('GGUF_TENSOR', `${where} has dimensions [${info.shape.join(', ')}]; webq reads vectors and matrices with positive dimensions`);
    }
    const [ne0, ne1 = 1] = dims;
    const elements = ne0 * ne1;
    const byteLength = rowBytes(type, ne0, where) * ne1;
    const offset = dataStart + Number(info.offset);
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(byteLength) || offset + byteLength > size) {
      throw new GgufError('GGUF_TENSOR', `${where}: its data (${byteLength} bytes at offset ${offset}) goes past the end of the file (${size} bytes); is the file truncated?`);
    }
    tensors.push({ name: info.name, type, shape: dims.length === 1 ? [ne0] : [ne1, ne0], elements, offset, byteLength });
  }
  const sorted = [...tensors].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const p = sorted[i - 1];
    if (p.offset + p.byteLength > sorted[i].offset) throw new GgufError('GGUF_TENSOR', `${source.name}: tensors "${p.name}" and "${sorted[i].name}" overlap in the file`);
  }
  return { name: source.name, version: Number(parsed.metadata.version), metadata, tensors, fileSize: size };
}

/** Typed metadata access that names the file and key in every error. */
export class GgufMeta {
  constructor(private readonly h: GgufHeader) {}

  has(key: string): boolean {
    return this.h.metadata.has(key);
  }

  private bad(key: string, want: string, got?: unknown): GgufError {
    const shown = got === undefined ? 'it is missing' : `got ${typeof got === 'bigint' ? got.toString() : JSON.stringify(got)?.slice(0, 80)}`;
    return new GgufError('GGUF_METADATA', `${this.h.name}: metadata "${key}" must be ${want}; ${shown}`);
  }

  /** A non-negative integer (any integer type). */
  int(key: string, fallback?: number): number {
    const e = this.h.metadata.get(key);
    if (!e) {
      if (fallback !== undefined) return fallback;
      throw this.bad(key, 'an integer');
    }
    const v = typeof e.value === 'bigint' ? Number(e.value) : e.value;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw this.bad(key, 'a non-negative integer', e.value);
    return v;
  }

  num(key: string, fallback?: number): number {
    const e = this.h.metadata.get(key);
    if (!e) {
      if (fallback !== undefined) return fallback;
      throw this.bad(key, 'a number');
    }
    const v = typeof e.value === 'bigint' ? Number(e.value) : e.value;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw this.bad(key, 'a finite number', e.value);
    return v;
  }

  str(key: string): string | undefined {
    const e = this.h.metadata.get(key);
    if (!e) return undefined;
    if (typeof e.value !== 'string') throw this.bad(key, 'a string', e.value);
    return e.value;
  }

  bool(key: string): boolean | undefined {
    const e = this.h.metadata.get(key);
    if (!e) return undefined;
    if (typeof e.value !== 'boolean') throw this.bad(key, 'true or false', e.value);
    return e.value;
  }

  /** An array whose elements all pass `ok` (e.g. strings), or undefined when absent. */
  array<T>(key: string, ok: (x: unknown) => x is T, want: string): T[] | undefined {
    const e = this.h.metadata.get(key);
    if (!e) return undefined;
    if (!Array.isArray(e.value)) throw this.bad(key, `an array of ${want}`, e.value);
    const list = e.value as unknown[];
    const i = list.findIndex((x) => !ok(x));
    if (i >= 0) throw this.bad(key, `an array of ${want}`, `element ${i}: ${String(list[i]).slice(0, 40)}`);
    return list as T[];
  }
}

export const isString = (x: unknown): x is string => typeof x === 'string';
export const isNumber = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

/**
 * Writing safetensors files in the reference layout, the one writer of the tree: whole files from
 * tensors in memory (encodeSafetensors, writeSafetensorsFile) and files streamed tensor by tensor
 * when every tensor's name, dtype and shape are known before its data (writeStreaming: `webq
 * quantize`, deltas). Both go through one header encoder and one ordering rule:
 *
 *   header  8-byte little-endian length, then JSON: "__metadata__" first, then the tensors in file
 *           order; padded with spaces to a multiple of 8 (encodeHeader)
 *   order   largest element size first, the given order otherwise (writeOrder), so every tensor's
 *           data is aligned to its element size when the file is memory-mapped or read whole;
 *           whole files give their tensors by name (code point order), as the reference sorts
 */
import { DTYPE_SIZE, DTYPES, elementCount, formatShape, isDType, type DType } from './dtypes.ts';
import { SafetensorsError, q, showJson } from '../errors.ts';
import { loadFs } from '../node-fs.ts';
import { WebqError } from '../../errors.ts';

/** A tensor's header entry: what is known before its data. */
export interface TensorEntry {
  name: string;
  dtype: DType;
  shape: readonly number[];
}

export interface TensorToWrite extends TensorEntry {
  /** Little-endian element data; any typed array is taken as its raw bytes. */
  data: Uint8Array | ArrayBufferView;
}

/** True when `s` has no lone UTF-16 surrogate (which has no UTF-8 form; readers reject it). */
function wellFormed(s: string): boolean {
  return !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);
}

/** Compares by code point, i.e. the byte order of the UTF-8 names, as the reference writer sorts. */
function compareCodePoints(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0)! - y[i].codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/** `entries` in the order they are written: largest element size first, stable otherwise. */
export function writeOrder<T extends TensorEntry>(entries: readonly T[]): T[] {
  return entries.map((e, i) => ({ e, i })).sort((a, b) => DTYPE_SIZE[b.e.dtype] - DTYPE_SIZE[a.e.dtype] || a.i - b.i).map((x) => x.e);
}

function byteLength(e: TensorEntry): number {
  return e.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[e.dtype];
}

/**
 * The header bytes (8-byte length, JSON padded to a multiple of 8) for `entries` in this order,
 * each one's data following the one before. Built by hand so key order is ours (metadata first,
 * then file order), matching the reference.
 */
export function encodeHeader(entries: readonly TensorEntry[], metadata: Record<string, string> = {}): Uint8Array<ArrayBuffer> {
  const parts: string[] = [];
  const meta = Object.entries(metadata);
  if (meta.length) parts.push(`"__metadata__":{${meta.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`);
  let offset = 0;
  for (const e of entries) {
    const end = offset + byteLength(e);
    parts.push(`${JSON.stringify(e.name)}:{"dtype":"${e.dtype}","shape":[${e.shape.join(',')}],"data_offsets":[${offset},${end}]}`);
    offset = end;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const n = Math.ceil(json.length / 8) * 8;
  const head = new Uint8Array(8 + n).fill(0x20);
  new DataView(head.buffer).setBigUint64(0, BigInt(n), true);
  head.set(json, 8);
  return head;
}

type Fail = (code: ConstructorParameters<typeof SafetensorsError>[0], what: string) => SafetensorsError;

function failer(target: string): Fail {
  return (code, what) => new SafetensorsError(code, `cannot write ${target}: ${what}`);
}

/** Checks names (unique, well-formed, not reserved), dtypes and shapes; returns each entry's byte size. */
function checkEntries(entries: readonly TensorEntry[], fail: Fail): number[] {
  const names = new Set<string>();
  return entries.map((t) => {
    const where = `tensor ${q(t.name)}`;
    if (typeof t.name !== 'string' || !wellFormed(t.name)) throw fail('SAFETENSORS_BAD_ENTRY', `${where}: name must be a well-formed string`);
    if (t.name === '__proto__' || t.name === '__metadata__') throw fail('SAFETENSORS_FORBIDDEN_NAME', `tensor name ${q(t.name)} is reserved`);
    if (names.has(t.name)) throw fail('SAFETENSORS_DUPLICATE_NAME', `${where} is given twice`);
    names.add(t.name);
    if (!isDType(t.dtype)) throw fail('SAFETENSORS_UNKNOWN_DTYPE', `${where}: unknown dtype ${q(String(t.dtype))}; expected one of ${DTYPES.join(', ')}`);
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw fail('SAFETENSORS_BAD_SHAPE', `${where}: shape must be an array of non-negative integers, got ${showJson(t.shape)}`);
    }
    const size = DTYPE_SIZE[t.dtype];
    const n = elementCount(t.shape, size);
    if (n === undefined) throw fail('SAFETENSORS_SHAPE_OVERFLOW', `${where}: shape ${formatShape(t.shape)} is too large`);
    return n * size;
  });
}

function checkMetadata(metadata: Record<string, string> | undefined, fail: Fail): void {
  if (metadata === undefined) return;
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
    throw fail('SAFETENSORS_BAD_METADATA', 'metadata must be an object of strings');
  }
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string' || !wellFormed(k) || !wellFormed(v)) {
      throw fail('SAFETENSORS_BAD_METADATA', `metadata ${q(k)} must be a well-formed string, got ${typeof v}`);
    }
  }
}

function sizeMismatch(fail: Fail, e: TensorEntry, got: number, want: number): SafetensorsError {
  return fail('SAFETENSORS_SIZE_MISMATCH', `tensor ${q(e.name)}: data has ${got} bytes, but ${e.dtype} ${formatShape(e.shape)} needs ${want}`);
}

/**
 * Encodes tensors and metadata as safetensors: [prefix + header, ...tensor data] chunks to write in
 * order. Data chunks are views of the inputs, not copies. `target` names the output in errors.
 */
export function encodeSafetensors(
  tensors: readonly TensorToWrite[],
  metadata?: Record<string, string>,
  target = '<safetensors>',
): Uint8Array<ArrayBuffer>[] {
  const fail = failer(target);
  const sizes = checkEntries(tensors, fail);
  const items = tensors.map((t, i) => {
    if (!ArrayBuffer.isView(t.data)) throw fail('SAFETENSORS_BAD_ENTRY', `tensor ${q(t.name)}: data must be a Uint8Array or typed array`);
    // Views, not copies, except over a SharedArrayBuffer: copying those lets the result be typed
    // Uint8Array<ArrayBuffer>, which Blob and fs APIs accept, and pins bytes others could change.
    const view = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    const bytes = view.buffer instanceof ArrayBuffer ? (view as Uint8Array<ArrayBuffer>) : view.slice();
    if (bytes.byteLength !== sizes[i]) throw sizeMismatch(fail, t, bytes.byteLength, sizes[i]);
    return { name: t.name, dtype: t.dtype, shape: [...t.shape], bytes };
  });
  checkMetadata(metadata, fail);
  const order = writeOrder(items.sort((a, b) => compareCodePoints(a.name, b.name)));
  return [encodeHeader(order, metadata), ...order.map((it) => it.bytes).filter((b) => b.byteLength > 0)];
}

/**
 * Writes `path` (a new file: 'wx') from entries already in write order: the header, then each
 * entry's data from `produce`, checked against its expected size, so only the tensor being made
 * is in memory and a checkpoint larger than memory can be written. Returns the data bytes written.
 * `finalMetadata`, when given, is asked for after the data (hashes of it, src/quant/versions.ts)
 * and the header rewritten in place: it must have the same length as `metadata`'s (placeholders
 * of equal size). The caller writes into a temporary folder and renames it (src/quantize/checkpoint.ts).
 */
export async function writeStreaming(path: string, entries: readonly TensorEntry[], metadata: Record<string, string>, produce: (e: TensorEntry, index: number) => Promise<ArrayBufferView>, finalMetadata?: () => Promise<Record<string, string>>): Promise<number> {
  const fail = failer(path);
  const sizes = checkEntries(entries, fail);
  checkMetadata(metadata, fail);
  const fs = await loadFs(path);
  const handle = await fs.open(path, 'wx');
  let total = 0;
  try {
    const put = async (bytes: Uint8Array, at?: number) => {
      for (let done = 0; done < bytes.byteLength; ) done += (await handle.write(bytes, done, bytes.byteLength - done, at === undefined ? undefined : at + done)).bytesWritten;
    };
    const head = encodeHeader(entries, metadata);
    await put(head);
    for (const [i, e] of entries.entries()) {
      const data = await produce(e, i);
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      if (bytes.byteLength !== sizes[i]) throw sizeMismatch(fail, e, bytes.byteLength, sizes[i]);
      await put(bytes);
      total += bytes.byteLength;
    }
    if (finalMetadata) {
      const meta = await finalMetadata();
      checkMetadata(meta, fail);
      const final = encodeHeader(entries, meta);
      if (final.byteLength !== head.byteLength) throw new WebqError('INTERNAL', `${path}: the final header (${final.byteLength} bytes) differs in size from the placeholder one (${head.byteLength})`);
      await put(final, 0);
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
  return total;
}

function randomSuffix(): string {
  const b = crypto.getRandomValues(new Uint8Array(6));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/**
 * Writes a safetensors file atomically: inputs are validated and encoded first, the bytes go to
 * `<path>.tmp-<random>` and are fsynced, then renamed over `path`. A failure at any step removes
 * the temporary file, so `path` is either untouched or complete.
 */
export async function writeSafetensorsFile(path: string, tensors: readonly TensorToWrite[], metadata?: Record<string, string>): Promise<void> {
  const chunks = encodeSafetensors(tensors, metadata, path);
  const fs = await loadFs(path);
  const tmp = `${path}.tmp-${randomSuffix()}`;
  let handle: import('node:fs/promises').FileHandle | undefined;
  try {
    // 'wx': never clobber (or follow a symlink planted at) the temporary name.
    handle = await fs.open(tmp, 'wx');
    for (const chunk of chunks) {
      let done = 0;
      while (done < chunk.byteLength) {
        const { bytesWritten } = await handle.write(chunk, done, chunk.byteLength - done);
        done += bytesWritten;
      }
    }
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fs.rename(tmp, path);
  } catch (e) {
    await handle?.close().catch(() => undefined);
    await fs.rm(tmp, { force: true }).catch(() => undefined);
    const detail = e instanceof Error ? e.message : String(e);
    throw new SafetensorsError('SAFETENSORS_WRITE_FAILED', `cannot write ${path}: ${detail}`, { cause: e });
  }
}

/**
 * Writing safetensors files in the reference layout: header padded with spaces to a multiple of 8,
 * tensors ordered by element size (largest first) then name, so every tensor's data is aligned to
 * its element size when the file is memory-mapped or read whole.
 */
import { DTYPE_SIZE, DTYPES, elementCount, formatShape, isDType, type DType } from './dtypes.ts';
import { SafetensorsError, q, showJson } from '../errors.ts';
import { loadFs } from '../node-fs.ts';

export interface TensorToWrite {
  name: string;
  dtype: DType;
  shape: readonly number[];
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

/**
 * Encodes tensors and metadata as safetensors: [prefix + header, ...tensor data] chunks to write in
 * order. Data chunks are views of the inputs, not copies. `target` names the output in errors.
 */
export function encodeSafetensors(
  tensors: readonly TensorToWrite[],
  metadata?: Record<string, string>,
  target = '<safetensors>',
): Uint8Array<ArrayBuffer>[] {
  const fail = (code: ConstructorParameters<typeof SafetensorsError>[0], what: string) =>
    new SafetensorsError(code, `cannot write ${target}: ${what}`);
  const names = new Set<string>();
  const items = tensors.map((t) => {
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
    if (!ArrayBuffer.isView(t.data)) throw fail('SAFETENSORS_BAD_ENTRY', `${where}: data must be a Uint8Array or typed array`);
    // Views, not copies, except over a SharedArrayBuffer: copying those lets the result be typed
    // Uint8Array<ArrayBuffer>, which Blob and fs APIs accept, and pins bytes others could change.
    const view = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    const bytes = view.buffer instanceof ArrayBuffer ? (view as Uint8Array<ArrayBuffer>) : view.slice();
    if (bytes.byteLength !== n * size) {
      throw fail(
        'SAFETENSORS_SIZE_MISMATCH',
        `${where}: data has ${bytes.byteLength} bytes, but ${t.dtype} ${formatShape(t.shape)} needs ${n * size}`,
      );
    }
    return { name: t.name, dtype: t.dtype, shape: [...t.shape], bytes, size };
  });

  if (metadata !== undefined) {
    if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
      throw fail('SAFETENSORS_BAD_METADATA', 'metadata must be an object of strings');
    }
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string' || !wellFormed(k) || !wellFormed(v)) {
        throw fail('SAFETENSORS_BAD_METADATA', `metadata ${q(k)} must be a well-formed string, got ${typeof v}`);
      }
    }
  }

  items.sort((a, b) => b.size - a.size || compareCodePoints(a.name, b.name));
  // Built by hand so key order is ours (metadata first, then file order), matching the reference.
  const parts: string[] = [];
  if (metadata !== undefined && Object.keys(metadata).length > 0) {
    const entries = Object.entries(metadata).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`);
    parts.push(`"__metadata__":{${entries.join(',')}}`);
  }
  let offset = 0;
  for (const it of items) {
    const end = offset + it.bytes.byteLength;
    parts.push(`${JSON.stringify(it.name)}:{"dtype":"${it.dtype}","shape":[${it.shape.join(',')}],"data_offsets":[${offset},${end}]}`);
    offset = end;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const headerLength = Math.ceil(json.length / 8) * 8;
  const head = new Uint8Array(8 + headerLength).fill(0x20);
  new DataView(head.buffer).setBigUint64(0, BigInt(headerLength), true);
  head.set(json, 8);
  return [head, ...items.map((it) => it.bytes).filter((b) => b.byteLength > 0)];
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

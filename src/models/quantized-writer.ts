/**
 * A safetensors file written tensor by tensor, for `webq quantize`: every tensor's name, dtype and
 * shape are known before any data (the plan fixes them), so the header goes first and each
 * tensor's bytes are produced, written and dropped in turn. Only the tensor being made is in
 * memory, plus what its producer caches (a quantized unit's scales until their turn), so a
 * checkpoint larger than memory still quantizes.
 *
 * Order: every 4-byte tensor (packed codes, F32 tables) before every 2-byte one (F16 scales,
 * zero points, norms), so each tensor's data is aligned to its element size, as the reference
 * writer arranges it. The header is the reference layout: metadata first, padded with spaces to a
 * multiple of 8.
 */
import { DTYPE_SIZE, type DType } from '../io/safetensors/dtypes.ts';
import { loadFs } from '../io/node-fs.ts';
import { WebqError } from '../errors.ts';

export interface TensorEntry {
  name: string;
  dtype: DType;
  shape: readonly number[];
}

/** `entries` in the order they will be written (4-byte elements first, stable otherwise). */
export function writeOrder(entries: readonly TensorEntry[]): TensorEntry[] {
  return [...entries.filter((e) => DTYPE_SIZE[e.dtype] >= 4), ...entries.filter((e) => DTYPE_SIZE[e.dtype] < 4)];
}

function byteLength(e: TensorEntry): number {
  return e.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[e.dtype];
}

/** The header bytes (8-byte length, JSON padded to a multiple of 8) for entries in this order. */
export function safetensorsHeader(entries: readonly TensorEntry[], metadata: Record<string, string>): Uint8Array {
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

/**
 * Writes `path`: the header for `entries` (already in write order), then each entry's data from
 * `produce`, checked against its expected size. Returns the data bytes written. `finalMetadata`,
 * when given, is asked for after the data (hashes of it, src/quant/versions.ts) and its header
 * rewritten in place: it must have the same length as `metadata`'s (placeholders of equal size).
 */
export async function writeStreaming(path: string, entries: readonly TensorEntry[], metadata: Record<string, string>, produce: (e: TensorEntry, index: number) => Promise<ArrayBufferView>, finalMetadata?: () => Promise<Record<string, string>>): Promise<number> {
  const fs = await loadFs(path);
  const handle = await fs.open(path, 'wx');
  let total = 0;
  try {
    const put = async (bytes: Uint8Array) => {
      for (let done = 0; done < bytes.byteLength; ) done += (await handle.write(bytes, done, bytes.byteLength - done)).bytesWritten;
    };
    const head = safetensorsHeader(entries, metadata);
    await put(head);
    for (const [i, e] of entries.entries()) {
      const data = await produce(e, i);
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      if (bytes.byteLength !== byteLength(e)) throw new WebqError('WRITE_SIZE', `${path}: tensor "${e.name}" has ${bytes.byteLength} bytes, but ${e.dtype} [${e.shape.join(', ')}] needs ${byteLength(e)}`);
      await put(bytes);
      total += bytes.byteLength;
    }
    if (finalMetadata) {
      const final = safetensorsHeader(entries, await finalMetadata());
      if (final.byteLength !== head.byteLength) throw new WebqError('INTERNAL', `${path}: the final header (${final.byteLength} bytes) differs in size from the placeholder one (${head.byteLength})`);
      for (let done = 0; done < final.byteLength; ) done += (await handle.write(final, done, final.byteLength - done, done)).bytesWritten;
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
  return total;
}

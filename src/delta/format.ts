/**
 * The delta package: one safetensors file holding the stored tensors of every unit that changed
 * (under their names in the new model), changed side files as U8 tensors named `file:<path>`, and
 * in `__metadata__`:
 *
 *   webq.delta        the manifest (JSON, DeltaManifest): base and target versions with every
 *                     unit's hash, the target's full metadata and tensor order (so a patch writes
 *                     exactly the file a fresh quantization would), where each target unit comes
 *                     from (the delta, or a base unit by name), and what was added, changed,
 *                     removed and renamed
 *   webq.delta.check  sha256 of the manifest text and of every tensor entry of the header (name,
 *                     dtype, shape, offsets): a flipped byte anywhere in the header is caught
 *
 * Data is checked against the manifest's hashes when the delta is applied (unit by unit), so a
 * flipped byte in a tensor is caught too; a truncated file fails the safetensors header check.
 */
import { WebqError } from '../errors.ts';
import type { DType } from '../io/dtypes.ts';
import { SafetensorsFile } from '../io/safetensors.ts';
import type { SourceInput } from '../io/source.ts';
import type { TensorToWrite } from '../io/writer.ts';
import { safetensorsHeader, writeOrder, type TensorEntry } from '../models/quantized-writer.ts';
import { sha256Hex } from '../quant/hash.ts';
import { readModelVersion, type ModelVersion } from '../quant/versions.ts';

export const DELTA_FORMAT = 'webq-delta-1';
const MANIFEST_KEY = 'webq.delta';
const CHECK_KEY = 'webq.delta.check';
export const FILE_PREFIX = 'file:';

export class DeltaError extends WebqError {
  constructor(code: string, message: string) {
    super(code, message);
  }
}

/** A stored tensor of the target model and the unit it belongs to. */
export interface TargetEntry extends TensorEntry {
  unit: string;
}

export type UnitSource = { from: 'delta' } | { from: 'base'; name: string };

export interface DeltaManifest {
  format: typeof DELTA_FORMAT;
  architecture: string;
  base: { version: string; tensors: Record<string, string>; files: Record<string, string> };
  target: { version: string; metadata: Record<string, string>; entries: TargetEntry[] };
  /** Every target unit: its stored tensors are in the delta, or are a base unit's (same bytes). */
  units: Record<string, UnitSource>;
  /** Every target side file: in the delta (`file:<path>`), or the base's. */
  files: Record<string, 'delta' | 'base'>;
  added: string[];
  changed: string[];
  removed: string[];
  renamed: [string, string][];
  filesRemoved: string[];
}

export interface Delta {
  manifest: DeltaManifest;
  /** The target's version as recorded in its metadata. */
  target: ModelVersion;
  store: SafetensorsFile;
  describe: string;
  /** Bytes of the delta file. */
  size: number;
  close(): Promise<void>;
}

async function headerCheck(manifestText: string, tensors: readonly { name: string; dtype: string; shape: readonly number[]; dataOffsets?: readonly number[] }[]): Promise<string> {
  return sha256Hex([manifestText, ...tensors.map((t) => `${t.name}|${t.dtype}|${t.shape.join(',')}|${t.dataOffsets?.join(',') ?? ''}`)].join('\n'));
}

/** The delta file's bytes: header, then the tensors. Units' tensors and side files in `tensors`. */
export async function encodeDelta(manifest: DeltaManifest, tensors: readonly TensorToWrite[]): Promise<Uint8Array[]> {
  const order = writeOrder(tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })));
  const byName = new Map(tensors.map((t) => [t.name, t]));
  let off = 0;
  const withOffsets = order.map((e) => {
    const n = byName.get(e.name)!.data.byteLength;
    const r = { ...e, dataOffsets: [off, off + n] };
    off += n;
    return r;
  });
  const text = JSON.stringify(manifest);
  const head = safetensorsHeader(order, { [MANIFEST_KEY]: text, [CHECK_KEY]: await headerCheck(text, withOffsets) });
  const bytes = (d: Uint8Array | ArrayBufferView) => new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
  return [head, ...order.map((e) => bytes(byName.get(e.name)!.data))];
}

function bad(where: string, what: string): never {
  throw new DeltaError('DELTA_CORRUPT', `${where}: ${what}`);
}

/** Opens a delta and checks its header (manifest shape and checksum); data is checked when applied. */
export async function openDelta(input: SourceInput, name?: string): Promise<Delta> {
  const where = name ?? (typeof input === 'string' ? input : input instanceof URL ? input.href : 'delta');
  let store: SafetensorsFile;
  try {
    store = await SafetensorsFile.open(input);
  } catch (e) {
    const code = (e as { code?: string }).code ?? '';
    if (/NOT_FOUND|ENOENT|404/.test(code) || /ENOENT/.test((e as Error).message)) throw new DeltaError('DELTA_MISSING', `${where}: cannot read the delta (${(e as Error).message})`);
    throw new DeltaError('DELTA_CORRUPT', `${where}: not a complete webq delta (truncated or damaged): ${(e as Error).message}`);
  }
  try {
    const text = store.metadata[MANIFEST_KEY];
    if (text === undefined) bad(where, `has no ${MANIFEST_KEY} manifest: it is not a webq delta (make one with \`webq diff\`)`);
    const check = await headerCheck(text, store.tensors);
    if (store.metadata[CHECK_KEY] !== check) bad(where, `header checksum mismatch (${CHECK_KEY}): the file was damaged or edited`);
    let m: DeltaManifest;
    try {
      m = JSON.parse(text);
    } catch {
      bad(where, `${MANIFEST_KEY} is not JSON`);
    }
    if (m?.format !== DELTA_FORMAT) bad(where, `${MANIFEST_KEY}.format is ${JSON.stringify(m?.format)}; this webq reads "${DELTA_FORMAT}"`);
    if (!m.target?.metadata || !Array.isArray(m.target.entries) || !m.units || !m.base?.tensors) bad(where, `${MANIFEST_KEY} lacks base/target/units`);
    const target = readModelVersion(m.target.metadata, `${where}: target`);
    if (!target || target.version !== m.target.version) bad(where, `target metadata does not carry version ${m.target.version}`);
    for (const e of m.target.entries) {
      const src = m.units[e.unit];
      if (!src) bad(where, `target tensor ${e.name} belongs to unit ${e.unit}, which the manifest does not list`);
      if (src.from === 'delta') {
        const t = store.get(e.name);
        if (!t || t.dtype !== e.dtype || t.shape.join() !== e.shape.join()) bad(where, `tensor ${e.name}: expected ${e.dtype} [${e.shape.join(', ')}] in the delta, found ${t ? `${t.dtype} [${t.shape.join(', ')}]` : 'none'}`);
      } else if (!(src.name in m.base.tensors)) bad(where, `unit ${e.unit} comes from base unit ${src.name}, which the base does not list`);
    }
    for (const [f, from] of Object.entries(m.files ?? {})) {
      if (from === 'delta' && !store.has(FILE_PREFIX + f)) bad(where, `side file ${f} is marked as in the delta, but there is no tensor ${FILE_PREFIX}${f}`);
      if (!(f in target.files)) bad(where, `side file ${f} has no hash in the target`);
    }
    return { manifest: m, target, store, describe: where, size: (await store.source.size()), close: () => store.close() };
  } catch (e) {
    await store.close();
    throw e;
  }
}

/** The delta's bytes of a side file. */
export async function deltaFile(d: Delta, path: string): Promise<Uint8Array> {
  return d.store.readBytes(FILE_PREFIX + path);
}

/** A side file as a delta tensor. */
export function fileTensor(path: string, bytes: Uint8Array): TensorToWrite {
  return { name: FILE_PREFIX + path, dtype: 'U8' as DType, shape: [bytes.byteLength], data: bytes };
}

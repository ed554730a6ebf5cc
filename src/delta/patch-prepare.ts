/**
 * Patching a model's files by a delta, wherever they live (a folder: patch-disk.ts; the download
 * cache: patch-cache.ts): every check of checks.ts first, then the target model's bytes as a header
 * and a list of tensor reads, and the check of the written result before it replaces the old.
 *
 * Nothing is written here: callers write the result beside the old model and swap.
 */
import { DTYPE_SIZE } from '../io/safetensors/dtypes.ts';
import type { TensorStore } from '../io/safetensors/reader.ts';
import { parseModelConfig } from '../models/config.ts';
import { encodeHeader } from '../io/safetensors/writer.ts';
import { readPrequantInfo } from '../quant/prequantized.ts';
import { checkVersion, entriesByUnit, readUnit, sourceName } from './checks.ts';
import { deltaFile, DeltaError, type Delta, type TargetEntry } from './format.ts';
import { sha256Hex } from '../quant/hash.ts';
import { readModelVersion, type ModelVersion } from '../quant/versions.ts';
import { WebqError } from '../errors.ts';

export interface PatchBase {
  /** The model's weights (model.safetensors). */
  store: TensorStore;
  /** For messages. */
  describe: string;
  /** A side file's bytes, or undefined when the model has none. */
  readFile(path: string): Promise<Uint8Array | undefined>;
}

export interface PatchedTensor {
  entry: TargetEntry;
  read(): Promise<Uint8Array>;
}

export interface PatchedModel {
  base: ModelVersion;
  target: ModelVersion;
  /** Header of the new model.safetensors, then its tensors in order. */
  header: Uint8Array;
  tensors: PatchedTensor[];
  /** Bytes of the new model.safetensors. */
  size: number;
  /** Every side file of the target, with where its bytes come from. */
  files: Map<string, () => Promise<Uint8Array>>;
  /** Side files of the base that the target has not. */
  removedFiles: string[];
}

/** The base's version, checked against the delta's base (checks.ts). */
export function checkBaseVersion(base: PatchBase, delta: Delta): ModelVersion {
  return checkVersion(readModelVersion(base.store.metadata, base.describe), base.describe, delta);
}

/** The target's config.json parses as a model of the delta's architecture (so the patched model loads). */
function checkConfig(bytes: Uint8Array, delta: Delta): void {
  const where = `${delta.describe}: the new config.json`;
  let config;
  try {
    config = parseModelConfig(JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)), where);
  } catch (e) {
    throw new DeltaError('DELTA_CORRUPT', e instanceof WebqError ? e.message : `${where}: not valid JSON (${(e as Error).message})`);
  }
  if (config.modelType !== delta.manifest.architecture) throw new DeltaError('DELTA_CORRUPT', `${where}: is a ${config.modelType} model, but the delta says ${delta.manifest.architecture}`);
}

/** Checks everything (see the top of this file) and returns the target model to write. */
export async function preparePatch(base: PatchBase, delta: Delta): Promise<PatchedModel> {
  const m = delta.manifest;
  const bv = checkBaseVersion(base, delta);
  const tv = delta.target;
  // Every unit of the target, read where it is and checked against its hash (then dropped).
  for (const [unit, entries] of entriesByUnit(delta)) {
    const src = m.units[unit];
    await readUnit(entries, src.from === 'delta'
      ? { store: delta.store, describe: delta.describe, fromDelta: true, nameOf: (e) => e.name, want: tv.tensors[unit]?.quantized, mismatch: `${delta.describe}: the data of ${unit} does not match its hash in the manifest (damaged delta)` }
      : { store: base.store, describe: base.describe, fromDelta: false, nameOf: (e) => sourceName(delta, e), want: m.base.tensors[src.name], mismatch: `${base.describe}: the stored tensors of ${src.name} do not match their recorded hash (the model file was changed or damaged)` });
  }
  const tensors: PatchedTensor[] = m.target.entries.map((e) => {
    const store = m.units[e.unit].from === 'delta' ? delta.store : base.store;
    return { entry: e, read: () => store.readBytes(sourceName(delta, e)) };
  });
  const offset = m.target.entries.reduce((n, e) => n + e.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[e.dtype], 0);
  const files = new Map<string, () => Promise<Uint8Array>>();
  for (const [f, from] of Object.entries(m.files)) {
    const bytes = from === 'delta' ? await deltaFile(delta, f) : await base.readFile(f);
    if (!bytes) throw new DeltaError('DELTA_BASE', `${base.describe}: has no ${f}, which the delta keeps from the base`);
    if ((await sha256Hex(bytes)) !== tv.files[f]) {
      throw new DeltaError(from === 'delta' ? 'DELTA_CORRUPT' : 'DELTA_BASE', from === 'delta' ? `${delta.describe}: side file ${f} does not match its hash (damaged delta)` : `${base.describe}: ${f} differs from the base version's (edited after quantization?)`);
    }
    if (f === 'config.json') checkConfig(bytes, delta);
    files.set(f, from === 'delta' ? () => deltaFile(delta, f) : async () => (await base.readFile(f))!);
  }
  const header = encodeHeader(m.target.entries, m.target.metadata);
  return { base: bv, target: tv, header, tensors, size: header.byteLength + offset, files, removedFiles: [...m.filesRemoved] };
}

/**
 * Checks a written (staged) target model before it is committed: webq's own reader opens it, its
 * tensors are the target's, in order, its version is the target's, and every unit and side file
 * hashes to what the target records. `readFile` gives a staged side file's bytes.
 */
export async function checkWritten(store: TensorStore, readFile: (f: string) => Promise<Uint8Array | undefined>, delta: Delta, files: Iterable<string>): Promise<void> {
  const tv = delta.target;
  const where = `${store.name} (the patched model, before it replaces the old one)`;
  const fail = (what: string): never => {
    throw new DeltaError('DELTA_CORRUPT', `${where}: ${what}; nothing was changed`);
  };
  try {
    const entries = delta.manifest.target.entries;
    if (store.tensors.length !== entries.length || store.tensors.some((t, i) => t.name !== entries[i].name || t.dtype !== entries[i].dtype || t.shape.join() !== entries[i].shape.join())) fail('its tensors are not the target\'s');
    if (readModelVersion(store.metadata, where)?.version !== tv.version || !readPrequantInfo(store)) fail(`it does not read back as version ${tv.version}`);
  } catch (e) {
    if (e instanceof DeltaError) throw e;
    fail(`webq's reader refuses it (${(e as Error).message})`);
  }
  for (const [unit, list] of entriesByUnit(delta)) {
    await readUnit(list, { store, describe: where, fromDelta: true, nameOf: (e) => e.name, want: tv.tensors[unit]?.quantized, mismatch: `${where}: unit ${unit} does not hash to the target's; nothing was changed` });
  }
  for (const f of files) {
    const bytes = await readFile(f);
    if (!bytes || (await sha256Hex(bytes)) !== tv.files[f]) fail(`side file ${f} does not hash to the target's`);
  }
}

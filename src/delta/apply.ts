/**
 * Applying a delta, wherever the files live (a folder, the browser's Cache API, memory): every
 * check first, then the target model's bytes as a header and a list of tensor reads. Checks, in
 * order, each a one-line DeltaError naming what failed:
 *
 *   the model's version is the delta's base (else: another model, another version, or already
 *   patched), its recorded unit hashes are the base's, every stored tensor the target reuses hashes
 *   to the base's unit hash, every unit in the delta hashes to the target's, every side file kept
 *   or shipped hashes to its recorded hash.
 *
 * Nothing is written here: callers write the result beside the old model and swap.
 */
import { DTYPE_SIZE } from '../io/safetensors/dtypes.ts';
import type { TensorStore } from '../io/safetensors/reader.ts';
import { parseModelConfig } from '../models/config.ts';
import { safetensorsHeader } from '../models/quantized-writer.ts';
import { readPrequantInfo } from '../quant/prequantized.ts';
import { deltaFile, DeltaError, type Delta, type TargetEntry } from './format.ts';
import { sha256Hex, tensorHash, unitHash } from '../quant/hash.ts';
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

/** The name of a target tensor where its bytes are: the delta's own, or the base unit's under its name. */
export function sourceName(delta: Delta, e: TargetEntry): string {
  const src = delta.manifest.units[e.unit];
  return src.from === 'delta' ? e.name : src.name + e.name.slice(e.unit.length);
}

/** The base's version, checked against the delta's base (see the top of this file). */
export function checkBaseVersion(base: PatchBase, delta: Delta): ModelVersion {
  return checkVersion(readModelVersion(base.store.metadata, base.describe), base.describe, delta);
}

/** A model's version (null: it has none), checked against the delta's base (see the top of this file). */
export function checkVersion(bv: ModelVersion | null, describe: string, delta: Delta): ModelVersion {
  const m = delta.manifest;
  if (!bv) throw new DeltaError('DELTA_BASE', `${describe}: has no model version (not written by \`webq quantize\`), so ${delta.describe} cannot be checked against it`);
  if (bv.version === m.target.version) throw new DeltaError('DELTA_BASE', `${describe}: is already version ${bv.version}, the version ${delta.describe} makes`);
  if (bv.version !== m.base.version) throw new DeltaError('DELTA_BASE', `${delta.describe}: applies to version ${m.base.version} (a ${m.architecture} model), but ${describe} is version ${bv.version}: a delta for another model or version`);
  const units = Object.keys(bv.tensors);
  if (units.length !== Object.keys(m.base.tensors).length) throw new DeltaError('DELTA_BASE', `${describe}: has ${units.length} units, but ${delta.describe} describes version ${m.base.version} with ${Object.keys(m.base.tensors).length}`);
  for (const n of units) {
    if (m.base.tensors[n] !== bv.tensors[n].quantized) throw new DeltaError('DELTA_BASE', `${describe}: unit ${n} is recorded with another hash than ${delta.describe} expects of version ${m.base.version}`);
  }
  const files = Object.keys(bv.files);
  if (files.length !== Object.keys(m.base.files).length || files.some((f) => m.base.files[f] !== bv.files[f])) {
    throw new DeltaError('DELTA_BASE', `${describe}: its side files are not the ones ${delta.describe} describes for version ${m.base.version}`);
  }
  return bv;
}

/** Where one target unit's stored tensors are, for readUnit. */
export interface UnitPlace {
  store: TensorStore;
  /** The store, for messages. */
  describe: string;
  /** The unit's stored tensors are the delta's (a mismatch is a damaged delta), else a model file's. */
  fromDelta: boolean;
  /** A target tensor's name in `store`. */
  nameOf(e: TargetEntry): string;
  /** The hash the unit must have, and what to say when it has not. */
  want: string | undefined;
  mismatch: string;
}

/**
 * Reads the stored tensors of one target unit (`entries`) from where they are, checks each one's
 * dtype and shape and then the unit's hash; returns their bytes by target name.
 */
export async function readUnit(entries: readonly TargetEntry[], at: UnitPlace): Promise<Map<string, Uint8Array>> {
  const parts: { suffix: string; hash: string }[] = [];
  const out = new Map<string, Uint8Array>();
  for (const e of entries) {
    const name = at.nameOf(e);
    const info = at.store.get(name);
    const where = `${at.describe}: tensor ${name}`;
    if (!info) throw new DeltaError(at.fromDelta ? 'DELTA_CORRUPT' : 'DELTA_BASE', `${where}: missing (the new version needs it for ${e.name})`);
    if (info.dtype !== e.dtype || info.shape.join() !== e.shape.join()) throw new DeltaError('DELTA_BASE', `${where}: is ${info.dtype} [${info.shape.join(', ')}], expected ${e.dtype} [${e.shape.join(', ')}]`);
    const bytes = await at.store.readBytes(name);
    parts.push({ suffix: e.name.slice(e.unit.length), hash: await tensorHash(e.dtype, e.shape, bytes) });
    out.set(e.name, bytes);
  }
  if ((await unitHash(parts)) !== at.want) throw new DeltaError(at.fromDelta ? 'DELTA_CORRUPT' : 'DELTA_BASE', at.mismatch);
  return out;
}

/** The target's entries by unit, in the order they are stored. */
export function entriesByUnit(delta: Delta): Map<string, TargetEntry[]> {
  const out = new Map<string, TargetEntry[]>();
  for (const e of delta.manifest.target.entries) {
    const list = out.get(e.unit);
    if (list) list.push(e);
    else out.set(e.unit, [e]);
  }
  return out;
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
  const header = safetensorsHeader(m.target.entries, m.target.metadata);
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

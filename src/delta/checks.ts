/**
 * The checks every way of applying a delta runs (patching files: patch-prepare.ts; updating a
 * loaded model: loaded-update.ts), in order, each a one-line DeltaError naming what failed:
 *
 *   the model's version is the delta's base (else: another model, another version, or already
 *   patched), its recorded unit hashes are the base's, every stored tensor the target reuses hashes
 *   to the base's unit hash, every unit in the delta hashes to the target's, every side file kept
 *   or shipped hashes to its recorded hash.
 */
import type { TensorStore } from '../io/safetensors/reader.ts';
import { tensorHash, unitHash } from '../quant/hash.ts';
import type { ModelVersion } from '../quant/versions.ts';
import { DeltaError, type Delta, type TargetEntry } from './format.ts';

/** The name of a target tensor where its bytes are: the delta's own, or the base unit's under its name. */
export function sourceName(delta: Delta, e: TargetEntry): string {
  const src = delta.manifest.units[e.unit];
  return src.from === 'delta' ? e.name : src.name + e.name.slice(e.unit.length);
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

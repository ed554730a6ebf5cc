/**
 * Model versions: what `webq quantize` records so that a later checkpoint can be shipped as a
 * delta. In the safetensors `__metadata__` of a quantized model:
 *
 *   webq.version   16 hex digits: a hash of everything below, so two files with the same tensors,
 *                  options and side files have the same version, wherever they were made
 *   webq.tensors   JSON, one entry per source tensor (a "unit": a packed weight is up to three
 *                  stored tensors): {"source": sha256 of the source tensor (dtype, shape, bytes),
 *                  "quantized": sha256 of what was stored for it (unitHash), "as": how it was
 *                  stored: {"bits","group","symmetric"} when packed, "F16", or "stored" (as is)}
 *   webq.files     JSON {path: sha256} of the files beside the weights (config.json, tokenizer...)
 *
 * The file is written before its hashes are known, so quantize writes the header with
 * placeholders of the same length and rewrites it at the end (src/io/safetensors/writer.ts).
 */
import { WebqError } from '../errors.ts';
import { sha256Hex } from './hash.ts';

export const VERSION_KEY = 'webq.version';
export const TENSORS_KEY = 'webq.tensors';
export const FILES_KEY = 'webq.files';

/** How one unit was stored. */
export type StoredAs = { bits: number; group: number | 'channel'; symmetric: boolean } | 'F16' | 'stored';

export interface UnitVersion {
  source: string;
  quantized: string;
  as: StoredAs;
}

export interface ModelVersion {
  version: string;
  /** By unit (source tensor) name, in the order the plan lists them. */
  tensors: Record<string, UnitVersion>;
  /** Side files by path. */
  files: Record<string, string>;
}

/** A hash not yet known; the same length as a real one so the header keeps its size. */
export const HASH_PLACEHOLDER = '0'.repeat(64);
export const VERSION_PLACEHOLDER = '0'.repeat(16);

export class VersionError extends WebqError {
  constructor(message: string) {
    super('MODEL_VERSION', message);
  }
}

function sortedObject<T>(o: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** The version of a model with these units and side files. */
export async function versionOf(tensors: Record<string, UnitVersion>, files: Record<string, string>): Promise<string> {
  const canon = JSON.stringify({ tensors: sortedObject(tensors), files: sortedObject(files) });
  return (await sha256Hex(canon)).slice(0, 16);
}

/** The metadata entries for a version (see the top of this file). */
export function versionMetadata(v: ModelVersion): Record<string, string> {
  return { [VERSION_KEY]: v.version, [TENSORS_KEY]: JSON.stringify(v.tensors), [FILES_KEY]: JSON.stringify(v.files) };
}

export function sameStoredAs(a: StoredAs, b: StoredAs): boolean {
  if (typeof a === 'string' || typeof b === 'string') return a === b;
  return a.bits === b.bits && a.group === b.group && a.symmetric === b.symmetric;
}

export function describeStoredAs(a: StoredAs): string {
  return typeof a === 'string' ? a : `int${a.bits} group ${a.group}${a.symmetric ? '' : ' asymmetric'}`;
}

const HEX64 = /^[0-9a-f]{64}$/;

function parseJsonField(metadata: Readonly<Record<string, string>>, key: string, where: string): Record<string, unknown> {
  let v: unknown;
  try {
    if (typeof metadata[key] !== 'string') throw new Error('not a string');
    v = JSON.parse(metadata[key]);
  } catch {
    throw new VersionError(`${where}: metadata ${key} is not JSON`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new VersionError(`${where}: metadata ${key} must be a JSON object`);
  return v as Record<string, unknown>;
}

function checkStoredAs(a: unknown, where: string): StoredAs {
  if (a === 'F16' || a === 'stored') return a;
  const o = a as { bits?: unknown; group?: unknown; symmetric?: unknown } | null;
  if (o && typeof o === 'object' && typeof o.bits === 'number' && (typeof o.group === 'number' || o.group === 'channel') && typeof o.symmetric === 'boolean') {
    return { bits: o.bits, group: o.group, symmetric: o.symmetric };
  }
  throw new VersionError(`${where}: "as" must be "F16", "stored" or {bits, group, symmetric}`);
}

/**
 * The version recorded in a model's metadata; null for a file without one (written by an older
 * webq, or not by webq quantize). Malformed entries are errors naming the field.
 */
export function readModelVersion(metadata: Readonly<Record<string, string>>, where: string): ModelVersion | null {
  if (metadata[VERSION_KEY] === undefined) return null;
  const version = metadata[VERSION_KEY];
  if (typeof version !== 'string' || !/^[0-9a-f]{16}$/.test(version)) throw new VersionError(`${where}: metadata ${VERSION_KEY} must be 16 hex digits, got ${JSON.stringify(String(version).slice(0, 40))}`);
  if (metadata[TENSORS_KEY] === undefined || metadata[FILES_KEY] === undefined) throw new VersionError(`${where}: metadata has ${VERSION_KEY} but no ${metadata[TENSORS_KEY] === undefined ? TENSORS_KEY : FILES_KEY}`);
  // No prototype: a unit or file named "__proto__" or "constructor" is just a key.
  const tensors = Object.create(null) as Record<string, UnitVersion>;
  for (const [name, u] of Object.entries(parseJsonField(metadata, TENSORS_KEY, where))) {
    const at = `${where}: metadata ${TENSORS_KEY} "${name}"`;
    const o = u as { source?: unknown; quantized?: unknown; as?: unknown } | null;
    if (!o || typeof o.source !== 'string' || !HEX64.test(o.source) || typeof o.quantized !== 'string' || !HEX64.test(o.quantized)) {
      throw new VersionError(`${at}: needs "source" and "quantized" sha256 hex digests`);
    }
    tensors[name] = { source: o.source, quantized: o.quantized, as: checkStoredAs(o.as, at) };
  }
  const files = Object.create(null) as Record<string, string>;
  for (const [path, h] of Object.entries(parseJsonField(metadata, FILES_KEY, where))) {
    if (typeof h !== 'string' || !HEX64.test(h)) throw new VersionError(`${where}: metadata ${FILES_KEY} "${path}" must be a sha256 hex digest`);
    files[path] = h;
  }
  return { version, tensors, files };
}

/** The version, or an error saying the model predates versions. */
export function requireModelVersion(metadata: Readonly<Record<string, string>>, where: string): ModelVersion {
  const v = readModelVersion(metadata, where);
  if (!v) throw new VersionError(`${where}: has no model version (${VERSION_KEY}); it was not written by this webq's \`webq quantize\`: quantize the float checkpoint again to make deltas for it`);
  return v;
}

/**
 * The delta manifest's schema, checked whole before anything is read or written. A delta comes
 * from whoever controls its URL or file, and its header checksum is only an integrity sum (anyone
 * who edits a delta can recompute it; signatures are sign.ts), so every field is checked for its
 * type, its bounds and its agreement with the rest:
 *
 *   paths        every side file a delta names (kept, shipped or removed) is a relative path that
 *                stays inside the model folder, and one of the side files `webq quantize` records
 *   entries      the target's stored tensors: unique names, known dtypes, shapes of safe integers,
 *                each under the unit it belongs to; at least one (a model has weights)
 *   units        exactly the target version's units, each from the delta or from a base unit whose
 *                recorded hash is the one the target records for it
 *   files        exactly the target version's side files, config.json among them; one kept from the
 *                base has the base's hash
 *   version      the target version is the hash of its units and files (recomputed), and what its
 *                metadata records; the metadata is what webq's writer produces (its reader takes it)
 *   lists        added / changed / removed / renamed / filesRemoved are what the units say
 *
 * Every check is linear in the manifest's size, so a huge manifest is refused as fast as it is read.
 */
import { DTYPE_SIZE, isDType } from '../io/safetensors/dtypes.ts';
import type { TensorStore } from '../io/safetensors/reader.ts';
import { SIDE_FILES } from '../quantize/checkpoint.ts';
import { readPrequantInfo } from '../quant/prequantized.ts';
import { readModelVersion, versionOf, type ModelVersion } from '../quant/versions.ts';
import { STAGING } from '../io/patch-journal.ts';
import { DeltaError } from './errors.ts';

export const DELTA_FORMAT = 'webq-delta-1';
export const FILE_PREFIX = 'file:';

/** A stored tensor of the target model and the unit it belongs to. */
export interface TargetEntry {
  name: string;
  dtype: keyof typeof DTYPE_SIZE;
  shape: readonly number[];
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

/** Bounds: far above any real model, low enough that nothing a delta claims can exhaust memory. */
export const LIMITS = {
  entries: 200_000,
  units: 100_000,
  files: SIDE_FILES.length,
  metadataKeys: 200_000,
  nameLength: 1024,
  pathLength: 512,
  rank: 8,
  /** Elements of one tensor (2^40: a terabyte of int8). */
  elements: 2 ** 40,
  /** Bytes of one side file carried in a delta. */
  fileBytes: 256 * 2 ** 20,
} as const;

/** A map built from a delta's keys: no prototype, so a key such as "__proto__" is just a key. */
function dict<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

const HEX16 = /^[0-9a-f]{16}$/;
const HEX64 = /^[0-9a-f]{64}$/;
const CONTROL = /[\u0000-\u001f\u007f]/;

/** A value for a message: short, one line. */
function show(v: unknown): string {
  let s: string;
  try {
    s = typeof v === 'string' ? JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}...` : v) : Array.isArray(v) ? `an array of ${v.length}` : v === null ? 'null' : typeof v === 'object' ? 'an object' : String(v);
  } catch {
    s = typeof v;
  }
  return s;
}

class Checker {
  constructor(private readonly where: string) {}

  fail(field: string, what: string): never {
    throw new DeltaError('DELTA_CORRUPT', `${this.where}: manifest field ${field}: ${what}`);
  }

  object(v: unknown, field: string, keys?: readonly string[]): Record<string, unknown> {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(field, `expected an object, got ${show(v)}`);
    const o = v as Record<string, unknown>;
    if (keys) {
      for (const k of Object.keys(o)) if (!keys.includes(k)) this.fail(field, `unknown key ${show(k)} (expected ${keys.join(', ')})`);
      for (const k of keys) if (!Object.hasOwn(o, k)) this.fail(`${field}.${k}`, 'missing');
    }
    return o;
  }

  /** An object used as a map: at most `max` entries, each key checked by `key`. */
  map(v: unknown, field: string, max: number): [string, unknown][] {
    const o = this.object(v, field);
    const entries = Object.entries(o);
    if (entries.length > max) this.fail(field, `has ${entries.length} entries; at most ${max}`);
    return entries;
  }

  array(v: unknown, field: string, max: number): unknown[] {
    if (!Array.isArray(v)) this.fail(field, `expected an array, got ${show(v)}`);
    if (v.length > max) this.fail(field, `has ${v.length} items; at most ${max}`);
    return v;
  }

  string(v: unknown, field: string, max: number): string {
    if (typeof v !== 'string') this.fail(field, `expected a string, got ${show(v)}`);
    if (v.length === 0 || v.length > max) this.fail(field, `expected 1 to ${max} characters, got ${v.length}`);
    return v;
  }

  hex(v: unknown, field: string, re: RegExp): string {
    if (typeof v !== 'string' || !re.test(v)) this.fail(field, `expected ${re === HEX16 ? 16 : 64} lowercase hex digits, got ${show(v)}`);
    return v;
  }

  /** A tensor or unit name. */
  name(v: unknown, field: string): string {
    const s = this.string(v, field, LIMITS.nameLength);
    if (CONTROL.test(s)) this.fail(field, `${show(s)} has control characters`);
    if (s.startsWith(FILE_PREFIX)) this.fail(field, `${show(s)}: names starting with "${FILE_PREFIX}" are side files, not tensors`);
    return s;
  }

  path(v: unknown, field: string): string {
    const s = this.string(v, field, LIMITS.pathLength);
    const why = pathProblem(s);
    if (why) this.fail(field, `${show(s)} ${why}`);
    return s;
  }

  /** A list of distinct strings, each checked by `item`. */
  distinct(v: unknown, field: string, max: number, item: (x: unknown, f: string) => string): string[] {
    const out = this.array(v, field, max).map((x, i) => item(x, `${field}[${i}]`));
    const seen = new Set<string>();
    for (const [i, x] of out.entries()) {
      if (seen.has(x)) this.fail(`${field}[${i}]`, `${show(x)} is listed twice`);
      seen.add(x);
    }
    return out;
  }
}

/**
 * Why `p` may not name a side file of a model folder, or undefined when it may: a relative path of
 * plain segments that stays inside the folder, not webq's own files, and one webq records.
 */
export function pathProblem(p: string): string | undefined {
  if (CONTROL.test(p)) return 'has control characters';
  if (p.includes('\\')) return 'has a backslash (paths use "/")';
  if (p.startsWith('/') || /^[A-Za-z]:/.test(p) || p.includes(':')) return 'is absolute, has a drive letter or a ":"';
  const segs = p.split('/');
  if (segs.some((s) => s === '' || s === '.' || s === '..')) return 'has an empty, "." or ".." segment: it must stay inside the model folder';
  if (segs[0] === STAGING || segs.some((s) => s.startsWith('.webq'))) return `is webq's own (${STAGING})`;
  if (/\.safetensors$|\.safetensors\.index\.json$/.test(p)) return 'is a weights file, not a side file';
  if (!SIDE_FILES.includes(p)) return `is not a side file webq records (${SIDE_FILES.join(', ')})`;
  return undefined;
}

function shapeOf(c: Checker, v: unknown, field: string): number[] {
  const dims = c.array(v, field, LIMITS.rank);
  let n = 1;
  for (const [i, d] of dims.entries()) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) c.fail(`${field}[${i}]`, `expected an integer >= 0, got ${show(d)}`);
    n *= d;
  }
  if (n > LIMITS.elements) c.fail(field, `${n} elements; at most ${LIMITS.elements}`);
  return dims as number[];
}

function entryOf(c: Checker, v: unknown, field: string): TargetEntry {
  const o = c.object(v, field, ['name', 'dtype', 'shape', 'unit']);
  const name = c.name(o.name, `${field}.name`);
  if (!isDType(o.dtype)) c.fail(`${field}.dtype`, `expected a safetensors dtype, got ${show(o.dtype)}`);
  const shape = shapeOf(c, o.shape, `${field}.shape`);
  const unit = c.name(o.unit, `${field}.unit`);
  if (!name.startsWith(unit)) c.fail(`${field}.unit`, `tensor ${show(name)} is not under its unit ${show(unit)}`);
  return { name, dtype: o.dtype, shape, unit };
}

function sameSet(a: Iterable<string>, b: Iterable<string>): boolean {
  const x = new Set(a);
  const y = new Set(b);
  if (x.size !== y.size) return false;
  for (const k of x) if (!y.has(k)) return false;
  return true;
}

/** added / changed / removed / renamed of a target against a base (what `webq diff` records). */
export function classify(baseUnits: readonly string[], units: Record<string, UnitSource>): Pick<DeltaManifest, 'added' | 'changed' | 'removed' | 'renamed'> {
  const base = new Set(baseUnits);
  const added: string[] = [];
  const changed: string[] = [];
  const renamed: [string, string][] = [];
  const used = new Set<string>();
  for (const [u, src] of Object.entries(units)) {
    if (src.from === 'base') {
      used.add(src.name);
      if (src.name !== u) renamed.push([src.name, u]);
    } else (base.has(u) ? changed : added).push(u);
  }
  const removed = baseUnits.filter((b) => !used.has(b) && !Object.hasOwn(units, b));
  return { added, changed, removed, renamed };
}

/** The metadata as a store with no tensors, for webq's own reader of quantized files. */
function metadataStore(name: string, metadata: Record<string, string>): TensorStore {
  return { name, metadata, tensors: [], get: () => undefined, has: () => false } as unknown as TensorStore;
}

/**
 * Parses and checks the manifest text (see the top of this file); returns the manifest and the
 * target's version. Every violation is a DeltaError naming the field.
 */
export async function parseManifest(text: string, where: string): Promise<{ manifest: DeltaManifest; target: ModelVersion }> {
  const c: Checker = new Checker(where);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new DeltaError('DELTA_CORRUPT', `${where}: the manifest (webq.delta) is not JSON`);
  }
  const m = c.object(raw, 'manifest', ['format', 'architecture', 'base', 'target', 'units', 'files', 'added', 'changed', 'removed', 'renamed', 'filesRemoved']);
  if (m.format !== DELTA_FORMAT) c.fail('format', `is ${show(m.format)}; this webq reads "${DELTA_FORMAT}"`);
  const architecture = c.string(m.architecture, 'architecture', 64);
  if (!/^[A-Za-z0-9_.-]+$/.test(architecture)) c.fail('architecture', `${show(architecture)} is not a model type`);

  // The base: versions and hashes (checked against the model itself in checks.ts).
  const b = c.object(m.base, 'base', ['version', 'tensors', 'files']);
  const baseVersion = c.hex(b.version, 'base.version', HEX16);
  const baseTensors = dict<string>();
  for (const [n, h] of c.map(b.tensors, 'base.tensors', LIMITS.units)) baseTensors[c.name(n, `base.tensors key`)] = c.hex(h, `base.tensors[${show(n)}]`, HEX64);
  const baseFiles = dict<string>();
  for (const [f, h] of c.map(b.files, 'base.files', LIMITS.files)) baseFiles[c.path(f, 'base.files key')] = c.hex(h, `base.files[${show(f)}]`, HEX64);

  // The target: metadata as webq's writer makes it, entries, and the version they add up to.
  const t = c.object(m.target, 'target', ['version', 'metadata', 'entries']);
  const targetVersion = c.hex(t.version, 'target.version', HEX16);
  const metadata = dict<string>();
  for (const [k, v] of c.map(t.metadata, 'target.metadata', LIMITS.metadataKeys)) {
    c.string(k, 'target.metadata key', LIMITS.nameLength + 64);
    if (typeof v !== 'string') c.fail(`target.metadata[${show(k)}]`, `expected a string (safetensors metadata holds strings only), got ${show(v)}`);
    metadata[k] = v;
  }
  let target: ModelVersion | null;
  try {
    target = readModelVersion(metadata, `${where}: target.metadata`);
    if (!readPrequantInfo(metadataStore(`${where}: target.metadata`, metadata))) c.fail('target.metadata', 'has no webq.format: the target is not a webq quantized model');
  } catch (e) {
    if (e instanceof DeltaError) throw e;
    throw new DeltaError('DELTA_CORRUPT', `${(e as Error).message} (webq's reader would refuse the patched file)`);
  }
  if (!target) c.fail('target.metadata', 'records no webq.version');
  if (target.version !== targetVersion) c.fail('target.version', `is ${targetVersion}, but target.metadata records ${target.version}`);
  if ((await versionOf(target.tensors, target.files)) !== targetVersion) c.fail('target.version', `is not the version of the units and files target.metadata records (edited metadata)`);
  for (const f of Object.keys(target.files)) c.path(f, 'target.metadata webq.files key');
  if (!Object.hasOwn(target.files, 'config.json')) c.fail('target.metadata', 'webq.files has no config.json: the patched model would have no config');

  const entries = c.array(t.entries, 'target.entries', LIMITS.entries).map((e, i) => entryOf(c, e, `target.entries[${i}]`));
  if (entries.length === 0) c.fail('target.entries', 'is empty: the patched model would have no tensors');
  const names = new Set<string>();
  const entryUnits = new Set<string>();
  let bytes = 0;
  for (const [i, e] of entries.entries()) {
    if (names.has(e.name)) c.fail(`target.entries[${i}].name`, `${show(e.name)} is listed twice`);
    names.add(e.name);
    entryUnits.add(e.unit);
    bytes += e.shape.reduce((a, d) => a * d, 1) * DTYPE_SIZE[e.dtype];
  }
  if (!Number.isSafeInteger(bytes)) c.fail('target.entries', 'add up to more bytes than a file can hold');

  // Units: exactly the target version's, each from the delta or a base unit with the same hash.
  const units = dict<UnitSource>();
  for (const [u, v] of c.map(m.units, 'units', LIMITS.units)) {
    const field = `units[${show(u)}]`;
    c.name(u, 'units key');
    const o = c.object(v, field);
    if (o.from === 'delta' && Object.keys(o).length === 1) units[u] = { from: 'delta' };
    else if (o.from === 'base' && Object.keys(o).length === 2 && typeof o.name === 'string') {
      const name = c.name(o.name, `${field}.name`);
      if (!Object.hasOwn(baseTensors, name)) c.fail(`${field}.name`, `base unit ${show(name)} is not in base.tensors`);
      if (target.tensors[u]?.quantized !== baseTensors[name]) c.fail(field, `reuses base unit ${show(name)}, whose hash is not the one the target records for ${show(u)}`);
      units[u] = { from: 'base', name };
    } else c.fail(field, 'expected {"from":"delta"} or {"from":"base","name":...}');
  }
  if (!sameSet(Object.keys(units), entryUnits)) c.fail('units', 'do not list exactly the units of target.entries');
  if (!sameSet(Object.keys(units), Object.keys(target.tensors))) c.fail('units', 'do not list exactly the units target.metadata records');

  // Side files: exactly the target version's; kept ones with the base's hash; the removed ones the rest.
  const files = dict<'delta' | 'base'>();
  for (const [f, from] of c.map(m.files, 'files', LIMITS.files)) {
    c.path(f, 'files key');
    if (from !== 'delta' && from !== 'base') c.fail(`files[${show(f)}]`, `expected "delta" or "base", got ${show(from)}`);
    if (from === 'base' && baseFiles[f] !== target.files[f]) c.fail(`files[${show(f)}]`, 'is kept from the base, but the target records another hash for it');
    files[f] = from;
  }
  if (!sameSet(Object.keys(files), Object.keys(target.files))) c.fail('files', 'do not list exactly the side files target.metadata records');
  const filesRemoved = c.distinct(m.filesRemoved, 'filesRemoved', LIMITS.files, (x, f) => c.path(x, f));
  if (!sameSet(filesRemoved, Object.keys(baseFiles).filter((f) => !Object.hasOwn(files, f)))) c.fail('filesRemoved', "is not the base's side files that the target has not (only those may be removed)");

  // The summary lists: what the units say.
  const want = classify(Object.keys(baseTensors), units);
  for (const k of ['added', 'changed', 'removed'] as const) {
    const got = c.distinct(m[k], k, LIMITS.units, (x, f) => c.name(x, f));
    if (!sameSet(got, want[k])) c.fail(k, 'does not agree with units');
  }
  const renamed = c.array(m.renamed, 'renamed', LIMITS.units).map((p, i) => {
    const pair = c.array(p, `renamed[${i}]`, 2);
    if (pair.length !== 2) c.fail(`renamed[${i}]`, 'expected [old name, new name]');
    return [c.name(pair[0], `renamed[${i}][0]`), c.name(pair[1], `renamed[${i}][1]`)] as [string, string];
  });
  if (!sameSet(renamed.map((r) => r.join('\u0000')), want.renamed.map((r) => r.join('\u0000')))) c.fail('renamed', 'does not agree with units');

  const manifest: DeltaManifest = {
    format: DELTA_FORMAT, architecture,
    base: { version: baseVersion, tensors: baseTensors, files: baseFiles },
    target: { version: targetVersion, metadata, entries },
    units, files, added: want.added, changed: want.changed, removed: want.removed, renamed: want.renamed, filesRemoved,
  };
  return { manifest, target };
}

/**
 * What is in the download cache, model by model, and removing a model from it: on disk in Node
 * and Deno (`${WEBQ_CACHE_DIR ?? ~/.cache/webq}`), in the Cache API in browsers. `webq cache
 * list|rm` is a thin layer over these two functions.
 */
import { isNoteSegment, noteKey, openFileCache, type CacheEntry, type FileCache } from './cache.ts';
import { SourceError, q } from '../errors.ts';
import { cacheKeyPrefix, hubFromKeySegment, hubKeySegment, parseHubId } from './hub.ts';
import { HubError } from './model-files.ts';
import { parseNote, type RevisionNote } from './revision-note.ts';

export interface CachedModel {
  readonly kind: 'hub' | 'url';
  /** What loads it again: "org/name@revision" (from `hub`) or the folder URL. */
  readonly location: string;
  /**
   * The hub a hub model came from ("https://huggingface.co"); null for folder URLs, and for hub
   * files cached before webq kept the hub in the key, which no load reads any more.
   */
  readonly hub: string | null;
  /** Hub revision (branch, tag or commit); undefined for folder URLs. */
  readonly revision: string | undefined;
  /** Cached files, relative to the model ("1_Pooling/config.json"), with their sizes. */
  readonly files: { name: string; bytes: number }[];
  /** Sum of the files' sizes. */
  readonly bytes: number;
  /** Optional files the server said the model has not got (remembered so they are not asked for again). */
  readonly absent: readonly string[];
  /** When the server was last asked about this revision; undefined if never recorded. */
  readonly checkedAt: Date | undefined;
  /** The commit the server last said the revision is at, when it said. */
  readonly commit: string | undefined;
}

export interface CacheLocationOptions {
  /** Cache folder (Node, Deno); default `${WEBQ_CACHE_DIR ?? ~/.cache/webq}`. */
  cacheDir?: string;
}

export interface RemoveCachedOptions extends CacheLocationOptions {
  /** Remove a hub id from this hub only (files of an unknown hub go too); default every hub. */
  hubUrl?: string;
}

/**
 * Where each part of a hub model's key prefix is: `hubs/<hub>/<org>/<name>/<rev>`, or the layout
 * from before the hub was kept, `hub/<org>/<name>/<rev>` (hub unknown).
 */
function hubParts(prefix: readonly string[]): { hub: string | null; org: string; name: string; revision: string } | undefined {
  const at = prefix[0] === 'hubs' ? 2 : prefix[0] === 'hub' ? 1 : -1;
  if (at < 0) return undefined;
  const [org, name, revision] = prefix.slice(at, at + 3).map((s) => decodeURIComponent(s ?? ''));
  return { hub: at === 2 ? hubFromKeySegment(prefix[1]) : null, org, name, revision };
}

/** Key segments of a hub model's revision folder, by layout. */
const HUB_PREFIX_LENGTH: Record<string, number> = { hubs: 5, hub: 4 };

async function requireCache(options: CacheLocationOptions): Promise<FileCache> {
  const cache = await openFileCache(options.cacheDir);
  if (!cache) throw new SourceError('SOURCE_UNSUPPORTED', 'there is no download cache here: set WEBQ_CACHE_DIR or pass cacheDir (in a browser: no Cache API)');
  return cache;
}

type Grouped = CachedModel & { readonly prefix: readonly string[] };

/**
 * Groups cached files into models. A model's root is where its note is; files without one (older
 * caches) are grouped by their hub revision (`hubs/<hub>/<org>/<name>/<rev>/...`) or, for folder
 * URLs, by their folder.
 */
function group(files: readonly CacheEntry[], notes: { key: readonly string[]; text: string | undefined }[]): Grouped[] {
  const roots = new Map<string, { prefix: string[]; note: RevisionNote; files: { name: string; bytes: number }[] }>();
  const keyText = (k: readonly string[]) => k.join('/');
  for (const { key, text } of notes) {
    const last = key.at(-1)!;
    const prefix = [...key.slice(0, -1), last.slice(1, -'.json'.length)];
    roots.set(keyText(prefix), { prefix, note: parseNote(text, locationOf(prefix)), files: [] });
  }
  for (const f of files) {
    let root: ReturnType<typeof roots.get>;
    for (let n = f.key.length - 1; n >= 2 && !root; n--) root = roots.get(keyText(f.key.slice(0, n)));
    if (!root) {
      const n = HUB_PREFIX_LENGTH[f.key[0]];
      const prefix = n !== undefined && f.key.length > n ? f.key.slice(0, n) : f.key.slice(0, -1);
      root = { prefix, note: parseNote(undefined, locationOf(prefix)), files: [] };
      roots.set(keyText(prefix), root);
    }
    root.files.push({ name: f.key.slice(root.prefix.length).map(decodeURIComponent).join('/'), bytes: f.size });
  }
  return [...roots.values()]
    .map(({ prefix, note, files }) => ({
      prefix,
      kind: prefix[0] === 'url' ? ('url' as const) : ('hub' as const),
      location: note.location,
      hub: hubParts(prefix)?.hub ?? null,
      revision: hubParts(prefix)?.revision,
      files: files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
      bytes: files.reduce((s, f) => s + f.bytes, 0),
      absent: note.absent,
      checkedAt: note.checked > 0 ? new Date(note.checked) : undefined,
      commit: note.commit,
    }))
    .sort((a, b) => compare(a.location, b.location) || compare(a.hub ?? '~', b.hub ?? '~')); // an unknown hub last
}

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** A location from key segments, for caches without notes: "org/name@rev", or "//host/path/" (the scheme is not kept). */
function locationOf(prefix: readonly string[]): string {
  const hub = hubParts(prefix);
  if (hub) return `${hub.org}/${hub.name}@${hub.revision}`;
  return `//${prefix.slice(1).map(decodeURIComponent).join('/')}/`;
}

async function listGrouped(cache: FileCache): Promise<Grouped[]> {
  const all = await Promise.all([cache.list(['hubs']), cache.list(['hub']), cache.list(['url'])]);
  const files = all.flatMap((l) => l.files);
  const notes = await Promise.all(all.flatMap((l) => l.notes).map(async (key) => ({ key, text: await cache.readNote(key) })));
  return group(files, notes.filter((n) => isNoteSegment(n.key.at(-1)!)));
}

/** Every model in the download cache, one entry per hub revision or folder URL, sorted by location. */
export async function listCachedModels(options: CacheLocationOptions = {}): Promise<CachedModel[]> {
  return (await listGrouped(await requireCache(options))).map(({ prefix: _, ...m }) => m);
}

/**
 * Removes a model from the download cache: `org/name` (every revision), `org/name@revision`
 * (that one), or a folder URL. A hub id is removed from every hub it was cached from, or from
 * `hubUrl` only, and from none that no load reads (cached before the hub was kept). Resolves to
 * what was removed ([] when it was not cached).
 */
export async function removeCachedModel(model: string, options: RemoveCachedOptions = {}): Promise<CachedModel[]> {
  if (typeof model !== 'string' || model === '') {
    throw new HubError('HUB_BAD_LOCATION', `expected a hub id (org/name[@revision]) or a folder URL, got ${typeof model === 'string' ? 'an empty string' : typeof model}`);
  }
  let matches: (m: Grouped) => boolean;
  // What to delete for a match: its revision (and note), or for a whole hub model its folder.
  let target = (m: Grouped): string[][] => [[...m.prefix], noteKey(m.prefix)];
  if (/^https?:\/\//i.test(model)) {
    const base = new URL(model);
    if (!base.pathname.endsWith('/')) base.pathname += '/';
    const prefix = cacheKeyPrefix({ kind: 'url', base });
    matches = (m) => prefix.every((s, i) => m.prefix[i] === s);
    target = () => [prefix, noteKey(prefix)];
  } else {
    const hub = parseHubId(model);
    if (!hub) throw new HubError('HUB_BAD_LOCATION', `${q(model)}: expected a hub id (org/name or org/name@revision) or a folder URL (https://...)`);
    const only = options.hubUrl === undefined ? undefined : hubFromKeySegment(hubKeySegment(options.hubUrl));
    const everyRevision = !model.includes('@');
    matches = (m) => {
      const p = hubParts(m.prefix);
      return !!p && p.org === hub.org && p.name === hub.name && (everyRevision || p.revision === hub.revision) && (only === undefined || p.hub === null || p.hub === only);
    };
    // Without "@revision": every revision, i.e. the model's whole folder under its hub.
    if (everyRevision) target = (m) => [m.prefix.slice(0, -1)];
  }
  const cache = await requireCache(options);
  const removed = (await listGrouped(cache)).filter(matches);
  const done = new Set<string>();
  for (const key of removed.flatMap(target)) {
    if (done.has(key.join('/'))) continue;
    done.add(key.join('/'));
    await cache.remove(key);
  }
  return removed.map(({ prefix: _, ...m }) => m);
}

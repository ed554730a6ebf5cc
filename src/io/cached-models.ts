/**
 * What is in the download cache, model by model, and removing a model from it: on disk in Node
 * and Deno (`${WEBQ_CACHE_DIR ?? ~/.cache/webq}`), in the Cache API in browsers. `webq cache
 * list|rm` is a thin layer over these two functions.
 */
import { isNoteSegment, noteKey, openFileCache, type CacheEntry, type FileCache } from './cache.ts';
import { SourceError, q } from './errors.ts';
import { cacheKeyPrefix, parseHubId } from './hub.ts';
import { HubError } from './model-files.ts';
import { parseNote, type RevisionNote } from './revision-note.ts';

export interface CachedModel {
  readonly kind: 'hub' | 'url';
  /** What loads it again: "org/name@revision" or the folder URL. */
  readonly location: string;
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

async function requireCache(options: CacheLocationOptions): Promise<FileCache> {
  const cache = await openFileCache(options.cacheDir);
  if (!cache) throw new SourceError('SOURCE_UNSUPPORTED', 'there is no download cache here: set WEBQ_CACHE_DIR or pass cacheDir (in a browser: no Cache API)');
  return cache;
}

type Grouped = CachedModel & { readonly prefix: readonly string[] };

/**
 * Groups cached files into models. A model's root is where its note is; files without one (older
 * caches) are grouped by their hub revision (`hub/<org>/<name>/<rev>/...`) or, for folder URLs, by
 * their folder.
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
      const prefix = f.key[0] === 'hub' && f.key.length > 4 ? f.key.slice(0, 4) : f.key.slice(0, -1);
      root = { prefix, note: parseNote(undefined, locationOf(prefix)), files: [] };
      roots.set(keyText(prefix), root);
    }
    root.files.push({ name: f.key.slice(root.prefix.length).map(decodeURIComponent).join('/'), bytes: f.size });
  }
  return [...roots.values()]
    .map(({ prefix, note, files }) => ({
      prefix,
      kind: prefix[0] === 'hub' ? ('hub' as const) : ('url' as const),
      location: note.location,
      revision: prefix[0] === 'hub' ? decodeURIComponent(prefix[3] ?? '') : undefined,
      files: files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
      bytes: files.reduce((s, f) => s + f.bytes, 0),
      absent: note.absent,
      checkedAt: note.checked > 0 ? new Date(note.checked) : undefined,
      commit: note.commit,
    }))
    .sort((a, b) => (a.location < b.location ? -1 : a.location > b.location ? 1 : 0));
}

/** A location from key segments, for caches without notes: "org/name@rev", or "//host/path/" (the scheme is not kept). */
function locationOf(prefix: readonly string[]): string {
  const segs = prefix.slice(1).map(decodeURIComponent);
  if (prefix[0] === 'hub') return `${segs[0]}/${segs[1]}@${segs[2]}`;
  return `//${segs.join('/')}/`;
}

async function listGrouped(cache: FileCache): Promise<Grouped[]> {
  const all = await Promise.all([cache.list(['hub']), cache.list(['url'])]);
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
 * (that one), or a folder URL. Resolves to what was removed ([] when it was not cached).
 */
export async function removeCachedModel(model: string, options: CacheLocationOptions = {}): Promise<CachedModel[]> {
  if (typeof model !== 'string' || model === '') {
    throw new HubError('HUB_BAD_LOCATION', `expected a hub id (org/name[@revision]) or a folder URL, got ${typeof model === 'string' ? 'an empty string' : typeof model}`);
  }
  let prefix: string[];
  if (/^https?:\/\//i.test(model)) {
    const base = new URL(model);
    if (!base.pathname.endsWith('/')) base.pathname += '/';
    prefix = cacheKeyPrefix({ kind: 'url', base });
  } else {
    const hub = parseHubId(model);
    if (!hub) throw new HubError('HUB_BAD_LOCATION', `${q(model)}: expected a hub id (org/name or org/name@revision) or a folder URL (https://...)`);
    // Without "@revision": every revision, i.e. the model's whole folder.
    prefix = model.includes('@') ? cacheKeyPrefix(hub) : ['hub', hub.org, hub.name];
  }
  const cache = await requireCache(options);
  const under = (p: readonly string[]) => prefix.every((s, i) => p[i] === s);
  const removed = (await listGrouped(cache)).filter((m) => under(m.prefix)).map(({ prefix: _, ...m }) => m);
  await cache.remove(prefix);
  await cache.remove(noteKey(prefix));
  return removed;
}

/**
 * Updating a cached remote model in place (updateCachedModel, src/delta/patch-cache.ts): the new
 * files are staged under `<model key>/@update/` and swapped in through the redo journal of
 * src/io/patch-journal.ts, on cache entries instead of files. RemoteFiles completes or discards an
 * interrupted update before the first cache read of every open (see its module comment), and a
 * load holds the model's lock shared throughout (src/io/hub/cache-lock.ts), so a load waits for an
 * update running in another tab or worker, and an update for the loads running.
 */
import { internalUrl, type CachedFile, type FileCache } from './cache.ts';
import { modelLockName, withCacheLock } from './cache-lock.ts';
import { SourceError } from '../errors.ts';
import { fileSegments } from './model-files.ts';
import { finishInterrupted, type JournalStore } from '../patch-journal.ts';

/** Where an update of a cached model is staged (an "@" key: see src/io/hub/cache.ts). */
const UPDATE = '@update';

/** A cached model's files, for updating them in place by a delta (src/delta/patch-cache.ts). */
export interface CacheUpdater {
  readonly describe: string;
  /** The cached copy of `file`, or undefined; nothing is downloaded. */
  get(file: string): Promise<CachedFile | undefined>;
  /** Stores `body` (`size` bytes) as the staged new `file`, checked whole: a full browser cache drops puts quietly. */
  stage(file: string, body: ReadableStream<Uint8Array> | Blob, size: number): Promise<void>;
  /** A staged file as the cache holds it (to check it before the commit), or undefined. */
  staged(file: string): Promise<CachedFile | undefined>;
  /** The journal (src/io/patch-journal.ts) on the model's cache entries. */
  readonly journal: JournalStore;
  /** Runs `fn` holding the model's update lock. */
  locked<T>(fn: () => Promise<T>): Promise<T>;
}

/** What an update needs to know of the cached model (RemoteFiles gives it). */
export interface CachedModel {
  readonly cache: FileCache;
  readonly describe: string;
  /** Cache key segments before a file's own. */
  readonly keyPrefix: readonly string[];
  key(file: string): string[];
  url(file: string): string;
  /** Remembers that the model has no `file` (so it is not downloaded again). */
  noteAbsent(file: string): Promise<void>;
}

/** `fn` holding the model's lock exclusive (src/io/hub/cache-lock.ts): an update, or finishing an interrupted one. */
export function lockedModel<T>(m: Pick<CachedModel, 'keyPrefix'>, fn: () => Promise<T>): Promise<T> {
  return withCacheLock(modelLockName(m.keyPrefix), 'exclusive', fn);
}

/**
 * Runs `fn` (a whole load) holding the model's lock shared. An interrupted update is finished
 * first, under the exclusive lock (a holder of the shared one could never take it); one that a
 * tab began and left between the two is seen under the shared lock, and the loop finishes it too.
 */
export async function readingModel<T>(m: CachedModel, fn: () => Promise<T>): Promise<T> {
  const journal = journalStore(m);
  for (let round = 0; ; round++) {
    await finishCachedUpdate(m);
    const r = await withCacheLock(modelLockName(m.keyPrefix), 'shared', async () => ((await journal.begun()) ? undefined : { value: await fn() }));
    if (r) return r.value;
    // A store that keeps an update area however often it is cleared must not loop a load forever.
    if (round === 3) throw new SourceError('SOURCE_IO', `${journal.journalName}: an interrupted update stays after being finished ${round + 1} times; ${journal.remedy}`);
  }
}

/** Keys of an update: a marker written before anything is staged, the journal, and staged files. */
function updateKeys(m: CachedModel) {
  const area = [...m.keyPrefix, UPDATE];
  const staged = (file: string) => {
    const key = [...area, ...fileSegments(file).map(encodeURIComponent)];
    return { key, url: internalUrl(key) };
  };
  return { area, marker: [...area, '@begun'], journal: [...area, '@journal'], staged };
}

/** The journal of src/io/patch-journal.ts on the model's cache entries. */
function journalStore(m: CachedModel): JournalStore {
  const { cache } = m;
  const k = updateKeys(m);
  return {
    describe: `${m.describe} (cached in ${cache.describe})`,
    journalName: `${m.describe}: the update journal in ${cache.describe}`,
    remedy: `remove the model from the cache (webq cache rm, or removeCachedModel) and load it again`,
    begun: async () => (await cache.readNote(k.marker)) !== undefined || (await cache.readNote(k.journal)) !== undefined,
    readJournal: () => cache.readNote(k.journal),
    writeJournal: (text) => cache.writeNote(k.journal, text),
    moveIn: (file) => cache.move(k.staged(file), { key: m.key(file), url: m.url(file) }),
    // A file the new version has not got: gone from the cache, and known absent, so that it is not
    // downloaded from a server that may still have the old version's.
    remove: async (file) => {
      await cache.remove(m.key(file));
      await m.noteAbsent(file);
    },
    clear: async () => void (await cache.remove(k.area)),
  };
}

/** Completes or discards an update a crash or a closed tab interrupted (under the model's lock). */
export async function finishCachedUpdate(m: CachedModel): Promise<void> {
  const journal = journalStore(m);
  if (await journal.begun()) await lockedModel(m, () => finishInterrupted(journal));
}

/** The model's cached files, to update them by a delta. */
export function cacheUpdater(m: CachedModel): CacheUpdater {
  const { cache } = m;
  const k = updateKeys(m);
  let begun = false;
  return {
    describe: `${m.describe} (cached in ${cache.describe})`,
    get: (file) => cache.get(m.key(file), m.url(file)),
    stage: async (file, body, size) => {
      if (!begun) await cache.writeNote(k.marker, 'staging');
      begun = true;
      const { key, url } = k.staged(file);
      await cache.put(key, url, new Response(body, { headers: { 'content-length': String(size) } }), () => undefined);
      if ((await cache.get(key, url))?.size !== size) throw new SourceError('SOURCE_IO', `${cache.describe}: could not store the new ${file} of ${m.describe} (${size} bytes; storage full?)`);
    },
    staged: (file) => {
      const { key, url } = k.staged(file);
      return cache.get(key, url);
    },
    journal: journalStore(m),
    locked: (fn) => lockedModel(m, fn),
  };
}

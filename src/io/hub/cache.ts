/**
 * Download cache for remote model files. In Node and Deno files go to disk under
 * `${WEBQ_CACHE_DIR ?? ~/.cache/webq}/<key...>` (hub files: `hubs/<hub>/<org>/<name>/<revision>/<file>`,
 * see cacheKeyPrefix in src/io/hub/hub.ts);
 * in browsers into the Cache API (`caches.open('webq')`, keyed by URL).
 *
 * A file enters the cache only complete: on disk it is streamed to `<name>.part-<random>` and
 * renamed once every byte promised by Content-Length has arrived, so a dropped connection leaves
 * nothing a later (possibly offline) open could mistake for the file.
 *
 * Beside the files, a small JSON note per revision (hub) or folder URL records what the server
 * said: optional files it has not got, when it was last asked and at which commit. On disk the
 * note of `hubs/<hub>/<org>/<name>/<rev>/` is `hubs/<hub>/<org>/<name>/@<rev>.json` ("@" never starts an
 * encoded key segment, so a note cannot collide with a model's file). When entries are
 * re-checked is src/io/hub/remote-files.ts's business.
 *
 * Key segments that start with "@" are the cache's own (file names are percent-encoded, so none of
 * theirs does): notes, and a model's update in progress under `<model>/@update/` (see
 * src/io/hub/remote-files.ts). Listings leave out all but the notes.
 */
import { detectRuntime, getEnv } from '../../env.ts';
import { browserBytesFree, CacheQuotaError, diskBytesFree, isQuotaExceeded } from './cache-quota.ts';
import { SourceError, clip, q } from '../errors.ts';
import { fsError, loadFs, loadPath } from '../node-fs.ts';
import type { SourceInput } from '../source.ts';
import { plainLength } from '../url-source.ts';

export type { DownloadProgress, ProgressCallback, ProgressInfo, ProgressStatus } from './progress.ts';

/** A complete file in the cache. */
export interface CachedFile {
  /** A local path (Node, Deno) or a Blob (browser): hand it to SafetensorsFile.open / openSource. */
  readonly input: SourceInput;
  /** Bytes. */
  readonly size: number;
  text(): Promise<string>;
}

/** One complete file in a listing. */
export interface CacheEntry {
  readonly key: readonly string[];
  readonly size: number;
}

export interface FileCache {
  /** Where entries live, for messages: a folder, or "Cache API 'webq'". */
  readonly describe: string;
  /** The entry for `key` (path segments) / `url`, or undefined. */
  get(key: readonly string[], url: string): Promise<CachedFile | undefined>;
  /** Stores the body of `res` (a 200 answer for `url`); complete or not at all. A full cache: CacheQuotaError. */
  put(key: readonly string[], url: string, res: Response, onBytes: (loaded: number) => void): Promise<CachedFile>;
  /** The note stored under `key` (see the module comment), or undefined. */
  readNote(key: readonly string[]): Promise<string | undefined>;
  writeNote(key: readonly string[], text: string): Promise<void>;
  /** Every complete file under `prefix` (notes and partial downloads left out), and every note. */
  list(prefix: readonly string[]): Promise<{ files: CacheEntry[]; notes: (readonly string[])[] }>;
  /** Deletes the entry or folder at `prefix` with everything under it; true when there was one. */
  remove(prefix: readonly string[]): Promise<boolean>;
  /**
   * Moves the entry at `from` over the one at `to` in one atomic step (a rename on disk, one put
   * in the Cache API); false when there is no entry at `from`. Fails loudly (a full cache).
   */
  move(from: { key: readonly string[]; url: string }, to: { key: readonly string[]; url: string }): Promise<boolean>;
}

/** The key of the note for the entries under `prefix`: its last segment becomes "@<last>.json". */
export function noteKey(prefix: readonly string[]): string[] {
  return [...prefix.slice(0, -1), `@${prefix.at(-1)}.json`];
}

export function isNoteSegment(s: string): boolean {
  return s.startsWith('@') && s.endsWith('.json');
}

/** A key the cache keeps for itself and leaves out of listings: an "@" segment other than a note's name. */
function isInternalKey(key: readonly string[]): boolean {
  return key.some((s, i) => s.startsWith('@') && !(i === key.length - 1 && isNoteSegment(s)));
}

/** Notes and staged entries have no URL of their own in the Cache API; they live under this never-fetched origin. */
const INTERNAL_ORIGIN = 'https://webq-cache.invalid/';

/** The URL of a key with no server URL (notes, staged entries): what the Cache API stores it under. */
export function internalUrl(key: readonly string[]): string {
  return new URL(key.map(encodeURIComponent).join('/'), INTERNAL_ORIGIN).href;
}

/** `${WEBQ_CACHE_DIR}` or `~/.cache/webq`; undefined where neither can be known (browsers). */
export function defaultCacheDir(): string | undefined {
  const dir = getEnv('WEBQ_CACHE_DIR');
  if (dir) return dir;
  const home = getEnv('HOME') ?? getEnv('USERPROFILE');
  return home ? `${home.replace(/[\\/]+$/, '')}/.cache/webq` : undefined;
}

/**
 * The body of `res`, chunk by chunk. A connection that drops, or a body shorter or longer than
 * its Content-Length, is a SourceError 'SOURCE_SHORT_READ' naming `url`.
 */
export async function* readBody(res: Response, url: string): AsyncGenerator<Uint8Array> {
  const expected = plainLength(res);
  let got = 0;
  if (res.body === null) {
    if (expected) throw new SourceError('SOURCE_SHORT_READ', `${url}: response has no body, but Content-Length is ${expected}`);
    return;
  }
  const reader = res.body.getReader();
  let finished = false;
  try {
    for (;;) {
      let step: ReadableStreamReadResult<Uint8Array>;
      try {
        step = await reader.read();
      } catch (e) {
        if (e instanceof SourceError) throw e; // a timeout says so itself
        const why = e instanceof Error ? e.message : String(e);
        const of = expected === undefined ? '' : ` of ${expected}`;
        throw new SourceError('SOURCE_SHORT_READ', `${url}: download ended early after ${got}${of} bytes (${why})`, { cause: e });
      }
      if (step.done) {
        finished = true;
        break;
      }
      got += step.value.byteLength;
      yield step.value;
    }
  } finally {
    // A consumer that stops early (a failed disk write) must not leave the connection open.
    if (!finished) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
  if (expected !== undefined && got !== expected) {
    throw new SourceError('SOURCE_SHORT_READ', `${url}: download has ${got} bytes, but Content-Length said ${expected} (truncated response)`);
  }
}

function randomSuffix(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(6)), (x) => x.toString(16).padStart(2, '0')).join('');
}

/** Rejects key segments that could leave the cache folder. Callers encode names first. */
function checkKey(key: readonly string[]): void {
  for (const s of key) {
    if (s === '' || s === '.' || s === '..' || /[\\/\0]/.test(s)) throw new SourceError('SOURCE_IO', `invalid cache key segment ${q(s)} in ${clip(key.join('/'))}`);
  }
}

/** The on-disk cache (Node, Deno) rooted at `root`. */
export async function diskCache(root: string): Promise<FileCache> {
  const fs = await loadFs(root);
  const path = await loadPath(root);
  const fileOf = (key: readonly string[]) => {
    checkKey(key);
    return path.join(root, ...key);
  };
  const entry = (file: string, size: number): CachedFile => ({
    input: file,
    size,
    text: () =>
      fs.readFile(file, 'utf8').catch((e: unknown) => {
        throw fsError(file, 'read cached file', e);
      }),
  });
  /** Writes `chunks` to `file` through a temporary name, so the file appears complete or not at all. */
  const writeWhole = async (file: string, chunks: AsyncIterable<Uint8Array>, onBytes: (loaded: number) => void): Promise<number> => {
    const tmp = `${file}.part-${randomSuffix()}`;
    let handle: import('node:fs/promises').FileHandle | undefined;
    try {
      await fs.mkdir(path.dirname(file), { recursive: true }).catch((e: unknown) => {
        throw fsError(path.dirname(file), 'create cache folder', e);
      });
      handle = await fs.open(tmp, 'wx').catch((e: unknown) => {
        throw fsError(tmp, 'create', e);
      });
      let loaded = 0;
      for await (const chunk of chunks) {
        let done = 0;
        while (done < chunk.byteLength) {
          const { bytesWritten } = await handle.write(chunk, done, chunk.byteLength - done).catch((e: unknown) => {
            throw fsError(tmp, 'write', e);
          });
          done += bytesWritten;
        }
        loaded += chunk.byteLength;
        onBytes(loaded);
      }
      await handle.sync();
      await handle.close();
      handle = undefined;
      await fs.rename(tmp, file).catch((e: unknown) => {
        throw fsError(file, 'move download into place', e);
      });
      return loaded;
    } catch (e) {
      await handle?.close().catch(() => undefined);
      await fs.rm(tmp, { force: true }).catch(() => undefined);
      throw e;
    }
  };
  const walk = async (dir: string, key: string[], out: { files: CacheEntry[]; notes: string[][] }): Promise<void> => {
    const names = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const d of names) {
      const k = [...key, d.name];
      if (isInternalKey(k)) continue;
      if (d.isDirectory()) await walk(path.join(dir, d.name), k, out);
      else if (!d.isFile() || d.name.includes('.part-')) continue;
      else if (isNoteSegment(d.name)) out.notes.push(k);
      else out.files.push({ key: k, size: (await fs.stat(path.join(dir, d.name)).catch(() => undefined))?.size ?? 0 });
    }
  };
  return {
    describe: root,
    async get(key) {
      const file = fileOf(key);
      const st = await fs.stat(file).catch(() => undefined);
      return st?.isFile() ? entry(file, st.size) : undefined;
    },
    async put(key, url, res, onBytes) {
      const file = fileOf(key);
      let loaded = 0;
      const counted = (n: number) => onBytes((loaded = n));
      const size = await writeWhole(file, readBody(res, url), counted).catch(async (e: unknown) => {
        if (!isQuotaExceeded(e)) throw e;
        throw new CacheQuotaError({ cache: root, url, needed: plainLength(res) ?? loaded, available: await diskBytesFree(fs, root), cause: e });
      });
      return entry(file, size);
    },
    async readNote(key) {
      return fs.readFile(fileOf(key), 'utf8').catch(() => undefined);
    },
    async writeNote(key, text) {
      const bytes = new TextEncoder().encode(text);
      await writeWhole(fileOf(key), (async function* () {
        yield bytes;
      })(), () => undefined);
    },
    async list(prefix) {
      const out = { files: [] as CacheEntry[], notes: [] as string[][] };
      await walk(prefix.length ? fileOf(prefix) : root, [...prefix], out);
      return out;
    },
    async remove(prefix) {
      const target = fileOf(prefix);
      if (!(await fs.stat(target).catch(() => undefined))) return false;
      await fs.rm(target, { recursive: true, force: true }).catch((e: unknown) => {
        throw fsError(target, 'remove cached files', e);
      });
      return true;
    },
    async move(from, to) {
      const [src, dst] = [fileOf(from.key), fileOf(to.key)];
      if (!(await fs.stat(src).catch(() => undefined))?.isFile()) return false;
      await fs.mkdir(path.dirname(dst), { recursive: true });
      await fs.rename(src, dst).catch((e: unknown) => {
        throw fsError(dst, 'move a staged file into place', e);
      });
      return true;
    },
  };
}

/** Response header holding an entry's key ("hubs/huggingface.co/org/name/main/config.json"), so the cache can be listed. */
const KEY_HEADER = 'x-webq-key';

/**
 * The browser cache (Cache API). A download is held as a Blob (browsers may keep large ones on
 * disk) and put into the cache only when complete; a put over the quota is a CacheQuotaError
 * carrying the Blob (src/io/hub/cache-quota.ts), any other failed put still returns the Blob. Each entry carries its key in a
 * header, which is how listing and removal find a model's files among URLs.
 */
export async function browserCache(name = 'webq'): Promise<FileCache> {
  const cache = await caches.open(name);
  const entry = (blob: Blob): CachedFile => ({ input: blob, size: blob.size, text: () => blob.text() });
  const keyOf = (res: Response | undefined) => res?.headers.get(KEY_HEADER)?.split('/');
  const under = (key: readonly string[] | undefined, prefix: readonly string[]) => key !== undefined && prefix.every((s, i) => key[i] === s);
  return {
    describe: `Cache API '${name}'`,
    async get(_key, url) {
      const hit = await cache.match(url);
      return hit ? entry(await hit.blob()) : undefined;
    },
    async put(key, url, res, onBytes) {
      const parts: Uint8Array<ArrayBuffer>[] = [];
      let loaded = 0;
      for await (const chunk of readBody(res, url)) {
        parts.push(chunk as Uint8Array<ArrayBuffer>);
        loaded += chunk.byteLength;
        onBytes(loaded);
      }
      const blob = new Blob(parts, { type: res.headers.get('content-type') ?? 'application/octet-stream' });
      const headers = { 'content-length': String(blob.size), 'content-type': blob.type, [KEY_HEADER]: key.join('/') };
      // Other failures leave the download uncached (caching is an optimisation here); a full
      // cache is the caller's to know of (src/io/hub/cache-quota.ts).
      await cache.put(url, new Response(blob, { headers })).catch(async (e: unknown) => {
        if (isQuotaExceeded(e)) throw new CacheQuotaError({ cache: `Cache API '${name}'`, url, needed: blob.size, available: await browserBytesFree(), download: blob, cause: e });
      });
      return entry(blob);
    },
    async readNote(key) {
      const hit = await cache.match(internalUrl(key));
      return hit?.text();
    },
    async writeNote(key, text) {
      const headers = { 'content-type': 'application/json', [KEY_HEADER]: key.join('/') };
      await cache.put(internalUrl(key), new Response(text, { headers })).catch(() => undefined);
    },
    async list(prefix) {
      const out = { files: [] as CacheEntry[], notes: [] as string[][] };
      for (const req of await cache.keys()) {
        const res = await cache.match(req);
        const key = keyOf(res);
        if (!key || !under(key, prefix) || isInternalKey(key)) continue;
        if (isNoteSegment(key.at(-1)!)) out.notes.push(key);
        else out.files.push({ key, size: Number(res!.headers.get('content-length') ?? 0) });
      }
      return out;
    },
    async remove(prefix) {
      let any = false;
      for (const req of await cache.keys()) {
        if (under(keyOf(await cache.match(req)), prefix)) any = (await cache.delete(req)) || any;
      }
      return any;
    },
    async move(from, to) {
      const hit = await cache.match(from.url);
      if (!hit) return false;
      const headers = new Headers(hit.headers);
      headers.set(KEY_HEADER, to.key.join('/'));
      await cache.put(to.url, new Response(await hit.blob(), { headers }));
      await cache.delete(from.url);
      return true;
    },
  };
}

/**
 * The cache for this runtime: disk in Node and Deno (under `dir`, default defaultCacheDir()), the
 * Cache API in browsers; undefined when there is none (no home folder, no Cache API).
 */
export async function openFileCache(dir?: string): Promise<FileCache | undefined> {
  if (detectRuntime() !== 'browser') {
    const root = dir ?? defaultCacheDir();
    return root ? diskCache(root) : undefined;
  }
  if (typeof caches === 'undefined') return undefined;
  return browserCache();
}

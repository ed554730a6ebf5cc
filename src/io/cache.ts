/**
 * Download cache for remote model files. In Node and Deno files go to disk under
 * `${WEBQ_CACHE_DIR ?? ~/.cache/webq}/<key...>` (hub files: `hub/<org>/<name>/<revision>/<file>`);
 * in browsers into the Cache API (`caches.open('webq')`, keyed by URL).
 *
 * A file enters the cache only complete: on disk it is streamed to `<name>.part-<random>` and
 * renamed once every byte promised by Content-Length has arrived, so a dropped connection leaves
 * nothing a later (possibly offline) open could mistake for the file. Entries are never
 * revalidated: a hit is used without asking the server, which is what makes offline use work. To
 * pick up a moved branch, pin a commit as revision or delete the revision's folder.
 */
import { detectRuntime, getEnv } from '../gpu/env.ts';
import { SourceError } from './errors.ts';
import { fsError, loadFs, loadPath } from './node-fs.ts';
import type { SourceInput } from './source.ts';
import { plainLength } from './url-source.ts';

export interface DownloadProgress {
  /** File name relative to the model, e.g. "model.safetensors". */
  file: string;
  loaded: number;
  /** Content-Length when the server sent one. */
  total: number | undefined;
}

export type ProgressCallback = (p: DownloadProgress) => void;

/** A complete file in the cache. */
export interface CachedFile {
  /** A local path (Node, Deno) or a Blob (browser): hand it to SafetensorsFile.open / openSource. */
  readonly input: SourceInput;
  text(): Promise<string>;
}

export interface FileCache {
  /** Where entries live, for messages: a folder, or "Cache API 'webq'". */
  readonly describe: string;
  /** The entry for `key` (path segments) / `url`, or undefined. */
  get(key: readonly string[], url: string): Promise<CachedFile | undefined>;
  /** Stores the body of `res` (a 200 answer for `url`); complete or not at all. */
  put(key: readonly string[], url: string, res: Response, onBytes: (loaded: number) => void): Promise<CachedFile>;
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
    if (s === '' || s === '.' || s === '..' || /[\\/\0]/.test(s)) throw new SourceError('SOURCE_IO', `invalid cache key segment ${JSON.stringify(s)} in ${key.join('/')}`);
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
  const entry = (file: string): CachedFile => ({
    input: file,
    text: () =>
      fs.readFile(file, 'utf8').catch((e: unknown) => {
        throw fsError(file, 'read cached file', e);
      }),
  });
  return {
    describe: root,
    async get(key) {
      const file = fileOf(key);
      const st = await fs.stat(file).catch(() => undefined);
      return st?.isFile() ? entry(file) : undefined;
    },
    async put(key, url, res, onBytes) {
      const file = fileOf(key);
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
        for await (const chunk of readBody(res, url)) {
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
        return entry(file);
      } catch (e) {
        await handle?.close().catch(() => undefined);
        await fs.rm(tmp, { force: true }).catch(() => undefined);
        throw e;
      }
    },
  };
}

/**
 * The browser cache (Cache API). A download is held as a Blob (browsers may keep large ones on
 * disk) and put into the cache only when complete; a failed put (quota) still returns the Blob,
 * since caching is an optimisation there, not a requirement.
 */
export async function browserCache(name = 'webq'): Promise<FileCache> {
  const cache = await caches.open(name);
  const entry = (blob: Blob): CachedFile => ({ input: blob, text: () => blob.text() });
  return {
    describe: `Cache API '${name}'`,
    async get(_key, url) {
      const hit = await cache.match(url);
      return hit ? entry(await hit.blob()) : undefined;
    },
    async put(_key, url, res, onBytes) {
      const parts: Uint8Array<ArrayBuffer>[] = [];
      let loaded = 0;
      for await (const chunk of readBody(res, url)) {
        parts.push(chunk as Uint8Array<ArrayBuffer>);
        loaded += chunk.byteLength;
        onBytes(loaded);
      }
      const blob = new Blob(parts, { type: res.headers.get('content-type') ?? 'application/octet-stream' });
      const headers = { 'content-length': String(blob.size), 'content-type': blob.type };
      await cache.put(url, new Response(blob, { headers })).catch(() => undefined);
      return entry(blob);
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

/**
 * A full download cache. The browser's Cache API refuses a put over the origin's quota
 * (QuotaExceededError); a disk refuses a write when full (ENOSPC) or over the user's quota
 * (EDQUOT). Either is a CacheQuotaError 'CACHE_QUOTA' saying which file needed how many bytes and
 * how many were free where that is known, so a page can tell its user what to free.
 *
 * A load with `cache: 'best-effort'` goes on without the cache instead: the file that did not fit
 * is read from the network into memory (the browser's download, already a Blob, is used as it is)
 * and the model loads as from a cache: false load, the files already cached read from the cache.
 */
import { WebqError } from '../../errors.ts';
import type { CachedFile } from './cache.ts';
import { readBody } from './cache.ts';

export class CacheQuotaError extends WebqError {
  declare readonly code: 'CACHE_QUOTA';
  /** The URL of the file that did not fit. */
  readonly url: string;
  /** Bytes the file needed. */
  readonly needed: number;
  /** Bytes free in the cache when it refused, where the runtime says (navigator.storage.estimate(), statfs). */
  readonly available: number | undefined;
  /** The whole download, where the cache held it in memory before the put (browsers): no second download needed. */
  readonly download: Blob | undefined;
  constructor(a: { cache: string; url: string; needed: number; available?: number; download?: Blob; cause?: unknown }) {
    const free = a.available === undefined ? '' : ` (${a.available} bytes free)`;
    super(
      'CACHE_QUOTA',
      `${a.cache}: the download cache is full${free}: storing ${a.url} needs ${a.needed} bytes; free space (webq cache rm, removeCachedModel) ` +
        `or load with cache: 'best-effort' to read what does not fit from the network`,
      { cause: a.cause },
    );
    this.url = a.url;
    this.needed = a.needed;
    this.available = a.available;
    this.download = a.download;
  }
}

const QUOTA_CODES = new Set(['ENOSPC', 'EDQUOT']);

/** Whether `e` (or its cause) says storage is full: QuotaExceededError, ENOSPC, EDQUOT. */
export function isQuotaExceeded(e: unknown): boolean {
  for (let x = e, depth = 0; x && depth < 4; x = (x as { cause?: unknown }).cause, depth++) {
    const { name, code } = x as { name?: unknown; code?: unknown };
    if (name === 'QuotaExceededError' || (typeof code === 'string' && QUOTA_CODES.has(code))) return true;
  }
  return false;
}

/** Bytes the origin may still store (browsers), or undefined where the runtime does not say. */
export async function browserBytesFree(): Promise<number | undefined> {
  const storage = (globalThis as { navigator?: { storage?: { estimate?(): Promise<{ quota?: number; usage?: number }> } } }).navigator?.storage;
  const e = await storage?.estimate?.().catch(() => undefined);
  return e?.quota !== undefined && e.usage !== undefined ? Math.max(0, e.quota - e.usage) : undefined;
}

/** Bytes free on the disk holding `dir` (Node's and Deno's statfs), or undefined. */
export async function diskBytesFree(fs: { statfs?: (p: string) => Promise<{ bavail: number | bigint; bsize: number | bigint }> }, dir: string): Promise<number | undefined> {
  const s = await fs.statfs?.(dir).catch(() => undefined);
  return s ? Number(s.bavail) * Number(s.bsize) : undefined;
}

/** A downloaded Blob as a CachedFile that no cache holds. */
export function memoryFile(blob: Blob): CachedFile {
  return { input: blob, size: blob.size, text: () => blob.text() };
}

/** The body of `res` read whole into memory: a file a full cache could not take (`cache: 'best-effort'`). */
export async function downloadToMemory(res: Response, url: string, onBytes: (loaded: number) => void): Promise<CachedFile> {
  const parts: Uint8Array<ArrayBuffer>[] = [];
  let loaded = 0;
  for await (const chunk of readBody(res, url)) {
    parts.push(chunk as Uint8Array<ArrayBuffer>);
    loaded += chunk.byteLength;
    onBytes(loaded);
  }
  return memoryFile(new Blob(parts));
}

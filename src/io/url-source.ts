/**
 * HTTP(S) byte source using Range requests, so a multi-gigabyte checkpoint can be inspected or
 * streamed tensor by tensor without downloading it whole.
 */
import { SourceError } from './errors.ts';
import { networkTimeoutMs, request, wholeBody } from './http.ts';
import type { ByteSource } from './source.ts';

export interface UrlSourceOptions {
  /** fetch implementation; defaults to the global one. */
  fetch?: typeof fetch;
  /** Extra request headers, e.g. Authorization for gated models. */
  headers?: Record<string, string>;
  /**
   * Give up when the server sends nothing for this long (ms; headers, or between body chunks).
   * Default `WEBQ_NETWORK_TIMEOUT`, else 30 000; 0: wait forever.
   */
  timeoutMs?: number;
}

/** Parses "bytes a-b/total" or "bytes * /total" (RFC 9110 Content-Range). */
function parseContentRange(v: string | null): { start?: number; end?: number; total?: number } | undefined {
  if (v === null) return undefined;
  const m = /^\s*bytes\s+(?:(\d+)-(\d+)|\*)\/(\d+|\*)\s*$/i.exec(v);
  if (m === null) return undefined;
  const num = (s: string | undefined) => (s === undefined || s === '*' ? undefined : Number(s));
  return { start: num(m[1]), end: num(m[2]), total: num(m[3]) };
}

/** Content-Length as a number, only when it describes the bytes we get (no content coding). */
export function plainLength(res: Response): number | undefined {
  const enc = res.headers.get('content-encoding');
  if (enc !== null && enc.toLowerCase() !== 'identity') return undefined;
  const v = res.headers.get('content-length');
  if (v === null || !/^\d+$/.test(v.trim())) return undefined;
  return Number(v);
}

export function urlSource(url: string | URL, options: UrlSourceOptions = {}): ByteSource {
  return new UrlSource(new URL(url), options);
}

class UrlSource implements ByteSource {
  readonly name: string;
  private knownSize: number | undefined;
  /** Set when the server ignored Range: the one full download every read is then served from. */
  private whole: Promise<Blob> | undefined;
  private readonly fetchFn: typeof fetch;
  private readonly timeoutMs: number;

  constructor(
    private readonly url: URL,
    private readonly options: UrlSourceOptions,
  ) {
    this.name = url.href;
    this.fetchFn = options.fetch ?? ((...a) => fetch(...a));
    this.timeoutMs = networkTimeoutMs(options.timeoutMs);
  }

  private request(init: { method?: string; headers?: Record<string, string> }): Promise<Response> {
    return request(this.fetchFn, this.url, { method: init.method, headers: { ...this.options.headers, ...init.headers } }, this.timeoutMs);
  }

  private statusError(res: Response, what: string): SourceError {
    const status = `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`;
    if (res.status === 404 || res.status === 410) {
      return new SourceError('SOURCE_NOT_FOUND', `${this.name}: not found (${status})`, { status: res.status });
    }
    return new SourceError('SOURCE_HTTP', `${this.name}: ${what} failed with ${status}`, { status: res.status });
  }

  private shortRead(detail: string, cause?: unknown): SourceError {
    return new SourceError('SOURCE_SHORT_READ', `${this.name}: ${detail}`, { cause });
  }

  async size(): Promise<number> {
    if (this.knownSize !== undefined) return this.knownSize;
    if (this.whole) return (await this.whole).size;
    // HEAD is the cheapest way to learn the size.
    const head = await this.request({ method: 'HEAD' });
    if (head.ok) {
      const len = plainLength(head);
      if (len !== undefined) return (this.knownSize = len);
    } else if (head.status !== 405 && head.status !== 501) {
      throw this.statusError(head, 'HEAD request');
    }
    // No usable HEAD: a one-byte range answer carries the total in Content-Range.
    const res = await this.request({ headers: { Range: 'bytes=0-0' } });
    if (res.status === 206) {
      await res.body?.cancel();
      const total = parseContentRange(res.headers.get('content-range'))?.total;
      if (total === undefined) throw new SourceError('SOURCE_HTTP', `${this.name}: 206 answer has no usable Content-Range total`);
      return (this.knownSize = total);
    }
    if (res.status === 416) {
      // Asking for byte 0 of an empty resource: "bytes */0".
      await res.body?.cancel();
      const total = parseContentRange(res.headers.get('content-range'))?.total;
      if (total !== undefined) return (this.knownSize = total);
    }
    if (res.status === 200) return (await this.adoptWhole(res)).size;
    throw this.statusError(res, 'GET request');
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      throw new RangeError(`${this.name}: invalid read range offset=${offset} length=${length}`);
    }
    if (length === 0) return new Uint8Array(0);
    if (this.whole) return this.fromWhole(await this.whole, offset, length);
    const last = offset + length - 1;
    const res = await this.request({ headers: { Range: `bytes=${offset}-${last}` } });
    if (res.status === 200) return this.fromWhole(await this.adoptWhole(res), offset, length);
    if (res.status === 416) {
      await res.body?.cancel();
      throw this.shortRead(`bytes ${offset}-${last} are past the end of the resource (HTTP 416)`);
    }
    if (res.status !== 206) {
      await res.body?.cancel();
      throw this.statusError(res, `range request for bytes ${offset}-${last}`);
    }
    const range = parseContentRange(res.headers.get('content-range'));
    if (range?.start !== undefined && range.start !== offset) {
      await res.body?.cancel();
      throw new SourceError('SOURCE_BAD_RANGE', `${this.name}: asked for bytes ${offset}-${last}, server sent ${range.start}-${range.end}`);
    }
    if (range?.total !== undefined) this.knownSize = range.total;
    // A connection that closes before Content-Length bytes arrived is a short read.
    const body = await wholeBody(res.arrayBuffer(), (e) => this.shortRead(`response for bytes ${offset}-${last} ended early: ${e instanceof Error ? e.message : e}`, e));
    if (body.byteLength < length) {
      throw this.shortRead(`got ${body.byteLength} of ${length} bytes for range ${offset}-${last} (truncated response)`);
    }
    // A server may send more than the requested end; keep only what was asked for.
    return new Uint8Array(body, 0, length).slice();
  }

  /**
   * The server answered 200 to a Range request, i.e. it can't serve ranges. Keep that one body
   * (as a Blob, which browsers may spill to disk) and serve all reads from it; concurrent reads that
   * also got 200 drop their copy instead of downloading again.
   */
  private adoptWhole(res: Response): Promise<Blob> {
    if (this.whole) {
      void res.body?.cancel();
      return this.whole;
    }
    const expected = plainLength(res);
    const p = (async () => {
      const blob = await wholeBody(res.blob(), (e) => this.shortRead(`download ended early: ${e instanceof Error ? e.message : e}`, e));
      if (expected !== undefined && blob.size !== expected) {
        throw this.shortRead(`download has ${blob.size} of ${expected} bytes (truncated response)`);
      }
      this.knownSize = blob.size;
      return blob;
    })();
    this.whole = p;
    p.catch(() => {
      if (this.whole === p) this.whole = undefined; // a later read may retry
    });
    return p;
  }

  private async fromWhole(blob: Blob, offset: number, length: number): Promise<Uint8Array> {
    if (offset + length > blob.size) {
      throw this.shortRead(`read of ${length} bytes at offset ${offset} goes past the end (${blob.size} bytes)`);
    }
    return new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer());
  }

  async close(): Promise<void> {
    this.whole = undefined;
  }
}

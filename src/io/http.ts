/**
 * One way to make HTTP requests for the io layer: every request and every body read has an idle
 * timeout, so a server that accepts the connection and then says nothing (or stalls mid-body)
 * fails with an error naming the URL instead of hanging for the platform's default (~300 s in
 * Node). Failures become SourceErrors: SOURCE_NETWORK (no connection: refused, DNS, TLS),
 * SOURCE_TIMEOUT (connected, then silence).
 */
import { getEnv } from '../env.ts';
import { WebqError } from '../errors.ts';
import { SourceError } from './errors.ts';

/** Seconds of silence after which a request or a body read gives up, unless told otherwise. */
export const DEFAULT_NETWORK_TIMEOUT_MS = 30_000;

/**
 * The idle timeout in ms: `option`, else `WEBQ_NETWORK_TIMEOUT` (ms), else 30 s. 0 turns it off.
 * A value that is not a non-negative number is an error rather than a silent default.
 */
export function networkTimeoutMs(option?: number): number {
  const from = option !== undefined ? { value: String(option), where: 'timeoutMs' } : { value: getEnv('WEBQ_NETWORK_TIMEOUT'), where: 'WEBQ_NETWORK_TIMEOUT' };
  if (from.value === undefined || from.value.trim() === '') return DEFAULT_NETWORK_TIMEOUT_MS;
  const ms = Number(from.value);
  if (!Number.isFinite(ms) || ms < 0) {
    throw new WebqError('BAD_OPTION', `${from.where}=${from.value.slice(0, 40)}: expected the network timeout in milliseconds (0: none)`);
  }
  return ms;
}

export interface RequestInit {
  method?: string;
  headers?: Record<string, string>;
}

/** True for the errors that mean "no answer from the network" (as opposed to an HTTP status). */
export function isUnreachable(e: unknown): boolean {
  return e instanceof SourceError && (e.code === 'SOURCE_NETWORK' || e.code === 'SOURCE_TIMEOUT');
}

function timeoutError(url: string, ms: number, what: string): SourceError {
  return new SourceError(
    'SOURCE_TIMEOUT',
    `${url}: ${what} for ${ms / 1000} s, giving up (a slow or stuck server? set WEBQ_NETWORK_TIMEOUT or timeoutMs, in ms, to wait longer)`,
  );
}

/** Rejects with `error()` after `ms` unless cleared; ms 0 never fires. */
function deadline(ms: number, error: () => Error): { promise: Promise<never>; clear(): void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const promise = new Promise<never>((_, reject) => {
    if (ms > 0) timer = setTimeout(() => reject(error()), ms);
  });
  promise.catch(() => undefined); // a rejection nobody races for is not unhandled
  return { promise, clear: () => clearTimeout(timer) };
}

/** Responses with these statuses may not carry a body (the Response constructor refuses one). */
const NULL_BODY = new Set([101, 103, 204, 205, 304]);

/**
 * fetch(url) with an idle timeout of `timeoutMs` on the headers and between body chunks. The
 * returned Response's body fails with SOURCE_TIMEOUT when the server goes quiet mid-body.
 * `extra` is added to a network error's message (e.g. "not in the cache either").
 */
export async function request(fetchFn: typeof fetch, url: URL, init: RequestInit, timeoutMs: number, extra = ''): Promise<Response> {
  const ctl = new AbortController();
  const headersDue = deadline(timeoutMs, () => timeoutError(url.href, timeoutMs, 'no response'));
  let res: Response;
  try {
    res = await Promise.race([fetchFn(url, { method: init.method, headers: init.headers, signal: ctl.signal }), headersDue.promise]);
  } catch (e) {
    ctl.abort();
    if (e instanceof SourceError) throw e;
    // undici says only "fetch failed"; ECONNREFUSED, DNS or TLS is in the cause.
    const cause = (e as { cause?: unknown } | null)?.cause;
    const why = cause instanceof Error ? ` (${cause.message})` : '';
    throw new SourceError('SOURCE_NETWORK', `${url.href}: request failed: ${e instanceof Error ? e.message : e}${why}${extra}`, { cause: e });
  } finally {
    headersDue.clear();
  }
  if (res.body === null || NULL_BODY.has(res.status) || timeoutMs === 0) return res;
  const reader = res.body.getReader();
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const idle = deadline(timeoutMs, () => timeoutError(url.href, timeoutMs, 'no data (mid-body)'));
      try {
        const step = await Promise.race([reader.read(), idle.promise]);
        if (step.done) controller.close();
        else controller.enqueue(step.value);
      } catch (e) {
        ctl.abort();
        void reader.cancel().catch(() => undefined);
        controller.error(e);
      } finally {
        idle.clear();
      }
    },
    async cancel(reason) {
      // Cancelling the body is how callers drop an answer they don't want (a 416, a duplicate
      // whole-file body): it closes the connection and must not fail.
      await reader.cancel(reason).catch(() => undefined);
    },
  });
  return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
}

/** Awaits a whole-body read (arrayBuffer, blob); a SourceError (a timeout) stays itself, others go through `onError`. */
export async function wholeBody<T>(read: Promise<T>, onError: (e: unknown) => Error): Promise<T> {
  try {
    return await read;
  } catch (e) {
    throw e instanceof SourceError ? e : onError(e);
  }
}

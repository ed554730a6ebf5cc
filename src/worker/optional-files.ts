/**
 * Optional files without 404s in the browser's console. A load asks whether optional files exist
 * (1_Pooling/config.json, modules.json, generation_config.json, chat_template.jinja, ...), and
 * RemoteFiles.exists (src/io/remote-files.ts) sends a HEAD request for each one the cache knows
 * nothing of; a browser prints every 404 answer as a console error, expected or not.
 *
 * For a hub id, the hub lists a revision's files in one request (GET
 * `<hub>/api/models/<id>/revision/<rev>`, whose `siblings` huggingface.js' listFiles reads too).
 * The fetch made here answers a HEAD for a file that is not on that list with the hub's own 404
 * (X-Error-Code: EntryNotFound) without sending it; RemoteFiles then remembers the absence in the
 * cache's note as usual. Everything else goes to the network unchanged, and a hub without that API
 * (or any failure to read the list) leaves the HEAD requests as they were.
 *
 * A folder URL has no listing: its absent optional files are asked for once, then remembered.
 */
import { hubBaseUrl, parseHubId, DEFAULT_HUB_URL } from '../io/hub.ts';

export interface ListingOptions {
  hubUrl?: string;
  revision?: string;
  headers?: Record<string, string>;
}

function urlOf(input: RequestInfo | URL): URL {
  return new URL(input instanceof Request ? input.url : String(input));
}

/** A fetch that knows a hub revision's file list; `fetchFn` itself for anything but a hub id. */
export function listingFetch(location: string, opts: ListingOptions, fetchFn: typeof fetch): typeof fetch {
  if (/^[a-z][a-z0-9+.-]*:/i.test(location)) return fetchFn; // a URL, not a hub id
  let hub: ReturnType<typeof parseHubId>;
  try {
    hub = parseHubId(location, opts.revision);
  } catch {
    return fetchFn; // the load reports the bad id itself
  }
  if (!hub) return fetchFn;
  const base = hubBaseUrl(hub.id, hub.revision, opts.hubUrl).href;
  const root = (opts.hubUrl ?? DEFAULT_HUB_URL).replace(/\/+$/, '');
  const api = `${root}/api/models/${hub.id}/revision/${encodeURIComponent(hub.revision)}`;
  let listing: Promise<Set<string> | null> | undefined;
  const list = (signal: AbortSignal | null | undefined) =>
    (listing ??= (async () => {
      try {
        const res = await fetchFn(api, { headers: opts.headers, signal });
        if (!res.ok) {
          await res.body?.cancel().catch(() => undefined);
          return null;
        }
        const siblings = ((await res.json()) as { siblings?: unknown }).siblings;
        if (!Array.isArray(siblings)) return null;
        return new Set(siblings.map((s) => (s as { rfilename?: unknown })?.rfilename).filter((f): f is string => typeof f === 'string'));
      } catch {
        return null;
      }
    })());
  return async (input, init) => {
    const url = urlOf(input);
    const method = (init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
    if (method === 'HEAD' && url.href.startsWith(base)) {
      const file = url.href.slice(base.length).split('/').map(decodeURIComponent).join('/');
      const names = await list(init?.signal);
      if (names && !names.has(file)) return new Response(null, { status: 404, statusText: 'Not Found', headers: { 'X-Error-Code': 'EntryNotFound' } });
    }
    return fetchFn(input, init);
  };
}

/** `fetchFn` whose requests also end when `signal` aborts (a load stopped from the main thread). */
export function abortableFetch(fetchFn: typeof fetch, signal: AbortSignal): typeof fetch {
  return (input, init = {}) => fetchFn(input, { ...init, signal: init.signal ? AbortSignal.any([init.signal, signal]) : signal });
}

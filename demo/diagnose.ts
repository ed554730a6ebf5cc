/**
 * Advice for a load that failed on the network. A browser hides why a cross-origin request
 * failed: a server that answered without CORS headers and a server that is not there both come
 * back as "Failed to fetch" (webq's SOURCE_NETWORK). A no-cors request tells them apart: it
 * succeeds, opaquely, whenever the server answers at all.
 */

/** The URL a SOURCE_NETWORK error names ("<url>: request failed: ..."). */
function failedUrl(e: unknown): URL | undefined {
  if ((e as { code?: unknown })?.code !== 'SOURCE_NETWORK') return undefined;
  const m = /^(https?:\/\/\S+?): request failed/.exec((e as Error).message ?? '');
  try {
    return m ? new URL(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** What to tell the user about `e`, beside its message; undefined when there is nothing to add. */
export async function networkAdvice(e: unknown): Promise<string | undefined> {
  const url = failedUrl(e);
  if (!url) return undefined;
  if (url.origin === location.origin) return `Nothing answered at ${url.origin}: is the server running, and is the URL right?`;
  const answered = await fetch(url, { mode: 'no-cors', cache: 'no-store' }).then(
    () => true,
    () => false,
  );
  if (!answered) return `Nothing answered at ${url.origin}: is the server running, and is the URL right?`;
  return [
    `The server at ${url.origin} answered, but without CORS headers, so this page (${location.origin}) is not allowed to read the model's files.`,
    'Serve the model folder with CORS, for example:',
    '  npx http-server /path/to/models --cors -p 8080',
    'or have your server add these headers to its answers:',
    '  Access-Control-Allow-Origin: *',
    '  Access-Control-Allow-Headers: Range',
    '  Access-Control-Expose-Headers: Content-Length, Content-Range, Accept-Ranges',
  ].join('\n');
}

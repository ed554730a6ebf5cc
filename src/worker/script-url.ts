/**
 * Where the worker script is by default: beside this module. From the sources (Vite, Deno) that is
 * src/worker/worker.ts, from the Node build dist/worker/worker.js. scripts/build-browser.mjs
 * replaces this function in dist/webq.browser.js with one that names dist/webq.worker.js, the
 * worker bundle written beside it.
 */
export function defaultWorkerUrl(): URL {
  const here = import.meta.url;
  return new URL(here.endsWith('.ts') ? './worker.ts' : './worker.js', here);
}

/**
 * The worker's fetch: every request of a load also ends when the load is aborted from the main
 * thread. (Optional files need nothing here: RemoteFiles.exists in src/io/hub/remote-files.ts reads a
 * hub revision's file list, so a missing optional file costs no request and no console 404.)
 */

/** `fetchFn` whose requests also end when `signal` aborts (a load stopped from the main thread). */
export function abortableFetch(fetchFn: typeof fetch, signal: AbortSignal): typeof fetch {
  return (input, init = {}) => fetchFn(input, { ...init, signal: init.signal ? AbortSignal.any([init.signal, signal]) : signal });
}

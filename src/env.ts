/**
 * Where webq runs and what its environment says. One place answers both, so nothing else sniffs
 * globals; io/ (hub, cache) and gpu/ (device) both read it, and it depends on neither.
 */
export type Runtime = 'browser' | 'node' | 'deno';

declare const Deno: unknown;

export function detectRuntime(): Runtime {
  if (typeof Deno !== 'undefined') return 'deno';
  const proc = (globalThis as { process?: { versions?: { node?: string } } }).process;
  if (proc?.versions?.node && typeof (globalThis as { window?: unknown }).window === 'undefined') return 'node';
  return 'browser';
}

let deniedWarned = false;

/**
 * Reads an environment variable in Node or Deno; undefined in a browser. Deno without
 * `--allow-env` refuses the read: that is said once (console.warn), since silently taking the
 * variable as unset sends models to the default hub and drops the disk cache.
 */
export function getEnv(name: string): string | undefined {
  const deno = (globalThis as { Deno?: { env: { get(n: string): string | undefined } } }).Deno;
  if (deno) {
    try {
      return deno.env.get(name);
    } catch {
      if (!deniedWarned) {
        deniedWarned = true;
        console.warn(
          `webq: Deno refused to read the environment variable ${name} (no --allow-env), so webq goes on as if its variables were unset: ` +
            'WEBQ_HUB_URL (models come from https://huggingface.co), the cache folder (WEBQ_CACHE_DIR, HOME: nothing is cached on disk), ' +
            'WEBQ_OFFLINE and WEBQ_NETWORK_TIMEOUT. Run Deno with --allow-env, or pass hubUrl / cacheDir as options.',
        );
      }
      return undefined;
    }
  }
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return proc?.env?.[name];
}

/** An on/off variable: "1", "true", "yes", "on" (any case) mean on; unset or anything else, off. */
export function envFlag(name: string): boolean {
  return /^(1|true|yes|on)$/i.test(getEnv(name)?.trim() ?? '');
}

/** Where webq runs. One place answers this so nothing else sniffs globals. */
export type Runtime = 'browser' | 'node' | 'deno';

declare const Deno: unknown;

export function detectRuntime(): Runtime {
  if (typeof Deno !== 'undefined') return 'deno';
  const proc = (globalThis as { process?: { versions?: { node?: string } } }).process;
  if (proc?.versions?.node && typeof (globalThis as { window?: unknown }).window === 'undefined') return 'node';
  return 'browser';
}

/** Reads an environment variable in Node or Deno; undefined in a browser or without permission. */
export function getEnv(name: string): string | undefined {
  try {
    const deno = (globalThis as { Deno?: { env: { get(n: string): string | undefined } } }).Deno;
    if (deno) return deno.env.get(name);
    const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
    return proc?.env?.[name];
  } catch {
    return undefined;
  }
}

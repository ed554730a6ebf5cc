/**
 * Lazy access to node:fs/promises and node:path. Modules under src/io also ship in browser bundles,
 * so nothing here may import node:* at the top level; Node and Deno (which understands node:
 * specifiers) load them on first use of a local path.
 */
import { SourceError } from './errors.ts';

type Fs = typeof import('node:fs/promises');
type Path = typeof import('node:path');

function hasNodeFs(): boolean {
  const g = globalThis as { process?: { versions?: { node?: string } }; Deno?: unknown };
  return g.process?.versions?.node !== undefined || g.Deno !== undefined;
}

function unsupported(what: string): SourceError {
  return new SourceError(
    'SOURCE_UNSUPPORTED',
    `${what}: local file paths need Node or Deno; in a browser pass a URL, File, Blob or ArrayBuffer`,
  );
}

// Specifiers kept in variables (plus the ignore hints) so bundlers leave these imports alone: a
// browser build then carries no node stubs or warnings, and the same bundle run under Node, Deno or
// SSR still reaches the real modules at run time.
const FS = 'node:fs/promises';
const PATH = 'node:path';
const URL_MODULE = 'node:url';

export async function loadFs(what: string): Promise<Fs> {
  if (!hasNodeFs()) throw unsupported(what);
  return import(/* @vite-ignore */ /* webpackIgnore: true */ FS) as Promise<Fs>;
}

export async function loadPath(what: string): Promise<Path> {
  if (!hasNodeFs()) throw unsupported(what);
  return import(/* @vite-ignore */ /* webpackIgnore: true */ PATH) as Promise<Path>;
}

/** file: URL -> local path (node:url handles Windows drive letters and escapes). */
export async function fileUrlToPath(url: URL): Promise<string> {
  if (!hasNodeFs()) throw unsupported(url.href);
  const mod = (await import(/* @vite-ignore */ /* webpackIgnore: true */ URL_MODULE)) as typeof import('node:url');
  return mod.fileURLToPath(url);
}

/** Maps a Node fs error to a SourceError naming `path`. */
export function fsError(path: string, action: string, e: unknown): SourceError {
  const code = (e as { code?: unknown } | null)?.code;
  if (code === 'ENOENT') return new SourceError('SOURCE_NOT_FOUND', `${path}: no such file or directory`, { cause: e });
  const detail = e instanceof Error ? e.message : String(e);
  return new SourceError('SOURCE_IO', `${path}: cannot ${action}: ${detail}`, { cause: e });
}

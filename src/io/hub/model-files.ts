/** Shared types of model locations (src/io/hub/hub.ts): the ModelFiles interface, options, errors. */
import { WebqError } from '../../errors.ts';
import { q, showJson } from '../errors.ts';
import type { ProgressCallback } from './progress.ts';
import type { JsonValue } from '../json.ts';
import type { TensorStore } from '../safetensors/reader.ts';

export type HubErrorCode =
  | 'HUB_BAD_LOCATION' // neither a folder, a URL nor an org/name id; or conflicting revisions
  | 'HUB_BAD_FILE'; // a file name that is not a plain relative path inside the model

/** A model location or a file name inside it is malformed. (Failed reads are SourceErrors.) */
export class HubError extends WebqError {
  declare readonly code: HubErrorCode;
  constructor(code: HubErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

export interface OpenModelOptions {
  /** Branch, tag or commit for hub ids (default "main"); `org/name@rev` says the same. */
  revision?: string;
  /**
   * Loading progress in transformers.js' shape: `{ status: 'initiate' | 'download' | 'progress' |
   * 'done' | 'ready', name, file, loaded, total, progress }` (see src/io/hub/progress.ts).
   */
  onProgress?: ProgressCallback;
  /**
   * Keep remote files (hub ids and folder URLs) in the download cache and read them from there;
   * default true where a cache exists. false: read over the network every time (safetensors by
   * HTTP range requests, so only the bytes asked for are fetched). 'best-effort': use the cache,
   * but a file a full cache refuses (over the browser's quota, a full disk) is read from the network
   * into memory and the load goes on; by default that is a CacheQuotaError 'CACHE_QUOTA' saying
   * how many bytes were needed (src/io/hub/cache-quota.ts).
   */
  cache?: boolean | 'best-effort';
  /**
   * Never use the network: files come from the cache, an uncached one is a SourceError
   * 'SOURCE_OFFLINE' naming it. Default: the WEBQ_OFFLINE environment variable ("1", "true").
   */
  offline?: boolean;
  /** Ask the server now whether a cached branch (e.g. "main") has moved, instead of waiting for recheckMs. */
  refresh?: boolean;
  /**
   * A cached branch or tag is re-checked with the server at most this often (ms; default 10
   * minutes). Commit-hash revisions are never re-checked: they cannot change.
   */
  recheckMs?: number;
  /**
   * Give up on a server that sends nothing for this long (ms; waiting for the answer or between
   * body chunks). Default WEBQ_NETWORK_TIMEOUT, else 30 000.
   */
  timeoutMs?: number;
  /** Cache folder (Node, Deno); default `${WEBQ_CACHE_DIR ?? ~/.cache/webq}`. */
  cacheDir?: string;
  /** Hub base URL; default `${WEBQ_HUB_URL ?? 'https://huggingface.co'}`. */
  hubUrl?: string;
  /** fetch implementation; defaults to the global one. */
  fetch?: typeof fetch;
  /** Extra request headers, e.g. Authorization for gated models. */
  headers?: Record<string, string>;
}

/** The files of one model, wherever they live. `file` names are relative ("1_Pooling/config.json"). */
export interface ModelFiles {
  readonly kind: 'folder' | 'url' | 'hub';
  /** The folder, the URL, or "org/name@rev at <hub>", for messages. */
  readonly describe: string;
  /** UTF-8 text of a file; a missing file is a SourceError 'SOURCE_NOT_FOUND' naming it. */
  readText(file: string): Promise<string>;
  /** readText + JSON.parse, with the file named in a syntax error. */
  readJson(file: string): Promise<JsonValue>;
  exists(file: string): Promise<boolean>;
  /** model.safetensors, or the shards model.safetensors.index.json lists. */
  checkpoint(): Promise<TensorStore>;
  /** Runs `fn`, a whole load, so that it reads one version of the files (a cached model: its lock, src/io/hub/cache-lock.ts). */
  hold?<T>(fn: () => Promise<T>): Promise<T>;
}

/** Splits a relative file name into segments, rejecting anything that could leave the model. */
export function fileSegments(file: string): string[] {
  const segs = typeof file === 'string' ? file.split('/') : [''];
  if (typeof file !== 'string' || file.includes('\\') || /^[a-z][a-z0-9+.-]*:/i.test(file) || segs.some((s) => s === '' || s === '.' || s === '..')) {
    throw new HubError('HUB_BAD_FILE', `file name ${typeof file === 'string' ? q(file) : showJson(file)}: expected a relative path inside the model folder, like "config.json" or "1_Pooling/config.json"`);
  }
  return segs;
}

/**
 * The most bytes webq reads of a model's text file, checked before reading it: a hostile
 * "config.json" of gigabytes would otherwise be read whole, then parsed. tokenizer.json files run
 * to ~35 MB (Gemma 3's); configs, tokenizer_config.json and templates to a few MB at most.
 */
export const MAX_TEXT_BYTES: Readonly<Record<string, number>> = { 'tokenizer.json': 64 << 20, '*': 16 << 20 };

export function textFileLimit(file: string): number {
  return MAX_TEXT_BYTES[file.split('/').at(-1)!] ?? MAX_TEXT_BYTES['*'];
}

/** Refuses a text file of `size` bytes over its limit (MODEL_FILE_TOO_LARGE), naming it. */
export function checkTextSize(file: string, size: number | undefined, where: string): void {
  const limit = textFileLimit(file);
  if (size !== undefined && size > limit) {
    throw new WebqError('MODEL_FILE_TOO_LARGE', `${where}: is ${size} bytes; webq reads a model's ${file.split('/').at(-1)} only up to ${limit} bytes (real ones are far smaller), so it is not read`);
  }
}

export function parseJsonText(text: string, where: string): JsonValue {
  try {
    return JSON.parse(text) as JsonValue;
  } catch (e) {
    throw new WebqError('MODEL_FILE_NOT_JSON', `${where}: not valid JSON: ${e instanceof Error ? e.message : e}`, { cause: e });
  }
}

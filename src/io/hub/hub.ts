/**
 * Where a model lives -> its files. Three forms:
 *  - a local folder (a path or file: URL; Node and Deno),
 *  - a folder URL, `https://host/path/` (file names are resolved against it),
 *  - a hub id `org/name` or `org/name@revision`, fetched from
 *    `${WEBQ_HUB_URL ?? 'https://huggingface.co'}/<org>/<name>/resolve/<revision>/<file>`.
 * A string that names an existing local folder is taken as that folder even when it also looks
 * like `org/name` (transformers' from_pretrained decides the same way). Remote files go through
 * the download cache (src/io/hub/cache.ts) unless `cache: false`; src/io/hub/remote-files.ts says when a
 * cached file is used, re-checked or refused (offline).
 */
import { detectRuntime, envFlag, getEnv } from '../../env.ts';
import { finishInterruptedPatch } from '../patch-journal.ts';
import { openFileCache } from './cache.ts';
import { openCheckpoint } from '../safetensors/checkpoint.ts';
import { SourceError, q, showJson } from '../errors.ts';
import type { JsonValue } from '../json.ts';
import { checkTextSize, fileSegments, HubError, parseJsonText, type ModelFiles, type OpenModelOptions } from './model-files.ts';
import { fileUrlToPath, fsError, loadFs, loadPath } from '../node-fs.ts';
import { ProgressReporter, type ProgressCallback } from './progress.ts';
import { RemoteFiles, type RemoteTarget } from './remote-files.ts';
import type { TensorStore } from '../safetensors/reader.ts';

export { HubError, type HubErrorCode, type ModelFiles, type OpenModelOptions } from './model-files.ts';
export type { DownloadProgress, ProgressCallback, ProgressInfo, ProgressStatus } from './progress.ts';

export const DEFAULT_HUB_URL = 'https://huggingface.co';

export type ModelLocation =
  | { readonly kind: 'folder'; readonly path: string }
  | { readonly kind: 'url'; readonly base: URL }
  | { readonly kind: 'hub'; readonly id: string; readonly org: string; readonly name: string; readonly revision: string };

/** org/name, each part a hub repo name: letters, digits, "-", "_", "." (no ".." anywhere). */
const HUB_ID = /^([A-Za-z0-9][\w.-]*)\/([A-Za-z0-9][\w.-]*)(?:@(.+))?$/;

/** True when `s` has the shape of a hub id, `org/name` or `org/name@revision` (nothing is fetched). */
export function isHubId(s: string): boolean {
  return HUB_ID.test(s) && !s.split('@')[0].includes('..');
}

function looksLikePath(s: string): boolean {
  return /^(\/|\.{1,2}(\/|\\|$)|~|[A-Za-z]:[\\/])/.test(s) || s.includes('\\');
}

/** `org/name` or `org/name@revision` as a hub location (revision default "main"); undefined if `s` is not one. */
export function parseHubId(s: string, revision?: string): Extract<ModelLocation, { kind: 'hub' }> | undefined {
  return hubLocation(s, revision);
}

function hubLocation(s: string, revision: string | undefined): Extract<ModelLocation, { kind: 'hub' }> | undefined {
  const m = HUB_ID.exec(s);
  if (!m || s.split('@')[0].includes('..')) return undefined;
  const [, org, name, rev] = m;
  if (rev !== undefined && revision !== undefined && rev !== revision) {
    throw new HubError('HUB_BAD_LOCATION', `${s}: revision '${rev}' in the id conflicts with option revision '${revision}'; give one`);
  }
  return { kind: 'hub', id: `${org}/${name}`, org, name, revision: rev ?? revision ?? 'main' };
}

function folderUrl(url: URL): ModelLocation {
  const base = new URL(url.href);
  base.search = '';
  base.hash = '';
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  return { kind: 'url', base };
}

/** Classifies `location` (see the module comment for the rules). */
export async function parseModelLocation(location: string | URL, options: { revision?: string } = {}): Promise<ModelLocation> {
  if (location instanceof URL) {
    if (location.protocol === 'file:') return { kind: 'folder', path: await fileUrlToPath(location) };
    if (location.protocol === 'http:' || location.protocol === 'https:') return folderUrl(location);
    throw new HubError('HUB_BAD_LOCATION', `${location.href}: unsupported URL scheme ${location.protocol}; expected http(s) or file`);
  }
  if (typeof location !== 'string' || location === '') {
    throw new HubError('HUB_BAD_LOCATION', `model location ${typeof location === 'string' ? q(location) : showJson(location)}: expected a folder path, a folder URL or a hub id (org/name[@revision])`);
  }
  if (/^https?:\/\//i.test(location)) return folderUrl(new URL(location));
  if (/^file:/i.test(location)) return { kind: 'folder', path: await fileUrlToPath(new URL(location)) };
  if (looksLikePath(location)) return { kind: 'folder', path: location };
  if (detectRuntime() !== 'browser') {
    const fs = await loadFs(location);
    if (await fs.stat(location).then(() => true, () => false)) return { kind: 'folder', path: location };
  }
  const hub = hubLocation(location, options.revision);
  if (hub) return hub;
  if (detectRuntime() !== 'browser') {
    throw new SourceError('SOURCE_NOT_FOUND', `${location}: no such folder, and not a hub id (expected org/name or org/name@revision)`);
  }
  throw new HubError('HUB_BAD_LOCATION', `${location}: expected a folder URL (https://...) or a hub id (org/name or org/name@revision)`);
}

function hubRoot(hubUrl: string | undefined): string {
  return (hubUrl ?? getEnv('WEBQ_HUB_URL') ?? DEFAULT_HUB_URL).replace(/\/+$/, '');
}

/** `<hub>/<org>/<name>/resolve/<revision>/` (revision percent-encoded, so refs/pr/1 works). */
export function hubBaseUrl(id: string, revision: string, hubUrl?: string): URL {
  return new URL(`${hubRoot(hubUrl)}/${id}/resolve/${encodeURIComponent(revision)}/`);
}

/**
 * `<hub>/api/models/<org>/<name>/revision/<revision>`: the revision's metadata, whose `siblings`
 * list its files (`[{ rfilename }]`, what huggingface.js' listFiles reads).
 */
export function hubFileListUrl(id: string, revision: string, hubUrl?: string): URL {
  return new URL(`${hubRoot(hubUrl)}/api/models/${id}/revision/${encodeURIComponent(revision)}`);
}

/**
 * The hub in cache keys: its URL without "https://" (`huggingface.co`, `hf-mirror.com`,
 * `http://127.0.0.1:8080`, `example.com/hf`), percent-encoded into one segment.
 */
export function hubKeySegment(hubUrl?: string): string {
  const u = new URL(hubRoot(hubUrl));
  const root = `${u.protocol === 'https:' ? '' : `${u.protocol}//`}${u.host}${u.pathname.replace(/\/+$/, '')}`;
  return encodeURIComponent(root);
}

/** The hub URL a key segment of hubKeySegment stands for. */
export function hubFromKeySegment(segment: string): string {
  const root = decodeURIComponent(segment);
  return root.includes('://') ? root : `https://${root}`;
}

/**
 * Where a remote location's files live in the download cache: `hubs/<hub>/<org>/<name>/<rev>`
 * (the hub as hubKeySegment writes it, so one hub's files never answer for another's) or
 * `url/<host>/<path...>`, each segment percent-encoded (so "refs/pr/1" is one segment). Caches
 * from before the hub was part of the key hold `hub/<org>/<name>/<rev>`: which hub those came
 * from is unknown, so no load reads them (src/io/hub/cached-models.ts lists and removes them).
 */
export function cacheKeyPrefix(loc: Exclude<ModelLocation, { kind: 'folder' }>, hubUrl?: string): string[] {
  if (loc.kind === 'hub') return ['hubs', hubKeySegment(hubUrl), loc.org, loc.name, encodeURIComponent(loc.revision)];
  const segs = loc.base.pathname.split('/').filter((s) => s !== '');
  return ['url', encodeURIComponent(loc.base.host), ...segs.map(encodeURIComponent)];
}

/** A model in a local folder. */
class LocalFiles implements ModelFiles {
  readonly kind = 'folder';
  private readonly progress: ProgressReporter;
  constructor(
    readonly describe: string,
    private readonly path: typeof import('node:path'),
    private readonly fs: typeof import('node:fs/promises'),
    onProgress: ProgressCallback | undefined,
  ) {
    this.progress = new ProgressReporter(describe, onProgress);
  }

  private full(file: string): string {
    return this.path.join(this.describe, ...fileSegments(file));
  }

  async readText(file: string): Promise<string> {
    const p = this.full(file);
    checkTextSize(file, (await this.fs.stat(p).catch(() => undefined))?.size, p);
    return this.fs.readFile(p, 'utf8').catch((e: unknown) => {
      throw fsError(p, 'read', e);
    });
  }

  async readJson(file: string): Promise<JsonValue> {
    return parseJsonText(await this.readText(file), this.full(file));
  }

  async exists(file: string): Promise<boolean> {
    const st = await this.fs.stat(this.full(file)).catch(() => undefined);
    return st?.isFile() ?? false;
  }

  async checkpoint(): Promise<TensorStore> {
    const store = await openCheckpoint(this.describe);
    this.progress.ready(store);
    return store;
  }
}

/**
 * Opens a model location: a local folder, a folder URL, or a hub id (`org/name[@revision]`).
 * Nothing is downloaded until a file is read; for remote models every file read goes through the
 * cache (when on), so after one complete load the model opens without a network.
 */
export async function openModelFiles(location: string | URL, options: OpenModelOptions = {}): Promise<ModelFiles> {
  const loc = await parseModelLocation(location, options);
  if (loc.kind === 'folder') {
    const fs = await loadFs(loc.path);
    const path = await loadPath(loc.path);
    const st = await fs.stat(loc.path).catch((e: unknown) => {
      throw fsError(loc.path, 'open model folder', e);
    });
    if (!st.isDirectory()) throw new HubError('HUB_BAD_LOCATION', `${loc.path}: is a file; pass the model's folder (the one holding config.json)`);
    // A `webq patch` a crash interrupted is completed or discarded first: old model or new, never a mix.
    await finishInterruptedPatch(loc.path);
    return new LocalFiles(loc.path, path, fs, options.onProgress);
  }
  let target: RemoteTarget;
  if (loc.kind === 'hub') {
    const base = hubBaseUrl(loc.id, loc.revision, options.hubUrl);
    target = {
      kind: 'hub',
      base,
      describe: `${loc.id}@${loc.revision} (${base.origin})`,
      name: loc.id,
      location: `${loc.id}@${loc.revision}`,
      revision: loc.revision,
      keyPrefix: cacheKeyPrefix(loc, options.hubUrl),
      notFoundHint: `check the model id '${loc.id}' and revision '${loc.revision}'`,
      fileList: hubFileListUrl(loc.id, loc.revision, options.hubUrl),
    };
  } else {
    target = {
      kind: 'url',
      base: loc.base,
      describe: loc.base.href,
      name: loc.base.href,
      location: loc.base.href,
      keyPrefix: cacheKeyPrefix(loc),
      notFoundHint: 'check the folder URL',
    };
  }
  const offline = options.offline ?? envFlag('WEBQ_OFFLINE');
  const cache = options.cache === false ? undefined : await openFileCache(options.cacheDir);
  if (!cache && (options.cache === true || offline)) {
    const why = options.cache === false ? 'cache: false was given' : 'there is no download cache here (set WEBQ_CACHE_DIR or pass cacheDir)';
    const what = offline ? 'offline mode (offline: true or WEBQ_OFFLINE=1) reads remote models only from the download cache, but' : 'cache: true, but';
    throw new SourceError(offline ? 'SOURCE_OFFLINE' : 'SOURCE_UNSUPPORTED', `${target.describe}: ${what} ${why}`);
  }
  return new RemoteFiles(target, cache, { ...options, offline });
}

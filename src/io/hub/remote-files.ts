/**
 * A model on a server: a hub id (`<hub>/<org>/<name>/resolve/<rev>/<file>`) or a plain folder URL.
 * With a cache, every file is downloaded whole into it first and read from there; without one,
 * text files are fetched each time and safetensors are read by HTTP range requests.
 *
 * Offline first. A cached file is used without asking the server; an optional file the server
 * said is absent (exists() got a 404) is remembered in the revision's note, so it is not asked
 * for again. Without a network (refused, DNS, timeout) a cached model loads as it is; in offline
 * mode (`offline: true`, WEBQ_OFFLINE=1) no request is ever made.
 *
 * Freshness. A commit-hash revision never changes, so it is never re-checked. A branch or tag is
 * re-checked at most once per `recheckMs` (default 10 minutes), or at once with `refresh: true`:
 * one HEAD request reads the commit the branch is at now (X-Repo-Commit); if it moved, the
 * revision's cached files and notes are dropped and downloaded again as they are read. A server
 * that names no commit cannot be compared: its cache is kept, and `refresh` downloads again.
 * Folder URLs have no commits: they are kept until `refresh`.
 *
 * Optional files. A load asks whether optional files exist (1_Pooling/config.json, modules.json,
 * sentence_bert_config.json, generation_config.json, ...). For a hub id, exists() reads the
 * revision's file list once per open (GET `<hub>/api/models/<id>/revision/<rev>`) instead of a
 * HEAD per file, so a missing file costs no request and no 404, which a browser prints in its
 * console as an error, expected or not. A hub without that API (or any failure to read the list
 * but no network) falls back to the HEAD requests. A folder URL has no list: each optional file
 * it lacks is asked for once with a HEAD (one 404 on a page's first load), then remembered.
 *
 * Updates. A delta can update a cached model in place (updateCachedModel, src/delta/patch-cache.ts;
 * staging and journal on cache entries: src/io/hub/cache-update.ts). The first cache read of every
 * open completes or discards an update that a crash or a closed tab interrupted, holding the
 * model's lock (so it waits for an update running in another tab or worker), and a load, which
 * holds the lock shared from its first read to its last (hold(), src/io/hub/cache-lock.ts), finds the
 * old model or the new one, whole. Nothing above compares cached files with the server's (no
 * sizes, no ETags): a folder URL's files are used until `refresh`, a branch's until the branch
 * moves. So updated files are used as they are, never downloaded again or refused, and the note
 * needs nothing new: its commit stays the one the base files came from. A branch that moves on the
 * server drops them like any cached file (what the new commit holds is the server's to say), and
 * they are downloaded again.
 */
import { readBody, noteKey, type CachedFile, type FileCache } from './cache.ts';
import { CacheQuotaError, downloadToMemory, memoryFile } from './cache-quota.ts';
import { cacheUpdater, finishCachedUpdate, readingModel, type CacheUpdater, type CachedModel } from './cache-update.ts';
import { openCheckpoint } from '../safetensors/checkpoint.ts';
import { SafetensorsError, SourceError } from '../errors.ts';
import { isUnreachable, networkTimeoutMs, request } from '../http.ts';
import type { JsonValue } from '../json.ts';
import { checkTextSize, fileSegments, parseJsonText, type ModelFiles, type OpenModelOptions } from './model-files.ts';
import { ProgressReporter } from './progress.ts';
import { isCommitHash, NoteStore } from './revision-note.ts';
import type { TensorStore } from '../safetensors/reader.ts';
import { SafetensorsFile } from '../safetensors/reader.ts';
import { readIndex, ShardedCheckpoint } from '../safetensors/sharded.ts';
import { openSource, type ByteSource } from '../source.ts';
import { plainLength, urlSource } from '../url-source.ts';

const SINGLE = 'model.safetensors';
const INDEX = 'model.safetensors.index.json';
export const DEFAULT_RECHECK_MS = 10 * 60_000;
export interface RemoteTarget {
  readonly kind: 'url' | 'hub';
  /** Folder URL ending in "/"; file URLs are `new URL(encodedFile, base)`. */
  readonly base: URL;
  readonly describe: string;
  /** The model in progress events: the hub id or the folder URL. */
  readonly name: string;
  /** What loads it again ("org/name@rev" or the folder URL), kept in the cache's note. */
  readonly location: string;
  /** Hub revision (branch, tag or commit); undefined for folder URLs. */
  readonly revision?: string;
  /** Cache key segments before the file's own, e.g. ['hub', org, name, rev]. */
  readonly keyPrefix: readonly string[];
  /** Extra words for a 404, e.g. "check the model id 'org/name' and revision 'main'". */
  readonly notFoundHint: string;
  /** Hub ids: where the hub lists the revision's files (see hubFileListUrl in hub.ts). */
  readonly fileList?: URL;
}

/**
 * The file names a hub's revision metadata lists (`siblings[].rfilename`), or null when the hub
 * answers without a usable list (no such API, an error status, another shape). No network at all
 * is a SourceError as for any request, so the caller need not wait on a second timeout.
 */
export async function readHubFileList(fetchFn: typeof fetch, url: URL, headers: Record<string, string> | undefined, timeoutMs: number): Promise<Set<string> | null> {
  const res = await request(fetchFn, url, { headers }, timeoutMs);
  if (!res.ok) {
    await res.body?.cancel().catch(() => undefined);
    return null;
  }
  try {
    const siblings = ((await res.json()) as { siblings?: unknown } | null)?.siblings;
    if (!Array.isArray(siblings)) return null;
    return new Set(siblings.map((s) => (s as { rfilename?: unknown } | null)?.rfilename).filter((f): f is string => typeof f === 'string'));
  } catch (e) {
    if (isUnreachable(e)) throw e; // the body stalled
    return null;
  }
}

function isNotFound(e: unknown): boolean {
  return e instanceof SourceError && e.code === 'SOURCE_NOT_FOUND';
}

/** Hugging Face says which part was missing in X-Error-Code; other servers don't. */
function hubReason(res: Response): string {
  switch (res.headers.get('x-error-code')) {
    case 'RepoNotFound':
      return 'the model does not exist (or is private or gated: pass headers with an Authorization token)';
    case 'RevisionNotFound':
      return 'the revision does not exist';
    case 'EntryNotFound':
      return 'the model has no such file';
    default:
      return 'the file or the model does not exist';
  }
}

export interface RemoteOptions extends OpenModelOptions {
  /** Resolved from `offline` and WEBQ_OFFLINE by the caller. */
  offline: boolean;
}

export class RemoteFiles implements ModelFiles {
  readonly kind: 'url' | 'hub';
  readonly describe: string;
  private readonly fetchFn: typeof fetch;
  private readonly timeoutMs: number;
  private readonly progress: ProgressReporter;
  private readonly notes: NoteStore | undefined;
  private readonly inflight = new Map<string, Promise<CachedFile>>();
  /** The once-per-open freshness check (see the module comment). */
  private fresh: Promise<void> | undefined;
  /** The hub's file list, read at most once per open (see the module comment). */
  private listing: Promise<Set<string> | null> | undefined;
  /** Loads running under hold(). */
  private holding = 0;

  constructor(
    private readonly target: RemoteTarget,
    private readonly cache: FileCache | undefined,
    private readonly options: RemoteOptions,
  ) {
    this.kind = target.kind;
    this.describe = target.describe;
    this.fetchFn = options.fetch ?? ((...a) => fetch(...a));
    this.timeoutMs = networkTimeoutMs(options.timeoutMs);
    this.progress = new ProgressReporter(target.name, options.onProgress);
    this.notes = cache && new NoteStore(cache, noteKey(target.keyPrefix), target.location);
  }

  url(file: string): URL {
    return new URL(fileSegments(file).map(encodeURIComponent).join('/'), this.target.base);
  }

  private key(file: string): string[] {
    return [...this.target.keyPrefix, ...fileSegments(file).map(encodeURIComponent)];
  }

  private request(file: string, init: { method?: string; headers?: Record<string, string> } = {}): Promise<Response> {
    const cached = this.cache ? `; ${file} is not in the cache at ${this.cache.describe} either` : '';
    return request(this.fetchFn, this.url(file), { method: init.method, headers: { ...this.options.headers, ...init.headers } }, this.timeoutMs, cached);
  }

  /** GET `file`, turning non-2xx answers into SourceErrors that name the URL and what to check. */
  private async get(file: string): Promise<Response> {
    const res = await this.request(file);
    if (res.ok) return res;
    await res.body?.cancel().catch(() => undefined);
    throw this.statusError(file, res);
  }

  private statusError(file: string, res: Response): SourceError {
    const url = this.url(file).href;
    const status = `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`;
    if (res.status === 404 || res.status === 410) {
      const reason = this.kind === 'hub' ? hubReason(res) : `there is no ${file} under this folder URL`;
      return new SourceError('SOURCE_NOT_FOUND', `${url}: not found (${status}): ${reason}; ${this.target.notFoundHint}`, { status: res.status });
    }
    const auth = res.status === 401 || res.status === 403 ? ' (private or gated model? pass headers with an Authorization token)' : '';
    return new SourceError('SOURCE_HTTP', `${url}: download failed with ${status}${auth}`, { status: res.status });
  }

  private offlineError(file: string): SourceError {
    return new SourceError(
      'SOURCE_OFFLINE',
      `${this.describe}: ${file} is not in the cache at ${this.cache!.describe}, and offline mode is on (offline: true or WEBQ_OFFLINE=1), ` +
        'so it is not downloaded; load the model once with the network on, or turn offline mode off',
    );
  }

  /** Finishes an interrupted update, then runs the freshness check: once per open, before the first cache read. */
  private ensureFresh(file: string): Promise<void> {
    return (this.fresh ??= this.finishUpdate().then(() => this.checkRevision(file)));
  }

  /** An update that a crash or a closed tab interrupted is completed or discarded (see the module comment). */
  private async finishUpdate(): Promise<void> {
    // hold() has done it already, and holds the shared lock, which finishing would wait for.
    if (this.cache && this.holding === 0) await finishCachedUpdate(this.cachedModel(this.cache));
  }

  /** Runs `fn`, a whole load, holding the cached model's lock shared (src/io/hub/cache-lock.ts). */
  hold<T>(fn: () => Promise<T>): Promise<T> {
    if (!this.cache) return fn();
    return readingModel(this.cachedModel(this.cache), () => {
      this.holding++;
      return fn().finally(() => this.holding--);
    });
  }

  /** This model as src/io/hub/cache-update.ts sees it. */
  private cachedModel(cache: FileCache): CachedModel {
    return {
      cache, describe: this.describe, keyPrefix: this.target.keyPrefix,
      key: (file) => this.key(file), url: (file) => this.url(file).href, noteAbsent: (file) => this.noteAbsent(file),
    };
  }

  /** This model's cached files, to update them by a delta; undefined without a cache. */
  updater(): CacheUpdater | undefined {
    return this.cache && cacheUpdater(this.cachedModel(this.cache));
  }

  private async checkRevision(file: string): Promise<void> {
    const { cache, notes } = this;
    if (!cache || !notes || this.options.offline || isCommitHash(this.target.revision)) return;
    const refresh = this.options.refresh === true;
    if (this.kind === 'url' && !refresh) return;
    const note = await notes.get();
    const age = Date.now() - note.checked;
    if (!refresh && note.checked > 0 && age >= 0 && age < (this.options.recheckMs ?? DEFAULT_RECHECK_MS)) return;
    // Nothing known and nothing cached: the downloads about to happen record the commit.
    if (note.checked === 0 && !(await cache.get(this.key(file), this.url(file).href))) return;
    let res: Response;
    try {
      res = await this.request(file, { method: 'HEAD' });
    } catch (e) {
      if (isUnreachable(e)) return; // no network: the cache is what there is
      throw e;
    }
    await res.body?.cancel().catch(() => undefined);
    const commit = res.headers.get('x-repo-commit') ?? undefined;
    if (!res.ok && commit === undefined) return; // can't tell (server trouble, no HEAD): ask again next time
    const moved = commit === undefined ? refresh : commit !== note.commit;
    if (moved) await this.dropCached();
    await notes.update((n) => {
      n.checked = Date.now();
      if (commit !== undefined) n.commit = commit;
    });
  }

  /** Forgets this revision's files and absences: they were for another commit. */
  private async dropCached(): Promise<void> {
    await this.cache!.remove(this.target.keyPrefix);
    await this.notes!.update((n) => {
      n.absent = [];
      delete n.commit;
    });
  }

  /** A download answered: note when, and at which commit; a branch that moved drops the rest. */
  private async noteDownload(res: Response): Promise<void> {
    if (!this.notes) return;
    const commit = (this.kind === 'hub' && res.headers.get('x-repo-commit')) || undefined;
    const note = await this.notes.get();
    if (commit !== undefined && note.commit !== undefined && commit !== note.commit && !isCommitHash(this.target.revision)) await this.dropCached();
    await this.notes.update((n) => {
      n.checked = Date.now();
      if (commit !== undefined) n.commit = commit;
    });
  }

  /** The cached copy of `file`, downloading it first when it is not there yet. */
  private cached(file: string, text = false): Promise<CachedFile> {
    const cache = this.cache!;
    const key = this.key(file);
    const id = key.join('/');
    let p = this.inflight.get(id);
    if (!p) {
      p = (async () => {
        await this.ensureFresh(file);
        const url = this.url(file).href;
        const hit = await cache.get(key, url);
        if (hit) {
          this.progress.cached(file, hit.size);
          return hit;
        }
        if (this.options.offline) throw this.offlineError(file);
        const res = await this.get(file);
        if (text) await this.checkText(file, res);
        await this.noteDownload(res);
        const total = plainLength(res);
        this.progress.emit('initiate', file, 0, total);
        this.progress.emit('download', file, 0, total);
        const onBytes = (loaded: number) => this.progress.emit('progress', file, loaded, total);
        const stored = await cache.put(key, url, res, onBytes).catch((e: unknown) => this.withoutCache(e, file, onBytes));
        this.progress.emit('done', file, stored.size, stored.size);
        return stored;
      })();
      this.inflight.set(id, p);
      p.then(
        () => this.inflight.delete(id),
        () => this.inflight.delete(id),
      );
    }
    return p;
  }

  /** A file a full cache refused: with `cache: 'best-effort'`, from the network into memory (src/io/hub/cache-quota.ts). */
  private async withoutCache(e: unknown, file: string, onBytes: (loaded: number) => void): Promise<CachedFile> {
    if (!(e instanceof CacheQuotaError) || this.options.cache !== 'best-effort') throw e;
    return e.download ? memoryFile(e.download) : downloadToMemory(await this.get(file), this.url(file).href, onBytes);
  }

  /** A text file's answer over its size limit is refused before its body is read. */
  private async checkText(file: string, res: Response): Promise<void> {
    try {
      checkTextSize(file, plainLength(res), this.url(file).href);
    } catch (e) {
      await res.body?.cancel().catch(() => undefined);
      throw e;
    }
  }

  async readText(file: string): Promise<string> {
    if (this.cache) {
      const f = await this.cached(file, true);
      checkTextSize(file, f.size, this.url(file).href);
      return f.text();
    }
    const res = await this.get(file);
    await this.checkText(file, res);
    const parts: Uint8Array[] = [];
    let loaded = 0;
    const total = plainLength(res);
    this.progress.emit('initiate', file, 0, total);
    this.progress.emit('download', file, 0, total);
    for await (const chunk of readBody(res, this.url(file).href)) {
      parts.push(chunk);
      loaded += chunk.byteLength;
      checkTextSize(file, loaded, this.url(file).href); // no Content-Length: counted as it comes
      this.progress.emit('progress', file, loaded, total);
    }
    this.progress.emit('done', file, loaded, loaded);
    return new TextDecoder().decode(await new Blob(parts as Uint8Array<ArrayBuffer>[]).arrayBuffer());
  }

  async readJson(file: string): Promise<JsonValue> {
    return parseJsonText(await this.readText(file), this.url(file).href);
  }

  /**
   * Whether the model has `file` (an optional one, usually). Answered from the cache when it can
   * be: a cached file exists, a remembered 404 does not. Otherwise the hub's file list (hub ids)
   * or a HEAD request (folder URLs, hubs without the list) answers, and an absence is remembered.
   * With no network, or offline, a file the cache knows nothing of counts as absent, as
   * transformers does for optional files: the files a load needs fail loudly when read.
   */
  async exists(file: string): Promise<boolean> {
    const url = this.url(file); // checks the name
    if (this.cache) {
      await this.ensureFresh(file);
      if (await this.cache.get(this.key(file), url.href)) return true;
      if ((await this.notes!.get()).absent.includes(file)) return false;
      if (this.options.offline) return false;
    }
    let res: Response;
    try {
      const listed = this.target.fileList && (await (this.listing ??= readHubFileList(this.fetchFn, this.target.fileList, this.options.headers, this.timeoutMs)));
      if (listed) {
        if (listed.has(file)) return true;
        await this.noteAbsent(file);
        return false;
      }
      res = await this.request(file, { method: 'HEAD' });
      if (res.status === 405 || res.status === 501) {
        // No HEAD: ask for one byte instead.
        res = await this.request(file, { headers: { Range: 'bytes=0-0' } });
        await res.body?.cancel().catch(() => undefined);
      }
    } catch (e) {
      if (this.cache && isUnreachable(e)) return false;
      throw e;
    }
    if (res.ok) return true;
    if (res.status === 404 || res.status === 410) {
      await this.noteAbsent(file);
      return false;
    }
    throw this.statusError(file, res);
  }

  private async noteAbsent(file: string): Promise<void> {
    await this.notes?.update((n) => {
      if (!n.absent.includes(file)) n.absent.push(file);
    });
  }

  /**
   * A byte source for one file (a GGUF file, read by range): the cached copy, downloaded whole
   * first, or without a cache HTTP range requests to its URL.
   */
  async source(file: string): Promise<ByteSource> {
    if (this.cache) return openSource((await this.cached(file)).input);
    return urlSource(this.url(file), { fetch: this.options.fetch, headers: this.options.headers, timeoutMs: this.timeoutMs });
  }

  async checkpoint(): Promise<TensorStore> {
    const store = await this.openCheckpoint();
    this.progress.ready(store, store instanceof ShardedCheckpoint ? INDEX : SINGLE);
    return store;
  }

  private async openCheckpoint(): Promise<SafetensorsFile | ShardedCheckpoint> {
    const opts = { fetch: this.options.fetch, headers: this.options.headers, timeoutMs: this.timeoutMs };
    if (!this.cache) return openCheckpoint(this.target.base, opts);
    const cache = this.cache;
    // Cached entries first, so an offline open never touches the network.
    await this.ensureFresh(SINGLE);
    if (await cache.get(this.key(SINGLE), this.url(SINGLE).href)) return SafetensorsFile.open((await this.cached(SINGLE)).input);
    let index = await cache.get(this.key(INDEX), this.url(INDEX).href);
    if (!index && this.options.offline) throw this.offlineError(`${SINGLE} (nor ${INDEX})`);
    if (!index) {
      try {
        return await SafetensorsFile.open((await this.cached(SINGLE)).input);
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
      try {
        index = await this.cached(INDEX);
      } catch (e) {
        if (!isNotFound(e)) throw e;
        throw new SafetensorsError('SAFETENSORS_NO_CHECKPOINT', `${this.describe}: has neither ${SINGLE} nor ${INDEX}`, { cause: e });
      }
    } else {
      index = await this.cached(INDEX); // for its progress events
    }
    const parsed = await readIndex(openSource(index.input));
    const shards = new Map<string, CachedFile>();
    // One at a time: shards are large and progress reads best file by file.
    for (const shard of [...new Set(parsed.weightMap.values())].sort()) {
      try {
        shards.set(shard, await this.cached(shard));
      } catch (e) {
        if (!isNotFound(e)) throw e;
        throw new SafetensorsError('SAFETENSORS_SHARD_MISSING', `${this.describe}: ${INDEX} lists shard "${shard}", which does not exist: ${(e as Error).message}`, { cause: e });
      }
    }
    return ShardedCheckpoint.open(parsed, (shard) => shards.get(shard)!.input);
  }
}

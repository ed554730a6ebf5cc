/**
 * A model on a server: a hub id (`<hub>/<org>/<name>/resolve/<rev>/<file>`) or a plain folder URL.
 * With a cache, every file is downloaded whole into it first and read from there (so a second
 * open works offline); without one, text files are fetched each time and safetensors are read by
 * HTTP range requests.
 */
import { readBody, type CachedFile, type FileCache } from './cache.ts';
import { openCheckpoint } from './checkpoint.ts';
import { SafetensorsError, SourceError } from './errors.ts';
import type { JsonValue } from './json.ts';
import { fileSegments, parseJsonText, type ModelFiles, type OpenModelOptions } from './model-files.ts';
import { SafetensorsFile } from './safetensors.ts';
import { readIndex, ShardedCheckpoint } from './sharded.ts';
import { openSource } from './source.ts';

const SINGLE = 'model.safetensors';
const INDEX = 'model.safetensors.index.json';

export interface RemoteTarget {
  readonly kind: 'url' | 'hub';
  /** Folder URL ending in "/"; file URLs are `new URL(encodedFile, base)`. */
  readonly base: URL;
  readonly describe: string;
  /** Cache key segments before the file's own, e.g. ['hub', org, name, rev]. */
  readonly keyPrefix: readonly string[];
  /** Extra words for a 404, e.g. "check the model id 'org/name' and revision 'main'". */
  readonly notFoundHint: string;
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

export class RemoteFiles implements ModelFiles {
  readonly kind: 'url' | 'hub';
  readonly describe: string;
  private readonly fetchFn: typeof fetch;
  private readonly inflight = new Map<string, Promise<CachedFile>>();

  constructor(
    private readonly target: RemoteTarget,
    private readonly cache: FileCache | undefined,
    private readonly options: OpenModelOptions,
  ) {
    this.kind = target.kind;
    this.describe = target.describe;
    this.fetchFn = options.fetch ?? ((...a) => fetch(...a));
  }

  url(file: string): URL {
    return new URL(fileSegments(file).map(encodeURIComponent).join('/'), this.target.base);
  }

  private key(file: string): string[] {
    return [...this.target.keyPrefix, ...fileSegments(file).map(encodeURIComponent)];
  }

  private async request(file: string, init: { method?: string; headers?: Record<string, string> } = {}): Promise<Response> {
    const url = this.url(file);
    try {
      return await this.fetchFn(url, { method: init.method, headers: { ...this.options.headers, ...init.headers } });
    } catch (e) {
      // undici says only "fetch failed"; ECONNREFUSED, DNS or TLS is in the cause.
      const cause = (e as { cause?: unknown } | null)?.cause;
      const why = cause instanceof Error ? ` (${cause.message})` : '';
      const cached = this.cache ? `; ${file} is not in the cache at ${this.cache.describe} either` : '';
      throw new SourceError('SOURCE_NETWORK', `${url.href}: request failed: ${e instanceof Error ? e.message : e}${why}${cached}`, { cause: e });
    }
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

  /** The cached copy of `file`, downloading it first when it is not there yet. */
  private cached(file: string): Promise<CachedFile> {
    const cache = this.cache!;
    const key = this.key(file);
    const id = key.join('/');
    let p = this.inflight.get(id);
    if (!p) {
      p = (async () => {
        const url = this.url(file).href;
        const hit = await cache.get(key, url);
        if (hit) return hit;
        const res = await this.get(file);
        const total = Number(res.headers.get('content-length') ?? NaN);
        const report = (loaded: number) => this.options.onProgress?.({ file, loaded, total: Number.isFinite(total) ? total : undefined });
        report(0);
        return cache.put(key, url, res, report);
      })();
      this.inflight.set(id, p);
      p.then(
        () => this.inflight.delete(id),
        () => this.inflight.delete(id),
      );
    }
    return p;
  }

  async readText(file: string): Promise<string> {
    if (this.cache) return (await this.cached(file)).text();
    const res = await this.get(file);
    const parts: Uint8Array[] = [];
    let loaded = 0;
    const total = Number(res.headers.get('content-length') ?? NaN);
    for await (const chunk of readBody(res, this.url(file).href)) {
      parts.push(chunk);
      loaded += chunk.byteLength;
      this.options.onProgress?.({ file, loaded, total: Number.isFinite(total) ? total : undefined });
    }
    return new TextDecoder().decode(await new Blob(parts as Uint8Array<ArrayBuffer>[]).arrayBuffer());
  }

  async readJson(file: string): Promise<JsonValue> {
    return parseJsonText(await this.readText(file), this.url(file).href);
  }

  async exists(file: string): Promise<boolean> {
    if (this.cache && (await this.cache.get(this.key(file), this.url(file).href))) return true;
    let res = await this.request(file, { method: 'HEAD' });
    if (res.status === 405 || res.status === 501) {
      // No HEAD: ask for one byte instead.
      res = await this.request(file, { headers: { Range: 'bytes=0-0' } });
      await res.body?.cancel().catch(() => undefined);
    }
    if (res.ok) return true;
    if (res.status === 404 || res.status === 410) return false;
    throw this.statusError(file, res);
  }

  async checkpoint(): Promise<SafetensorsFile | ShardedCheckpoint> {
    const opts = { fetch: this.options.fetch, headers: this.options.headers };
    if (!this.cache) return openCheckpoint(this.target.base, opts);
    const cache = this.cache;
    // Cached entries first, so an offline open never touches the network.
    const single = await cache.get(this.key(SINGLE), this.url(SINGLE).href);
    if (single) return SafetensorsFile.open(single.input);
    let index = await cache.get(this.key(INDEX), this.url(INDEX).href);
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

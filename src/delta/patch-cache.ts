/**
 * Updating a cached remote model by a delta, `webq.delta.updateCachedModel(location, delta)`: the
 * browser's Cache API, or the download cache on disk in Node and Deno. The delta is downloaded whole
 * (that is what an update costs), every check of checks.ts runs against the cached files, and the new
 * files replace the cached ones through the redo journal on cache entries (src/io/hub/cache-update.ts),
 * so a reload at any moment finds the old model or the new one. A bad delta changes nothing.
 *
 * A cache may hold only some of a model's side files (a load reads those it needs). A side file the
 * delta keeps from the base and the cache has not got stays uncached: a later load downloads it,
 * and it is the same in both versions. Side files the delta carries are written, cached before or not.
 */
import { openModelFiles } from '../io/hub/hub.ts';
import { networkTimeoutMs, request } from '../io/http.ts';
import type { OpenModelOptions } from '../io/hub/model-files.ts';
import { commitJournal, finishInterrupted, reachStep, type StepHook } from '../io/patch-journal.ts';
import { ProgressReporter, type ProgressCallback } from '../io/hub/progress.ts';
import { readBody, type CachedFile } from '../io/hub/cache.ts';
import type { CacheUpdater } from '../io/hub/cache-update.ts';
import { RemoteFiles } from '../io/hub/remote-files.ts';
import { SafetensorsFile } from '../io/safetensors/reader.ts';
import { isHttpUrl, openSource, type SourceInput } from '../io/source.ts';
import { plainLength } from '../io/url-source.ts';
import { checkWritten, preparePatch, type PatchedModel } from './patch-prepare.ts';
import { DeltaError, openDelta, type Delta } from './format.ts';
import { importPublicKey, type PublicKeyInput } from './sign.ts';

const SINGLE = 'model.safetensors';

export interface CacheUpdateOptions extends Pick<OpenModelOptions, 'revision' | 'hubUrl' | 'cacheDir' | 'fetch' | 'headers' | 'timeoutMs'>, StepHook {
  /** Progress of the delta's download (events shaped as a load's; `file` is the delta's name). */
  onProgress?: ProgressCallback;
  /** Refuse the delta unless it is signed by this Ed25519 key (src/delta/sign.ts). */
  publicKey?: PublicKeyInput;
}

export interface CacheUpdateReport {
  /** The model as the cache knows it: the folder URL or the hub id, and where it is cached. */
  model: string;
  from: string;
  to: string;
  /** Bytes of the delta: what the update downloaded, when it came from a URL. */
  deltaBytes: number;
  /** Bytes of the new model.safetensors. */
  modelBytes: number;
  added: string[];
  changed: string[];
  removed: string[];
  renamed: [string, string][];
  /** Files written into the cache, and files removed from it. */
  written: string[];
  deleted: string[];
}

function isDelta(x: unknown): x is Delta {
  return typeof x === 'object' && x !== null && 'manifest' in x && 'store' in x && typeof (x as Delta).close === 'function';
}

/**
 * The most bytes a delta for a model of `modelBytes` may have: every tensor changed costs about
 * the model's size (plus its manifest), so twice that and some is far beyond a real delta, and a
 * server that sends more cannot fill the page's memory.
 */
export function maxDeltaBytes(modelBytes: number): number {
  return 2 * modelBytes + 64 * 2 ** 20;
}

/** A delta on a server, downloaded whole (at most `limit` bytes), then opened from memory. */
async function downloadDelta(url: URL, opts: CacheUpdateOptions, limit: number): Promise<Delta> {
  const fetchFn = opts.fetch ?? ((...a: Parameters<typeof fetch>) => fetch(...a));
  const res = await request(fetchFn, url, { headers: opts.headers }, networkTimeoutMs(opts.timeoutMs));
  if (!res.ok) {
    await res.body?.cancel().catch(() => undefined);
    throw new DeltaError('DELTA_MISSING', `${url.href}: cannot download the delta (HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''})`);
  }
  const file = url.pathname.split('/').pop() || url.href;
  const progress = new ProgressReporter(url.href, opts.onProgress);
  const total = plainLength(res);
  const tooLarge = (n: number) => new DeltaError('DELTA_TOO_LARGE', `${url.href}: the delta is ${n > limit && n === total ? `${n}` : `over ${limit}`} bytes, more than a delta for this model can be (at most ${limit}: twice the model and 64 MiB); not downloaded`);
  if (total !== undefined && total > limit) {
    await res.body?.cancel().catch(() => undefined);
    throw tooLarge(total);
  }
  progress.emit('initiate', file, 0, total);
  progress.emit('download', file, 0, total);
  const parts: Uint8Array<ArrayBuffer>[] = [];
  let loaded = 0;
  for await (const chunk of readBody(res, url.href)) {
    parts.push(chunk as Uint8Array<ArrayBuffer>);
    loaded += chunk.byteLength;
    if (loaded > limit) throw tooLarge(loaded);
    progress.emit('progress', file, loaded, total);
  }
  progress.emit('done', file, loaded, loaded);
  return openDelta(new Blob(parts), url.href, { publicKey: opts.publicKey });
}

function openDeltaInput(input: SourceInput, opts: CacheUpdateOptions, limit: number): Promise<Delta> {
  if (input instanceof URL && (input.protocol === 'http:' || input.protocol === 'https:')) return downloadDelta(input, opts, limit);
  if (typeof input === 'string' && isHttpUrl(input)) return downloadDelta(new URL(input), opts, limit);
  return openDelta(input, undefined, { publicKey: opts.publicKey });
}

/** An already opened Delta given with a public key must have been opened with one. */
async function checkOpened(d: Delta, key: PublicKeyInput | undefined): Promise<void> {
  if (key === undefined) return;
  await importPublicKey(key);
  if (!d.verified) throw new DeltaError('DELTA_UNSIGNED', `${d.describe}: was opened without a public key; open it with openDelta(input, name, { publicKey }) or pass its location`);
}

async function readAll(f: CachedFile): Promise<Uint8Array> {
  const src = openSource(f.input);
  try {
    return await src.read(0, await src.size());
  } finally {
    await src.close?.();
  }
}

/** The new model.safetensors as a stream: its header, then each tensor, read when the cache asks. */
function modelBody(p: PatchedModel): ReadableStream<Uint8Array> {
  let next = 0;
  return new ReadableStream({
    async pull(c) {
      if (next === 0) c.enqueue(p.header);
      else if (next <= p.tensors.length) c.enqueue(await p.tensors[next - 1].read());
      else c.close();
      next++;
    },
  });
}

function noCachedModel(u: CacheUpdater): DeltaError {
  return new DeltaError('DELTA_BASE', `${u.describe}: has no cached ${SINGLE}; load the model once (which caches it), then update it`);
}

/** Opens the staged files with webq's reader and checks every hash before the commit (patch-prepare.ts). */
async function checkStaged(u: CacheUpdater, p: PatchedModel, delta: Delta, files: readonly string[]): Promise<void> {
  const model = await u.staged(SINGLE);
  if (!model) throw new DeltaError('DELTA_IO', `${u.describe}: the staged ${SINGLE} is not in the cache (storage full?); nothing was changed`);
  const store = await SafetensorsFile.open(model.input);
  try {
    await checkWritten(store, async (f) => {
      const c = await u.staged(f);
      return c ? readAll(c) : undefined;
    }, delta, files);
  } finally {
    await store.close();
  }
}

/** Checks `delta` against the cached files, stages the new ones and commits (under the model's lock). */
async function update(u: CacheUpdater, delta: Delta, opts: CacheUpdateOptions): Promise<CacheUpdateReport> {
  await finishInterrupted(u.journal);
  const cached = await u.get(SINGLE);
  if (!cached) throw noCachedModel(u);
  const m = delta.manifest;
  const store = await SafetensorsFile.open(cached.input);
  let p: PatchedModel;
  const moves = [SINGLE];
  try {
    // Side files kept from the base that are not cached stay so (see the top of this file).
    const files = Object.create(null) as Record<string, 'delta' | 'base'>;
    for (const [f, from] of Object.entries(m.files ?? {})) if (from === 'delta' || (await u.get(f))) files[f] = from;
    const readFile = async (f: string) => {
      const c = await u.get(f);
      return c ? readAll(c) : undefined;
    };
    p = await preparePatch({ store, describe: u.describe, readFile }, { ...delta, manifest: { ...m, files } });
    await u.stage(SINGLE, modelBody(p), p.size);
    for (const [f, read] of p.files) {
      if (files[f] !== 'delta') continue;
      const bytes = await read();
      await u.stage(f, new Blob([bytes as Uint8Array<ArrayBuffer>]), bytes.byteLength);
      moves.push(f);
    }
    await checkStaged(u, p, delta, moves.slice(1));
  } catch (e) {
    await u.journal.clear().catch(() => undefined); // nothing committed: drop what was staged
    throw e;
  } finally {
    await store.close();
  }
  await reachStep('staged', opts);
  try {
    await commitJournal(u.journal, { moves, removes: p.removedFiles }, opts);
  } catch (e) {
    // Before the commit point the staged files are dropped; after it, the next open completes the update.
    if ((await u.journal.readJournal().catch(() => undefined)) === undefined) await u.journal.clear().catch(() => undefined);
    throw e;
  }
  return {
    model: u.describe, from: p.base.version, to: p.target.version, deltaBytes: delta.size, modelBytes: p.size,
    added: m.added, changed: m.changed, removed: m.removed, renamed: m.renamed, written: moves, deleted: p.removedFiles,
  };
}

/**
 * Updates the cached files of the remote model at `location` (a folder URL or a hub id, loaded
 * once so that it is cached) by `delta`: a URL (downloaded whole), a path (Node, Deno), bytes, a
 * Blob, or an open Delta. See the top of this file.
 */
export async function updateCachedModel(location: string | URL, delta: SourceInput | Delta, opts: CacheUpdateOptions = {}): Promise<CacheUpdateReport> {
  const { revision, hubUrl, cacheDir, fetch, headers, timeoutMs } = opts;
  const files = await openModelFiles(location, { revision, hubUrl, cacheDir, fetch, headers, timeoutMs, cache: true });
  const u = files instanceof RemoteFiles ? files.updater() : undefined;
  if (!u) throw new DeltaError('DELTA_BASE', `${files.describe}: is a local folder; updateCachedModel updates a remote model's cached files (patch a folder with patchModelFolder or \`webq patch\`)`);
  const owned = !isDelta(delta);
  if (isDelta(delta)) await checkOpened(delta, opts.publicKey);
  const cachedModel = await u.get(SINGLE);
  if (!cachedModel) throw noCachedModel(u);
  const d = isDelta(delta) ? delta : await openDeltaInput(delta, opts, maxDeltaBytes(cachedModel.size));
  try {
    return await u.locked(() => update(u, d, opts));
  } finally {
    if (owned) await d.close();
  }
}

// The download cache, offline first: a cached model loads with the hub stopped or with
// WEBQ_OFFLINE, optional files' 404s are remembered per revision, branches are re-checked (after
// the window or with refresh) and commit hashes never, and progress comes in transformers.js' shape.
import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.ts';
import { DownloadBar } from '../../src/cli/progress.ts';
import { hubKeySegment, openModelFiles, type DownloadProgress, type ModelFiles, type OpenModelOptions } from '../../src/io/hub/hub.ts';
import { readBertWeightsF32, resolveBertWeights } from '../../src/models/bert/bert-weights.ts';
import { parseBertConfig } from '../../src/models/config.ts';
import { loadTokenizer } from '../../src/text/tokenizer.ts';
import { serveFakeHub, type FakeHub } from '../helpers/fake-hub.ts';
import { writeTinyBert, type TinyBert } from '../../fixtures/tiny-bert.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir('webq-io-offline-');
const repos = new Map<string, string>();
const commits = new Map<string, string>();
const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
let cls: TinyBert;
let cls2: TinyBert;
let hub: FakeHub;

beforeAll(async () => {
  // BertForSequenceClassification-like, without 1_Pooling/config.json or modules.json.
  cls = await writeTinyBert(join(tmp.dir, 'cls'), { prefix: 'bert.', labels: ['neg', 'pos'], seed: 5 });
  cls2 = await writeTinyBert(join(tmp.dir, 'cls2'), { prefix: 'bert.', labels: ['neg', 'pos'], seed: 6 });
  repos.set('webq/cls', cls.dir);
  commits.set('webq/cls', A);
  hub = await serveFakeHub(repos, { commits });
});
afterAll(() => hub?.close());
afterEach(() => {
  vi.unstubAllEnvs();
  vi.useRealTimers();
});

/** What BertModel.load reads, in its order, without a GPU: the weights it would upload. */
async function readLikeBertLoad(files: ModelFiles): Promise<Record<string, Float32Array>> {
  const cfg = parseBertConfig(await files.readJson('config.json'));
  await loadTokenizer(files);
  expect(await files.exists('1_Pooling/config.json')).toBe(false);
  expect(await files.exists('modules.json')).toBe(false);
  const store = await files.checkpoint();
  try {
    return await readBertWeightsF32(store, resolveBertWeights(store, cfg));
  } finally {
    await store.close();
  }
}

/** A fetch that counts its calls, so "no request" also covers connections the hub never logs. */
function countingFetch(): { fetch: typeof fetch; calls: string[] } {
  const calls: string[] = [];
  return { calls, fetch: (input, init) => (calls.push(`${init?.method ?? 'GET'} ${String(input)}`), fetch(input, init)) };
}

function since(server: FakeHub, from: number): string[] {
  return server.log.slice(from).map((r) => `${r.method} ${r.path.replace(/^\/webq\/cls\/resolve\//, '')}`);
}

async function rejection(p: Promise<unknown>): Promise<Error & { code: string }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { code: string };
  }
  throw new Error('expected a rejection');
}

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { stdout: (t) => void (out += t), stderr: (t) => void (err += t) });
  return { code, out, err };
}

describe('offline', () => {
  it('webq classify on a cached hub model works with the hub stopped, and with WEBQ_OFFLINE', async () => {
    const own = await serveFakeHub(repos, { commits });
    vi.stubEnv('WEBQ_HUB_URL', own.url);
    vi.stubEnv('WEBQ_CACHE_DIR', join(tmp.dir, 'cache-cli'));
    const online = await cli(['classify', 'webq/cls', '--dtype', 'f32', 'hello world']);
    expect(online.err).toContain('downloaded model.safetensors');
    expect(online.code).toBe(0);
    await own.close();

    // Past the re-check window, so the load does try the (stopped) hub first.
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 3_600_000);
    const stopped = await cli(['classify', 'webq/cls', '--dtype', 'f32', 'hello world']);
    expect(stopped.err).toBe('');
    expect(stopped).toMatchObject({ code: 0, out: online.out });

    vi.stubEnv('WEBQ_OFFLINE', '1');
    expect(await cli(['classify', 'webq/cls', '--dtype', 'f32', 'hello world'])).toMatchObject({ code: 0, out: online.out, err: '' });
  });

  it('a cached model loads with no network; offline mode makes no request at all', async () => {
    const cacheDir = join(tmp.dir, 'cache-offline');
    const own = await serveFakeHub(repos, { commits });
    expect(await readLikeBertLoad(await openModelFiles('webq/cls', { hubUrl: own.url, cacheDir }))).toEqual(cls.weights);
    await own.close();
    // Hub stopped (connection refused), asked every time (recheckMs 0): the cache answers.
    expect(await readLikeBertLoad(await openModelFiles('webq/cls', { hubUrl: own.url, cacheDir, recheckMs: 0 }))).toEqual(cls.weights);

    // Offline (the hub the files came from: another hub's cache never answers), no request at all.
    const counting = countingFetch();
    const opts: OpenModelOptions = { hubUrl: own.url, cacheDir, fetch: counting.fetch, refresh: true };
    expect(await readLikeBertLoad(await openModelFiles('webq/cls', { ...opts, offline: true }))).toEqual(cls.weights);
    vi.stubEnv('WEBQ_OFFLINE', 'true');
    expect(await readLikeBertLoad(await openModelFiles('webq/cls', opts))).toEqual(cls.weights);
    expect(counting.calls).toEqual([]);
  });

  it('offline, a file that is not cached is an error naming it', async () => {
    const cacheDir = join(tmp.dir, 'cache-uncached');
    const counting = countingFetch();
    const opts = { hubUrl: hub.url, cacheDir, fetch: counting.fetch, offline: true };
    const e = await rejection((await openModelFiles('webq/cls', opts)).readJson('config.json'));
    expect(e.code).toBe('SOURCE_OFFLINE');
    expect(e.message).toContain('webq/cls@main');
    expect(e.message).toContain(`config.json is not in the cache at ${cacheDir}`);
    expect(e.message).toContain('WEBQ_OFFLINE=1');

    // Config and tokenizer cached, weights not: the checkpoint is what is missing.
    const partial = await openModelFiles('webq/cls', { hubUrl: hub.url, cacheDir });
    await partial.readJson('config.json');
    const files = await openModelFiles('webq/cls', opts);
    expect(parseBertConfig(await files.readJson('config.json')).hiddenSize).toBe(32);
    const weights = await rejection(files.checkpoint());
    expect(weights.code).toBe('SOURCE_OFFLINE');
    expect(weights.message).toContain('model.safetensors (nor model.safetensors.index.json) is not in the cache');
    expect(counting.calls).toEqual([]);

    const noCache = await rejection(openModelFiles('webq/cls', { ...opts, cache: false }));
    expect(noCache.code).toBe('SOURCE_OFFLINE');
    expect(noCache.message).toContain('cache: false');
  });

  it('an older cache without notes loads with no network, optional files counting as absent', async () => {
    const cacheDir = join(tmp.dir, 'cache-old');
    const own = await serveFakeHub(repos, { commits });
    await readLikeBertLoad(await openModelFiles('webq/cls', { hubUrl: own.url, cacheDir }));
    await own.close();
    await rm(join(cacheDir, 'hubs', hubKeySegment(own.url), 'webq', 'cls', '@main.json'));
    expect(await readLikeBertLoad(await openModelFiles('webq/cls', { hubUrl: own.url, cacheDir }))).toEqual(cls.weights);
  });
});

describe('remembered 404s and freshness', () => {
  it('remembers that an optional file is absent, per revision', async () => {
    const cacheDir = join(tmp.dir, 'cache-404');
    let from = hub.log.length;
    await readLikeBertLoad(await openModelFiles('webq/cls', { hubUrl: hub.url, cacheDir }));
    expect(since(hub, from)).toEqual(expect.arrayContaining(['HEAD main/1_Pooling/config.json', 'HEAD main/modules.json']));
    const note = JSON.parse(await readFile(join(cacheDir, 'hubs', hubKeySegment(hub.url), 'webq', 'cls', '@main.json'), 'utf8'));
    expect(note).toMatchObject({ location: 'webq/cls@main', absent: ['1_Pooling/config.json', 'modules.json'], commit: A });

    // Asked about the branch again (recheckMs 0): one HEAD for the commit, nothing else.
    from = hub.log.length;
    await readLikeBertLoad(await openModelFiles('webq/cls', { hubUrl: hub.url, cacheDir, recheckMs: 0 }));
    expect(since(hub, from)).toEqual(['HEAD main/config.json']);
    // Within the window: no request at all.
    from = hub.log.length;
    await readLikeBertLoad(await openModelFiles('webq/cls', { hubUrl: hub.url, cacheDir }));
    expect(since(hub, from)).toEqual([]);

    // Another revision has its own note: asked once there too.
    from = hub.log.length;
    await readLikeBertLoad(await openModelFiles(`webq/cls@${A}`, { hubUrl: hub.url, cacheDir }));
    expect(since(hub, from).filter((r) => r.startsWith('HEAD'))).toEqual([`HEAD ${A}/1_Pooling/config.json`, `HEAD ${A}/modules.json`]);
  });

  it('re-checks a branch after the window or with refresh, and a commit hash never', async () => {
    const cacheDir = join(tmp.dir, 'cache-fresh');
    const opts = { hubUrl: hub.url, cacheDir };
    try {
      expect(await readLikeBertLoad(await openModelFiles('webq/cls', opts))).toEqual(cls.weights);
      expect(await readLikeBertLoad(await openModelFiles(`webq/cls@${A}`, opts))).toEqual(cls.weights);

      // The branch moves to B.
      repos.set('webq/cls', cls2.dir);
      commits.set('webq/cls', B);
      let from = hub.log.length;
      expect(await readLikeBertLoad(await openModelFiles('webq/cls', opts))).toEqual(cls.weights);
      expect(since(hub, from)).toEqual([]); // within 10 minutes: the cache as it is

      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(Date.now() + 11 * 60_000);
      from = hub.log.length;
      expect(await readLikeBertLoad(await openModelFiles('webq/cls', opts))).toEqual(cls2.weights);
      const moved = since(hub, from);
      expect(moved[0]).toBe('HEAD main/config.json');
      expect(moved).toContain('GET main/model.safetensors');
      expect(moved).toContain('HEAD main/modules.json'); // the old revision's 404s were dropped too
      vi.useRealTimers();

      // A commit hash can't move: never asked, even with refresh (the hub no longer serves A).
      from = hub.log.length;
      expect(await readLikeBertLoad(await openModelFiles(`webq/cls@${A}`, { ...opts, refresh: true, recheckMs: 0 }))).toEqual(cls.weights);
      expect(since(hub, from)).toEqual([]);

      // refresh asks at once; unchanged, it downloads nothing.
      from = hub.log.length;
      await readLikeBertLoad(await openModelFiles('webq/cls', { ...opts, refresh: true }));
      expect(since(hub, from)).toEqual(['HEAD main/config.json']);
      repos.set('webq/cls', cls.dir);
      commits.set('webq/cls', A);
      from = hub.log.length;
      expect(await readLikeBertLoad(await openModelFiles('webq/cls', { ...opts, refresh: true }))).toEqual(cls.weights);
      expect(since(hub, from)).toContain('GET main/model.safetensors');
    } finally {
      repos.set('webq/cls', cls.dir);
      commits.set('webq/cls', A);
    }
  });

  it('a folder URL is kept until refresh, which downloads it again', async () => {
    const cacheDir = join(tmp.dir, 'cache-url');
    repos.set('webq/plain-cls', cls.dir);
    const plain = `${hub.url}/plain/plain-cls/`;
    await (await openModelFiles(plain, { cacheDir })).readText('config.json');
    let from = hub.log.length;
    await (await openModelFiles(plain, { cacheDir, recheckMs: 0 })).readText('config.json');
    expect(hub.log.length).toBe(from);
    from = hub.log.length;
    await (await openModelFiles(plain, { cacheDir, refresh: true })).readText('config.json');
    expect(hub.log.slice(from).map((r) => `${r.method} ${r.path}`)).toEqual(['HEAD /plain/plain-cls/config.json', 'GET /plain/plain-cls/config.json']);
  });
});

describe('progress events', () => {
  it("reports initiate, download, progress, done and ready as transformers.js does", async () => {
    const cacheDir = join(tmp.dir, 'cache-progress');
    const events: DownloadProgress[] = [];
    await readLikeBertLoad(await openModelFiles('webq/cls', { hubUrl: hub.url, cacheDir, onProgress: (e) => events.push(e) }));
    for (const e of events) {
      expect(Object.keys(e).sort()).toEqual(expect.arrayContaining(['file', 'loaded', 'name', 'status', 'total']));
      expect(e.name).toBe('webq/cls');
    }
    const size = (await stat(join(cls.dir, 'model.safetensors'))).size;
    const model = events.filter((e) => e.file === 'model.safetensors');
    expect(model.map((e) => e.status).filter((s, i, a) => s !== a[i - 1])).toEqual(['initiate', 'download', 'progress', 'done', 'ready']);
    expect(model[0]).toEqual({ status: 'initiate', name: 'webq/cls', file: 'model.safetensors', loaded: 0, total: size, progress: 0 });
    expect(model.filter((e) => e.status === 'progress').at(-1)).toMatchObject({ loaded: size, total: size, progress: 100 });
    expect(model.at(-2)).toEqual({ status: 'done', name: 'webq/cls', file: 'model.safetensors', loaded: size, total: size, progress: 100 });
    expect(events.at(-1)).toMatchObject({ status: 'ready', file: 'model.safetensors', loaded: size, total: size });
    expect(events.filter((e) => e.status === 'ready')).toHaveLength(1);
    // Optional files that are not there are no news.
    expect(events.some((e) => e.file.includes('1_Pooling') || e.file === 'modules.json')).toBe(false);

    // From the cache: initiate and done per file, no download.
    const again: DownloadProgress[] = [];
    await readLikeBertLoad(await openModelFiles('webq/cls', { hubUrl: hub.url, cacheDir, onProgress: (e) => again.push(e) }));
    expect(again.filter((e) => e.file === 'model.safetensors').map((e) => e.status)).toEqual(['initiate', 'done', 'ready']);
    expect(again.some((e) => e.status === 'download' || e.status === 'progress')).toBe(false);

    // A local folder: ready only.
    const local: DownloadProgress[] = [];
    await readLikeBertLoad(await openModelFiles(cls.dir, { onProgress: (e) => local.push(e) }));
    expect(local).toEqual([{ status: 'ready', name: cls.dir, file: 'model.safetensors', loaded: size, total: size, progress: 100 }]);

    // The CLI's bar prints downloads, not cache hits.
    let err = '';
    const bar = new DownloadBar({ stdout: () => {}, stderr: (t) => void (err += t) });
    for (const e of [...events, ...again]) bar.onProgress(e);
    bar.finish(true);
    expect(err.split('\n').filter(Boolean).sort()).toEqual(
      ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'].map((f) => expect.stringMatching(new RegExp(`^downloaded ${f.replace('.', '\\.')} \\(`))),
    );
  });
});

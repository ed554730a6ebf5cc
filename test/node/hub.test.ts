import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { DownloadProgress } from '../../src/io/hub/cache.ts';
import { ShardedCheckpoint } from '../../src/io/safetensors/checkpoint.ts';
import { hubBaseUrl, hubKeySegment, openModelFiles, parseModelLocation, type ModelFiles } from '../../src/io/hub/hub.ts';
import { readBertWeightsF32, resolveBertWeights } from '../../src/models/bert/bert-weights.ts';
import { parseBertConfig } from '../../src/models/config.ts';
import { loadTokenizer } from '../../src/text/tokenizer.ts';
import { serveFakeHub, type FakeHub } from '../helpers/fake-hub.ts';
import { writeTinyBert, type TinyBert } from '../../fixtures/tiny-bert.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir('webq-hub-');

/** Repos the fake hub serves: id -> folder; files listed in `truncated` are cut off mid-body. */
const repos = new Map<string, string>();
const truncated = new Set<string>();
const serve = () => serveFakeHub(repos, { truncated });

let bert: TinyBert;
let sharded: TinyBert;
let server: FakeHub;

beforeAll(async () => {
  bert = await writeTinyBert(join(tmp.dir, 'repo-bert'), { prefix: 'bert.', labels: ['neg', 'pos'] });
  sharded = await writeTinyBert(join(tmp.dir, 'repo-sharded'), { sharded: true, dtype: 'F16', seed: 7 });
  const noTok = await writeTinyBert(join(tmp.dir, 'repo-no-tok'), { tokenizer: false });
  repos.set('webq/tiny-bert', bert.dir).set('webq/tiny-sharded', sharded.dir).set('webq/no-tokenizer', noTok.dir);
  repos.set('webq/truncated', bert.dir);
  truncated.add('webq/truncated/model.safetensors');
  server = await serve();
});
afterAll(() => server?.close());

async function expectWeights(files: ModelFiles, tiny: TinyBert): Promise<void> {
  const cfg = parseBertConfig(await files.readJson('config.json'));
  const store = await files.checkpoint();
  expect(await readBertWeightsF32(store, resolveBertWeights(store, cfg))).toEqual(tiny.weights);
  await store.close();
}

async function rejection(p: Promise<unknown>): Promise<Error & { code: string; status?: number }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { code: string };
  }
  throw new Error('expected a rejection');
}

async function listAll(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true }).catch(() => [])).map(String);
}

describe('hub ids', () => {
  it('downloads into the cache with progress, then opens again with the server down', async () => {
    const own = await serve();
    const cacheDir = join(tmp.dir, 'cache-offline');
    const events: DownloadProgress[] = [];
    const files = await openModelFiles('webq/tiny-bert', { hubUrl: own.url, cacheDir, onProgress: (e) => events.push(e) });
    expect(files.kind).toBe('hub');
    expect(files.describe).toBe(`webq/tiny-bert@main (${own.url})`);
    await expectWeights(files, bert);
    const tok = await loadTokenizer(files);
    expect(tok.encode('hello world').ids).toHaveLength(4);

    const size = (await stat(join(bert.dir, 'model.safetensors'))).size;
    const mine = events.filter((e) => e.file === 'model.safetensors');
    expect(mine[0]).toMatchObject({ file: 'model.safetensors', loaded: 0, total: size });
    expect(mine.at(-1)).toMatchObject({ file: 'model.safetensors', loaded: size, total: size });
    expect(new Set(events.map((e) => e.file))).toEqual(new Set(['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']));
    const cached = join(cacheDir, 'hubs', hubKeySegment(own.url), 'webq', 'tiny-bert', 'main');
    expect((await listAll(cached)).sort()).toEqual(['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    // Whole-file downloads, one GET each, no range reads.
    expect(own.log.every((r) => r.method === 'GET' && r.range === undefined)).toBe(true);
    expect(own.log.filter((r) => r.path.endsWith('/model.safetensors'))).toHaveLength(1);
    await own.close();

    const offline = await openModelFiles('webq/tiny-bert', { hubUrl: own.url, cacheDir });
    await expectWeights(offline, bert);
    expect((await loadTokenizer(offline)).encode('hello world').ids).toEqual(tok.encode('hello world').ids);
    expect(await offline.exists('config.json')).toBe(true);
    const e = await rejection(offline.readText('README.md'));
    expect(e.code).toBe('SOURCE_NETWORK');
    expect(e.message).toContain(`${own.url}/webq/tiny-bert/resolve/main/README.md`);
    expect(e.message).toContain('not in the cache');
  });

  it('reads WEBQ_HUB_URL and WEBQ_CACHE_DIR from the environment; org/name@rev', async () => {
    const cacheDir = join(tmp.dir, 'cache-env');
    vi.stubEnv('WEBQ_HUB_URL', `${server.url}/`);
    vi.stubEnv('WEBQ_CACHE_DIR', cacheDir);
    try {
      const files = await openModelFiles('webq/tiny-bert@main');
      expect(JSON.parse(await files.readText('config.json'))).toEqual(bert.config);
      expect(await listAll(join(cacheDir, 'hubs', hubKeySegment(server.url), 'webq', 'tiny-bert', 'main'))).toEqual(['config.json']);
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('downloads every shard of a sharded checkpoint', async () => {
    const events: DownloadProgress[] = [];
    const files = await openModelFiles('webq/tiny-sharded', { hubUrl: server.url, cacheDir: join(tmp.dir, 'cache-sharded'), onProgress: (e) => events.push(e) });
    const store = await files.checkpoint();
    expect(store).toBeInstanceOf(ShardedCheckpoint);
    await store.close();
    await expectWeights(files, sharded);
    const done = events.filter((e) => e.loaded === e.total).map((e) => e.file);
    expect(done).toEqual(expect.arrayContaining(['model.safetensors.index.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']));
  });

  it('a 404 names the URL and says the model, revision or file does not exist', async () => {
    const opts = { hubUrl: server.url, cacheDir: join(tmp.dir, 'cache-404') };
    const missing = await openModelFiles('webq/nope', opts);
    const e = await rejection(missing.readText('config.json'));
    expect(e.code).toBe('SOURCE_NOT_FOUND');
    expect(e.status).toBe(404);
    expect(e.message).toContain(`${server.url}/webq/nope/resolve/main/config.json: not found (HTTP 404 Not Found)`);
    expect(e.message).toContain('the model does not exist');
    expect(e.message).toContain("check the model id 'webq/nope' and revision 'main'");
    expect((await rejection(missing.checkpoint())).code).toBe('SAFETENSORS_NO_CHECKPOINT');
    const rev = await openModelFiles('webq/tiny-bert', { ...opts, revision: 'v9' });
    expect((await rejection(rev.readText('config.json'))).message).toMatch(/resolve\/v9\/config\.json: not found .*revision does not exist.*revision 'v9'/);
    const files = await openModelFiles('webq/tiny-bert', { ...opts, cache: false });
    expect((await rejection(files.readJson('nope.json'))).message).toContain('the model has no such file');
    expect(await files.exists('nope.json')).toBe(false);
    expect(await files.exists('config.json')).toBe(true);
    expect(await listAll(opts.cacheDir)).toEqual([]);
  });

  it('a truncated download is an error and leaves nothing in the cache', async () => {
    const cacheDir = join(tmp.dir, 'cache-trunc');
    const files = await openModelFiles('webq/truncated', { hubUrl: server.url, cacheDir });
    expect(parseBertConfig(await files.readJson('config.json')).hiddenSize).toBe(32);
    const e = await rejection(files.checkpoint());
    expect(e.code).toBe('SOURCE_SHORT_READ');
    expect(e.message).toContain(`${server.url}/webq/truncated/resolve/main/model.safetensors`);
    expect(await listAll(join(cacheDir, 'hubs', hubKeySegment(server.url), 'webq', 'truncated', 'main'))).toEqual(['config.json']);
  });

  it('a missing tokenizer.json is an error naming the model', async () => {
    const files = await openModelFiles('webq/no-tokenizer', { hubUrl: server.url, cacheDir: join(tmp.dir, 'cache-notok') });
    const e = await rejection(loadTokenizer(files));
    expect(e.code).toBe('TOKENIZER_MISSING');
    expect(e.message).toContain(`webq/no-tokenizer@main (${server.url}): has no tokenizer.json`);
    const local = await rejection(loadTokenizer(await openModelFiles(repos.get('webq/no-tokenizer')!)));
    expect(local.code).toBe('TOKENIZER_MISSING');
    expect(local.message).toContain(repos.get('webq/no-tokenizer')!);
  });
});

describe('folder URLs and local folders', () => {
  it('opens a folder URL by HTTP range requests without the cache', async () => {
    const before = server.log.length;
    const files = await openModelFiles(`${server.url}/plain/tiny-bert`, { cache: false });
    expect(files.kind).toBe('url');
    expect(files.describe).toBe(`${server.url}/plain/tiny-bert/`);
    await expectWeights(files, bert);
    await loadTokenizer(files);
    const reads = server.log.slice(before).filter((r) => r.path.endsWith('model.safetensors') && r.method === 'GET');
    expect(reads.length).toBeGreaterThan(1);
    expect(reads.every((r) => r.range !== undefined)).toBe(true);
    const e = await rejection(files.readText('missing.txt'));
    expect(e.message).toContain(`${server.url}/plain/tiny-bert/missing.txt: not found (HTTP 404 Not Found): there is no missing.txt under this folder URL; check the folder URL`);
  });

  it('caches folder URLs by host and path', async () => {
    const cacheDir = join(tmp.dir, 'cache-url');
    const files = await openModelFiles(new URL(`${server.url}/plain/tiny-bert/`), { cacheDir });
    await expectWeights(files, bert);
    const host = encodeURIComponent(new URL(server.url).host);
    expect((await listAll(join(cacheDir, 'url', host, 'plain', 'tiny-bert'))).sort()).toEqual(['config.json', 'model.safetensors']);
  });

  it('opens a local folder by path or file: URL', async () => {
    for (const where of [bert.dir, pathToFileURL(bert.dir), pathToFileURL(bert.dir).href]) {
      const files = await openModelFiles(where);
      expect(files.kind).toBe('folder');
      await expectWeights(files, bert);
    }
    const files = await openModelFiles(bert.dir);
    expect(await files.exists('tokenizer.json')).toBe(true);
    expect(await files.exists('nope.json')).toBe(false);
    expect((await rejection(files.readText('nope.json'))).message).toContain(join(bert.dir, 'nope.json'));
    expect((await rejection(files.readText('../secret'))).code).toBe('HUB_BAD_FILE');
    expect((await rejection(openModelFiles(join(tmp.dir, 'absent')))).code).toBe('SOURCE_NOT_FOUND');
    expect((await rejection(openModelFiles(join(bert.dir, 'config.json')))).code).toBe('HUB_BAD_LOCATION');
  });

  it('classifies locations and encodes revisions', async () => {
    expect(await parseModelLocation('BAAI/bge-small-en-v1.5')).toMatchObject({ kind: 'hub', id: 'BAAI/bge-small-en-v1.5', revision: 'main' });
    expect(await parseModelLocation('org/name@v1', { revision: 'v1' })).toMatchObject({ revision: 'v1' });
    expect((await rejection(parseModelLocation('org/name@v1', { revision: 'v2' }))).code).toBe('HUB_BAD_LOCATION');
    expect((await rejection(parseModelLocation('not a model'))).code).toBe('SOURCE_NOT_FOUND');
    expect(await parseModelLocation('https://example.com/models/x?sig=1')).toMatchObject({ kind: 'url' });
    expect(hubBaseUrl('org/name', 'refs/pr/1', 'https://hub.example/').href).toBe('https://hub.example/org/name/resolve/refs%2Fpr%2F1/');
  });
});

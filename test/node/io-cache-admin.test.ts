// `webq cache list|rm` and listCachedModels / removeCachedModel: on disk, and in the browser's
// Cache API (an in-memory stand-in here, with `window` set so webq takes itself for a browser).
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { cacheCommand } from '../../src/cli/cache.ts';
import { listCachedModels, removeCachedModel } from '../../src/io/index.ts';
import { hubKeySegment, openModelFiles, type ModelFiles } from '../../src/io/hub/hub.ts';
import { serveFakeHub, type FakeHub } from '../helpers/fake-hub.ts';
import { writeTinyBert, type TinyBert } from '../../fixtures/tiny-bert.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir('webq-io-cache-');
const repos = new Map<string, string>();
const COMMIT = 'c'.repeat(40);
let bert: TinyBert;
let hub: FakeHub;

beforeAll(async () => {
  bert = await writeTinyBert(join(tmp.dir, 'bert'), { seed: 3 });
  repos.set('webq/one', bert.dir).set('webq/two', bert.dir);
  hub = await serveFakeHub(repos, { commits: new Map([['webq/one', COMMIT]]) });
});
afterAll(() => hub?.close());
afterEach(() => {
  vi.unstubAllGlobals();
  vi.unstubAllEnvs();
});

/** Reads what a model load reads: config, one optional file, the checkpoint. */
async function load(files: ModelFiles): Promise<void> {
  await files.readJson('config.json');
  await files.exists('modules.json');
  await (await files.checkpoint()).close();
}

async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await cacheCommand.run(args, { stdout: (t) => void (out += t), stderr: (t) => void (err += t) });
  return { code, out, err };
}

describe('on disk', () => {
  it('lists models per revision, and removes one revision, one model or a folder URL', async () => {
    const cacheDir = join(tmp.dir, 'cache');
    const opts = { hubUrl: hub.url, cacheDir };
    await load(await openModelFiles('webq/one', opts));
    await load(await openModelFiles(`webq/one@${COMMIT}`, opts));
    await load(await openModelFiles('webq/two', opts));
    await load(await openModelFiles(`${hub.url}/plain/two/`, { cacheDir }));

    const models = await listCachedModels({ cacheDir });
    expect(models.map((m) => m.location)).toEqual([`${hub.url}/plain/two/`, 'webq/one@cccccccccccccccccccccccccccccccccccccccc', 'webq/one@main', 'webq/two@main']);
    const main = models.find((m) => m.location === 'webq/one@main')!;
    expect(main).toMatchObject({ kind: 'hub', hub: hub.url, revision: 'main', commit: COMMIT, absent: ['modules.json'] });
    expect(main.files.map((f) => f.name)).toEqual(['config.json', 'model.safetensors']);
    expect(main.bytes).toBe(main.files.reduce((s, f) => s + f.bytes, 0));
    expect(main.checkedAt).toBeInstanceOf(Date);
    expect(models.find((m) => m.kind === 'url')).toMatchObject({ hub: null, revision: undefined, absent: ['modules.json'] });

    const listed = await run('list', '--cache-dir', cacheDir);
    expect(listed.code).toBe(0);
    const lines = listed.out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^MODEL\s+HUB\s+SIZE\s+FILES\s+CHECKED\s+COMMIT$/);
    expect(lines.find((l) => l.startsWith('webq/one@main '))).toMatch(new RegExp(`^webq/one@main\\s+${hub.url.replace(/[.]/g, '\\.')}\\s.*2 files\\s+\\d{4}-\\d\\d-\\d\\dT\\S+Z\\s+cccccccccc$`));
    expect(lines.find((l) => l.startsWith(`${hub.url}/plain/two/ `))).toMatch(/^\S+\s+-\s/);
    expect(lines.at(-1)).toMatch(/^total: 4 models, /);
    const json = JSON.parse((await run('list', '--json', `--cache-dir=${cacheDir}`)).out) as { location: string }[];
    expect(json.map((m) => m.location)).toEqual(models.map((m) => m.location));

    // One revision (API), then the folder URL and a whole model (command).
    expect((await removeCachedModel(`webq/one@${COMMIT}`, { cacheDir })).map((m) => m.location)).toEqual([`webq/one@${COMMIT}`]);
    const rm = await run('rm', '--cache-dir', cacheDir, `${hub.url}/plain/two`, 'webq/two');
    expect(rm).toMatchObject({ code: 0, err: '' });
    expect(rm.out).toMatch(new RegExp(`^removed ${hub.url.replace(/[.]/g, '\\.')}/plain/two/ \\(.+\\)\nremoved webq/two@main from ${hub.url.replace(/[.]/g, '\\.')} \\(.+\\)\n$`));
    expect((await listCachedModels({ cacheDir })).map((m) => m.location)).toEqual(['webq/one@main']);
    expect((await readdir(join(cacheDir, 'hubs', hubKeySegment(hub.url), 'webq'))).sort()).toEqual(['one']);

    const missing = await run('rm', '--cache-dir', cacheDir, 'webq/nope');
    expect(missing).toMatchObject({ code: 1, out: '', err: 'webq: webq/nope is not in the cache\n' });
    expect((await run('rm', '--cache-dir', cacheDir, 'webq/one')).code).toBe(0);
    expect((await run('list', '--cache-dir', cacheDir)).out).toBe('the cache is empty\n');
  });

  it('uses WEBQ_CACHE_DIR, and says what is wrong with a bad command line', async () => {
    const cacheDir = join(tmp.dir, 'cache-env');
    vi.stubEnv('WEBQ_CACHE_DIR', cacheDir);
    await load(await openModelFiles('webq/two', { hubUrl: hub.url }));
    expect((await listCachedModels()).map((m) => m.location)).toEqual(['webq/two@main']);
    await expect(run('purge')).rejects.toThrow(/cache: expected "list" or "rm", got "purge"/);
    await expect(run('rm')).rejects.toThrow(/cache rm: name the model to remove/);
    await expect(run('list', 'webq/two')).rejects.toThrow(/cache list: takes no model/);
    await expect(removeCachedModel('not a model')).rejects.toMatchObject({ code: 'HUB_BAD_LOCATION' });
  });
});

/** An in-memory CacheStorage with the parts of the Cache API webq uses. */
function fakeCaches(): { caches: CacheStorage; urls(): string[] } {
  const entries = new Map<string, { body: ArrayBuffer; headers: [string, string][] }>();
  const url = (r: RequestInfo | URL) => (typeof r === 'string' ? r : r instanceof URL ? r.href : r.url);
  const cache = {
    async match(r: RequestInfo | URL) {
      const e = entries.get(url(r));
      return e && new Response(e.body.slice(0), { headers: e.headers });
    },
    async put(r: RequestInfo | URL, res: Response) {
      entries.set(url(r), { body: await res.arrayBuffer(), headers: [...res.headers] });
    },
    async keys() {
      return [...entries.keys()].map((u) => new Request(u));
    },
    async delete(r: RequestInfo | URL) {
      return entries.delete(url(r));
    },
  };
  return { caches: { open: async () => cache } as unknown as CacheStorage, urls: () => [...entries.keys()] };
}

describe('in a browser (Cache API)', () => {
  it('caches with notes, loads offline, lists and removes', async () => {
    const fake = fakeCaches();
    vi.stubGlobal('window', {});
    vi.stubGlobal('caches', fake.caches);
    await load(await openModelFiles('webq/one', { hubUrl: hub.url }));
    await load(await openModelFiles('webq/two', { hubUrl: hub.url }));
    expect(fake.urls()).toContain(`${hub.url}/webq/one/resolve/main/model.safetensors`);
    expect(fake.urls()).toContain(`https://webq-cache.invalid/hubs/${encodeURIComponent(hubKeySegment(hub.url))}/webq/one/%40main.json`);

    const before = hub.log.length;
    await load(await openModelFiles('webq/one', { hubUrl: hub.url, offline: true }));
    expect(hub.log.length).toBe(before);

    const models = await listCachedModels();
    expect(models.map((m) => m.location)).toEqual(['webq/one@main', 'webq/two@main']);
    expect(models[0]).toMatchObject({ commit: COMMIT, absent: ['modules.json'], files: [{ name: 'config.json' }, { name: 'model.safetensors' }] });
    expect(models[0].bytes).toBeGreaterThan(1000);

    expect((await removeCachedModel('webq/one')).map((m) => m.location)).toEqual(['webq/one@main']);
    expect(fake.urls().some((u) => u.includes('/webq/one/'))).toBe(false);
    expect((await listCachedModels()).map((m) => m.location)).toEqual(['webq/two@main']);
    await expect((await openModelFiles('webq/one', { hubUrl: hub.url, offline: true })).readText('config.json')).rejects.toMatchObject({ code: 'SOURCE_OFFLINE' });
  });
});

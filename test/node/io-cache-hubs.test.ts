// The download cache keeps each hub's files apart: two fake hubs serve different bytes for the
// same org/name, and a load from one never reads what the other put in the cache (online or
// offline). `webq cache list` shows the hub; `webq cache rm` removes from every hub or one. Files
// cached by a webq that did not keep the hub (`hub/<org>/<name>/<rev>/`) are never read, are
// listed with hub "?" and removed with the model.
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cacheCommand } from '../../src/cli/cache.ts';
import { hubKeySegment, openModelFiles } from '../../src/io/hub/hub.ts';
import { listCachedModels, removeCachedModel } from '../../src/io/index.ts';
import { serveFakeHub, type FakeHub } from '../helpers/fake-hub.ts';
import { writeTinyBert, type TinyBert } from '../../fixtures/tiny-bert.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir('webq-io-cache-hubs-');
let a: FakeHub;
let b: FakeHub;
let bertA: TinyBert;
let bertB: TinyBert;

beforeAll(async () => {
  // Same id on both hubs, different models behind it.
  bertA = await writeTinyBert(join(tmp.dir, 'a'), { seed: 3 });
  bertB = await writeTinyBert(join(tmp.dir, 'b'), { seed: 4, hidden: 48 });
  a = await serveFakeHub(new Map([['webq/same', bertA.dir]]));
  b = await serveFakeHub(new Map([['webq/same', bertB.dir]]));
});
afterAll(async () => {
  await a?.close();
  await b?.close();
});

async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await cacheCommand.run(args, { stdout: (t) => void (out += t), stderr: (t) => void (err += t) });
  return { code, out, err };
}

async function configFrom(hubUrl: string, cacheDir: string, offline = false): Promise<unknown> {
  return JSON.parse(await (await openModelFiles('webq/same', { hubUrl, cacheDir, offline })).readText('config.json'));
}

describe('one cache, two hubs with the same org/name', () => {
  it("each hub's load gets that hub's files, online and offline", async () => {
    const cacheDir = join(tmp.dir, 'cache');
    expect(bertA.config).not.toEqual(bertB.config);
    expect(await configFrom(a.url, cacheDir)).toEqual(bertA.config);
    const asked = b.log.length;
    expect(await configFrom(b.url, cacheDir)).toEqual(bertB.config);
    expect(b.log.length).toBeGreaterThan(asked); // b was asked, not answered from a's copy
    expect(await configFrom(a.url, cacheDir, true)).toEqual(bertA.config);
    expect(await configFrom(b.url, cacheDir, true)).toEqual(bertB.config);
    await expect(configFrom('https://hub.invalid', cacheDir, true)).rejects.toMatchObject({ code: 'SOURCE_OFFLINE' });

    const models = await listCachedModels({ cacheDir });
    expect(models.map((m) => [m.location, m.hub])).toEqual([a.url, b.url].sort().map((url) => ['webq/same@main', url]));
    const rows = (await run('list', '--cache-dir', cacheDir)).out.split('\n').filter((l) => l.startsWith('webq/same@main '));
    expect(rows).toHaveLength(2);
    for (const url of [a.url, b.url]) expect(rows.filter((l) => l.includes(` ${url} `))).toHaveLength(1);

    // --hub-url narrows rm to one hub; the other's copy stays and still loads offline.
    const rm = await run('rm', '--cache-dir', cacheDir, '--hub-url', a.url, 'webq/same');
    expect(rm).toMatchObject({ code: 0, err: '', out: expect.stringMatching(new RegExp(`^removed webq/same@main from ${a.url.replace(/[.]/g, '\\.')} \\(`)) });
    expect((await listCachedModels({ cacheDir })).map((m) => m.hub)).toEqual([b.url]);
    await expect(configFrom(a.url, cacheDir, true)).rejects.toMatchObject({ code: 'SOURCE_OFFLINE' });
    expect(await configFrom(b.url, cacheDir, true)).toEqual(bertB.config);
  });

  it('the hub key: https:// dropped, other schemes kept, a path kept, one segment', () => {
    expect(hubKeySegment('https://huggingface.co')).toBe('huggingface.co');
    expect(hubKeySegment('https://HF-Mirror.com/')).toBe('hf-mirror.com');
    expect(hubKeySegment('https://example.com/hf/')).toBe('example.com%2Fhf');
    expect(hubKeySegment('http://127.0.0.1:8080')).toBe('http%3A%2F%2F127.0.0.1%3A8080');
  });
});

describe('a cache written before the hub was kept', () => {
  it('is never read by a load, is listed with hub "?", and goes with `webq cache rm`', async () => {
    const cacheDir = join(tmp.dir, 'cache-old');
    // What an older webq wrote after loading webq/same from hub b: hub/<org>/<name>/<rev>/.
    const old = join(cacheDir, 'hub', 'webq', 'same', 'main');
    await mkdir(old, { recursive: true });
    await writeFile(join(old, 'config.json'), JSON.stringify(bertB.config));
    await writeFile(join(cacheDir, 'hub', 'webq', 'same', '@main.json'), JSON.stringify({ location: 'webq/same@main', absent: [], checked: Date.now() }));

    // Loading from hub a downloads a's file; offline from any hub, the old copy does not answer.
    await expect(configFrom(b.url, cacheDir, true)).rejects.toMatchObject({ code: 'SOURCE_OFFLINE' });
    expect(await configFrom(a.url, cacheDir)).toEqual(bertA.config);

    const models = await listCachedModels({ cacheDir });
    expect(models.map((m) => [m.location, m.hub, m.files.map((f) => f.name)])).toEqual([
      ['webq/same@main', a.url, ['config.json']],
      ['webq/same@main', null, ['config.json']],
    ]);
    expect((await run('list', '--cache-dir', cacheDir)).out).toMatch(/^webq\/same@main\s+\?\s/m);

    // Removing the model from hub a also clears the old copy, whose hub is unknown.
    const removed = await removeCachedModel('webq/same', { cacheDir, hubUrl: a.url });
    expect(removed.map((m) => m.hub)).toEqual([a.url, null]);
    expect(await listCachedModels({ cacheDir })).toEqual([]);
    expect(await readdir(join(cacheDir, 'hub', 'webq'))).toEqual([]);
  });
});

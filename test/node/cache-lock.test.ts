// The lock on a cached model (src/io/hub/cache-lock.ts) in Node, where there are no Web Locks (the
// in-process fallback): loads share it, an update excludes them, requests are granted in order.
// Then a load and an update of one cached model at once: the update is started from inside the
// load (after it read config.json) and the load is held up before its weights until the update is
// done or 3 s have passed. Without the lock the update commits in that gap and the load reads the
// old config.json with the new weights; with it, the update waits, and the load is one version,
// told by the size of the config.json it read and the version its weights report.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BertModel } from '../../src/api/bert.ts';
import { updateCachedModel } from '../../src/delta/patch-cache.ts';
import { withCacheLock } from '../../src/io/hub/cache-lock.ts';
import type { ProgressInfo } from '../../src/io/hub/progress.ts';
import { CONFIG_DELTA, makeConfigDeltaFixtures, TEXTS, type VersionRef } from '../helpers/delta-config-fixture.ts';
import type { DeltaFixtures } from '../helpers/delta-fixtures.ts';
import { serveStatic, type StaticServer } from '../helpers/static-server.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir('webq-cache-lock-');
const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

describe('withCacheLock without Web Locks (in-process)', () => {
  it('shared holders run together, an exclusive one alone, in the order asked', async () => {
    expect((globalThis as { navigator?: { locks?: unknown } }).navigator?.locks).toBeUndefined(); // Node 20: the fallback is what runs
    const log: string[] = [];
    const task = (name: string, mode: 'shared' | 'exclusive', ms: number) =>
      withCacheLock('webq-cache:test', mode, async () => {
        log.push(`+${name}`);
        await sleep(ms);
        log.push(`-${name}`);
      });
    const all = [task('r1', 'shared', 60), task('r2', 'shared', 30), task('w', 'exclusive', 20), task('r3', 'shared', 10), task('r4', 'shared', 10)];
    await Promise.all(all);
    // r1 and r2 together; w after both (r3 and r4, asked after w, do not pass it); r3 and r4 together after w.
    expect(log).toEqual(['+r1', '+r2', '-r2', '-r1', '+w', '-w', '+r3', '+r4', '-r3', '-r4']);
    // Another name is another lock; a failure releases it.
    const other = withCacheLock('webq-cache:other', 'exclusive', async () => 'other');
    await expect(withCacheLock('webq-cache:test', 'exclusive', async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await other).toBe('other');
    expect(await withCacheLock('webq-cache:test', 'exclusive', async () => 'free again')).toBe('free again');
  });
});

describe('a load and an update of one cached model at once', () => {
  let fx: DeltaFixtures;
  let server: StaticServer;
  let ref: Record<'v1' | 'v2', VersionRef>;

  beforeAll(async () => {
    ({ fx, ref } = await makeConfigDeltaFixtures(tmp.dir));
    server = await serveStatic({ '/': fx.served });
  }, 180_000);

  afterAll(async () => {
    await server?.close();
  });

  it('the update waits for the load; the load is entirely v1, the next one entirely v2', async () => {
    const cacheDir = join(tmp.dir, 'cache');
    const url = `${server.url}/model/`;
    const first = await BertModel.load(url, { cacheDir, dtype: 'q8' });
    expect(first.version).toBe(ref.v1.version);
    first.dispose();
    // The tokenizer files leave the cache, so the next load downloads them between config.json and
    // the weights: the gap where its fetch holds it up.
    const cached = join(cacheDir, 'url', encodeURIComponent(new URL(url).host), 'model');
    for (const f of ['vocab.txt', 'tokenizer.json']) await rm(join(cached, f), { force: true });

    const configBytes: number[] = [];
    let update: Promise<{ to: string }> | undefined;
    let updatedDuringLoad = false;
    const onProgress = (e: ProgressInfo) => {
      if (e.file === 'config.json' && e.status === 'done') {
        configBytes.push(e.total ?? -1);
        update ??= updateCachedModel(url, `${server.url}/${CONFIG_DELTA}`, { cacheDir });
      }
    };
    const gated: typeof fetch = async (input, init) => {
      if (update) {
        const settled = update.then(() => (updatedDuringLoad = true), () => undefined);
        await Promise.race([settled, sleep(3000)]);
      }
      return fetch(input, init);
    };
    const m = await BertModel.load(url, { cacheDir, dtype: 'q8', onProgress, fetch: gated });
    try {
      expect(update).toBeDefined();
      expect({ version: m.version, configBytes: configBytes.at(-1) }).toEqual({ version: ref.v1.version, configBytes: ref.v1.configBytes });
      expect(updatedDuringLoad).toBe(false); // it waited for the load's lock
      expect((await m.embed(TEXTS)).map((r) => Array.from(r))).toEqual(ref.v1.vectors);
    } finally {
      m.dispose();
    }
    expect((await update!).to).toBe(ref.v2.version);
    configBytes.length = 0;
    const next = await BertModel.load(url, { cacheDir, dtype: 'q8', onProgress: (e) => e.file === 'config.json' && e.status === 'done' && configBytes.push(e.total ?? -1) });
    try {
      expect({ version: next.version, configBytes: configBytes.at(-1) }).toEqual({ version: ref.v2.version, configBytes: ref.v2.configBytes });
      expect((await next.embed(TEXTS)).map((r) => Array.from(r))).toEqual(ref.v2.vectors);
    } finally {
      next.dispose();
    }
  }, 180_000);

  it('loads started while an update holds the lock wait for it, and all read the new version', async () => {
    const cacheDir = join(tmp.dir, 'cache-2');
    const url = `${server.url}/model/`;
    (await BertModel.load(url, { cacheDir, dtype: 'q8' })).dispose();
    let release!: () => void;
    const held = new Promise<void>((ok) => (release = ok));
    let staged!: () => void;
    const reached = new Promise<void>((ok) => (staged = ok));
    const update = updateCachedModel(url, `${server.url}/${CONFIG_DELTA}`, { cacheDir, onStep: (s) => (s === 'staged' ? (staged(), held) : undefined) });
    await reached; // staged, not committed: the update holds the lock
    const loads = [0, 1].map(() => BertModel.load(url, { cacheDir, dtype: 'q8' }));
    await sleep(500);
    release();
    const models = await Promise.all(loads);
    expect((await update).to).toBe(ref.v2.version);
    try {
      for (const m of models) {
        expect(m.version).toBe(ref.v2.version);
        expect((await m.embed(TEXTS)).map((r) => Array.from(r))).toEqual(ref.v2.vectors);
      }
    } finally {
      for (const m of models) m.dispose();
    }
  }, 180_000);
});

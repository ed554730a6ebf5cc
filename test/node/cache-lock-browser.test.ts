// Two pages of one origin in headless Chromium (two tabs of one browser profile: they share the
// Cache API and the Web Locks; two puppeteer browser contexts would be two profiles, with a cache
// each) loading and updating one cached model at once, through the bundle a page ships.
//
// 1. Page A loads the cached model; once it has read config.json, page B starts
//    webq.delta.updateCachedModel with a delta that changes config.json and the weights, and A's
//    load is held up (its fetch of a tokenizer file) until B says the update settled or 4 s pass.
//    Without the lock B commits in that gap and A reads the old config with the new weights; with
//    it B waits for A's load: A is entirely v1 (the config size it read, the version its weights
//    report, its embeddings), and the next load is entirely v2.
// 2. B's update is stopped after staging (holding the lock); a load in A waits for it and then
//    reads v2 whole.
// 3. A full Cache API (put rejecting with QuotaExceededError, as over the origin's quota): a load
//    is a CACHE_QUOTA error with the bytes needed; with cache: 'best-effort' it loads from the
//    network, its embeddings those of an uncached load.
import { execFile } from 'node:child_process';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Browser, Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, ROOT } from '../helpers/browser.ts';
import { CONFIG_DELTA, makeConfigDeltaFixtures, TEXTS, type VersionRef } from '../helpers/delta-config-fixture.ts';
import { serveStatic, type StaticServer } from '../helpers/static-server.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir('webq-lock-browser-');
let site: StaticServer;
let models: StaticServer;
let browser: Browser;
let pageA: Page;
let pageB: Page;
let ref: Record<'v1' | 'v2', VersionRef>;
let modelUrl: string;
let deltaUrl: string;
let modelBytes: number;

beforeAll(async () => {
  const siteDir = join(tmp.dir, 'site');
  await mkdir(siteDir);
  await promisify(execFile)(process.execPath, [join(ROOT, 'scripts/build-browser.mjs'), '--out', join(siteDir, 'webq.browser.js')], { cwd: ROOT });
  await writeFile(join(siteDir, 'index.html'), `<!doctype html>\n<meta charset="utf-8">\n<script type="module">\n  import * as webq from './webq.browser.js';\n  window.webq = webq;\n</script>\n`);
  const made = await makeConfigDeltaFixtures(join(tmp.dir, 'fx'));
  ref = made.ref;
  modelBytes = (await stat(join(made.fx.served, 'model', 'model.safetensors'))).size;
  site = await serveStatic({ '/': siteDir });
  models = await serveStatic({ '/': made.fx.served, '/v2/': made.v2 }, { cors: true });
  modelUrl = `${models.url}/model/`;
  deltaUrl = `${models.url}/${CONFIG_DELTA}`;
  browser = await launchChromium();
  [pageA, pageB] = [await browser.newPage(), await browser.newPage()];
  for (const p of [pageA, pageB]) {
    p.on('pageerror', (e) => console.log(`page error: ${String(e)}`));
    await p.goto(`${site.url}/index.html`);
    await p.waitForFunction(() => 'webq' in window, { timeout: 60_000 });
  }
  const embed = (url: string) =>
    inPage(pageA, async (webq, u: string, texts: string[]) => {
      const m = await webq.BertModel.load(u, { dtype: 'q8', cache: false });
      try {
        return (await m.embed(texts)).map((r: Float32Array) => Array.from(r));
      } finally {
        m.dispose();
      }
    }, url, TEXTS);
  pageRef = { v1: await embed(modelUrl), v2: await embed(`${models.url}/v2/`) };
  expect(maxDiff(pageRef.v1, pageRef.v2)).toBeGreaterThan(1e-4); // the delta changes the embeddings
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await site?.close();
  await models?.close();
});

/** Runs `fn` in `page` with the bundle's exports as its first argument (`args` as JSON). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function inPage<T, A extends unknown[]>(page: Page, fn: (webq: any, ...args: A) => Promise<T>, ...args: A): Promise<T> {
  return page.evaluate(`(${fn.toString()})(window.webq, ...${JSON.stringify(args)})`) as Promise<T>;
}

interface Loaded {
  version: string | null;
  configBytes: number[];
  vectors: number[][];
  error?: { name: string; code?: string; message: string; needed?: number };
}

/** Largest difference between two sets of vectors. */
function maxDiff(a: number[][], b: number[][]): number {
  return Math.max(...a.flatMap((row, i) => row.map((x, k) => Math.abs(x - b[i][k]))));
}

/** The page's embeddings of each version (uncached loads of the two folders): Node's are another device's, not bit-equal. */
let pageRef: Record<'v1' | 'v2', number[][]>;

/** Which version's embeddings `v` are, exactly; undefined when neither's. */
function whichVersion(v: number[][]): 'v1' | 'v2' | undefined {
  const same = (a: number[][]) => maxDiff(v, a) === 0;
  return same(pageRef.v1) ? 'v1' : same(pageRef.v2) ? 'v2' : undefined;
}

/** Page setup: a fresh 'webq' cache holding the model as a load leaves it. */
async function freshCache(): Promise<void> {
  await inPage(pageA, async (webq, url: string, texts: string[]) => {
    await caches.delete('webq');
    const m = await webq.BertModel.load(url, { dtype: 'q8' });
    await m.embed(texts);
    m.dispose();
  }, modelUrl, TEXTS);
}

describe('two pages, one cached model (Chromium, Web Locks)', () => {
  it('an update started while a load runs waits for it: the load is entirely v1, the next entirely v2', async () => {
    await freshCache();
    // Page B: run the update when page A says it has read config.json; tell A when it settled.
    await inPage(pageB, async (webq, url: string, delta: string) => {
      const w = window as unknown as Record<string, unknown>;
      const bc = new BroadcastChannel('webq-test');
      w.updated = new Promise((done) => {
        bc.onmessage = (e) => {
          if (e.data !== 'config-read') return;
          webq.delta.updateCachedModel(url, delta).then(
            (r: { to: string }) => (bc.postMessage('updated'), done({ to: r.to })),
            (x: Error) => (bc.postMessage('updated'), done({ error: String(x) })),
          );
        };
      });
    }, modelUrl, deltaUrl);
    const a = await inPage(pageA, async (webq, url: string, texts: string[]): Promise<Loaded & { updatedDuringLoad: boolean }> => {
      // The tokenizer files leave the cache: the load fetches them after config.json, before the weights.
      const cache = await caches.open('webq');
      for (const req of await cache.keys()) if (/\/(vocab\.txt|tokenizer\.json)$/.test(req.url)) await cache.delete(req);
      const bc = new BroadcastChannel('webq-test');
      let updatedDuringLoad = false;
      let told = false;
      const settled = new Promise<void>((ok) => (bc.onmessage = (e) => e.data === 'updated' && ((updatedDuringLoad = true), ok())));
      const configBytes: number[] = [];
      const onProgress = (e: { file: string; status: string; total?: number }) => {
        if (e.file !== 'config.json' || e.status !== 'done') return;
        configBytes.push(e.total ?? -1);
        if (!told) bc.postMessage('config-read');
        told = true;
      };
      const gated = async (input: RequestInfo | URL, init?: RequestInit) => {
        if (told) await Promise.race([settled, new Promise((ok) => setTimeout(ok, 4000))]);
        return fetch(input, init);
      };
      const m = await webq.BertModel.load(url, { dtype: 'q8', onProgress, fetch: gated });
      const done = updatedDuringLoad;
      try {
        return { version: m.version, configBytes, vectors: (await m.embed(texts)).map((r: Float32Array) => Array.from(r)), updatedDuringLoad: done };
      } finally {
        m.dispose();
      }
    }, modelUrl, TEXTS);
    expect({ version: a.version, configBytes: a.configBytes.at(-1) }).toEqual({ version: ref.v1.version, configBytes: ref.v1.configBytes });
    expect(a.updatedDuringLoad).toBe(false);
    expect(whichVersion(a.vectors)).toBe('v1');
    expect(await pageB.evaluate(() => (window as unknown as { updated: Promise<unknown> }).updated)).toEqual({ to: ref.v2.version });
    const next = await inPage(pageA, async (webq, url: string, texts: string[]): Promise<Loaded> => {
      const configBytes: number[] = [];
      const m = await webq.BertModel.load(url, { dtype: 'q8', onProgress: (e: { file: string; status: string; total?: number }) => e.file === 'config.json' && e.status === 'done' && configBytes.push(e.total ?? -1) });
      try {
        return { version: m.version, configBytes, vectors: (await m.embed(texts)).map((r: Float32Array) => Array.from(r)) };
      } finally {
        m.dispose();
      }
    }, modelUrl, TEXTS);
    expect({ version: next.version, configBytes: next.configBytes.at(-1) }).toEqual({ version: ref.v2.version, configBytes: ref.v2.configBytes });
    expect(whichVersion(next.vectors)).toBe('v2');
  }, 300_000);

  it('a load started while another page\'s update holds the lock waits for it, then reads v2 whole', async () => {
    await freshCache();
    await inPage(pageB, async (webq, url: string, delta: string) => {
      const w = window as unknown as Record<string, unknown>;
      let release!: () => void;
      const held = new Promise<void>((ok) => (release = ok));
      w.release = release;
      await new Promise<void>((staged) => {
        w.updated = webq.delta.updateCachedModel(url, delta, { onStep: (s: string) => (s === 'staged' ? (staged(), held) : undefined) }).then((r: { to: string }) => r.to);
      });
    }, modelUrl, deltaUrl);
    await pageA.evaluate((url: string) => {
      const w = window as unknown as Record<string, unknown> & { webq: { BertModel: { load(u: string, o: object): Promise<{ version: string; dispose(): void }> } } };
      w.loadDone = false;
      w.load = w.webq.BertModel.load(url, { dtype: 'q8' }).then((m) => {
        w.loadDone = true;
        const v = m.version;
        m.dispose();
        return v;
      });
    }, modelUrl);
    await new Promise((ok) => setTimeout(ok, 1500));
    expect(await pageA.evaluate(() => (window as unknown as { loadDone: boolean }).loadDone)).toBe(false); // waiting for B's lock
    await pageB.evaluate(() => (window as unknown as { release(): void }).release());
    expect(await pageB.evaluate(() => (window as unknown as { updated: Promise<string> }).updated)).toBe(ref.v2.version);
    expect(await pageA.evaluate(() => (window as unknown as { load: Promise<string> }).load)).toBe(ref.v2.version);
  }, 300_000);
});

describe('a full Cache API (Chromium; Cache.prototype.put refuses large bodies with QuotaExceededError)', () => {
  it("a load is CACHE_QUOTA with the bytes needed; cache: 'best-effort' loads from the network as an uncached load", async () => {
    const r = await inPage(pageA, async (webq, url: string, texts: string[]) => {
      await caches.delete('webq');
      const put = Cache.prototype.put;
      Cache.prototype.put = async function (this: Cache, req: RequestInfo | URL, res: Response) {
        if ((await res.clone().arrayBuffer()).byteLength > 64 * 1024) throw new DOMException('Quota exceeded.', 'QuotaExceededError');
        return put.call(this, req, res);
      };
      const vec = async (opts: object) => {
        const m = await webq.BertModel.load(url, { dtype: 'q8', ...opts });
        try {
          return (await m.embed(texts)).map((x: Float32Array) => Array.from(x));
        } finally {
          m.dispose();
        }
      };
      try {
        let error: Loaded['error'];
        try {
          await vec({});
        } catch (e) {
          const x = e as { name: string; code?: string; message: string; needed?: number };
          error = { name: x.name, code: x.code, message: x.message, needed: x.needed, isQuota: e instanceof webq.CacheQuotaError } as Loaded['error'];
        }
        const bestEffort = await vec({ cache: 'best-effort' });
        const uncached = await vec({ cache: false });
        const cachedWeights = (await (await caches.open('webq')).keys()).some((k) => k.url.endsWith('/model.safetensors'));
        return { error, bestEffort, uncached, cachedWeights };
      } finally {
        Cache.prototype.put = put;
      }
    }, modelUrl, TEXTS);
    expect(r.error).toMatchObject({ name: 'CacheQuotaError', code: 'CACHE_QUOTA', needed: modelBytes, isQuota: true });
    expect(r.error!.message).toContain(`Cache API 'webq': the download cache is full`);
    expect(r.error!.message).toContain(`storing ${modelUrl}model.safetensors needs ${modelBytes} bytes`);
    expect(r.bestEffort).toEqual(r.uncached);
    expect(whichVersion(r.bestEffort)).toBe('v1');
    expect(r.cachedWeights).toBe(false);
  }, 300_000);
});

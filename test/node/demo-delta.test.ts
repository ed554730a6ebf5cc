// A cached remote model updated by a delta (webq.delta.updateCachedModel): on the disk cache in
// Node, and in the browser's Cache API through the demo page's update panel, driven by Chromium.
// The cached files become byte for byte what `webq patch --out` makes; a bad delta changes
// nothing; an update stopped at any step (a killed process, a reloaded page) leaves the old model
// or the new one for the next open.
import { stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'puppeteer-core';
import type { ViteDevServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeltaError } from '../../src/delta/format.ts';
import { updateCachedModel } from '../../src/delta/patch-cache.ts';
import { readModelVersion } from '../../src/quant/versions.ts';
import { openModelFiles } from '../../src/io/hub/hub.ts';
import type { PatchStep } from '../../src/io/patch-journal.ts';
import { launchChromium, startServer } from '../helpers/browser.ts';
import { makeDeltaFixtures, snapshot, type DeltaFixtures } from '../helpers/delta-fixtures.ts';
import { serveFakeHub } from '../helpers/fake-hub.ts';
import { serveStatic, type StaticServer } from '../helpers/static-server.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir('webq-demo-delta-');
let fx: DeltaFixtures;
let old: Record<string, string>;
let fresh: Record<string, string>;
let v1: string;
let v2: string;
/** The model and its deltas, served with CORS as a page on another origin needs them. */
let server: StaticServer;

beforeAll(async () => {
  fx = await makeDeltaFixtures(tmp.dir);
  server = await serveStatic({ '/': fx.served }, { cors: true });
  old = await snapshot(fx.v1);
  fresh = await snapshot(fx.v2);
  const version = async (dir: string) => {
    const files = await openModelFiles(dir);
    const st = await files.checkpoint();
    const v = readModelVersion(st.metadata, dir)!.version;
    await st.close();
    return v;
  };
  v1 = await version(fx.v1);
  v2 = await version(fx.v2);
}, 120_000);

afterAll(async () => {
  await server?.close();
});

/** The files of `all` that `cached` holds: the cache must agree with them byte for byte. */
const subset = (all: Record<string, string>, cached: Record<string, string>) => Object.fromEntries(Object.keys(cached).map((f) => [f, all[f]]));

/** Files a load reads; tokenizer_config.json stays uncached, as a load that does not need it leaves it. */
const LOADED = ['config.json', 'vocab.txt', 'tokenizer.json'];

describe('updateCachedModel on the disk cache (Node)', () => {
  let n = 0;

  /** A fresh cache holding the served model as a load leaves it; its model folder in the cache. */
  async function cachedModel(): Promise<{ cacheDir: string; url: string; dir: string; version(): Promise<string> }> {
    const cacheDir = join(tmp.dir, `cache-${n++}`);
    const url = `${server.url}/model/`;
    const files = await openModelFiles(url, { cacheDir });
    for (const f of LOADED) if (await files.exists(f)) await files.readText(f);
    await (await files.checkpoint()).close();
    const dir = join(cacheDir, 'url', encodeURIComponent(new URL(url).host), 'model');
    const version = async () => {
      const st = await (await openModelFiles(url, { cacheDir })).checkpoint();
      const v = readModelVersion(st.metadata, url)!.version;
      await st.close();
      return v;
    };
    return { cacheDir, url, dir, version };
  }

  it('updates the cached files to the new version byte for byte; the next open uses them without a request', async () => {
    const m = await cachedModel();
    const before = await snapshot(m.dir);
    expect(before).toEqual(subset(old, before));
    expect(Object.keys(before)).toContain('model.safetensors');
    expect(Object.keys(old).filter((f) => !(f in before))).toContain('tokenizer_config.json'); // not cached: stays so
    const events: string[] = [];
    const r = await updateCachedModel(m.url, `${server.url}/delta.safetensors`, { cacheDir: m.cacheDir, onProgress: (e) => events.push(e.status) });
    expect(r).toMatchObject({ from: v1, to: v2, written: ['model.safetensors'], deleted: [] });
    expect(r.deltaBytes).toBe((await stat(join(fx.served, 'delta.safetensors'))).size);
    expect(r.deltaBytes).toBeLessThan(r.modelBytes / 2);
    expect(events.at(-1)).toBe('done');
    const after = await snapshot(m.dir);
    expect(Object.keys(after).sort()).toEqual(Object.keys(before).sort()); // no staging left behind
    expect(after).toEqual(subset(fresh, after));
    expect(after['model.safetensors']).not.toBe(before['model.safetensors']);
    const requests = server.log.length;
    expect(await m.version()).toBe(v2);
    expect(server.log.length).toBe(requests); // read from the cache, not downloaded again
    await expect(updateCachedModel(m.url, join(fx.served, 'delta.safetensors'), { cacheDir: m.cacheDir })).rejects.toThrow(/is already version/);
  }, 60_000);

  it('refuses every bad delta with a one-line error and leaves the cache as it was', async () => {
    const m = await cachedModel();
    const before = await snapshot(m.dir);
    const cases: [string, RegExp][] = [
      ['bad-flipped.safetensors', /does not match its hash in the manifest \(damaged delta\)/],
      ['bad-truncated.safetensors', /not a complete webq delta \(truncated or damaged\)/],
      ['bad-base.safetensors', /applies to version [0-9a-f]{16} \(a bert model\), but .* is version [0-9a-f]{16}: a delta for another model or version/],
      ['bad-forged.safetensors', /the data of .* does not match its hash in the manifest/],
      ['missing.safetensors', /cannot download the delta \(HTTP 404/],
    ];
    for (const [file, pattern] of cases) {
      const e = await updateCachedModel(m.url, `${server.url}/${file}`, { cacheDir: m.cacheDir }).then(() => undefined, (x: unknown) => x);
      expect(e, file).toBeInstanceOf(DeltaError);
      expect((e as Error).message, file).toMatch(pattern);
      expect((e as Error).message.split('\n'), file).toHaveLength(1);
      expect(await snapshot(m.dir), file).toEqual(before);
    }
    expect(await m.version()).toBe(v1);
    // A model never loaded is not in the cache; a local folder is not a cached model.
    await expect(updateCachedModel(`${server.url}/elsewhere/`, join(fx.served, 'delta.safetensors'), { cacheDir: m.cacheDir })).rejects.toThrow(/has no cached model\.safetensors; load the model once/);
    await expect(updateCachedModel(fx.v1, join(fx.served, 'delta.safetensors'))).rejects.toThrow(/is a local folder; updateCachedModel updates a remote model's cached files/);
  }, 60_000);

  for (const step of ['staged', 'committed', 'moved-one'] as PatchStep[]) {
    it(`an update stopped at "${step}" leaves the ${step === 'staged' ? 'old' : 'new'} model for the next open, whole`, async () => {
      const m = await cachedModel();
      const before = await snapshot(m.dir);
      // The update dies at `step`, as a killed process would: nothing after it runs, and (as a dead
      // process's) its lock on the model is free. (A hook that never settled would hold the lock,
      // which this process's loads then wait for: src/io/hub/cache-lock.ts.)
      const crash = new Error(`crashed at ${step}`);
      const e = await updateCachedModel(m.url, `${server.url}/delta.safetensors`, {
        cacheDir: m.cacheDir,
        onStep: (s) => {
          if (s === step) throw crash;
        },
      }).then(() => undefined, (x: unknown) => x);
      expect(e === crash || (e as Error).cause === crash).toBe(true);
      expect(await m.version()).toBe(step === 'staged' ? v1 : v2); // the open finished or dropped it
      const now = await snapshot(m.dir);
      expect(now).toEqual(step === 'staged' ? before : subset(fresh, before));
    }, 60_000);
  }

  it('a hub branch keeps the updated files while it stays at its commit, and downloads anew when it moves', async () => {
    const repos = new Map([['webq/m', join(fx.served, 'model')]]);
    const commits = new Map([['webq/m', 'a'.repeat(40)]]);
    const hub = await serveFakeHub(repos, { commits });
    try {
      const cacheDir = join(tmp.dir, 'hub-cache');
      const opts = { cacheDir, hubUrl: hub.url, recheckMs: 0 };
      const version = async () => {
        const files = await openModelFiles('webq/m', opts);
        await files.readText('config.json');
        const st = await files.checkpoint();
        const v = readModelVersion(st.metadata, 'webq/m')!.version;
        await st.close();
        return v;
      };
      expect(await version()).toBe(v1);
      const r = await updateCachedModel('webq/m', join(fx.served, 'delta.safetensors'), { cacheDir, hubUrl: hub.url });
      expect(r.to).toBe(v2);
      const gets = () => hub.log.filter((l) => l.method === 'GET' && l.path.endsWith('/model.safetensors')).length;
      const before = gets();
      expect(await version()).toBe(v2); // re-checked (HEAD): same commit, the cache stays
      expect(hub.log.at(-1)?.method).toBe('HEAD');
      expect(gets()).toBe(before);
      // The branch moves (to the new version, as the server publishes it): downloaded from the server.
      commits.set('webq/m', 'b'.repeat(40));
      repos.set('webq/m', fx.v2);
      expect(await version()).toBe(v2);
      expect(gets()).toBe(before + 1);
    } finally {
      await hub.close();
    }
  }, 60_000);
});

describe('demo page: updating the cached model by a delta (Chromium, Cache API)', () => {
  const TEXTS = 'the cat sat on the mat|a cat is sitting on a rug|stock markets fell today';
  let vite: ViteDevServer;
  let base: string;
  let browser: Browser;
  let page: Page;
  let model: string;
  let prefix: string;

  beforeAll(async () => {
    ({ server: vite, base } = await startServer());
    browser = await launchChromium();
    page = await browser.newPage();
    page.on('pageerror', (e) => console.log(`page error: ${e}`));
    model = `${server.url}/model/`;
    prefix = `url/${encodeURIComponent(new URL(model).host)}/model/`;
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await vite?.close();
  });

  /** Opens (or reloads) the demo and waits for its model, its first embed and the update panel. */
  async function ready(query?: Record<string, string>): Promise<void> {
    if (query) await page.goto(`${base}/demo/index.html?${new URLSearchParams({ model, dtype: 'q8', texts: TEXTS, ...query })}`);
    else await page.reload();
    await page.waitForFunction(() => window.__webqUpdate !== undefined || window.__webqDemo?.status === 'error', { timeout: 180_000 });
    expect(await page.evaluate(() => window.__webqDemo?.error)).toBeUndefined();
  }

  const state = () => page.evaluate(() => window.__webqUpdate!);

  /** Clicks "update" with `delta` and waits until the update is done, refused, or frozen by ?stopAt=. */
  async function update(delta: string): Promise<NonNullable<Window['__webqUpdate']>> {
    await page.$eval('#delta-url', (e, v) => void ((e as HTMLInputElement).value = v), delta);
    await page.click('#update-run');
    await page.waitForFunction(() => ['done', 'error', 'stopped'].includes(window.__webqUpdate?.status ?? ''), { timeout: 180_000 });
    return state();
  }

  /** Every entry of the page's Cache API by key, with the sha256 of its bytes (hashed in the page). */
  const cacheHashes = () =>
    page.evaluate(async () => {
      const cache = await caches.open('webq');
      const out: Record<string, string> = {};
      for (const req of await cache.keys()) {
        const res = (await cache.match(req))!;
        const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', await res.arrayBuffer()));
        out[res.headers.get('x-webq-key') ?? req.url] = Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
      }
      return out;
    });

  /** The model's cached files by name; and whether an update is staged. */
  async function cachedModel(): Promise<{ files: Record<string, string>; staging: string[] }> {
    const all = await cacheHashes();
    const files = Object.fromEntries(Object.entries(all).filter(([k]) => k.startsWith(prefix) && !k.includes('@')).map(([k, h]) => [decodeURIComponent(k.slice(prefix.length)), h]));
    return { files, staging: Object.keys(all).filter((k) => k.includes('/@update/')) };
  }

  it('shows the cached version and refuses every bad delta with one line, the cache unchanged', async () => {
    await ready({ stopAt: 'staged' });
    expect((await state()).version).toBe(v1);
    expect(await page.$eval('#update-version', (e) => e.textContent)).toContain(v1);
    expect(await page.$eval('#delta-url', (e) => (e as HTMLInputElement).value)).toBe(`${server.url}/delta.safetensors`);
    const before = await cachedModel();
    expect(before.files).toEqual(subset(old, before.files));
    expect(Object.keys(before.files)).toContain('model.safetensors');
    const all = await cacheHashes();
    const cases: [string, RegExp][] = [
      ['bad-flipped.safetensors', /does not match its hash in the manifest \(damaged delta\)/],
      ['bad-truncated.safetensors', /not a complete webq delta \(truncated or damaged\)/],
      ['bad-base.safetensors', /a delta for another model or version/],
      ['bad-forged.safetensors', /the data of .* does not match its hash in the manifest/],
    ];
    for (const [file, pattern] of cases) {
      const s = await update(`${server.url}/${file}`);
      expect(s.status, file).toBe('error');
      expect(s.error, file).toMatch(pattern);
      const shown = await page.$eval('#update-error', (e) => ((e as HTMLElement).hidden ? '' : e.textContent ?? ''));
      expect(shown, file).toBe(s.error);
      expect(shown.split('\n'), file).toHaveLength(1);
      expect(s.version, file).toBe(v1);
      expect(await cacheHashes(), file).toEqual(all);
    }
  }, 300_000);

  it('a reload while the update is staged finds the old model; after the commit point, the new one', async () => {
    const before = await cachedModel();
    let s = await update(`${server.url}/delta.safetensors`);
    expect(s).toMatchObject({ status: 'stopped', step: 'staged' });
    expect((await cachedModel()).staging).not.toEqual([]); // mid-update: the new files are staged
    await ready(); // reload
    expect((await state()).version).toBe(v1);
    expect(await cachedModel()).toEqual(before); // staging discarded
    await ready({ stopAt: 'committed' });
    s = await update(`${server.url}/delta.safetensors`);
    expect(s).toMatchObject({ status: 'stopped', step: 'committed' });
    await ready(); // reload
    expect((await state()).version).toBe(v2);
    const after = await cachedModel();
    expect(after.staging).toEqual([]);
    expect(Object.keys(after.files).sort()).toEqual(Object.keys(before.files).sort());
    expect(after.files).toEqual(subset(fresh, after.files)); // byte for byte `webq patch --out`
  }, 300_000);

  it('updates a freshly cached model: version before and after, bytes downloaded, the loaded model too', async () => {
    await page.goto(`${base}/demo/style.css`); // the demo's origin, without loading a model
    await page.evaluate(() => caches.delete('webq'));
    await ready({});
    expect((await state()).version).toBe(v1);
    const s = await update(`${server.url}/delta.safetensors`);
    expect(s.error).toBeUndefined();
    expect(s).toMatchObject({ status: 'done', from: v1, to: v2, version: v2 });
    expect(s.deltaBytes).toBe((await stat(join(fx.served, 'delta.safetensors'))).size);
    expect(['model', 'reload']).toContain(s.applied);
    if (s.loadedVersion !== undefined) expect(s.loadedVersion).toBe(v2); // the page's model says so itself
    const shown = await page.$eval('#update-status', (e) => e.textContent ?? '');
    expect(shown).toContain(`version ${v1} → ${v2}`);
    expect(shown).toMatch(/downloaded [\d.]+ KiB for a [\d.]+ KiB model/);
    expect(shown).toMatch(/similarity of sentences 1 and 2: [\d.-]+ → [\d.-]+/);
    const diff = (a: number[][], b: number[][]) => Math.max(...a.flatMap((row, i) => row.map((x, k) => Math.abs(x - b[i][k]))));
    expect(diff(s.embeddingsBefore!, s.embeddingsAfter!)).toBeGreaterThan(1e-4); // layer 1 changed
    const shot = join(tmpdir(), 'webq-demo-update.png');
    await page.screenshot({ path: shot, fullPage: true });
    const cached = await cachedModel();
    expect(cached.staging).toEqual([]);
    expect(cached.files).toEqual(subset(fresh, cached.files));
    // A later load reads the updated files from the cache, and gets what the page had after the update.
    const requests = server.log.length;
    await ready();
    expect((await state()).version).toBe(v2);
    expect(await page.$eval('#update-version', (e) => e.textContent)).toContain(v2);
    expect(diff(await page.evaluate(() => window.__webqDemo!.embeddings), s.embeddingsAfter!)).toBeLessThanOrEqual(1e-5);
    expect(server.log.slice(requests)).toEqual([]);
    console.log(`demo update: ${s.from} -> ${s.to}, ${s.deltaBytes} bytes downloaded, applied by ${s.applied}; screenshot ${shot}`);
  }, 300_000);

  it('with ?publicKey= (Ed25519 in the page\'s WebCrypto): an unsigned delta is refused, a signed one updates', async () => {
    await page.goto(`${base}/demo/style.css`);
    await page.evaluate(() => caches.delete('webq'));
    await ready({ publicKey: fx.publicKey });
    const before = await cacheHashes();
    let s = await update(`${server.url}/delta.safetensors`);
    expect(s.status).toBe('error');
    expect(s.error).toMatch(/DeltaError: .* is not signed, and a public key was given/);
    expect(await cacheHashes()).toEqual(before);
    s = await update(`${server.url}/signed.safetensors`);
    expect(s.error).toBeUndefined();
    expect(s).toMatchObject({ status: 'done', from: v1, to: v2, version: v2 });
    expect((await cachedModel()).files).toEqual(subset(fresh, (await cachedModel()).files));
  }, 300_000);
});

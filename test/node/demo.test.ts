// The demo page (demo/index.html) in headless Chromium: it loads a tiny BERT in a worker from a
// folder URL and from a hub id on a local fake hub, warms it up during load, embeds the ?texts=
// sentences on the browser's WebGPU (SwiftShader: the f32 path) and must agree with the same model
// run in Node. It must also say what is wrong when a folder URL is served without CORS, and load a
// hub model without a console error for the optional files the model does not have.
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import type { Browser, Page } from 'puppeteer-core';
import type { ViteDevServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BertModel } from '../../src/api/bert.ts';
import { launchChromium, startServer } from '../helpers/browser.ts';
import { serveFakeHub, type FakeHub } from '../helpers/fake-hub.ts';
import { serveStatic } from '../helpers/static-server.ts';
import { writeTinyBert } from '../../fixtures/tiny-bert.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir('webq-demo-');
const TEXTS = ['hello world', 'the cat sat on the mat', 'a second text'];

let server: ViteDevServer;
let base: string;
let browser: Browser;
let hub: FakeHub;
let expected: Float32Array[];
let tinyDir: string;

beforeAll(async () => {
  const tiny = await writeTinyBert(join(tmp.dir, 'tiny'));
  tinyDir = tiny.dir;
  hub = await serveFakeHub(new Map([['webq/tiny', tiny.dir]]), { cors: true });
  const m = await BertModel.load(tiny.dir, { dtype: 'f32' });
  expected = await m.embed(TEXTS);
  m.dispose();
  ({ server, base } = await startServer());
  browser = await launchChromium();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await hub?.close();
});

/**
 * Opens the demo and waits for its first result. `console` gathers what a user would see in red in
 * the console: the page's errors and the worker's (puppeteer reports a worker's network messages,
 * such as "Failed to load resource: ... 404", only once its Log domain is on); `notFound` every
 * answer of 400 or more that the page or its worker got.
 */
async function openDemo(query: Record<string, string>): Promise<{ page: Page; errors: string[]; console: string[]; notFound: string[] }> {
  const page = await browser.newPage();
  await page.setViewport({ width: 1000, height: 900 });
  const errors: string[] = [];
  const console: string[] = [];
  const notFound: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => void (m.type() === 'error' && console.push(`page: ${m.text()} (${m.location().url ?? ''})`)));
  page.on('response', (r) => void (r.status() >= 400 && notFound.push(`${r.request().method()} ${new URL(r.url()).pathname} ${r.status()}`)));
  page.on('workercreated', (w) => {
    w.client.on('Log.entryAdded', (e) => void (e.entry.level === 'error' && console.push(`worker: ${e.entry.text} (${e.entry.url ?? ''})`)));
    void w.client.send('Log.enable').catch(() => undefined); // replays what the worker logged so far
  });
  await page.goto(`${base}/demo/index.html?${new URLSearchParams(query)}`);
  await page.waitForFunction(() => window.__webqDemo !== undefined, { timeout: 180_000 });
  return { page, errors, console, notFound };
}

function maxAbsDiff(got: number[][], want: Float32Array[]): number {
  expect(got).toHaveLength(want.length);
  let m = 0;
  got.forEach((row, i) => {
    expect(row).toHaveLength(want[i].length);
    row.forEach((x, k) => (m = Math.max(m, Math.abs(x - want[i][k]))));
  });
  return m;
}

describe('demo page', () => {
  it('embeds ?texts= with a model from a folder URL and matches Node', async () => {
    const model = `${hub.url}/plain/tiny/`;
    const { page, errors } = await openDemo({ model, dtype: 'f32', texts: TEXTS.join('|') });
    const state = await page.evaluate(() => window.__webqDemo!);
    expect(state.error).toBeUndefined();
    expect(errors).toEqual([]);
    expect(state).toMatchObject({ status: 'ready', model, dtype: 'f32' });
    expect(state.adapter?.length).toBeGreaterThan(0);
    expect(maxAbsDiff(state.embeddings, expected)).toBeLessThanOrEqual(1e-4);
    // The shaders compiled during load (the warm-up forward), before the first embed, which was quick.
    expect(state.warmupMs).toBeGreaterThan(0);
    expect(state.warmupDoneAt).toBeLessThanOrEqual(state.firstEmbedAt!);
    expect(state.embedMs).toBeLessThan(state.warmupMs!);
    console.log(`demo: load ${state.loadMs!.toFixed(0)} ms, warm-up ${state.warmupMs!.toFixed(0)} ms, first embed ${state.embedMs!.toFixed(0)} ms`);

    // The page shows the matrix: one header row plus one row per text, diagonal 1.000, colored.
    const cells = await page.$$eval('#matrix tr', (rows) => rows.map((r) => Array.from(r.children, (c) => [c.textContent, (c as HTMLElement).style.background])));
    expect(cells).toHaveLength(TEXTS.length + 1);
    expect(cells[1][0][0]).toBe(`1. ${TEXTS[0]}`);
    for (let i = 1; i <= TEXTS.length; i++) expect(cells[i][i][0]).toBe('1.000');
    expect(cells[1][2][1]).toMatch(/^(hsl|rgb)/);
    expect(await page.$eval('#status', (e) => e.textContent)).toMatch(/^ready: /);
    expect(await page.$eval('#device', (e) => e.textContent)).toContain(state.adapter!);
    const shot = join(tmpdir(), 'webq-demo.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`demo: ${state.adapter}; screenshot ${shot}`);
    await page.close();
  }, 240_000);

  it('loads a hub id from ?hub= and embeds again on click', async () => {
    const { page } = await openDemo({ model: 'webq/tiny', hub: hub.url, dtype: 'f32', texts: TEXTS.slice(0, 2).join('|') });
    let state = await page.evaluate(() => window.__webqDemo!);
    expect(state.error).toBeUndefined();
    expect(maxAbsDiff(state.embeddings, expected.slice(0, 2))).toBeLessThanOrEqual(1e-4);
    // Typing a third line and clicking "embed" publishes a new result.
    await page.evaluate(() => {
      window.__webqDemo = undefined;
    });
    await page.$eval('#texts', (e, v) => void ((e as HTMLTextAreaElement).value = v), TEXTS.join('\n'));
    await page.click('#run');
    await page.waitForFunction(() => window.__webqDemo !== undefined, { timeout: 120_000 });
    state = await page.evaluate(() => window.__webqDemo!);
    expect(maxAbsDiff(state.embeddings, expected)).toBeLessThanOrEqual(1e-4);
    await page.close();
  }, 240_000);

  it('shows a load error in the page and publishes it', async () => {
    const { page } = await openDemo({ model: `${hub.url}/plain/missing/`, dtype: 'f32', texts: 'x' });
    const state = await page.evaluate(() => window.__webqDemo!);
    expect(state.status).toBe('error');
    expect(state.embeddings).toEqual([]);
    expect(state.error).toContain('/plain/missing/config.json');
    expect(await page.$eval('#error', (e) => ((e as HTMLElement).hidden ? '' : e.textContent))).toContain('config.json');
    await page.close();
  }, 120_000);
  it('says so when a folder URL is served without CORS headers, and how to fix it', async () => {
    const bare = await serveStatic({ '/': tmp.dir }); // no Access-Control-* headers
    try {
      const { page } = await openDemo({ model: `${bare.url}/tiny/`, dtype: 'f32', texts: 'x' });
      const state = await page.evaluate(() => window.__webqDemo!);
      expect(state.status).toBe('error');
      expect(state.error).toContain(`The server at ${bare.url} answered, but without CORS headers`);
      expect(state.error).toContain('npx http-server /path/to/models --cors');
      expect(state.error).toContain('Access-Control-Allow-Origin: *');
      expect(await page.$eval('#error', (e) => e.textContent)).toContain('without CORS headers');
      await page.close();
    } finally {
      await bare.close();
    }
    // A server that is not there gets another answer.
    const gone = createServer();
    await new Promise<void>((ok) => gone.listen(0, '127.0.0.1', ok));
    const port = (gone.address() as AddressInfo).port;
    await new Promise((ok) => gone.close(ok));
    const { page } = await openDemo({ model: `http://127.0.0.1:${port}/tiny/`, dtype: 'f32', texts: 'x' });
    const state = await page.evaluate(() => window.__webqDemo!);
    expect(state.error).toContain(`Nothing answered at http://127.0.0.1:${port}: is the server running`);
    expect(state.error).not.toContain('CORS');
    await page.close();
  }, 120_000);

  it('loads a hub model with no console error for the optional files it lacks; a folder URL asks for them once', async () => {
    // A hub on 127.0.0.1 with the hub's file-listing API (GET /api/models/<id>/revision/<rev>).
    const api = join(tmp.dir, 'api');
    await mkdir(api);
    const files = await readdir(tinyDir, { recursive: true, withFileTypes: true });
    const siblings = files.filter((f) => f.isFile()).map((f) => ({ rfilename: join(f.parentPath, f.name).slice(tinyDir.length + 1) }));
    await writeFile(join(api, 'main'), JSON.stringify({ id: 'webq/quiet', siblings }));
    const quiet = await serveStatic({ '/webq/quiet/resolve/main/': tinyDir, '/api/models/webq/quiet/revision/': api, '/folder/': tinyDir }, { cors: true });
    try {
      const hubRun = await openDemo({ model: 'webq/quiet', hub: quiet.url, dtype: 'f32', texts: TEXTS.join('|') });
      const state = await hubRun.page.evaluate(() => window.__webqDemo!);
      expect(state.error).toBeUndefined();
      expect(maxAbsDiff(state.embeddings, expected)).toBeLessThanOrEqual(1e-4);
      expect(quiet.log).toContain('/api/models/webq/quiet/revision/main');
      expect(quiet.log.filter((p) => /1_Pooling|modules\.json/.test(p))).toEqual([]); // answered from the listing
      expect(hubRun.notFound).toEqual([]);
      expect(hubRun.console).toEqual([]);
      expect(hubRun.errors).toEqual([]);
      await hubRun.page.close();

      // A folder URL has no listing: its first load asks for each optional file once (a 404 that
      // Chromium does not print for a worker's fetch), the cache remembers the answers, and the next
      // load asks for none.
      const first = await openDemo({ model: `${quiet.url}/folder/`, dtype: 'f32', texts: 'x' });
      expect(first.notFound).toEqual(['HEAD /folder/1_Pooling/config.json 404']); // no pooling config: modules.json is not asked for
      expect(first.console).toEqual([]);
      // The same 404 from the page's own thread is printed, and seen here: the check above is not blind.
      await first.page.evaluate((u) => fetch(u, { method: 'HEAD' }).then(() => undefined), `${quiet.url}/folder/1_Pooling/config.json`);
      await new Promise((r) => setTimeout(r, 200));
      expect(first.console).toEqual([expect.stringMatching(/^page: Failed to load resource: .*404/)]);
      await first.page.close();
      const again = await openDemo({ model: `${quiet.url}/folder/`, dtype: 'f32', texts: 'x' });
      expect((await again.page.evaluate(() => window.__webqDemo!)).status).toBe('ready');
      expect(again.notFound).toEqual([]);
      expect(again.console).toEqual([]);
      console.log('demo: hub id with the listing: no 404 at all; folder URL: one optional-file 404 on the first load (not printed from the worker), none on the next');
      await again.page.close();
    } finally {
      await quiet.close();
    }
  }, 240_000);
});

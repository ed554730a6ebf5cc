// The demo page (demo/index.html) in headless Chromium: it loads a tiny BERT from a folder URL and
// from a hub id on a local fake hub, embeds the ?texts= sentences on the browser's WebGPU
// (SwiftShader: the f32 path) and must agree with the same model run in Node.
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import type { Browser, Page } from 'puppeteer-core';
import type { ViteDevServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BertModel } from '../../src/api/bert.ts';
import { launchChromium, startServer } from '../helpers/browser.ts';
import { serveFakeHub, type FakeHub } from '../helpers/fake-hub.ts';
import { writeTinyBert } from '../helpers/tiny-bert.ts';
import { useTempDir } from './safetensors-helpers.ts';

const tmp = useTempDir('webq-demo-');
const TEXTS = ['hello world', 'the cat sat on the mat', 'a second text'];

let server: ViteDevServer;
let base: string;
let browser: Browser;
let hub: FakeHub;
let expected: Float32Array[];

beforeAll(async () => {
  const tiny = await writeTinyBert(join(tmp.dir, 'tiny'));
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

async function openDemo(query: Record<string, string>): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage();
  await page.setViewport({ width: 1000, height: 900 });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`${base}/demo/index.html?${new URLSearchParams(query)}`);
  await page.waitForFunction(() => window.__webqDemo !== undefined, { timeout: 180_000 });
  return { page, errors };
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
});

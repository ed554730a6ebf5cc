/**
 * A plain page in headless Chromium that imports the bundle a user ships (dist/webq.browser.js,
 * which starts dist/webq.worker.js from beside itself), built here into a temporary site without
 * touching dist/, with a tiny BERT and a tiny chat LLaMA served from another origin with CORS.
 * The page only hands the module to the test, which drives it through `inPage`.
 */
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Browser, Page } from 'puppeteer-core';
import { afterAll, beforeAll } from 'vitest';
import { writeTinyBert } from '../../fixtures/tiny-bert.ts';
import { writeTinyLlama } from '../../fixtures/tiny-llama.ts';
import { launchChromium, ROOT } from './browser.ts';
import { TINY_CHAT_LLAMA } from './llm-fixture.ts';
import { useTempDir } from './safetensors-helpers.ts';
import { serveStatic, type StaticServer } from './static-server.ts';

export interface BundlePage {
  /** The temporary folder: site/ (the page and bundles) and models/bert, models/llama. */
  readonly dir: string;
  readonly page: Page;
  /** The model server's origin (models/ at its root). */
  readonly modelsUrl: string;
  readonly bertUrl: string;
  readonly llamaUrl: string;
  /** Runs `fn` in the page with the bundle's exports as its first argument (`args` as JSON). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  inPage<T, A extends unknown[]>(fn: (webq: any, ...args: A) => Promise<T>, ...args: A): Promise<T>;
}

/** Sets the page up in beforeAll and closes it in afterAll; read the fields inside tests. */
export function useBundlePage(prefix: string): BundlePage {
  const tmp = useTempDir(prefix);
  let site: StaticServer | undefined;
  let models: StaticServer | undefined;
  let browser: Browser | undefined;
  let page: Page | undefined;
  const ready = <T>(v: T | undefined): T => {
    if (v === undefined) throw new Error('useBundlePage: read its fields inside a test, after beforeAll');
    return v;
  };
  beforeAll(async () => {
    const siteDir = join(tmp.dir, 'site');
    const modelDir = join(tmp.dir, 'models');
    await mkdir(siteDir);
    await promisify(execFile)(process.execPath, [join(ROOT, 'scripts/build-browser.mjs'), '--out', join(siteDir, 'webq.browser.js')], { cwd: ROOT });
    await writeTinyBert(join(modelDir, 'bert'));
    await writeTinyLlama(join(modelDir, 'llama'), TINY_CHAT_LLAMA);
    await writeFile(join(siteDir, 'index.html'), `<!doctype html>\n<meta charset="utf-8">\n<script type="module">\n  import * as webq from './webq.browser.js';\n  window.webq = webq;\n</script>\n`);
    site = await serveStatic({ '/': siteDir });
    models = await serveStatic({ '/': modelDir }, { cors: true });
    browser = await launchChromium();
    page = await browser.newPage();
    page.on('pageerror', (e) => console.log(`page error: ${String(e)}`));
    await page.goto(`${site.url}/index.html`);
    await page.waitForFunction(() => 'webq' in window, { timeout: 60_000 });
  }, 180_000);
  afterAll(async () => {
    await browser?.close();
    await site?.close();
    await models?.close();
  });
  return {
    get dir() {
      return tmp.dir;
    },
    get page() {
      return ready(page);
    },
    get modelsUrl() {
      return ready(models).url;
    },
    get bertUrl() {
      return `${ready(models).url}/bert/`;
    },
    get llamaUrl() {
      return `${ready(models).url}/llama/`;
    },
    inPage(fn, ...args) {
      return ready(page).evaluate(`(${fn.toString()})(window.webq, ...${JSON.stringify(args)})`) as never;
    },
  };
}

// The README's plain page, as a user ships it: one <script type="module"> that imports
// webq.browser.js (the bundle `npm run build` writes), served by a plain static server on
// 127.0.0.1 (no Vite, no import map, nothing but the page and the bundle), the model folder on
// another origin with CORS headers, run in headless Chromium (SwiftShader). Its vectors must match
// Node's (the package's Node build of the same source) within 1e-4, and the same bundle must
// generate the same greedy tokens as Node with a tiny Llama.
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import type { Browser } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BertModel } from '../../src/api/bert.ts';
import { LlmModel } from '../../src/api/llm.ts';
import { launchChromium, ROOT } from '../helpers/browser.ts';
import { RUNTIME_PROMPT, TINY_CHAT_LLAMA } from '../helpers/llm-fixture.ts';
import { serveStatic, type StaticServer } from '../helpers/static-server.ts';
import { writeTinyBert } from '../../fixtures/tiny-bert.ts';
import { writeTinyLlama } from '../../fixtures/tiny-llama.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const TEXTS = ['The cat sits on the mat.', 'A cat is on a rug.'];
const GREEDY = { maxTokens: 8, temperature: 0, ignoreEos: true } as const;

/**
 * The README's page (ten lines). The test's copy loads the tiny model in f32 (SwiftShader has no
 * shader-f16, and Node's f32 vectors are the reference) and adds one line that hands the vectors over.
 */
function plainPage(model = 'sentence-transformers/all-MiniLM-L6-v2', loadOptions = '', extra = ''): string {
  return `<!doctype html>
<meta charset="utf-8">
<title>webq: two sentences</title>
<p id="out">Loading the model...</p>
<script type="module">
  import { BertModel, cosineSimilarity } from './webq.browser.js';
  const model = await BertModel.load('${model}'${loadOptions});
  const [a, b] = await model.embed([${TEXTS.map((t) => `'${t}'`).join(', ')}], { normalize: true });
  document.getElementById('out').textContent = \`cosine similarity: \${cosineSimilarity(a, b).toFixed(3)}\`;${extra}
</script>
`;
}

function llmPage(model: string): string {
  return `<!doctype html>
<meta charset="utf-8">
<script type="module">
  import { LlmModel } from './webq.browser.js';
  const model = await LlmModel.load(${JSON.stringify(model)}, { dtype: 'f32', kv: 'f32' });
  const r = await model.generate(${JSON.stringify(RUNTIME_PROMPT)}, ${JSON.stringify(GREEDY)});
  window.__result = { promptIds: r.promptIds, tokens: r.tokens, text: r.text };
</script>
`;
}

/** A constrained generation: webq.xgrammar.js comes from beside the bundle only now. */
function structuredPage(model: string): string {
  return `<!doctype html>
<meta charset="utf-8">
<script type="module">
  import { LlmModel } from './webq.browser.js';
  const model = await LlmModel.load(${JSON.stringify(model)}, { dtype: 'f32', kv: 'f32' });
  const before = performance.getEntriesByType('resource').map((e) => new URL(e.name).pathname);
  const r = await model.generate('code:', { maxTokens: 16, temperature: 1, seed: 3, responseFormat: { type: 'regex', pattern: '[0-9]{3}-[a-z]{2}' } });
  window.__result = { text: r.text, finish: r.finishReason, before };
</script>
`;
}

const tmp = useTempDir('webq-package-browser-');
let site: StaticServer;
let models: StaticServer;
let browser: Browser;
let bundle: string;

beforeAll(async () => {
  const siteDir = join(tmp.dir, 'site');
  const modelDir = join(tmp.dir, 'models');
  await mkdir(siteDir);
  // The bundle as `npm run build` makes it, from this checkout's sources, without touching dist/.
  await promisify(execFile)(process.execPath, [join(ROOT, 'scripts/build-browser.mjs'), '--out', join(siteDir, 'webq.browser.js')], { cwd: ROOT });
  bundle = await readFile(join(siteDir, 'webq.browser.js'), 'utf8');
  await writeTinyBert(join(modelDir, 'bert'));
  await writeTinyLlama(join(modelDir, 'llama'), TINY_CHAT_LLAMA);
  site = await serveStatic({ '/': siteDir });
  models = await serveStatic({ '/': modelDir }, { cors: true });
  await writeFile(join(siteDir, 'index.html'), plainPage(`${models.url}/bert/`, ", { dtype: 'f32' }", '\n  window.__result = { a: [...a], b: [...b] };'));
  await writeFile(join(siteDir, 'llm.html'), llmPage(`${models.url}/llama/`));
  await writeFile(join(siteDir, 'structured.html'), structuredPage(`${models.url}/llama/`));
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await site?.close();
  await models?.close();
});

/** Opens `path` on the site and returns what the page's script put in window.__result. */
async function runPage<T>(path: string): Promise<T> {
  const page = await browser.newPage();
  try {
    const failed = new Promise<never>((_, reject) => page.on('pageerror', (e) => reject(new Error(`page error: ${String(e)}`))));
    failed.catch(() => {}); // an error after the result is not this page's failure
    await page.goto(`${site.url}${path}`);
    await Promise.race([page.waitForFunction(() => (window as { __result?: unknown }).__result !== undefined, { timeout: 150_000 }), failed]);
    return await page.evaluate(() => (window as unknown as { __result: T }).__result);
  } finally {
    await page.close();
  }
}

describe('dist/webq.browser.js in a plain page', () => {
  it('is one self-contained module: no imports (but the constraint engine beside it, on first use), no Node module, WGSL inside', () => {
    expect(bundle.match(/\bimport\([^)]*/g)).toEqual([expect.stringContaining('webq.xgrammar.js')]);
    expect(bundle).not.toMatch(/^\s*import[\s{*'"]/m);
    expect(bundle).not.toMatch(/["'`]node:/);
    expect(bundle).toContain('@compute'); // the shaders
    const raw = Buffer.byteLength(bundle);
    const gz = gzipSync(bundle, { level: 9 }).length;
    console.log(`webq.browser.js: ${(raw / 1024).toFixed(0)} KiB, ${(gz / 1024).toFixed(0)} KiB gzipped`);
    expect(gz).toBeLessThan(400 * 1024);
  });

  it("the README's page is ten lines", () => {
    expect(plainPage().trimEnd().split('\n')).toHaveLength(10);
  });

  it("embeds two sentences as Node does, within 1e-4", async () => {
    const got = await runPage<{ a: number[]; b: number[] }>('/index.html');
    const node = await BertModel.load(join(tmp.dir, 'models', 'bert'), { dtype: 'f32' });
    let want: Float32Array[];
    try {
      want = await node.embed(TEXTS, { normalize: true });
    } finally {
      node.dispose();
    }
    const worst = [got.a, got.b].map((v, i) => {
      expect(v).toHaveLength(want[i].length);
      return Math.max(...v.map((x, j) => Math.abs(x - want[i][j])));
    });
    console.log(`chromium vs node: largest differences ${worst.map((d) => d.toExponential(1)).join(', ')} (${want[0].length} dims)`);
    for (const d of worst) expect(d).toBeLessThanOrEqual(1e-4);
    // The page asked for nothing but itself and the bundle: no other module, no import map.
    expect(site.log.filter((p) => !['/index.html', '/webq.browser.js', '/favicon.ico'].includes(p) && !p.endsWith('.map'))).toEqual([]);
  }, 180_000);

  it('generates the same greedy tokens as Node with a tiny Llama', async () => {
    const got = await runPage<{ promptIds: number[]; tokens: number[]; text: string }>('/llm.html');
    const node = await LlmModel.load(join(tmp.dir, 'models', 'llama'), { dtype: 'f32', kv: 'f32' });
    try {
      const want = await node.generate(RUNTIME_PROMPT, GREEDY);
      expect(got).toEqual({ promptIds: want.promptIds, tokens: want.tokens, text: want.text });
      expect(got.tokens).toHaveLength(GREEDY.maxTokens);
    } finally {
      node.dispose();
    }
  }, 180_000);

  it('constrains a generation with the engine loaded from beside the bundle', async () => {
    const got = await runPage<{ text: string; finish: string; before: string[] }>('/structured.html');
    expect(got.finish).toBe('stop');
    expect(got.text).toMatch(/^[0-9]{3}-[a-z]{2}$/);
    expect(got.before).not.toContain('/webq.xgrammar.js'); // not loaded with the bundle
    expect(site.log).toContain('/webq.xgrammar.js');
  }, 180_000);
});

// Device loss in headless Chromium (SwiftShader), through the bundle a page ships
// (dist/webq.browser.js + dist/webq.worker.js, built here): LlmModel and BertModel on the page's
// thread, WorkerLlmModel and WorkerBertModel in workers. The device is destroyed in the middle of
// a generation (after its first chunk) and of an embed batch (right after its forward is
// submitted; in a worker, by WebqWorker.loseDevice() while the batch runs). The call in flight must
// reject with a GPUDeviceError; after recover() (or autoRecover) the next call must give the
// tokens / vectors of before the loss.
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Browser, Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, ROOT } from '../helpers/browser.ts';
import { GREEDY, RUNTIME_PROMPT, TINY_CHAT_LLAMA } from '../helpers/llm-fixture.ts';
import { serveStatic, type StaticServer } from '../helpers/static-server.ts';
import { writeTinyBert } from '../../fixtures/tiny-bert.ts';
import { writeTinyLlama } from '../../fixtures/tiny-llama.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const TEXTS = Array.from({ length: 16 }, (_, i) => `text ${i}: ${'the quick brown fox '.repeat(1 + (i % 3))}`);
const LONG = { maxTokens: 200, temperature: 0, ignoreEos: true };

const tmp = useTempDir('webq-recover-browser-');
let site: StaticServer;
let models: StaticServer;
let browser: Browser;
let page: Page;
let bertUrl: string;
let llamaUrl: string;

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
  bertUrl = `${models.url}/bert/`;
  llamaUrl = `${models.url}/llama/`;
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

/** Runs `fn` in the page with the bundle's exports as its first argument (`args` as JSON). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function inPage<T, A extends unknown[]>(fn: (webq: any, ...args: A) => Promise<T>, ...args: A): Promise<T> {
  return page.evaluate(`(${fn.toString()})(window.webq, ...${JSON.stringify(args)})`) as Promise<T>;
}

interface Outcome {
  error: { name: string; code?: string } | null;
  before: number[] | number[][];
  after: number[] | number[][];
  recovered?: boolean;
  lostAfter?: number;
}

describe('device loss in Chromium', () => {
  it('LlmModel on the page: a generation in flight rejects; recover() gives the same greedy tokens', async () => {
    const r = await inPage(
      async (webq, url: string, prompt: string, greedy: object, long: object): Promise<Outcome> => {
        const llm = await webq.LlmModel.load(url, { dtype: 'f32', kv: 'f32', cache: false });
        try {
          const before = (await llm.generate(prompt, greedy)).tokens;
          let lostAfter = 0;
          let error = null;
          try {
            for await (const c of llm.generate(prompt, { ...long, stream: true })) {
              lostAfter += c.tokens.length;
              if (llm.ctx.dev.error === null) llm.ctx.dev.gpu.destroy();
            }
          } catch (e) {
            error = { name: (e as Error).name, code: (e as { code?: string }).code };
          }
          const recovered = await llm.recover();
          const after = (await llm.generate(prompt, greedy)).tokens;
          return { error, before, after, recovered, lostAfter };
        } finally {
          llm.dispose();
        }
      },
      llamaUrl, RUNTIME_PROMPT, GREEDY, LONG,
    );
    expect(r.error).toEqual({ name: 'GPUDeviceError', code: 'DEVICE_LOST' });
    expect(r.lostAfter).toBeLessThan(LONG.maxTokens);
    expect(r.recovered).toBe(true);
    expect(r.after).toEqual(r.before);
  }, 300_000);

  it('BertModel on the page with autoRecover: an embed batch in flight rejects; the next call gives the same vectors', async () => {
    const r = await inPage(
      async (webq, url: string, texts: string[]): Promise<Outcome> => {
        const bert = await webq.BertModel.load(url, { dtype: 'f32', cache: false, autoRecover: true });
        try {
          const before = (await bert.embed(texts)).map((v: Float32Array) => [...v]);
          const q = bert.ctx.dev.gpu.queue;
          const submit = q.submit.bind(q);
          q.submit = (b: unknown) => {
            submit(b);
            bert.ctx.dev.gpu.destroy();
          };
          const error = await bert.embed(texts).then(() => null, (e: { name: string; code?: string }) => ({ name: e.name, code: e.code }));
          const after = (await bert.embed(texts)).map((v: Float32Array) => [...v]);
          return { error, before, after };
        } finally {
          bert.dispose();
        }
      },
      bertUrl, TEXTS,
    );
    expect(r.error).toEqual({ name: 'GPUDeviceError', code: 'DEVICE_LOST' });
    expect(r.after).toEqual(r.before);
  }, 300_000);

  it('WorkerLlmModel and WorkerBertModel: loseDevice() mid-call rejects it; recover() / autoRecover give the same results', async () => {
    const r = await inPage(
      async (webq, llamaUrl: string, bertUrl: string, prompt: string, greedy: object, long: object, texts: string[]) => {
        const llm = await webq.WorkerLlmModel.load(llamaUrl, { dtype: 'f32', kv: 'f32', cache: false });
        const bert = await webq.WorkerBertModel.load(bertUrl, { dtype: 'f32', cache: false, autoRecover: true });
        const err = (e: { name: string; code?: string }) => ({ name: e.name, code: e.code });
        try {
          const before = (await llm.generate(prompt, greedy)).tokens;
          let lostAfter = 0;
          let error = null;
          try {
            for await (const c of llm.generate(prompt, { ...long, stream: true })) {
              if (lostAfter === 0) await llm.worker.loseDevice();
              lostAfter += c.tokens.length;
            }
          } catch (e) {
            error = err(e as never);
          }
          const recovered = await llm.recover();
          const after = (await llm.generate(prompt, greedy)).tokens;
          const vBefore = (await bert.embed(texts)).map((v: Float32Array) => [...v]);
          const inFlight = bert.embed(texts);
          await bert.worker.loseDevice();
          const embedError = await inFlight.then(() => null, err);
          const vAfter = (await bert.embed(texts)).map((v: Float32Array) => [...v]);
          return { llm: { error, before, after, recovered, lostAfter }, bert: { error: embedError, before: vBefore, after: vAfter } };
        } finally {
          await llm.dispose();
          await bert.dispose();
        }
      },
      llamaUrl, bertUrl, RUNTIME_PROMPT, GREEDY, LONG, TEXTS,
    );
    expect(r.llm.error).toEqual({ name: 'GPUDeviceError', code: 'DEVICE_LOST' });
    expect(r.llm.lostAfter).toBeLessThan(LONG.maxTokens);
    expect(r.llm.recovered).toBe(true);
    expect(r.llm.after).toEqual(r.llm.before);
    expect(r.bert.error).toEqual({ name: 'GPUDeviceError', code: 'DEVICE_LOST' });
    expect(r.bert.after).toEqual(r.bert.before);
  }, 300_000);
});

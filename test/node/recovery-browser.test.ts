// Device loss in headless Chromium (SwiftShader), through the bundle a page ships
// (dist/webq.browser.js + dist/webq.worker.js, built here): LlmModel and BertModel on the page's
// thread, WorkerLlmModel and WorkerBertModel in workers. The device is destroyed in the middle of
// a generation (after its first chunk) and of an embed batch (right after its forward is
// submitted; in a worker, by WebqWorker.loseDevice() while the batch runs). The call in flight must
// reject with a GPUDeviceError; after recover() (or autoRecover) the next call must give the
// tokens / vectors of before the loss.
import { beforeAll, describe, expect, it } from 'vitest';
import { useBundlePage } from '../helpers/bundle-page.ts';
import { GREEDY, RUNTIME_PROMPT } from '../helpers/llm-fixture.ts';

const TEXTS = Array.from({ length: 16 }, (_, i) => `text ${i}: ${'the quick brown fox '.repeat(1 + (i % 3))}`);
const LONG = { maxTokens: 200, temperature: 0, ignoreEos: true };

const bp = useBundlePage('webq-recover-browser-');
const { inPage } = bp;
let bertUrl: string;
let llamaUrl: string;
beforeAll(() => {
  bertUrl = bp.bertUrl;
  llamaUrl = bp.llamaUrl;
});

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

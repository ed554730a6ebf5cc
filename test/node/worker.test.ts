// WorkerBertModel / WorkerLlmModel in headless Chromium (SwiftShader) as a user ships them: a
// plain page on a static server on 127.0.0.1 imports dist/webq.browser.js (built here, as `npm run
// build` does), which starts dist/webq.worker.js from beside itself; the models come from another
// origin with CORS. The worker's answers must equal Node's (vectors within 1e-4, the same greedy
// tokens), streams must arrive in pieces before the result, an abort must stop a generation and
// leave the model working, errors must arrive with their code, and the page's thread must keep
// running timers while a model loads.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BertModel } from '../../src/api/bert.ts';
import { LlmModel } from '../../src/api/llm.ts';
import { WorkerBertModel } from '../../src/worker/index.ts';
import { useBundlePage } from '../helpers/bundle-page.ts';
import { GREEDY, RUNTIME_PROMPT } from '../helpers/llm-fixture.ts';

const TEXTS = ['hello world', 'the cat sat on the mat', 'a third, longer text about WebGPU workers'];
const CHAT = [{ role: 'system', content: 'You are a helpful assistant.' }, { role: 'user', content: 'Hello! Who are you?' }];
const LONG = { maxTokens: 200, temperature: 0, ignoreEos: true };

const bp = useBundlePage('webq-worker-');
const { inPage } = bp;
let bertUrl: string;
let llamaUrl: string;
beforeAll(() => {
  bertUrl = bp.bertUrl;
  llamaUrl = bp.llamaUrl;
});

function maxAbsDiff(got: number[][], want: Float32Array[]): number {
  expect(got).toHaveLength(want.length);
  let m = 0;
  got.forEach((row, i) => {
    expect(row).toHaveLength(want[i].length);
    row.forEach((x, k) => (m = Math.max(m, Math.abs(x - want[i][k]))));
  });
  return m;
}

describe('models in a worker (dist/webq.browser.js + dist/webq.worker.js, Chromium)', () => {
  it('embeds through the worker as Node does, with progress, a warm-up and transferred Float32Arrays', async () => {
    const node = await BertModel.load(join(bp.dir, 'models', 'bert'), { dtype: 'f32' });
    const want = await node.embed(TEXTS);
    const wantNorm = await node.embed(TEXTS.slice(0, 1), { normalize: true, pooling: 'cls' });
    node.dispose();
    const t0 = Date.now();
    const got = await inPage(
      async (webq, url: string, texts: string[]) => {
        const events: string[] = [];
        const m = await webq.WorkerBertModel.load(url, { dtype: 'f32', cache: false, onProgress: (e: { status: string; file: string }) => events.push(`${e.status} ${e.file}`), onWarmup: () => events.push('warmup') });
        const v: Float32Array[] = await m.embed(texts);
        const n: Float32Array[] = await m.embed(texts.slice(0, 1), { normalize: true, pooling: 'cls' });
        await m.dispose();
        const disposed = await m.embed(texts).then(() => 'no error', (e: { code: string }) => e.code);
        return { v: v.map((x) => [...x]), n: n.map((x) => [...x]), f32: v.every((x) => x instanceof Float32Array), events, loadMs: m.loadMs, warmupMs: m.warmupMs, describe: m.describe, activations: m.activations, hidden: m.config.hiddenSize, disposed };
      },
      bertUrl,
      TEXTS,
    );
    const worst = maxAbsDiff(got.v, want);
    console.log(`worker embed: ${Date.now() - t0} ms in all (load ${got.loadMs.toFixed(0)} ms, warm-up ${got.warmupMs.toFixed(0)} ms); max |worker - node| ${worst.toExponential(1)}`);
    expect(worst).toBeLessThanOrEqual(1e-4);
    expect(maxAbsDiff(got.n, wantNorm)).toBeLessThanOrEqual(1e-4);
    expect(got.f32).toBe(true);
    expect(got.describe).toBe(bertUrl);
    expect(got.activations).toBe('float'); // f32 weights: nothing to quantize (BertModel.activations, through the worker)
    expect(got.hidden).toBe(want[0].length);
    expect(got.events).toContain('done config.json');
    expect(got.events.at(-1)).toBe('warmup'); // after the downloads and the checkpoint's 'ready'
    expect(got.events).toContain('ready model.safetensors');
    expect(got.warmupMs).toBeGreaterThan(0);
    expect(got.disposed).toBe('DISPOSED');
  }, 180_000);

  describe('a tiny chat Llama', () => {
    let node: LlmModel;
    beforeAll(async () => {
      node = await LlmModel.load(join(bp.dir, 'models', 'llama'), { dtype: 'f32', kv: 'f32' });
      await inPage(async (webq, url: string) => {
        (window as unknown as { llm: unknown }).llm = await webq.WorkerLlmModel.load(url, { dtype: 'f32', kv: 'f32', cache: false });
      }, llamaUrl);
    }, 180_000);
    afterAll(async () => {
      node?.dispose();
      await inPage(async () => (window as unknown as { llm?: { dispose(): Promise<void> } }).llm?.dispose());
    });

    it('generates the greedy tokens Node does, whole and streamed, with chunks before the result', async () => {
      const want = await node.generate(RUNTIME_PROMPT, GREEDY);
      const got = await inPage(
        async (_webq, prompt: string, opts: object) => {
          const llm = (window as unknown as { llm: any }).llm;
          const whole = await llm.generate(prompt, opts);
          const t0 = performance.now();
          const s = llm.generate(prompt, { ...opts, stream: true });
          let settled = false;
          let resultAt = 0;
          s.result.then(() => ((settled = true), (resultAt = performance.now() - t0)));
          const chunks: { text: string; tokens: number[]; at: number; settled: boolean }[] = [];
          for await (const c of s) chunks.push({ text: c.text, tokens: c.tokens, at: performance.now() - t0, settled });
          const r = await s.result;
          return { whole: { tokens: whole.tokens, text: whole.text, promptIds: whole.promptIds }, chunks, streamed: { tokens: r.tokens, text: r.text }, resultAt };
        },
        RUNTIME_PROMPT,
        GREEDY,
      );
      expect(got.whole).toEqual({ tokens: want.tokens, text: want.text, promptIds: want.promptIds });
      expect(got.streamed).toEqual({ tokens: want.tokens, text: want.text });
      expect(got.chunks.length).toBeGreaterThanOrEqual(2);
      expect(got.chunks.map((c) => c.text).join('')).toBe(want.text);
      expect(got.chunks.flatMap((c) => c.tokens)).toEqual(want.tokens);
      expect(got.chunks[0].settled).toBe(false);
      expect(got.chunks[0].at).toBeLessThan(got.chunks.at(-1)!.at);
      console.log(`worker stream: ${got.chunks.length} chunks at ${got.chunks.map((c) => c.at.toFixed(0)).join(', ')} ms, result at ${got.resultAt.toFixed(0)} ms`);
    }, 120_000);

    it('streams chat completions and returns logits as Node does', async () => {
      let want = '';
      for await (const c of node.chat.completions.create({ messages: CHAT as never, stream: true, max_tokens: 12, temperature: 0 })) want += c.choices[0].delta.content ?? '';
      const wantWhole = await node.chat.completions.create({ messages: CHAT as never, max_tokens: 12, temperature: 0 });
      const wantLogits = await node.logits(RUNTIME_PROMPT);
      const got = await inPage(
        async (_webq, messages: object[], prompt: string) => {
          const llm = (window as unknown as { llm: any }).llm;
          const chunks: { content?: string; finish: string | null; usage: boolean }[] = [];
          for await (const c of llm.chat.completions.create({ messages, stream: true, max_tokens: 12, temperature: 0 })) {
            chunks.push({ content: c.choices[0].delta.content, finish: c.choices[0].finish_reason, usage: c.usage !== undefined });
          }
          const whole = await llm.chat.completions.create({ messages, max_tokens: 12, temperature: 0 });
          const l = await llm.logits(prompt);
          return { chunks, whole: { content: whole.choices[0].message.content, finish: whole.choices[0].finish_reason, tokens: whole.usage.completion_tokens }, ids: l.ids, f32: l.logits instanceof Float32Array, logits: [...l.logits] };
        },
        CHAT,
        RUNTIME_PROMPT,
      );
      expect(got.chunks.map((c) => c.content ?? '').join('')).toBe(want);
      expect(got.chunks.at(-1)).toMatchObject({ usage: true });
      expect(got.whole).toEqual({ content: wantWhole.choices[0].message.content, finish: wantWhole.choices[0].finish_reason, tokens: wantWhole.usage.completion_tokens });
      expect(got.ids).toEqual(wantLogits.ids);
      expect(got.f32).toBe(true);
      expect(got.logits).toHaveLength(wantLogits.logits.length);
      const worst = got.logits.reduce((m, x, i) => Math.max(m, Math.abs(x - wantLogits.logits[i])), 0);
      console.log(`worker logits: max |worker - node| ${worst.toExponential(1)} over ${got.logits.length}`);
      expect(worst).toBeLessThanOrEqual(1e-3);
    }, 120_000);

    it("an AbortSignal stops a generation in the worker; the next one gives Node's tokens", async () => {
      const want = await node.generate(RUNTIME_PROMPT, GREEDY);
      const got = await inPage(
        async (_webq, prompt: string, long: object, greedy: object) => {
          const llm = (window as unknown as { llm: any }).llm;
          const ac = new AbortController();
          const s = llm.generate(prompt, { ...long, stream: true, signal: ac.signal });
          const t0 = performance.now();
          let tokens = 0;
          let error: { name: string; sameReason: boolean } | undefined;
          try {
            for await (const c of s) {
              tokens += c.tokens.length;
              ac.abort(); // after the first chunk
            }
          } catch (e) {
            error = { name: (e as Error).name, sameReason: e === ac.signal.reason };
          }
          const abortMs = performance.now() - t0;
          const resultError = await s.result.then(() => 'resolved', (e: Error) => e.name);
          // Already aborted: rejected at once, as LlmModel does.
          const early = await llm.generate(prompt, { ...greedy, signal: ac.signal }).then(() => 'resolved', (e: Error) => e.name);
          const next = await llm.generate(prompt, greedy);
          // Leaving a stream early (break) ends its generation in the worker, as it does locally:
          // the next call does not wait for the 200 tokens it asked for.
          for await (const _ of llm.generate(prompt, { ...long, stream: true })) break;
          const t1 = performance.now();
          const afterBreak = await llm.generate(prompt, greedy);
          const afterBreakMs = performance.now() - t1;
          return { tokens, error, resultError, early, abortMs, next: next.tokens, afterBreak: afterBreak.tokens, afterBreakMs };
        },
        RUNTIME_PROMPT,
        LONG,
        GREEDY,
      );
      console.log(`worker abort: stopped after ${got.tokens} of ${LONG.maxTokens} tokens, ${got.abortMs.toFixed(0)} ms; after a break, the next ${GREEDY.maxTokens} tokens in ${got.afterBreakMs.toFixed(0)} ms`);
      expect(got.error).toEqual({ name: 'AbortError', sameReason: true });
      expect(got.resultError).toBe('AbortError');
      expect(got.tokens).toBeGreaterThan(0);
      expect(got.tokens).toBeLessThan(LONG.maxTokens);
      expect(got.early).toBe('AbortError');
      expect(got.next).toEqual(want.tokens);
      expect(got.afterBreak).toEqual(want.tokens);
      expect(got.afterBreakMs).toBeLessThan(20_000); // 200 tokens would take 30 s or more here
    }, 180_000);
  });

  it("a load error arrives as a WebqError with Node's code and message; a bad worker URL says so", async () => {
    const missing = `${bp.modelsUrl}/missing/`;
    const want = await BertModel.load(missing, { cache: false }).then(
      () => undefined,
      (e: { code: string; message: string; name: string }) => ({ code: e.code, message: e.message, name: e.name }),
    );
    expect(want?.code).toBe('SOURCE_NOT_FOUND');
    const got = await inPage(
      async (webq, url: string) => {
        const as = (e: { code?: string; message: string; name: string }) => ({ code: e.code, message: e.message, name: e.name, webq: e instanceof webq.WebqError });
        const load = await webq.WorkerBertModel.load(url, { cache: false }).then(() => undefined, as);
        const option = await webq.WorkerBertModel.load(url, { fetch }).then(() => undefined, as);
        const script = await webq.WorkerBertModel.load(url, { workerUrl: '/no-such-worker.js' }).then(() => undefined, as);
        return { load, option, script };
      },
      missing,
    );
    expect(got.load).toEqual({ ...want, webq: true });
    expect(got.option).toMatchObject({ code: 'BAD_OPTION', webq: true });
    expect(got.script).toMatchObject({ code: 'WORKER_FAILED', webq: true });
    expect(got.script!.message).toContain('/no-such-worker.js');
  }, 120_000);

  it("keeps the page's thread free while a model loads and warms up in the worker", async () => {
    const got = await inPage(
      async (webq, url: string) => {
        /** Ticks of a 10 ms timer and animation frames while `work` runs, and the longest gap between ticks. */
        const watch = async (work: () => Promise<unknown>) => {
          let ticks = 0;
          let frames = 0;
          let last = performance.now();
          let gap = 0;
          const timer = setInterval(() => {
            const t = performance.now();
            gap = Math.max(gap, t - last);
            last = t;
            ticks++;
          }, 10);
          let on = true;
          const frame = () => on && (frames++, requestAnimationFrame(frame));
          requestAnimationFrame(frame);
          const t0 = performance.now();
          const r = await work();
          const ms = performance.now() - t0;
          on = false;
          clearInterval(timer);
          return { ms, ticks, frames, gap: Math.max(gap, performance.now() - last), r };
        };
        const worker = await watch(async () => {
          const m = await webq.WorkerLlmModel.load(url, { dtype: 'f32', kv: 'f32', cache: false });
          await m.generate('Once upon a time', { maxTokens: 8, temperature: 0, ignoreEos: true });
          await m.dispose();
        });
        // The same work on the page's thread, for comparison.
        const main = await watch(async () => {
          const m = await webq.LlmModel.load(url, { dtype: 'f32', kv: 'f32', cache: false });
          await m.generate('Once upon a time', { maxTokens: 8, temperature: 0, ignoreEos: true });
          m.dispose();
        });
        return { worker, main };
      },
      llamaUrl,
    );
    const say = (w: { ms: number; ticks: number; frames: number; gap: number }) => `${w.ms.toFixed(0)} ms, ${w.ticks} timer ticks, ${w.frames} frames, longest gap ${w.gap.toFixed(0)} ms`;
    console.log(`load + generate in the worker: ${say(got.worker)}; on the page's thread: ${say(got.main)}`);
    // A 10 ms timer: at least a tick per 50 ms on average, and no stall of half a second. (On a
    // 2-core machine SwiftShader's threads compete with the page's for the CPU wherever the model
    // runs, so gaps of 100-200 ms happen either way; a model on the page's thread adds its own
    // work, such as parsing tokenizer.json, on top.)
    expect(got.worker.ticks).toBeGreaterThan(got.worker.ms / 50);
    expect(got.worker.frames).toBeGreaterThan(0);
    expect(got.worker.gap).toBeLessThan(500);
  }, 180_000);
});

describe('models in a worker, in Node', () => {
  it('says that Node has no Web Worker, with a typed error', async () => {
    await expect(WorkerBertModel.load('webq/tiny')).rejects.toMatchObject({ name: 'WebqError', code: 'NO_WORKER' });
  });
});

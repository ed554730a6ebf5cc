// The chat page (demo/chat.html) in headless Chromium on SwiftShader: a tiny chat Llama (llama2's
// tokenizer, a ChatML template, f32 weights and KV cache) from a folder URL on a local fake hub,
// run in a worker and warmed up (shaders compiled) during load.
// Greedy replies must equal what Node's LlmModel gives for the same messages through
// chat.completions.create; Stop must end a long reply and leave the model answering the next one.
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import type { Browser, Page } from 'puppeteer-core';
import type { ViteDevServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LlmModel } from '../../src/api/llm.ts';
import type { ChatMessage } from '../../src/text/chat-template.ts';
import { launchChromium, startServer } from '../helpers/browser.ts';
import { serveFakeHub, type FakeHub } from '../helpers/fake-hub.ts';
import { TINY_CHAT_LLAMA } from '../helpers/llm-fixture.ts';
import { writeTinyLlama } from '../../fixtures/tiny-llama.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir('webq-demo-chat-');
const SYSTEM = 'You are a helpful assistant.';
const FIRST = 'Hello! Who are you?';
const SHORT = 12; // max tokens of the compared replies
const LONG = 96; // max tokens of the reply that gets stopped
/** Messages tried, in order, for one whose greedy reply runs long enough to be stopped midway. */
const LONG_CANDIDATES = ['Tell me a long story about a dragon.', 'Write a poem about the sea.', 'Explain how rain forms.', 'List every prime below one hundred.'];

let server: ViteDevServer;
let base: string;
let browser: Browser;
let hub: FakeHub;
let node: LlmModel;
let longPrompt: string;
let longReply: string;

/** Node's greedy reply to `messages`, streamed as the page streams it. */
async function nodeReply(messages: readonly ChatMessage[], maxTokens: number): Promise<{ text: string; tokens: number; finish: string | null }> {
  let text = '';
  let finish: string | null = null;
  let tokens = 0;
  for await (const c of node.chat.completions.create({ messages, stream: true, max_tokens: maxTokens, temperature: 0 })) {
    text += c.choices[0].delta.content ?? '';
    finish = c.choices[0].finish_reason ?? finish;
    if (c.usage) tokens = c.usage.completion_tokens;
  }
  return { text, tokens, finish };
}

beforeAll(async () => {
  const chat = await writeTinyLlama(join(tmp.dir, 'chat'), TINY_CHAT_LLAMA);
  const plain = await writeTinyLlama(join(tmp.dir, 'plain'), { ...TINY_CHAT_LLAMA, chatTemplate: undefined });
  hub = await serveFakeHub(
    new Map([
      ['webq/chat', chat.dir],
      ['webq/plain', plain.dir],
    ]),
    { cors: true },
  );
  node = await LlmModel.load(chat.dir, { dtype: 'f32', kv: 'f32' });
  for (const p of LONG_CANDIDATES) {
    const r = await nodeReply([{ role: 'system', content: SYSTEM }, { role: 'user', content: p }], LONG);
    if (r.tokens >= 40) {
      [longPrompt, longReply] = [p, r.text];
      break;
    }
  }
  if (!longPrompt) throw new Error(`no candidate message gets a greedy reply of 40 tokens or more: add one to LONG_CANDIDATES`);
  ({ server, base } = await startServer());
  browser = await launchChromium();
}, 180_000);

afterAll(async () => {
  node?.dispose();
  await browser?.close();
  await server?.close();
  await hub?.close();
});

interface ChatState {
  status: string;
  messages: ChatMessage[];
  replies: number;
  chunks: number;
  lastFinish?: string;
  lastUsage?: { completion_tokens: number; prefill_tokens_per_second: number; decode_tokens_per_second: number };
  errors: string[];
  adapter?: string;
  f16?: boolean;
  weightBytes?: number;
  kvBytes?: number;
  loadMs?: number;
  warmupMs?: number;
}

const chatState = (page: Page) => page.evaluate(() => (window as unknown as { __webqChat: ChatState }).__webqChat);

/** Waits until the page has finished `n` replies, or failed. */
async function waitReplies(page: Page, n: number, timeout = 180_000): Promise<ChatState> {
  await page.waitForFunction(
    (k: number) => {
      const s = (window as unknown as { __webqChat?: ChatState }).__webqChat;
      return s !== undefined && ((s.replies >= k && s.status === 'ready') || s.status === 'error');
    },
    { timeout },
    n,
  );
  return chatState(page);
}

async function openChat(query: Record<string, string>): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage();
  await page.setViewport({ width: 1000, height: 900 });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`${base}/demo/chat.html?${new URLSearchParams(query)}`);
  return { page, errors };
}

describe('chat page', () => {
  let page: Page;
  let pageErrors: string[];

  it('streams a greedy reply to ?prompt= equal to Node, with speed and memory shown', async () => {
    const model = `${hub.url}/plain/chat/`;
    ({ page, errors: pageErrors } = await openChat({ model, dtype: 'f32', kv: 'f32', temperature: '0', max_tokens: String(SHORT), system: SYSTEM, prompt: FIRST, autorun: '1' }));
    const state = await waitReplies(page, 1);
    expect(state.errors).toEqual([]);
    const want = await nodeReply([{ role: 'system', content: SYSTEM }, { role: 'user', content: FIRST }], SHORT);
    expect(state.messages).toEqual([
      { role: 'system', content: SYSTEM },
      { role: 'user', content: FIRST },
      { role: 'assistant', content: want.text },
    ]);
    expect(state.lastFinish).toBe(want.finish);
    expect(state.lastUsage?.completion_tokens).toBe(want.tokens);
    // The first token is read back alone, then up to 8 at a time: a reply of 3+ tokens streams in pieces.
    if (want.tokens >= 3) expect(state.chunks).toBeGreaterThanOrEqual(2);
    expect(state.lastUsage!.prefill_tokens_per_second).toBeGreaterThan(0);
    expect([state.weightBytes, state.kvBytes]).toEqual([node.weightBytes, node.kvBytes]);
    expect(state.f16).toBe(false); // SwiftShader: the f32 paths
    expect(state.warmupMs).toBeGreaterThan(0); // the shaders compiled during load
    console.log(`chat: load ${state.loadMs!.toFixed(0)} ms, warm-up ${state.warmupMs!.toFixed(0)} ms, first reply prefill ${state.lastUsage!.prefill_tokens_per_second.toFixed(1)} tok/s`);

    const bubbles = await page.$$eval('#messages .msg', (els) => els.map((e) => [e.className, e.querySelector('.text')!.textContent]));
    expect(bubbles).toEqual([
      ['msg user', FIRST],
      ['msg assistant', want.text],
    ]);
    expect(await page.$eval('#messages .msg.assistant .meta', (e) => e.textContent)).toMatch(
      new RegExp(`^${want.tokens} tokens · prompt \\d+ · prefill [\\d.]+ tok/s · decode [\\d.]+ tok/s · (done|hit max tokens)$`),
    );
    expect(await page.$eval('#stats', (e) => e.textContent)).toMatch(/^memory: weights [\d.]+ MiB \(f32\) \+ KV cache [\d.]+ (KiB|MiB) \(f32\)/);
    expect(await page.$eval('#status', (e) => e.textContent)).toMatch(/^ready: /);
    expect(await page.$eval('#dtype option[value="f16"]', (e) => (e as HTMLOptionElement).disabled)).toBe(true);
    const shot = join(tmpdir(), 'webq-chat.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`chat: ${state.adapter}; reply ${JSON.stringify(want.text)}; screenshot ${shot}`);
    expect(pageErrors).toEqual([]);
  }, 240_000);

  it('Stop ends a long reply early; the next message still gets the reply Node gives', async () => {
    // A new chat, a long reply, Stop as soon as its first words show.
    await page.click('#clear');
    await page.$eval('#max-tokens', (e, v) => void ((e as HTMLInputElement).value = v), String(LONG));
    await page.type('#input', longPrompt);
    await page.click('#send');
    await page.waitForFunction(() => {
      const s = (window as unknown as { __webqChat: ChatState }).__webqChat;
      return s.status === 'generating' && s.chunks >= 1;
    });
    await page.click('#stop');
    let state = await waitReplies(page, 2);
    expect(state.errors).toEqual([]);
    expect(state.lastFinish).toBe('aborted');
    const partial = state.messages.at(-1)!;
    expect(partial.role).toBe('assistant');
    expect(partial.content.length).toBeGreaterThan(0);
    expect(longReply.startsWith(partial.content), `${JSON.stringify(partial.content)} is not a prefix of ${JSON.stringify(longReply)}`).toBe(true);
    expect(partial.content.length).toBeLessThan(longReply.length);
    // The stopped reply says how many tokens it got (the usage so far), not how many chunks.
    const meta = await page.$eval('#messages .msg.assistant .meta', (e) => e.textContent);
    expect(meta).toMatch(/^\d+ tokens? · prompt \d+( \(\d+ cached\))? · prefill [\d.]+ tok\/s · decode [\d.]+ tok\/s · stopped$/);
    expect(Number(/^(\d+) token/.exec(meta!)![1])).toBeGreaterThan(0);
    console.log(`chat: stopped after ${partial.content.length} of ${longReply.length} characters`);

    // The stopped reply stays in the conversation; Enter sends the next message.
    await page.$eval('#max-tokens', (e, v) => void ((e as HTMLInputElement).value = v), String(SHORT));
    await page.type('#input', 'Thanks!');
    await page.keyboard.press('Enter');
    state = await waitReplies(page, 3);
    expect(state.errors).toEqual([]);
    const sent = state.messages.slice(0, -1);
    expect(sent).toEqual([
      { role: 'system', content: SYSTEM },
      { role: 'user', content: longPrompt },
      partial,
      { role: 'user', content: 'Thanks!' },
    ]);
    const want = await nodeReply(sent, SHORT);
    expect(state.messages.at(-1)).toEqual({ role: 'assistant', content: want.text });
    expect(state.lastFinish).toBe(want.finish);
    expect(pageErrors).toEqual([]);
    await page.close();
  }, 240_000);

  it('says so when a model has no chat template, or f16 is asked of an adapter without it', async () => {
    const { page: p1, errors } = await openChat({ model: `${hub.url}/plain/plain/`, dtype: 'f32', kv: 'f32', prompt: 'hi', autorun: '1' });
    let state = await waitReplies(p1, 1);
    expect(state.status).toBe('error');
    expect(state.errors).toHaveLength(1);
    expect(state.errors[0]).toMatch(/has no chat template .* pick an instruct or chat version/);
    expect(await p1.$eval('#error', (e) => ((e as HTMLElement).hidden ? '' : e.textContent))).toContain('no chat template');
    expect(await p1.$eval('#send', (e) => (e as HTMLButtonElement).disabled)).toBe(true);
    expect(errors).toEqual([]);
    await p1.close();

    const { page: p2 } = await openChat({ model: `${hub.url}/plain/chat/`, dtype: 'f16', kv: 'f32' });
    state = await waitReplies(p2, 1);
    if (state.f16) {
      expect(state.status).toBe('ready'); // an adapter with shader-f16 loads f16 weights
    } else {
      expect(state.status).toBe('error');
      expect(state.errors[0]).toMatch(/f16 weights need the shader-f16 feature, which this adapter .* lacks/);
    }
    await p2.close();
  }, 180_000);
});

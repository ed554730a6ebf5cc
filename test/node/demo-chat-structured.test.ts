// The chat page's schema box and its get_weather tool in headless Chromium (SwiftShader), with a
// tiny Llama (llama2's tokenizer) whose ChatML template offers tools in the <tool_call> syntax:
// every reply under the schema must be JSON valid for it; with the tool required, the model's call
// must be valid for the tool's schema, the page's answer goes back as a tool message, and the
// model then answers in text.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import type { Browser, Page } from 'puppeteer-core';
import type { ViteDevServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, startServer } from '../helpers/browser.ts';
import { serveFakeHub, type FakeHub } from '../helpers/fake-hub.ts';
import { writeTinyLlama } from '../../fixtures/tiny-llama.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

/** ChatML that lists the tools and teaches <tool_call> JSON, in the way Qwen's templates do (our wording). */
const TOOLS_CHATML =
  "{%- if tools %}{{ '<|im_start|>system\\nTools you may call, one JSON object per call inside <tool_call></tool_call>:\\n' }}{%- for t in tools %}{{ t | tojson + '\\n' }}{%- endfor %}{{ '<|im_end|>\\n' }}{%- endif %}" +
  "{%- for m in messages %}{%- if m.role == 'tool' %}{{ '<|im_start|>user\\n<tool_response>\\n' + m.content + '\\n</tool_response><|im_end|>\\n' }}" +
  "{%- elif m.tool_calls %}{{ '<|im_start|>assistant\\n' }}{%- for c in m.tool_calls %}{{ '<tool_call>\\n{\"name\": \"' + c.function.name + '\", \"arguments\": ' + (c.function.arguments | tojson) + '}\\n</tool_call>' }}{%- endfor %}{{ '<|im_end|>\\n' }}" +
  "{%- else %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{%- endif %}{%- endfor %}" +
  "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}";

const SCHEMA = { type: 'object', properties: { answer: { enum: ['yes', 'no', 'maybe'] }, confidence: { type: 'integer', minimum: 0, maximum: 100 } }, required: ['answer', 'confidence'] };
const WEATHER_PARAMS = { type: 'object', properties: { city: { type: 'string', maxLength: 24 }, unit: { enum: ['celsius', 'fahrenheit'] } }, required: ['city', 'unit'] };

const tmp = useTempDir('webq-demo-structured-');
const Ajv = ((Ajv2020 as unknown as { default?: unknown }).default ?? Ajv2020) as typeof Ajv2020;
const ajv = new Ajv();
let server: ViteDevServer;
let base: string;
let browser: Browser;
let hub: FakeHub;

interface PageState {
  status: string;
  replies: number;
  lastFinish?: string;
  messages: { role: string; content: string; tool_calls?: { function: { name: string; arguments: string } }[]; tool_call_id?: string }[];
  toolCalls: { name: string; arguments: string; result: string }[];
  errors: string[];
}

beforeAll(async () => {
  const m = await writeTinyLlama(join(tmp.dir, 'tools'), { tokenizer: 'llama2', chatTemplate: TOOLS_CHATML, hidden: 64, layers: 2, maxPositions: 512, seed: 41 });
  hub = await serveFakeHub(new Map([['webq/tools', m.dir]]), { cors: true });
  ({ server, base } = await startServer());
  browser = await launchChromium();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await hub?.close();
});

async function waitReplies(page: Page, n: number): Promise<PageState> {
  await page.waitForFunction(
    (k: number) => {
      const s = (window as unknown as { __webqChat?: PageState }).__webqChat;
      return s !== undefined && ((s.replies >= k && s.status === 'ready') || s.status === 'error');
    },
    { timeout: 240_000, polling: 500 },
    n,
  );
  return page.evaluate(() => (window as unknown as { __webqChat: PageState }).__webqChat);
}

async function open(query: Record<string, string>): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const model = `${hub.url}/plain/tools/`;
  await page.goto(`${base}/demo/chat.html?${new URLSearchParams({ model, dtype: 'f32', kv: 'f32', temperature: '0.9', max_tokens: '48', autorun: '1', ...query })}`);
  return { page, errors };
}

describe('chat page: structured output and tools', () => {
  it('the schema box makes every reply JSON for the schema', async () => {
    const { page, errors } = await open({ schema: JSON.stringify(SCHEMA), prompt: 'Is it sunny?' });
    let state = await waitReplies(page, 1);
    expect(state.errors).toEqual([]);
    await page.type('#input', 'Are you sure?');
    await page.click('#send');
    state = await waitReplies(page, 2);
    expect(state.errors).toEqual([]);
    const replies = state.messages.filter((m) => m.role === 'assistant');
    expect(replies).toHaveLength(2);
    for (const r of replies) expect(ajv.validate(SCHEMA, JSON.parse(r.content)), r.content).toBe(true);
    expect(errors).toEqual([]);
    await page.close();
  }, 300_000);

  it('get_weather: a required call, the page answers it, the model replies in text', async () => {
    const { page, errors } = await open({ tools: '1', tool_choice: 'required', prompt: 'What is the weather in Paris?' });
    const state = await waitReplies(page, 2);
    expect(state.errors).toEqual([]);
    expect(state.toolCalls.length).toBeGreaterThanOrEqual(1);
    const call = state.toolCalls[0];
    expect(call.name).toBe('get_weather');
    const args = JSON.parse(call.arguments);
    expect(ajv.validate(WEATHER_PARAMS, args), call.arguments).toBe(true);
    expect(JSON.parse(call.result)).toMatchObject({ city: args.city, unit: args.unit });
    const roles = state.messages.map((m) => m.role);
    expect(roles).toEqual(['user', 'assistant', ...state.toolCalls.map(() => 'tool'), 'assistant']);
    expect(state.messages[1].tool_calls![0].function.name).toBe('get_weather');
    expect(state.messages[2].content).toBe(call.result);
    expect(['stop', 'length']).toContain(state.lastFinish);
    const bubbles = await page.$$eval('#messages .msg', (els) => els.map((e) => e.className));
    expect(bubbles.slice(0, 3)).toEqual(['msg user', 'msg assistant', 'msg tool']);
    const shot = join(tmpdir(), 'webq-chat-tools.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`chat page with a tool call: screenshot ${shot}`);
    expect(errors).toEqual([]);
    await page.close();
  }, 300_000);
});

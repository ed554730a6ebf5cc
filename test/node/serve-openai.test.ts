// `webq serve` driven by the official `openai` npm client: started in-process through the CLI
// (main(['serve', ...])) on a tiny chat Llama, a tiny GGUF Qwen2 and a tiny BERT, on one device.
// Every answer is checked against the same model called directly (LlmModel / BertModel).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BertModel } from '../../src/api/bert.ts';
import { LlmModel } from '../../src/api/llm.ts';
import { main } from '../../src/cli/main.ts';
import type { ServeIO } from '../../src/cli/serve.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import type { RunningServer } from '../../src/serve/node.ts';
import { hfToGguf, vocabMetadata } from '../helpers/gguf-writer.ts';
import { writeTinyBert } from '../../fixtures/tiny-bert.ts';
import { writeTinyLlama } from '../../fixtures/tiny-llama.ts';

const CHATML = "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
const KEY = 'sk-test-0123456789';

let dir: string;
let ctx: GpuContext;
let server: RunningServer;
let stop: () => void;
let exited: Promise<number>;
let stderr = '';
let llm: LlmModel;
let bert: BertModel;
let client: OpenAI;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'webq-serve-'));
  ctx = await GpuContext.create();
  const chat = await writeTinyLlama(join(dir, 'chat'), { modelType: 'llama', tokenizer: 'llama2', chatTemplate: CHATML, hidden: 64, layers: 1, maxPositions: 256, seed: 31 });
  const q = await writeTinyLlama(join(dir, 'qwen-hf'), { modelType: 'qwen2', hidden: 64, intermediate: 128, layers: 1, vocab: 256, maxPositions: 128, seed: 3 });
  await writeFile(join(dir, 'qwen.gguf'), hfToGguf(q.config, q.weights, { linear: 'Q4_0', embed: 'Q8_0', vocabMeta: vocabMetadata('llama2').meta }).bytes);
  await writeTinyBert(join(dir, 'bert'), { seed: 5 });
  llm = await LlmModel.load(chat.dir, { context: ctx });
  bert = await BertModel.load(join(dir, 'bert'), { context: ctx });
  let listening!: (s: RunningServer) => void;
  const ready = new Promise<RunningServer>((r) => (listening = r));
  const io: ServeIO = {
    stdout: () => {},
    stderr: (t) => void (stderr += t),
    gpuContext: ctx,
    onListening: listening,
    stop: new Promise((r) => (stop = () => r('test'))),
  };
  exited = main(['serve', `chat=${chat.dir}`, join(dir, 'qwen.gguf'), `minilm=${join(dir, 'bert')}`, '--port', '0', '--api-key', KEY, '--queue', '1', '--max-body', '4096', '--max-tokens', '64'], io);
  server = await Promise.race([ready, exited.then((code) => Promise.reject(new Error(`serve exited ${code}: ${stderr}`)))]);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY, maxRetries: 0 });
});

afterAll(async () => {
  stop?.();
  expect(await exited).toBe(0);
  llm?.dispose();
  bert?.dispose();
  ctx?.dispose();
  await rm(dir, { recursive: true, force: true });
});

const messages = [{ role: 'system' as const, content: 'You are terse.' }, { role: 'user' as const, content: 'Name a colour.' }];

describe('webq serve with the openai client', () => {
  it('listens on 127.0.0.1 and lists its models', async () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(stderr).toContain(`listening on ${server.url}`);
    const list = await client.models.list();
    expect(list.data.map((m) => [m.id, m.object, m.owned_by])).toEqual([
      ['chat', 'model', 'webq'],
      [join(dir, 'qwen.gguf'), 'model', 'webq'],
      ['minilm', 'model', 'webq'],
    ]);
    expect((await client.models.retrieve('minilm')).id).toBe('minilm');
  });

  it('chat completions, plain and streamed, equal the model called directly', async () => {
    const want = await llm.chat.completions.create({ messages, max_tokens: 12, temperature: 0 });
    const r = await client.chat.completions.create({ model: 'chat', messages, max_tokens: 12, temperature: 0 });
    expect(r.object).toBe('chat.completion');
    expect(r.model).toBe('chat');
    expect(r.choices[0].message).toMatchObject({ role: 'assistant', content: want.choices[0].message.content });
    expect(r.choices[0].finish_reason).toBe(want.choices[0].finish_reason);
    expect(r.usage).toMatchObject({ prompt_tokens: want.usage.prompt_tokens, completion_tokens: want.usage.completion_tokens, total_tokens: want.usage.total_tokens });

    const stream = await client.chat.completions.create({ model: 'chat', messages, max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true } });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe(want.choices[0].message.content);
    const last = chunks[chunks.length - 1];
    expect(last.choices).toEqual([]);
    expect(last.usage).toMatchObject({ prompt_tokens: want.usage.prompt_tokens, completion_tokens: want.usage.completion_tokens });
    expect(chunks[chunks.length - 2].choices[0].finish_reason).toBe(want.choices[0].finish_reason);
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
    // Without include_usage: no usage anywhere.
    const plain = await client.chat.completions.create({ model: 'chat', messages, max_tokens: 4, temperature: 0, stream: true });
    for await (const c of plain) expect(c.usage).toBeUndefined();
  });

  it('text completions and the GGUF model', async () => {
    const want = await llm.generate('Once upon a time', { maxTokens: 10, temperature: 0 });
    const r = await client.completions.create({ model: 'chat', prompt: 'Once upon a time', max_tokens: 10, temperature: 0 });
    expect(r.object).toBe('text_completion');
    expect(r.choices[0].text).toBe(want.text);
    expect(r.usage).toMatchObject({ prompt_tokens: want.usage.promptTokens, completion_tokens: want.usage.completionTokens });
    const s = await client.completions.create({ model: 'chat', prompt: 'Once upon a time', max_tokens: 10, temperature: 0, stream: true });
    let text = '';
    for await (const c of s) text += c.choices[0]?.text ?? '';
    expect(text).toBe(want.text);
    const g = await client.completions.create({ model: join(dir, 'qwen.gguf'), prompt: [5, 17, 99], max_tokens: 5, temperature: 0 });
    expect(g.usage?.prompt_tokens).toBe(3);
    expect(g.usage?.completion_tokens).toBeGreaterThan(0);
  });

  it('n = 2: two choices decoded together, choice i as a single call with seed + i; usage sums the completions', async () => {
    const sampled = { max_tokens: 10, temperature: 1.3, top_k: 50, seed: 41 };
    const one = [41, 42].map((seed) => llm.chat.completions.create({ messages, ...sampled, seed }));
    const want = await Promise.all(one);
    const r = await client.chat.completions.create({ model: 'chat', messages, ...sampled, n: 2 });
    expect(r.choices.map((c) => c.index)).toEqual([0, 1]);
    expect(r.choices.map((c) => c.message.content)).toEqual(want.map((w) => w.choices[0].message.content));
    expect(r.choices[0].message.content).not.toBe(r.choices[1].message.content);
    expect(r.usage).toMatchObject({ prompt_tokens: want[0].usage.prompt_tokens, completion_tokens: want[0].usage.completion_tokens + want[1].usage.completion_tokens });
    const texts = await Promise.all([41, 42].map((seed) => llm.generate('Once upon a time', { maxTokens: 8, temperature: 1.3, topK: 50, seed })));
    const c = await client.completions.create({ model: 'chat', prompt: 'Once upon a time', max_tokens: 8, temperature: 1.3, top_k: 50, seed: 41, n: 2 } as never);
    expect(c.choices.map((x) => [x.index, x.text])).toEqual(texts.map((t, i) => [i, t.text]));
    expect(c.usage?.completion_tokens).toBe(texts[0].usage.completionTokens + texts[1].usage.completionTokens);
  });

  it('embeddings (base64, as the client asks by default, and float) equal BertModel.embed', async () => {
    const texts = ['the cat sat', 'a dog ran far away'];
    const want = await bert.embed(texts);
    const r = await client.embeddings.create({ model: 'minilm', input: texts });
    expect(r.data.map((d) => d.index)).toEqual([0, 1]);
    r.data.forEach((d, i) => expect(d.embedding).toEqual(Array.from(want[i])));
    expect(r.usage.prompt_tokens).toBeGreaterThan(4);
    const f = await client.embeddings.create({ model: 'minilm', input: 'the cat sat', encoding_format: 'float' });
    expect(f.data[0].embedding).toEqual(Array.from(want[0]));
  });

  it('chat and embeddings run side by side on one device, each as it would alone', async () => {
    const texts = ['one text', 'another text here'];
    const [c, e, c2] = await Promise.all([
      client.chat.completions.create({ model: 'chat', messages, max_tokens: 10, temperature: 0 }),
      client.embeddings.create({ model: 'minilm', input: texts, encoding_format: 'float' }),
      client.completions.create({ model: join(dir, 'qwen.gguf'), prompt: [1, 2, 3], max_tokens: 6, temperature: 0 }),
    ]);
    expect(c.choices[0].message.content).toBe((await llm.chat.completions.create({ messages, max_tokens: 10, temperature: 0 })).choices[0].message.content);
    const want = await bert.embed(texts);
    e.data.forEach((d, i) => expect(d.embedding).toEqual(Array.from(want[i])));
    expect(c2.choices[0].text).toBe((await client.completions.create({ model: join(dir, 'qwen.gguf'), prompt: [1, 2, 3], max_tokens: 6, temperature: 0 })).choices[0].text);
  });

  it('bad requests, unknown models and a wrong key are OpenAI errors with their status', async () => {
    const bad = await client.chat.completions.create({ model: 'chat', messages, max_tokens: -1 }).catch((e) => e);
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect(bad.status).toBe(400);
    expect(bad.error).toMatchObject({ type: 'invalid_request_error', param: 'max_tokens' });
    const big = await client.chat.completions.create({ model: 'chat', messages, max_tokens: 65 }).catch((e) => e);
    expect([big.status, big.code, big.param]).toEqual([400, 'max_tokens_too_large', 'max_tokens']);
    const none = await client.chat.completions.create({ model: 'gpt-4o', messages }).catch((e) => e);
    expect(none).toBeInstanceOf(OpenAI.NotFoundError);
    expect(none.code).toBe('model_not_found');
    const kind = await client.embeddings.create({ model: 'chat', input: 'x' }).catch((e) => e);
    expect([kind.status, kind.param]).toEqual([400, 'model']);
    const empty = await client.chat.completions.create({ model: 'chat', messages: [] }).catch((e) => e);
    expect([empty.status, empty.param]).toEqual([400, 'messages']);
    const n0 = await client.chat.completions.create({ model: 'chat', messages, n: 0 }).catch((e) => e);
    expect([n0.status, n0.param]).toEqual([400, 'n']);
    expect(n0.message).toMatch(/"n" must be an integer from 1 to 16/);
    const wrong = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'sk-wrong', maxRetries: 0 });
    const auth = await wrong.models.list().catch((e) => e);
    expect(auth).toBeInstanceOf(OpenAI.AuthenticationError);
    expect([auth.status, auth.code]).toEqual([401, 'invalid_api_key']);
    const rerank = await fetch(`${server.url}/v1/rerank`, { method: 'POST', headers: { Authorization: `Bearer ${KEY}` }, body: '{}' });
    expect(rerank.status).toBe(404);
    expect((await rerank.json()).error.message).toMatch(/no cross-encoder/);
  });

  it('limits: 413 past --max-body, 429 with Retry-After past --queue, no CORS unless asked; /health open, /metrics keyed', async () => {
    const headers = { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' };
    const huge = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers, body: JSON.stringify({ model: 'chat', messages: [{ role: 'user', content: 'x'.repeat(5000) }] }) });
    expect(huge.status).toBe(413);
    expect((await huge.json()).error.code).toBe('request_too_large');
    // One running, one waiting (--queue 1): a third is refused at once. The second and third go
    // together once the first is seen running, so they both arrive while it runs; a first request
    // that ends on an early EOS before they arrive is a retry, not a pass.
    const long = { model: 'chat', messages, max_tokens: 64, temperature: 0.9 };
    const post = () => fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers, body: JSON.stringify(long) });
    const running = async () => ((await (await fetch(`${server.url}/health`)).json()).models as { id: string; running: boolean }[]).find((m) => m.id === 'chat')!.running;
    let refused: Response | undefined;
    for (let attempt = 0; attempt < 4 && !refused; attempt++) {
      const a = post();
      for (let t = 0; t < 500 && !(await running()); t++) await new Promise((r) => setTimeout(r, 2));
      const both = await Promise.all([post(), post()]);
      const statuses = [(await a).status, ...both.map((r) => r.status)];
      refused = both.find((r) => r.status === 429);
      // Whatever was not refused was served in full.
      expect(statuses.filter((s) => s !== 429).every((s) => s === 200)).toBe(true);
      expect(statuses.filter((s) => s === 429).length).toBeLessThanOrEqual(1);
    }
    expect(refused?.status).toBe(429);
    expect(Number(refused!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect((await refused!.json()).error).toMatchObject({ code: 'rate_limit_exceeded', type: 'requests' });
    const origin = await fetch(`${server.url}/v1/models`, { headers: { ...headers, Origin: 'https://evil.example' } });
    expect(origin.headers.get('access-control-allow-origin')).toBeNull();
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
    expect((await fetch(`${server.url}/metrics`)).status).toBe(401);
    const metrics = await (await fetch(`${server.url}/metrics`, { headers })).text();
    expect(metrics).toMatch(/webq_requests_total\{model="chat",endpoint="\/v1\/chat\/completions",status="200"\} \d+/);
    expect(metrics).toMatch(/webq_requests_total\{model="chat",endpoint="\/v1\/chat\/completions",status="429"\} 1/);
    expect(metrics).toMatch(/webq_tokens_total\{model="chat",kind="completion"\} \d+/);
    expect(metrics).toMatch(/webq_gpu_bytes\{model="minilm",kind="weights"\} [1-9]\d*/);
    expect(metrics).toMatch(/webq_queue_depth\{model="chat"\} 0/);
    expect(metrics).toMatch(/webq_decode_tokens_per_second\{model="chat"\} [0-9.]+/);
  });

  it('a client that aborts mid-stream stops its generation, and the server keeps serving', async () => {
    const tokens = async () => Number(/webq_tokens_total\{model="chat",kind="completion"\} (\d+)/.exec(await (await fetch(`${server.url}/metrics`, { headers: { Authorization: `Bearer ${KEY}` } })).text())?.[1] ?? 0);
    const before = await tokens();
    const ac = new AbortController();
    const stream = await client.chat.completions.create({ model: 'chat', messages, max_tokens: 64, temperature: 0.9, stream: true }, { signal: ac.signal });
    let seen = 0;
    // The client stops reading at the abort (it may end the loop or throw APIUserAbortError).
    await (async () => {
      for await (const _ of stream) if (++seen === 3) ac.abort();
    })().catch((e) => expect(e).toBeInstanceOf(OpenAI.APIUserAbortError));
    expect(seen).toBe(3);
    // The model is free again soon, and its aborted request counted no usage.
    for (let i = 0; i < 100 && (await (await fetch(`${server.url}/health`)).json()).models[0].running; i++) await new Promise((r) => setTimeout(r, 50));
    expect((await (await fetch(`${server.url}/health`)).json()).models[0].running).toBe(false);
    expect(await tokens()).toBe(before);
    const after = await client.chat.completions.create({ model: 'chat', messages, max_tokens: 5, temperature: 0 });
    expect(after.choices[0].message.content).toBe((await llm.chat.completions.create({ messages, max_tokens: 5, temperature: 0 })).choices[0].message.content);
    const metrics = await (await fetch(`${server.url}/metrics`, { headers: { Authorization: `Bearer ${KEY}` } })).text();
    expect(metrics).toMatch(/webq_requests_total\{model="chat",endpoint="\/v1\/chat\/completions",status="499"\} 1/);
  });
});

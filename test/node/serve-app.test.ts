// The HTTP layer of `webq serve` without a GPU (src/serve/app.ts over a registry with no models):
// CORS only for the origins given, the key compared whole, OpenAI-shaped errors for unknown URLs
// and a draining server, and the Prometheus text.
import { describe, expect, it } from 'vitest';
import { createApp, type ServerOptions } from '../../src/serve/app.ts';
import { Metrics } from '../../src/serve/metrics.ts';
import type { ModelRegistry } from '../../src/serve/models.ts';
import { parseModelSpec } from '../../src/serve/models.ts';
import { ModelQueue } from '../../src/serve/queue.ts';

const empty = { list: () => [], gauges: () => [{ id: 'm', waiting: 2, running: true, weightBytes: 1234, kvBytes: 56 }], pick: () => { throw new Error('no models'); } } as unknown as ModelRegistry;
const base: ServerOptions = { maxBodyBytes: 1024, maxTokens: 16, maxInputs: 8 };

describe('serve app', () => {
  it('answers CORS only for the origins given', async () => {
    const closed = createApp(empty, base);
    const r1 = await closed.request('/v1/models', { headers: { Origin: 'https://a.example' } });
    expect(r1.headers.get('access-control-allow-origin')).toBeNull();
    const open = createApp(empty, { ...base, cors: ['https://a.example'] });
    const pre = await open.request('/v1/chat/completions', { method: 'OPTIONS', headers: { Origin: 'https://a.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization,content-type' } });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe('https://a.example');
    expect(pre.headers.get('access-control-allow-headers')).toMatch(/Authorization/i);
    const other = await open.request('/v1/models', { headers: { Origin: 'https://b.example' } });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('requires the whole key as a Bearer token; /health needs none', async () => {
    const app = createApp(empty, { ...base, apiKey: 'secret-key' });
    const status = async (auth?: string) => (await app.request('/v1/models', { headers: auth ? { Authorization: auth } : {} })).status;
    expect(await status()).toBe(401);
    expect(await status('Bearer secret')).toBe(401);
    expect(await status('Bearer secret-key-and-more')).toBe(401);
    expect(await status('Basic secret-key')).toBe(401);
    expect(await status('Bearer secret-key')).toBe(200);
    expect(await status('bearer  secret-key ')).toBe(200);
    const body = await (await app.request('/v1/models')).json();
    expect(body).toEqual({ error: { message: expect.stringContaining('API key'), type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });
    expect((await app.request('/health')).status).toBe(200);
    expect((await app.request('/metrics')).status).toBe(401);
  });

  it('unknown URLs are 404s, a draining server 503s, bodies past the limit 413s, all in OpenAI shape', async () => {
    const state = { draining: false };
    const app = createApp(empty, base, new Metrics(), state);
    const nf = await app.request('/v1/nothing', { method: 'POST' });
    expect(nf.status).toBe(404);
    expect((await nf.json()).error).toMatchObject({ type: 'invalid_request_error', code: 'unknown_url', message: 'Unknown request URL: POST /v1/nothing' });
    const big = await app.request('/v1/embeddings', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ input: 'x'.repeat(2000) }) });
    expect(big.status).toBe(413);
    const bad = await app.request('/v1/embeddings', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '[1, 2' });
    expect([bad.status, (await bad.json()).error.code]).toEqual([400, 'invalid_json']);
    state.draining = true;
    const r = await app.request('/health');
    expect(r.status).toBe(503);
    expect((await r.json()).error.code).toBe('server_shutting_down');
  });

  it('renders Prometheus text with the models\' gauges', async () => {
    const app = createApp(empty, base);
    await app.request('/health');
    const text = await (await app.request('/metrics')).text();
    expect(text).toContain('# TYPE webq_requests_total counter');
    expect(text).toMatch(/webq_requests_total\{model="",endpoint="\/health",status="200"\} 1/);
    expect(text).toContain('webq_queue_depth{model="m"} 2');
    expect(text).toContain('webq_requests_running{model="m"} 1');
    expect(text).toContain('webq_gpu_bytes{model="m",kind="weights"} 1234');
    expect(text).toContain('webq_gpu_bytes{model="m",kind="kv_cache"} 56');
  });

  it('a model queue runs one request at a time, refuses past its limit, and drops a waiter whose client left', async () => {
    const q = new ModelQueue('m', 1);
    const r1 = await q.acquire();
    const ac = new AbortController();
    const w = q.acquire(ac.signal);
    expect(q.waiting).toBe(1);
    await expect(q.acquire()).rejects.toMatchObject({ status: 429, headers: { 'Retry-After': expect.stringMatching(/^\d+$/) } });
    ac.abort();
    await expect(w).rejects.toBeDefined();
    expect(q.waiting).toBe(0);
    const next = q.acquire();
    r1();
    (await next)();
    expect(q.busy).toBe(false);
  });

  it('a model queue with 2 slots (--concurrency 2) runs two requests at once; the third waits for a slot', async () => {
    const q = new ModelQueue('m', 4, 2);
    const r1 = await q.acquire();
    const r2 = await q.acquire();
    let started = false;
    const third = q.acquire().then((r) => ((started = true), r));
    await new Promise((r) => setTimeout(r, 0));
    expect([q.waiting, started]).toEqual([1, false]);
    r1();
    const r3 = await third;
    expect(q.waiting).toBe(0);
    r2();
    expect(q.busy).toBe(true);
    r3();
    expect(q.busy).toBe(false);
  });

  it('reads MODEL and ID=MODEL', () => {
    expect(parseModelSpec('org/name')).toEqual({ id: 'org/name', location: 'org/name' });
    expect(parseModelSpec('chat=./models/x.gguf')).toEqual({ id: 'chat', location: './models/x.gguf' });
    expect(parseModelSpec('https://h/m.gguf?a=b')).toEqual({ id: 'https://h/m.gguf?a=b', location: 'https://h/m.gguf?a=b' });
  });
});

/**
 * The OpenAI-compatible HTTP API on Hono (web-standard Request/Response, so the same app runs
 * under Node through @hono/node-server and under Deno.serve):
 *
 *   GET  /v1/models, /v1/models/:id      the served models
 *   POST /v1/chat/completions            chat (SSE streaming, stream_options.include_usage)
 *   POST /v1/completions                 text completion (SSE streaming too)
 *   POST /v1/embeddings                  encoder models (float or base64)
 *   POST /v1/rerank                      404: webq has no cross-encoder (reranker) models yet
 *   GET  /health                         liveness and the models (no key needed)
 *   GET  /metrics                        Prometheus text (metrics.ts)
 *
 * Safe by default: a key (when set) is required as `Authorization: Bearer` and compared in
 * constant time; CORS only for the origins given; bodies over maxBodyBytes are 413; max_tokens
 * over maxTokens is 400; each model has a bounded queue (429 + Retry-After); a client that goes
 * away aborts its generation (and leaves the queue), and the model serves the next request.
 */
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { cors } from 'hono/cors';
import { streamSSE } from 'hono/streaming';
import { predictionUsage, type ChatUsage } from '../api/chat.ts';
import type { GenerationResult, Usage } from '../api/llm.ts';
import { truncateEmbedding } from '../api/matryoshka.ts';
import { ApiError, badRequest, isAbort, toApiError } from './errors.ts';
import { Metrics } from './metrics.ts';
import type { ModelRegistry, ServedModel } from './models.ts';
import { asBody, base64Floats, parseChat, parseCompletion, parseEmbeddings, type Limits } from './openai.ts';

export interface ServerOptions extends Limits {
  /** Requests to /v1/* and /metrics need `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Origins allowed by CORS ('*' for any); none by default. */
  cors?: readonly string[] | '*';
  maxBodyBytes: number;
}

type Env = { Variables: { model: string; recorded: boolean } };

/** SHA-256 digests compared over all 32 bytes: the time does not depend on where keys differ. */
async function sameKey(given: string, key: string): Promise<boolean> {
  const enc = new TextEncoder();
  const [a, b] = await Promise.all([given, key].map((s) => crypto.subtle.digest('SHA-256', enc.encode(s))));
  const x = new Uint8Array(a);
  const y = new Uint8Array(b);
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
  return diff === 0;
}

let counter = 0;
const newId = (prefix: string) => `${prefix}-webq-${Date.now().toString(36)}-${(counter++).toString(36)}`;

const chatUsage = (u: Usage): ChatUsage => ({
  prompt_tokens: u.promptTokens,
  completion_tokens: u.completionTokens,
  total_tokens: u.promptTokens + u.completionTokens,
  prompt_tokens_details: { cached_tokens: u.cachedTokens },
  prefill_tokens_per_second: u.prefillTokensPerSecond,
  decode_tokens_per_second: u.decodeTokensPerSecond,
  ...predictionUsage(u),
});

export function createApp(reg: ModelRegistry, o: ServerOptions, metrics = new Metrics(), state = { draining: false }): Hono<Env> {
  const app = new Hono<Env>();
  const done = (c: Context<Env>, model: string, status: number, t0: number) => {
    c.set('recorded', true);
    metrics.request(model, c.req.routePath, status, (performance.now() - t0) / 1000);
  };

  app.use('*', async (c, next) => {
    const t0 = performance.now();
    await next();
    if (!c.get('recorded')) done(c, c.get('model') ?? '', c.res.status, t0);
  });
  if (o.cors) app.use('*', cors({ origin: o.cors === '*' ? '*' : [...o.cors], allowHeaders: ['Authorization', 'Content-Type'], exposeHeaders: ['Retry-After'] }));
  app.use('*', async (c, next) => {
    if (state.draining) throw new ApiError(503, 'the server is shutting down', 'server_error', 'server_shutting_down');
    await next();
  });
  const auth = async (c: Context<Env>, next: () => Promise<void>) => {
    if (o.apiKey !== undefined) {
      const m = /^Bearer\s+(.+)$/i.exec(c.req.header('Authorization') ?? '');
      if (!m || !(await sameKey(m[1].trim(), o.apiKey))) {
        throw new ApiError(401, m ? 'Incorrect API key provided.' : 'You didn\'t provide an API key: send it as "Authorization: Bearer KEY".', 'invalid_request_error', 'invalid_api_key');
      }
    }
    await next();
  };
  app.use('/v1/*', auth);
  app.use('/metrics', auth);
  app.use('/v1/*', bodyLimit({
    maxSize: o.maxBodyBytes,
    onError: () => {
      throw new ApiError(413, `the request body is larger than this server's limit of ${o.maxBodyBytes} bytes (--max-body)`, 'invalid_request_error', 'request_too_large');
    },
  }));

  const readBody = async (c: Context<Env>) => {
    try {
      return asBody(await c.req.json());
    } catch (e) {
      if (e instanceof ApiError) throw e;
      throw badRequest(`the request body is not valid JSON: ${e instanceof Error ? e.message : e}`, null, 'invalid_json');
    }
  };

  /** Runs `body` as an SSE stream ending in `data: [DONE]`; an error mid-stream becomes an error event. */
  const sse = (c: Context<Env>, m: ServedModel, release: () => void, t0: number, body: (send: (x: unknown) => Promise<void>, signal: AbortSignal) => Promise<void>) => {
    c.set('recorded', true);
    return streamSSE(c, async (stream) => {
      const ac = new AbortController();
      stream.onAbort(() => ac.abort());
      c.req.raw.signal.addEventListener('abort', () => ac.abort(), { once: true });
      let status = 200;
      try {
        await body((x) => stream.writeSSE({ data: JSON.stringify(x) }), ac.signal);
        await stream.writeSSE({ data: '[DONE]' });
      } catch (e) {
        if (isAbort(e) || ac.signal.aborted) status = 499; // the client went away
        else {
          const api = toApiError(e);
          status = api.status;
          await stream.writeSSE({ data: JSON.stringify(api.body()) }).catch(() => undefined);
        }
      } finally {
        release();
        metrics.request(m.id, c.req.routePath, status, (performance.now() - t0) / 1000);
      }
    });
  };

  const modelObject = (m: ServedModel) => ({ id: m.id, object: 'model', created: m.created, owned_by: 'webq', webq: { kind: m.kind, dtype: (m.llm ?? m.bert)!.dtype } });
  app.get('/v1/models', (c) => c.json({ object: 'list', data: reg.list().map(modelObject) }));
  app.get('/v1/models/:id{.+}', (c) => {
    const m = reg.list().find((x) => x.id === c.req.param('id'));
    if (!m) throw new ApiError(404, `The model \`${c.req.param('id').slice(0, 200)}\` does not exist on this server`, 'invalid_request_error', 'model_not_found', 'model');
    return c.json(modelObject(m));
  });

  app.post('/v1/chat/completions', async (c) => {
    const t0 = performance.now();
    const b = await readBody(c);
    const p = parseChat(b, o);
    const m = reg.pick(b.model, 'chat');
    c.set('model', m.id);
    const release = await m.queue.acquire(c.req.raw.signal);
    const req = { ...p.request, model: m.id };
    if (!req.stream) {
      try {
        const r = await m.llm!.chat.completions.create({ ...req, stream: false }, { signal: c.req.raw.signal });
        metrics.usage(m.id, r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.decode_tokens_per_second);
        return c.json(r);
      } finally {
        release();
      }
    }
    // The first chunk comes once the prompt is rendered and checked: errors there are a plain 400.
    const ac = new AbortController();
    const it = m.llm!.chat.completions.create({ ...req, stream: true }, { signal: ac.signal })[Symbol.asyncIterator]();
    let first: IteratorResult<unknown>;
    try {
      first = await it.next();
    } catch (e) {
      release();
      throw e;
    }
    return sse(c, m, release, t0, async (send, signal) => {
      signal.addEventListener('abort', () => ac.abort(), { once: true });
      let usage: ChatUsage | undefined;
      let base: Record<string, unknown> = {};
      for (let r = first; !r.done; r = await it.next()) {
        const { usage: u, ...chunk } = r.value as Record<string, unknown> & { usage?: ChatUsage };
        if (u) usage = u;
        base = { id: chunk.id, object: chunk.object, created: chunk.created, model: chunk.model };
        await send(p.includeUsage ? { ...chunk, usage: null } : chunk);
      }
      if (usage) metrics.usage(m.id, usage.prompt_tokens, usage.completion_tokens, usage.decode_tokens_per_second);
      if (p.includeUsage && usage) await send({ ...base, choices: [], usage });
    });
  });

  app.post('/v1/completions', async (c) => {
    const t0 = performance.now();
    const b = await readBody(c);
    const p = parseCompletion(b, o);
    const m = reg.pick(b.model, 'chat');
    c.set('model', m.id);
    const llm = m.llm!;
    // Tokenized and checked before the queue, so a bad prompt is a 400 and takes no turn.
    const ids = typeof p.prompt === 'string' ? llm.encode(p.prompt) : p.prompt;
    if (ids.length === 0) throw badRequest('"prompt" has no tokens', 'prompt');
    if (ids.length >= llm.contextLength) throw badRequest(`the prompt is ${ids.length} tokens; this model's context holds ${llm.contextLength}`, 'prompt', 'context_length_exceeded');
    if (ids.some((id) => id >= llm.config.vocabSize)) throw badRequest(`"prompt" holds a token id past the vocabulary of ${llm.config.vocabSize}`, 'prompt');
    const release = await m.queue.acquire(c.req.raw.signal);
    const id = newId('cmpl');
    const created = Math.floor(Date.now() / 1000);
    const choice = (text: string, finish: string | null, index = 0) => ({ id, object: 'text_completion', created, model: m.id, choices: [{ text, index, logprobs: null, finish_reason: finish }] });
    // Choice i's seed is seed + i (as chat's n); without a seed each draws its own.
    const opts = (i: number) => (p.options.seed === undefined || i === 0 ? p.options : { ...p.options, seed: (p.options.seed + i) >>> 0 });
    // n choices' usage: one prompt, the completions summed.
    const total = (rs: GenerationResult[]) => chatUsage({ ...rs[rs.length - 1].usage, completionTokens: rs.reduce((a, r) => a + r.usage.completionTokens, 0) });
    if (!p.stream) {
      try {
        const rs = p.n > 1 ? await llm.generateBatch(Array.from({ length: p.n }, () => ids), Array.from({ length: p.n }, (_, i) => ({ ...opts(i), signal: c.req.raw.signal }))) : [await llm.generate(ids, { ...p.options, signal: c.req.raw.signal })];
        const u = total(rs);
        metrics.usage(m.id, u.prompt_tokens, u.completion_tokens, u.decode_tokens_per_second);
        return c.json({ ...choice('', null), choices: rs.map((r, i) => choice(r.text, r.finishReason, i).choices[0]), usage: u });
      } finally {
        release();
      }
    }
    return sse(c, m, release, t0, async (send, signal) => {
      const withUsage = (x: object) => (p.includeUsage ? { ...x, usage: null } : x);
      const rs: GenerationResult[] = [];
      // Streamed choices run one after another, each in its own index.
      for (let i = 0; i < p.n; i++) {
        const s = llm.generate(ids, { ...opts(i), signal, stream: true });
        for await (const chunk of s) await send(withUsage(choice(chunk.text, null, i)));
        const r = await s.result;
        rs.push(r);
        await send(withUsage(choice('', r.finishReason, i)));
      }
      const u = total(rs);
      metrics.usage(m.id, u.prompt_tokens, u.completion_tokens, u.decode_tokens_per_second);
      if (p.includeUsage) await send({ id, object: 'text_completion', created, model: m.id, choices: [], usage: u });
    });
  });

  app.post('/v1/embeddings', async (c) => {
    const b = await readBody(c);
    const p = parseEmbeddings(b, o);
    const m = reg.pick(b.model, 'embedding');
    c.set('model', m.id);
    const bert = m.bert!;
    const dims = bert.config.hiddenSize;
    if (p.dimensions !== undefined && p.dimensions > dims) throw badRequest(`"dimensions" is ${p.dimensions}; model "${m.id}" makes ${dims}-dimensional embeddings: ask for ${dims} or fewer`, 'dimensions');
    const release = await m.queue.acquire(c.req.raw.signal);
    let vectors: Float32Array[];
    try {
      vectors = await bert.embed(p.input);
    } finally {
      release();
    }
    const tokens = p.input.reduce((n, t) => n + m.tokenizer!.encode(bert.lowerCase ? t.toLowerCase() : t, { maxLength: bert.maxLength }).ids.length, 0);
    metrics.usage(m.id, tokens, 0);
    return c.json({
      object: 'list',
      // Shortened (Matryoshka) embeddings are unit length, as OpenAI's are, whatever the model's normalization.
      data: vectors.map((full, index) => {
        const v = p.dimensions !== undefined && p.dimensions < dims ? truncateEmbedding(full, p.dimensions, true) : full;
        return { object: 'embedding', index, embedding: p.format === 'base64' ? base64Floats(v) : Array.from(v) };
      }),
      model: m.id,
      usage: { prompt_tokens: tokens, total_tokens: tokens },
    });
  });

  app.post('/v1/rerank', () => {
    throw new ApiError(404, 'rerank is not available: webq runs no cross-encoder (reranker) models yet; embed the query and documents with /v1/embeddings and rank them by cosine similarity instead', 'invalid_request_error', 'unknown_url');
  });

  app.get('/health', (c) => c.json({ status: 'ok', models: reg.list().map((m) => ({ id: m.id, kind: m.kind, waiting: m.queue.waiting, running: m.queue.busy })) }));
  app.get('/metrics', (c) => c.text(metrics.render(reg.gauges()), 200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' }));

  app.notFound((c) => {
    const e = new ApiError(404, `Unknown request URL: ${c.req.method} ${new URL(c.req.url).pathname}`, 'invalid_request_error', 'unknown_url');
    return c.json(e.body(), 404);
  });
  app.onError((e, c) => {
    const api = isAbort(e) ? new ApiError(400, 'the request was aborted', 'invalid_request_error', 'request_aborted') : toApiError(e);
    return c.json(api.body(), api.status, api.headers);
  });
  return app;
}

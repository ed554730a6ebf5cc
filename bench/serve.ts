/**
 * `npm run bench -- serve`: `webq serve` under load, measured from HTTP clients on the same machine.
 * One server (in this process, on 127.0.0.1, no key) holds a chat Llama (Llama 2 tokenizer, a
 * ChatML template, random weights; hidden 256, 4 layers by default) and a MiniLM-shaped BERT
 * (vocabulary 30522, hidden 384, 6 layers), on one device. For 1, 4 and 16 concurrent clients,
 * each sending its next request when the last one is answered:
 *
 *   chat        POST /v1/chat/completions, not streamed, max_tokens 16, greedy; a shared system
 *               prompt and a different user message per request (so the KV prefix cache helps
 *               only with what requests really share)
 *   embeddings  POST /v1/embeddings, 4 texts per request
 *
 * Reported per row: requests/s (all requests over the wall time of the row), p50 and p95 latency
 * (a request's send to its full answer), and for chat the generated tokens/s over the row. Requests
 * to one model run one after another (its queue), so more clients raise latency, not throughput;
 * the rows show by how much, and what the HTTP layer costs on top of the model.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ModelRegistry } from '../src/serve/models.ts';
import { startServer } from '../src/serve/node.ts';
import { writeTinyLlama, MINILM_SHAPE, writeBertCheckpoint } from '../fixtures/index.ts';
import { createBenchContext } from './lib/device.ts';
import { fmt, report, table, type BenchIO } from './lib/measure.ts';

const USAGE = `usage: npm run bench -- serve [--json] [--quick] [--requests N] [--clients 1,4,16] [--hidden 256] [--layers 4] [--max-tokens 16] [--dtype q4]
  --requests N     requests per row (default 32; --quick: 8), at least one per client
  --clients LIST   concurrent clients per row (default 1,4,16)
  --hidden, --layers   the chat model's size (default 256, 4; heads of 64, FFN 2.75x)
  --max-tokens N   tokens each chat request generates at most (default 16)
  --dtype D        the chat model's weights (default q4)
`;

export interface ServeResult {
  endpoint: 'chat' | 'embeddings';
  clients: number;
  requests: number;
  requests_per_second: number;
  p50_ms: number;
  p95_ms: number;
  /** chat: completion tokens per second over the row; embeddings: texts per second. */
  tokens_per_second: number;
  model: string;
  adapter: string;
}

function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

export async function run(args: string[], io: BenchIO): Promise<number> {
  let v: Record<string, string | boolean | undefined>;
  let clientsList: number[];
  const count = (name: string, fallback: number) => {
    const x = Number(v[name] ?? fallback);
    if (!Number.isInteger(x) || x < 1) throw new Error(`--${name} must be a positive integer, got ${JSON.stringify(v[name])}`);
    return x;
  };
  try {
    v = parseArgs({ args, options: { json: { type: 'boolean' }, quick: { type: 'boolean' }, help: { type: 'boolean' }, requests: { type: 'string' }, clients: { type: 'string' }, hidden: { type: 'string' }, layers: { type: 'string' }, 'max-tokens': { type: 'string' }, dtype: { type: 'string' } } }).values;
    clientsList = String(v.clients ?? '1,4,16').split(',').map(Number);
    if (!clientsList.every((c) => Number.isInteger(c) && c >= 1)) throw new Error(`--clients must be positive integers separated by commas, got ${JSON.stringify(v.clients)}`);
    if (count('hidden', 256) % 64) throw new Error('--hidden must be a multiple of 64');
  } catch (e) {
    io.stderr(`bench serve: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (v.help) {
    io.stdout(USAGE);
    return 0;
  }
  const requests = count('requests', v.quick ? 8 : 32);
  const hidden = count('hidden', 256);
  const layers = count('layers', 4);
  const maxTokens = count('max-tokens', 16);
  const root = await mkdtemp(join(tmpdir(), 'webq-bench-serve-'));
  const { ctx } = await createBenchContext();
  let server: Awaited<ReturnType<typeof startServer>> | undefined;
  try {
    const chatml = "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    await writeTinyLlama(join(root, 'chat'), { modelType: 'llama', tokenizer: 'llama2', chatTemplate: chatml, hidden, layers, heads: hidden / 64, kvHeads: Math.max(1, hidden / 128), intermediate: (hidden * 11) / 4, maxPositions: 2048, seed: 7 });
    await writeBertCheckpoint(join(root, 'bert'), MINILM_SHAPE);
    const dtype = (v.dtype ?? 'q4') as 'q4';
    const reg = await ModelRegistry.load([`chat=${join(root, 'chat')}`, `minilm=${join(root, 'bert')}`], { queue: 1024, context: ctx, dtype });
    server = await startServer(reg, { port: 0, maxBodyBytes: 1 << 20, maxTokens: 4096, maxInputs: 256 });
    const model = `llama hidden ${hidden}, ${layers} layers, vocab 32000, ${dtype} + MiniLM-shaped BERT q8`;
    io.stderr(`adapter: ${ctx.caps.adapter}; serving ${model} at ${server.url}\n`);
    const url = server.url;
    const post = async (path: string, body: unknown) => {
      const res = await fetch(`${url}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
      const json = (await res.json()) as { usage?: { completion_tokens?: number }; error?: { message: string } };
      if (!res.ok) throw new Error(`${path}: HTTP ${res.status}: ${json.error?.message}`);
      return json;
    };
    let n = 0;
    const chat = () => post('/v1/chat/completions', {
      model: 'chat', max_tokens: maxTokens, temperature: 0,
      messages: [{ role: 'system', content: 'You are a helpful assistant. Answer in one short sentence.' }, { role: 'user', content: `Question ${n++}: what is ${n} plus ${2 * n}?` }],
    }).then((r) => r.usage?.completion_tokens ?? 0);
    const embed = () => post('/v1/embeddings', { model: 'minilm', input: [`text number ${n++}`, 'the cat sat on the mat', 'a quick brown fox jumps', `another one ${n}`] }).then(() => 4);
    await chat();
    await embed(); // warm-up: pipelines compiled, caches filled
    const results: ServeResult[] = [];
    for (const [endpoint, send] of [['chat', chat], ['embeddings', embed]] as const) {
      for (const clients of clientsList) {
        const total = Math.max(requests, clients);
        let started = 0;
        let units = 0;
        const latencies: number[] = [];
        const t0 = performance.now();
        await Promise.all(Array.from({ length: clients }, async () => {
          while (started < total) {
            started++;
            const t = performance.now();
            const done = await send();
            latencies.push(performance.now() - t);
            units += done;
          }
        }));
        const wall = (performance.now() - t0) / 1000;
        const r: ServeResult = {
          endpoint, clients, requests: latencies.length, requests_per_second: latencies.length / wall,
          p50_ms: percentile(latencies, 50), p95_ms: percentile(latencies, 95), tokens_per_second: units / wall, model, adapter: ctx.caps.adapter,
        };
        results.push(r);
        io.stderr(`${endpoint} x${clients}: ${r.requests} requests in ${fmt(wall)} s\n`);
      }
    }
    const rows = results.map((r) => [r.endpoint, String(r.clients), String(r.requests), fmt(r.requests_per_second), fmt(r.p50_ms), fmt(r.p95_ms), `${fmt(r.tokens_per_second)} ${r.endpoint === 'chat' ? 'tok/s' : 'texts/s'}`]);
    report(io, !!v.json, table(['endpoint', 'clients', 'requests', 'req/s', 'p50 ms', 'p95 ms', 'throughput'], rows, 1), results);
    return 0;
  } finally {
    await server?.close(1000);
    ctx.dispose();
    await rm(root, { recursive: true, force: true });
  }
}

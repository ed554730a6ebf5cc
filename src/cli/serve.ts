/**
 * `webq serve MODEL [MODEL ...]`: an OpenAI-compatible HTTP server (src/serve/) on this machine's
 * WebGPU device. Loads every model, prints where it listens on stderr, and serves until SIGINT or
 * SIGTERM (then finishes what is running, within a grace period, and frees the device).
 */
import { envFlag, getEnv } from '../env.ts';
import { ModelRegistry } from '../serve/models.ts';
import { DEFAULT_HOST, startServer, type RunningServer } from '../serve/node.ts';
import { UsageError, type Command } from './command.ts';
import { CACHE_FLAGS, LLM_HELP, LLM_VALUES, llmLoadOptions, numberOption, parseArgs, type ModelCliIO } from './model-args.ts';
import { DownloadBar } from './progress.ts';

const USAGE = `usage: webq serve MODEL [MODEL ...] [options]

Serves the models over an OpenAI-compatible HTTP API: GET /v1/models, POST /v1/chat/completions
and /v1/completions (LLMs: Llama, Mistral, Qwen, SmolLM, GGUF files; streaming with SSE),
POST /v1/embeddings (BERT encoders), GET /health, GET /metrics (Prometheus). Requests to one
model run one after another; different models run side by side on one device.

MODEL is a folder, folder URL, hub id (org/name[@rev]) or .gguf file; ID=MODEL names it ID in
the API (default: MODEL as written).

options:
  --port N                port to listen on (default 8080; 0: any free port)
  --host H                address to bind (default ${DEFAULT_HOST}: this machine only)
  --api-key KEY           require "Authorization: Bearer KEY" (also WEBQ_API_KEY)
  --cors ORIGINS          allow these origins (comma-separated, or *); default: no CORS
  --max-body BYTES        largest request body (default 1048576); larger is 413
  --max-tokens N          largest max_tokens a request may ask for (default 4096)
  --queue N               requests that may wait per model (default 16); more get 429
  --concurrency N         chat requests a model runs at once, sharing decode forwards (1-16, default 1)
  --max-inputs N          most texts per embeddings request (default 256)
${LLM_HELP}
  -h, --help`;

/** Waits for SIGINT or SIGTERM (Node); the CLI's tests pass their own stop signal instead. */
function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    const on = (sig: string) => () => resolve(sig);
    process.once('SIGINT', on('SIGINT'));
    process.once('SIGTERM', on('SIGTERM'));
  });
}

export interface ServeIO extends ModelCliIO {
  /** Called once the server listens (tests take the URL from here). */
  onListening?(server: RunningServer): void;
  /** Resolves when the server should stop; default: SIGINT or SIGTERM. */
  stop?: Promise<unknown>;
}

export const serveCommand: Command = {
  summary: 'serve models over an OpenAI-compatible HTTP API (chat, completions, embeddings)',
  usage: USAGE,
  async run(args, io: ServeIO) {
    const p = parseArgs('serve', args, {
      flags: [...CACHE_FLAGS],
      values: ['--port', '--host', '--api-key', '--cors', '--max-body', '--max-tokens', '--queue', '--concurrency', '--max-inputs', ...LLM_VALUES],
    });
    if (p.positional.length === 0) throw new UsageError('serve: expected at least one model (run "webq serve --help")');
    const int = (name: string, min: number, max: number, fallback: number) => numberOption('serve', p, name, (n) => Number.isSafeInteger(n) && n >= min && n <= max, `an integer from ${min} to ${max}`) ?? fallback;
    const port = int('--port', 0, 65535, 8080);
    const apiKey = p.values.get('--api-key') ?? getEnv('WEBQ_API_KEY');
    if (apiKey !== undefined && apiKey.trim() === '') throw new UsageError('serve: --api-key (or WEBQ_API_KEY) is empty');
    const corsRaw = p.values.get('--cors');
    const cors = corsRaw === undefined ? undefined : corsRaw === '*' ? ('*' as const) : corsRaw.split(',').map((s) => s.trim()).filter(Boolean);
    const load = llmLoadOptions('serve', p);
    if (load.file !== undefined && p.positional.length > 1) throw new UsageError('serve: --file names a file of every model given; with several models, give each GGUF file as a path or URL (or serve them separately)');
    const bar = new DownloadBar(io);
    let reg: ModelRegistry;
    try {
      reg = await ModelRegistry.load(p.positional, { ...load, queue: int('--queue', 0, 100_000, 16), concurrency: int('--concurrency', 1, 16, 1), onProgress: bar.onProgress, ...(io.gpuContext && { context: io.gpuContext }) });
      bar.finish(true);
    } catch (e) {
      bar.finish(false);
      throw e;
    }
    const host = p.values.get('--host') ?? DEFAULT_HOST;
    let server: RunningServer;
    try {
      server = await startServer(reg, {
        host,
        port,
        apiKey,
        cors,
        maxBodyBytes: int('--max-body', 1024, 2 ** 31, 1 << 20),
        maxTokens: int('--max-tokens', 1, 10_000_000, 4096),
        maxInputs: int('--max-inputs', 1, 100_000, 256),
      });
    } catch (e) {
      reg.dispose();
      throw e;
    }
    const models = reg.list().map((m) => `${m.id} (${m.kind})`).join(', ');
    io.stderr(`webq serve: listening on ${server.url} with ${models}${apiKey ? '; API key required' : ''}${envFlag('WEBQ_OFFLINE') ? '; offline' : ''}\n`);
    io.onListening?.(server);
    const why = await (io.stop ?? untilSignal());
    io.stderr(`webq serve: ${typeof why === 'string' ? why : 'stop'}: finishing requests and shutting down\n`);
    await server.close();
    return 0;
  },
};

/**
 * `npm run bench -- ort-web`: the `ort` suite's comparison in a browser. webq's browser bundle
 * (dist/webq.browser.js) against onnxruntime-web's WebGPU backend (`onnxruntime-web/webgpu`,
 * dist/ort.webgpu.min.mjs), both in one page of headless Chromium, on Chromium's WebGPU adapter
 * (SwiftShader on a machine without a GPU: no shader-f16, so webq runs f32 activations, q4 too).
 *
 * Node builds the workload with the ort suite's helpers (the MiniLM-shaped random checkpoint, its
 * ONNX graphs from bench/ort.ts' bertOnnx), serves the page (bench/web/), the bundle, onnxruntime-web
 * and the model files from 127.0.0.1, and reads the page's results. The page loads the checkpoint
 * through webq's public API (BertModel.load from the folder URL, then hidden(): token ids in, last
 * hidden state out, host to host) and onnxruntime-web's InferenceSession.run on the same ids, in
 * alternation, and compares their outputs.
 *
 * onnxruntime-web is not a dependency of webq; install it without scripts to run this suite:
 *   npm i --no-save --ignore-scripts onnxruntime-web@1.30.0
 */
import { execFile } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { LinearDType } from '../src/ops/linear.ts';
import { launchChromium } from '../test/helpers/browser.ts';
import { parseKernels } from './lib/device.ts';
import { fmt, parseModelArgs, report, table, type BenchIO } from './lib/measure.ts';
import { randomIds, writeMiniLM } from './lib/minilm.ts';
import { bertOnnx } from './ort.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const ORT_WEB_INSTALL = 'npm i --no-save --ignore-scripts onnxruntime-web@1.30.0';
/**
 * Texts per batch when --batch is not given: 2, not the ort suite's 32. On SwiftShader one forward
 * of 2 x 128 tokens through the 6-layer model takes 8-16 s per runtime (2 busy cores), so the
 * default run (f32 and q4, 1 warm-up + 3 rounds) takes about 4 minutes.
 */
const DEFAULT_BATCH = 2;

const USAGE = `usage: npm run bench -- ort-web [--json] [--quick] [--dtypes f32,q4] [--batch ${DEFAULT_BATCH}] [--seq 128] [--layers 6] [--reps 3]
                              [--kernels gpu|cpu] [--ort webgpu|jsep] [--ep webgpu|wasm] [--threads N] [--timeout S] [--ort-log 0..4]
  webq's browser bundle against onnxruntime-web in headless Chromium, same weights, same page.
  Pairs webq's f32, q8, w8a8, q4 with onnxruntime's fp32, q8, q8, q4 graphs (default f32,q4).
  --quick    batch 1, 1 timed round after 1 warm-up
  --kernels  webq's kernel family (default: the adapter's; SwiftShader gets gpu)
  --ort      onnxruntime-web build: webgpu (default; 'onnxruntime-web/webgpu', its C++ WebGPU EP)
             or jsep (the default 'onnxruntime-web' entry, its JavaScript WebGPU kernels)
  --ep       onnxruntime execution provider (default webgpu; wasm runs its CPU kernels)
  --threads  onnxruntime-web's wasm threads (default: its own choice)
  --timeout  seconds for the whole page (default 1800)
  --ort-log  onnxruntime log severity, 0 verbose .. 4 fatal (default 3); its logs go to stderr
  Needs onnxruntime-web: ${ORT_WEB_INSTALL}
`;

type OrtDType = 'fp32' | 'q8' | 'q4';
const PAIR: Partial<Record<LinearDType, OrtDType>> = { f32: 'fp32', q8: 'q8', w8a8: 'q8', q4: 'q4' };
const ORT_ENTRY = { webgpu: 'ort.webgpu.min.mjs', jsep: 'ort.min.mjs' } as const;

export interface OrtWebResult {
  model: string;
  dtype: LinearDType;
  ort_dtype: OrtDType;
  /** onnxruntime-web's entry (`onnxruntime-web/webgpu` or `onnxruntime-web`) and execution provider. */
  ort_build: string;
  ort_ep: string;
  batch: number;
  seq: number;
  webq_ms: number;
  /** null when onnxruntime failed on this pair (ort_error says why). */
  ort_ms: number | null;
  webq_sentences_per_s: number;
  ort_sentences_per_s: number | null;
  /** ort_ms / webq_ms. */
  speedup_vs_ort: number | null;
  cosine: number | null;
  max_abs_diff: number | null;
  webq_cosine_vs_fp32: number | null;
  ort_cosine_vs_fp32: number | null;
  webq_runs_ms: number[];
  ort_runs_ms: number[];
  weight_bytes: number;
  reps: number;
  adapter: string;
  kernels: 'gpu' | 'cpu';
  browser: string;
  ort_version: string | null;
  /** Tokenizing the batch's decimal ids in the page, once (inside webq_ms; see the README). */
  webq_tokenize_ms: number;
  ort_error: string | null;
}

interface PageRow {
  dtype: LinearDType;
  ort_dtype: OrtDType;
  webq_ms: number;
  ort_ms: number | null;
  webq_runs_ms: number[];
  ort_runs_ms: number[];
  cosine: number | null;
  max_abs_diff: number | null;
  webq_cosine_vs_fp32: number | null;
  ort_cosine_vs_fp32: number | null;
  weight_bytes: number;
  ort_error: string | null;
}
interface PageResult {
  info: { adapter: string; kernels: 'gpu' | 'cpu'; f16: boolean; dot4i8: boolean; ort_version: string | null; ort_threads: number | null; cross_origin_isolated: boolean; user_agent: string; tokenize_ms: number };
  rows: PageRow[];
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.wasm': 'application/wasm',
};

/**
 * The page's origin: folders and in-memory files under URL prefixes, single byte ranges (webq
 * reads safetensors by range), `application/wasm` for onnxruntime's binaries, and the two headers
 * that make the page cross-origin isolated (SharedArrayBuffer for onnxruntime's wasm threads).
 */
async function serve(mounts: Record<string, string>, memory: Map<string, Uint8Array>): Promise<{ url: string; close(): Promise<void> }> {
  const cached = new Map<string, Promise<Buffer>>();
  const prefixes = Object.keys(mounts).sort((a, b) => b.length - a.length);
  const body = async (path: string): Promise<Uint8Array | undefined> => {
    const mem = memory.get(path);
    if (mem) return mem;
    const prefix = prefixes.find((p) => path.startsWith(p));
    if (prefix === undefined) return undefined;
    const rel = normalize(path.slice(prefix.length));
    if (rel.startsWith('..') || rel.startsWith(sep)) return undefined;
    const file = join(mounts[prefix], rel);
    // Model files are read by range many times: keep each file in memory once read.
    if (!cached.has(file)) cached.set(file, readFile(file));
    return cached.get(file)!.catch(() => undefined);
  };
  const handler = async (req: IncomingMessage, res: ServerResponse) => {
    const path = decodeURIComponent(new URL(req.url!, 'http://x').pathname);
    const b = req.method === 'GET' || req.method === 'HEAD' ? await body(path) : undefined;
    if (!b) return void res.writeHead(404).end('not found');
    const headers = {
      'Content-Type': TYPES[extname(path)] ?? 'application/octet-stream',
      'Accept-Ranges': 'bytes',
      'Cache-Control': 'no-store',
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Embedder-Policy': 'require-corp',
      'Cross-Origin-Resource-Policy': 'same-origin',
    };
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (m && Number(m[1]) < b.length) {
      const start = Number(m[1]);
      const end = Math.min(m[2] ? Number(m[2]) : b.length - 1, b.length - 1);
      res.writeHead(206, { ...headers, 'Content-Range': `bytes ${start}-${end}/${b.length}`, 'Content-Length': end - start + 1 });
      return void res.end(req.method === 'HEAD' ? undefined : b.subarray(start, end + 1));
    }
    res.writeHead(200, { ...headers, 'Content-Length': b.length });
    res.end(req.method === 'HEAD' ? undefined : b);
  };
  const server = createServer((req, res) => void handler(req, res).catch((e) => res.writeHead(500).end(String(e))));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Newest modification time (ms) of the files under `path`. */
function newest(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  return Math.max(0, ...readdirSync(path).map((f) => newest(join(path, f))));
}

/** dist/webq.browser.js, rebuilt (`node scripts/build-browser.mjs`) when missing or older than src/ or shaders/. */
async function browserBundle(io: BenchIO): Promise<string> {
  const out = join(ROOT, 'dist', 'webq.browser.js');
  let built = 0;
  try {
    built = Math.min(statSync(out).mtimeMs, statSync(join(ROOT, 'dist', 'webq.worker.js')).mtimeMs);
  } catch {
    built = 0;
  }
  const sources = Math.max(newest(join(ROOT, 'src')), newest(join(ROOT, 'shaders')), newest(join(ROOT, 'scripts', 'build-browser.mjs')));
  if (built < sources) {
    io.stderr(`bench ort-web: ${built ? 'dist/webq.browser.js is older than src/ or shaders/' : 'no dist/webq.browser.js (or webq.worker.js)'}; building it (node scripts/build-browser.mjs)\n`);
    // bench/run.mjs has regenerated src/gpu/shaders.generated.ts already.
    try {
      await promisify(execFile)(process.execPath, [join(ROOT, 'scripts', 'build-browser.mjs')], { cwd: ROOT });
    } catch (e) {
      if (!built) throw e;
      const why = String((e as { stderr?: string }).stderr || (e as Error).message).trim().split('\n').slice(0, 3).join(' | ');
      io.stderr(`bench ort-web: the build failed (${why}); measuring the existing, older dist/webq.browser.js\n`);
    }
  }
  return dirname(out);
}

/** The identity tokenizer: WordPiece over the vocabulary "0".."V-1", whitespace split, no specials. */
function decimalTokenizer(V: number): string {
  const vocab: Record<string, number> = {};
  for (let i = 0; i < V; i++) vocab[String(i)] = i;
  return JSON.stringify({
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [],
    normalizer: null,
    pre_tokenizer: { type: 'WhitespaceSplit' },
    post_processor: null,
    decoder: null,
    model: { type: 'WordPiece', unk_token: '0', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  });
}

export async function run(args: string[], io: BenchIO): Promise<number> {
  const parsed = parseModelArgs('ort-web', args, USAGE, io, { kernels: { type: 'string' }, dtypes: { type: 'string' }, ort: { type: 'string' }, ep: { type: 'string' }, threads: { type: 'string' }, timeout: { type: 'string' }, 'ort-log': { type: 'string' } }, (v) => {
    parseKernels(v.kernels);
    if (v.ort !== undefined && !Object.hasOwn(ORT_ENTRY, String(v.ort))) throw new Error(`--ort must be webgpu or jsep, got ${JSON.stringify(v.ort)}`);
    if (v['ort-log'] !== undefined && !/^[0-4]$/.test(String(v['ort-log']))) throw new Error(`--ort-log must be 0 to 4, got ${JSON.stringify(v['ort-log'])}`);
  });
  if (typeof parsed === 'number') return parsed;
  const { v, T, layers, reps } = parsed;
  const B = v.batch === undefined ? (v.quick ? 1 : DEFAULT_BATCH) : parsed.B;
  const kernels = parseKernels(v.kernels);
  const dtypes = String(v.dtypes ?? 'f32,q4').split(',') as LinearDType[];
  const unpaired = dtypes.filter((d) => !PAIR[d]);
  if (unpaired.length) {
    io.stderr(`bench ort-web: no onnxruntime counterpart for ${unpaired.join(', ')} (choose from ${Object.keys(PAIR).join(', ')})\n`);
    return 2;
  }
  const build = (v.ort ?? 'webgpu') as keyof typeof ORT_ENTRY;
  const ep = String(v.ep ?? 'webgpu');
  const threads = v.threads === undefined ? undefined : Number(v.threads);
  const timeoutS = Number(v.timeout ?? 1800);
  if ((threads !== undefined && !(Number.isInteger(threads) && threads >= 1)) || !(timeoutS > 0)) {
    io.stderr(`bench ort-web: --threads and --timeout must be positive numbers\n${USAGE}`);
    return 2;
  }
  let ortDir: string;
  try {
    // Its package.json is not exported: find the package from its CommonJS entry (dist/ort.min.js).
    ortDir = dirname(dirname(createRequire(join(ROOT, 'package.json')).resolve('onnxruntime-web')));
  } catch {
    io.stderr(`bench ort-web: cannot find onnxruntime-web. It is not a dependency of webq; install it with:\n  ${ORT_WEB_INSTALL}\n`);
    return 2;
  }
  const ortVersion = JSON.parse(await readFile(join(ortDir, 'package.json'), 'utf8')).version as string;
  const webqDir = await browserBundle(io);

  const warmup = 1;
  const dir = await mkdtemp(join(tmpdir(), 'webq-bench-ort-web-'));
  const closers: (() => Promise<void>)[] = [];
  try {
    const { tiny, cfg, model } = await writeMiniLM(dir, layers);
    await writeFile(join(dir, 'tokenizer.json'), decimalTokenizer(cfg.vocabSize));
    const memory = new Map<string, Uint8Array>();
    const pairs = dtypes.map((dtype) => ({ dtype, ort: PAIR[dtype]! }));
    for (const od of new Set(pairs.map((p) => p.ort))) memory.set(`/onnx/${od}.onnx`, bertOnnx(cfg, tiny.weights, od));
    const ids = randomIds(B * T, cfg.vocabSize);
    const config = {
      B, T, reps, warmup, kernels: kernels ?? null, pairs, ids: [...ids], ep,
      webqUrl: '/webq/webq.browser.js',
      ortUrl: `/ort/${ORT_ENTRY[build]}`,
      ortEntry: build === 'webgpu' ? 'onnxruntime-web/webgpu' : 'onnxruntime-web',
      ortDir: '/ort/',
      modelPath: '/model/',
      numThreads: threads ?? null,
      ortLogLevel: ['verbose', 'info', 'warning', 'error', 'fatal'][Number(v['ort-log'] ?? 3)],
      ortLogSeverity: Number(v['ort-log'] ?? 3),
    };
    memory.set('/config.json', new TextEncoder().encode(JSON.stringify(config)));
    const site = await serve({ '/webq/': webqDir, '/ort/': join(ortDir, 'dist'), '/model/': dir, '/': join(ROOT, 'bench', 'web') }, memory);
    closers.push(site.close);
    const browser = await launchChromium();
    closers.push(() => browser.close());
    const browserVersion = await browser.version();
    io.stderr(`${browserVersion}, onnxruntime-web ${ortVersion} (${config.ortEntry}, ${ep} EP); ${model}; batch ${B} x ${T} tokens; wall clock host to host; median of ${reps} rounds after ${warmup} warm-up\n`);

    const page = await browser.newPage();
    page.on('console', (m) => {
      const text = m.text().replace(/\x1b\[[0-9;]*m/g, ''); // onnxruntime colours its log lines
      if (text.startsWith('[ort-web] ')) io.stderr(`${text.slice(10)}\n`);
      // A 404 is logged by the response handler below, with its URL.
      else if (text.startsWith('Failed to load resource')) return;
      else if (m.type() === 'error' || m.type() === 'warn' || v['ort-log'] !== undefined) io.stderr(`page console ${m.type()}: ${text}\n`);
    });
    page.on('response', (r) => {
      // webq asks a model folder for its optional files (sentence-transformers configs, ...): not an error.
      const path = new URL(r.url()).pathname;
      if (r.status() >= 400 && !path.startsWith('/model/')) io.stderr(`page: ${r.status()} for ${path}\n`);
    });
    const failed = new Promise<never>((_, reject) => {
      page.on('pageerror', (e) => reject(new Error(`page error: ${String(e)}`)));
      page.on('error', (e) => reject(new Error(`page crashed: ${String(e)}`)));
    });
    failed.catch(() => {});
    await page.goto(`${site.url}/ort-web.html`);
    // Poll with short evaluations: one long waitForFunction would run into puppeteer's protocol
    // timeout (180 s), and a default run takes longer than that.
    const deadline = performance.now() + timeoutS * 1000;
    const done = async () => {
      while (!(await page.evaluate(() => (window as { __ortWeb?: unknown }).__ortWeb !== undefined))) {
        if (performance.now() > deadline) throw new Error(`the page did not finish within --timeout ${timeoutS} s`);
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    };
    await Promise.race([done(), failed]);
    const got = await page.evaluate(() => (window as unknown as { __ortWeb: PageResult | { error: string; code: string | null; stack?: string } }).__ortWeb);
    if ('error' in got && got.code === 'NO_SUBGROUPS') {
      // --kernels cpu on an adapter whose subgroups the *_sg kernels cannot use (SwiftShader: 4 lanes).
      io.stderr(`bench ort-web: --kernels ${kernels} cannot run on this browser's adapter: ${got.error}\n`);
      return 2;
    }
    if ('error' in got) {
      io.stderr(`bench ort-web: the page failed: ${got.error}\n${got.stack ?? ''}\n`);
      return 1;
    }
    const { info } = got;
    if (!info.cross_origin_isolated) io.stderr('bench ort-web: the page is not cross-origin isolated; onnxruntime-web runs one wasm thread\n');
    const results: OrtWebResult[] = got.rows.map((r) => ({
      model, dtype: r.dtype, ort_dtype: r.ort_dtype, ort_build: config.ortEntry, ort_ep: ep, batch: B, seq: T,
      webq_ms: r.webq_ms, ort_ms: r.ort_ms,
      webq_sentences_per_s: (B * 1000) / r.webq_ms, ort_sentences_per_s: r.ort_ms === null ? null : (B * 1000) / r.ort_ms,
      speedup_vs_ort: r.ort_ms === null ? null : r.ort_ms / r.webq_ms,
      cosine: r.cosine, max_abs_diff: r.max_abs_diff, webq_cosine_vs_fp32: r.webq_cosine_vs_fp32, ort_cosine_vs_fp32: r.ort_cosine_vs_fp32,
      webq_runs_ms: r.webq_runs_ms, ort_runs_ms: r.ort_runs_ms, weight_bytes: r.weight_bytes, reps: r.webq_runs_ms.length,
      adapter: info.adapter, kernels: info.kernels, browser: browserVersion, ort_version: info.ort_version ?? ortVersion, webq_tokenize_ms: info.tokenize_ms, ort_error: r.ort_error,
    }));
    for (const r of results) io.stderr(`${r.dtype} / ort ${r.ort_dtype}: webq ${r.webq_runs_ms.map(fmt).join(' ')} ms, onnxruntime ${r.ort_runs_ms.map(fmt).join(' ') || '-'} ms\n`);
    const opt = (x: number | null, f = fmt) => (x === null ? '-' : f(x));
    const cos = (x: number) => x.toFixed(5);
    const rows = results.map((r) => [r.dtype, r.ort_error ? `${r.ort_dtype} (failed)` : r.ort_dtype, fmt(r.webq_ms), opt(r.ort_ms), fmt(r.webq_sentences_per_s), opt(r.ort_sentences_per_s), opt(r.speedup_vs_ort), opt(r.cosine, cos), opt(r.max_abs_diff), opt(r.webq_cosine_vs_fp32, cos), opt(r.ort_cosine_vs_fp32, cos)]);
    let text = `${info.adapter} (webq ${info.kernels} kernels, shader-f16 ${info.f16}, dot4I8Packed ${info.dot4i8}); ${browserVersion}; onnxruntime-web ${results[0]?.ort_version ?? ortVersion} (${config.ortEntry}, ${ep} EP); batch ${B} x ${T}\n`;
    text += table(['webq', 'ort', 'webq ms', 'ort ms', 'webq sent/s', 'ort sent/s', 'speedup_vs_ort', 'cosine', 'max|diff|', 'webq cos fp32', 'ort cos fp32'], rows, 2);
    for (const r of results) if (r.ort_error) text += `onnxruntime ${r.ort_dtype} failed: ${r.ort_error}\n`;
    report(io, !!v.json, text, results);
    return results.some((r) => r.ort_error) ? 1 : 0;
  } finally {
    for (const close of closers.reverse()) await close().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
}

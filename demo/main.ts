/**
 * The webq demo page: loads a BERT embedding model in a Web Worker (WebGPU there), embeds the
 * sentences typed in the textarea and shows their cosine similarities; the page's own thread only
 * draws, so it stays responsive while the model downloads, compiles its shaders and runs.
 * Query parameters:
 *   ?model=  hub id (org/name[@rev]) or folder URL (served with CORS); default DEFAULT_EMBED_MODEL
 *   ?dtype=  f32 | f16 | q8 | q4 | w8a8 | w4a8 (default q8)
 *   ?texts=  sentences separated by "|": fills the textarea and embeds at once
 *   ?hub=    hub base URL (default https://huggingface.co); ?cache=0 skips the download cache
 *   ?delta=  a delta for the update panel (demo/update.ts); default `<model>/../delta.safetensors`
 * Every run also publishes window.__webqDemo, which the browser test reads.
 */
import { DEFAULT_EMBED_MODEL, cosineSimilarity, type BertLoadOptions } from '../src/index.ts';
import { WebqWorker, WorkerBertModel } from '../src/worker/index.ts';
import { networkAdvice } from './diagnose.ts';
import { mib, progressReporter } from './progress.ts';
import { setupUpdatePanel } from './update.ts';

type LinearDType = NonNullable<BertLoadOptions['dtype']>;
const DTYPES: readonly LinearDType[] = ['f32', 'f16', 'q8', 'q4', 'w8a8', 'w4a8'];

interface DemoState {
  status: 'ready' | 'error';
  model: string;
  dtype: string;
  adapter?: string;
  embeddings: number[][];
  error?: string;
  /** Milliseconds: the load in the worker, its warm-up forward, the last embed. */
  loadMs?: number;
  warmupMs?: number;
  embedMs?: number;
  /** performance.now() when the warm-up ended and when the first embed started. */
  warmupDoneAt?: number;
  firstEmbedAt?: number;
}

declare global {
  interface Window {
    __webqDemo?: DemoState;
  }
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  form: $<HTMLFormElement>('model-form'),
  model: $<HTMLInputElement>('model'),
  dtype: $<HTMLSelectElement>('dtype'),
  status: $<HTMLDivElement>('status'),
  progress: $<HTMLProgressElement>('progress'),
  device: $<HTMLDivElement>('device'),
  error: $<HTMLPreElement>('error'),
  texts: $<HTMLTextAreaElement>('texts'),
  run: $<HTMLButtonElement>('run'),
  timing: $<HTMLSpanElement>('timing'),
  results: $<HTMLElement>('results'),
  matrix: $<HTMLTableElement>('matrix'),
};

const params = new URLSearchParams(location.search);
const modelId = params.get('model') || DEFAULT_EMBED_MODEL;
const dtypeParam = params.get('dtype') || 'q8';
const hubUrl = params.get('hub') ?? undefined;
let adapter: string | undefined;
let worker: WebqWorker | undefined;
let bert: WorkerBertModel | undefined;
const times: Pick<DemoState, 'loadMs' | 'warmupMs' | 'warmupDoneAt' | 'firstEmbedAt'> = {};

async function showError(e: unknown): Promise<void> {
  const advice = await networkAdvice(e).catch(() => undefined);
  const message = (e instanceof Error ? `${e.name}: ${e.message}` : String(e)) + (advice ? `\n\n${advice}` : '');
  // After a successful load only that embed failed: the "ready" line stays true.
  if (!bert) {
    ui.status.textContent = 'failed to load the model';
    ui.status.className = 'bad';
  }
  ui.progress.hidden = true;
  ui.error.hidden = false;
  ui.error.textContent = message;
  window.__webqDemo = { status: 'error', model: modelId, dtype: dtypeParam, adapter, embeddings: [], error: message, ...times };
}


async function load(): Promise<void> {
  if (!DTYPES.includes(dtypeParam as LinearDType)) throw new Error(`unknown dtype '${dtypeParam}' in the URL: use one of ${DTYPES.join(', ')}`);
  ui.status.textContent = 'opening WebGPU in a worker…';
  // The worker makes its device first, so the page can show the adapter before the weights arrive.
  // (Vite bundles a worker written this way; a plain page can let webq find webq.worker.js itself.)
  worker = await WebqWorker.start({ worker: new Worker(new URL('../src/worker/worker.ts', import.meta.url), { type: 'module', name: 'webq' }) });
  const caps = worker.caps;
  adapter = caps.adapter;
  ui.device.textContent = `adapter: ${adapter}${caps.software ? ' (software)' : ''} · shader-f16: ${caps.f16 ? 'yes' : 'no'} · weights: ${dtypeParam}`;
  try {
    await loadModel();
  } catch (e) {
    worker.terminate();
    throw e;
  }
  times.loadMs = bert!.loadMs;
  times.warmupMs = bert!.warmupMs;
  times.warmupDoneAt = performance.now();
}

/** Loads the model in the worker (again, after an update) and says so. */
async function loadModel(): Promise<void> {
  ui.status.className = '';
  ui.status.textContent = `loading ${modelId}…`;
  const t0 = performance.now();
  bert = await WorkerBertModel.load(modelId, {
    worker,
    dtype: dtypeParam as LinearDType,
    onProgress: progressReporter(ui),
    // Shaders compile during load (two short texts), so the first embed takes what it should.
    onWarmup: () => {
      ui.progress.hidden = false;
      ui.progress.removeAttribute('value'); // indeterminate
      ui.status.textContent = 'compiling shaders (warm-up forwards on two short texts)…';
    },
    ...(hubUrl && { hubUrl }),
    ...(params.get('cache') === '0' && { cache: false }),
  });
  const c = bert.config;
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  ui.progress.hidden = true;
  ui.status.className = 'ok';
  ui.status.textContent =
    `ready: ${bert.describe} · ${c.numLayers} layers, hidden ${c.hiddenSize} · ${bert.dtype} weights ${mib(bert.weightBytes)} · ` +
    `loaded in ${s(performance.now() - t0)} (shaders ${s(bert.warmupMs)})`;
  ui.run.disabled = false;
}

/** Blue for similar, white around 0, red for opposite; dark cells get white digits. */
function cellColor(c: number): { bg: string; fg: string } {
  const t = Math.min(1, Math.abs(c));
  const hue = c >= 0 ? 222 : 4;
  const light = 97 - 52 * t;
  return { bg: `hsl(${hue} 70% ${light}%)`, fg: light < 62 ? '#fff' : '#1d2330' };
}

function renderMatrix(texts: string[], vectors: Float32Array[]): void {
  const t = ui.matrix;
  t.replaceChildren();
  const head = t.insertRow();
  head.appendChild(document.createElement('th'));
  texts.forEach((_, j) => {
    const th = document.createElement('th');
    th.textContent = String(j + 1);
    head.appendChild(th);
  });
  texts.forEach((text, i) => {
    const row = t.insertRow();
    const th = document.createElement('th');
    th.className = 'text';
    th.textContent = `${i + 1}. ${text}`;
    th.title = text;
    row.appendChild(th);
    vectors.forEach((_, j) => {
      const c = cosineSimilarity(vectors[i], vectors[j]);
      const td = row.insertCell();
      const { bg, fg } = cellColor(c);
      td.textContent = c.toFixed(3);
      td.style.background = bg;
      td.style.color = fg;
    });
  });
  ui.results.hidden = false;
}

async function embed(): Promise<{ texts: string[]; vectors: Float32Array[] }> {
  if (!bert) throw new Error('the model is not loaded');
  const texts = ui.texts.value.split('\n').map((s) => s.trim()).filter((s) => s !== '');
  if (texts.length === 0) throw new Error('type at least one sentence (one per line)');
  ui.run.disabled = true;
  ui.error.hidden = true;
  try {
    const t0 = performance.now();
    times.firstEmbedAt ??= t0;
    const vectors = await bert.embed(texts);
    const embedMs = performance.now() - t0;
    ui.timing.textContent = `${texts.length} sentence${texts.length === 1 ? '' : 's'}, ${vectors[0].length} dims, ${embedMs.toFixed(0)} ms`;
    renderMatrix(texts, vectors);
    window.__webqDemo = { status: 'ready', model: modelId, dtype: bert.dtype, adapter, embeddings: vectors.map((v) => Array.from(v)), embedMs, ...times };
    return { texts, vectors };
  } finally {
    ui.run.disabled = false;
  }
}

ui.model.value = modelId;
ui.dtype.value = DTYPES.includes(dtypeParam as LinearDType) ? dtypeParam : 'q8';
const preset = params.get('texts');
if (preset !== null) ui.texts.value = preset.split('|').join('\n');

// A new model or dtype reloads the page: a fresh device, and a URL that can be shared.
ui.form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const next = new URLSearchParams(params);
  next.set('model', ui.model.value.trim() || DEFAULT_EMBED_MODEL);
  next.set('dtype', ui.dtype.value);
  location.search = next.toString();
});
ui.run.addEventListener('click', () => void embed().catch(showError));

/** The model in the worker, loaded again from the (updated) cache. */
async function reload(): Promise<void> {
  const old = bert!;
  bert = undefined;
  await old.dispose();
  await loadModel();
}

load()
  .then(() => (preset !== null ? embed() : undefined))
  .then(() => setupUpdatePanel({ model: modelId, hubUrl, bert: () => bert!, reload, embed }, params))
  .catch(showError);

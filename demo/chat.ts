/**
 * The webq chat page: loads a LLaMA-family chat model (Llama, Mistral, Qwen, SmolLM) on WebGPU in a
 * Web Worker and streams its replies through model.chat.completions.create; the page's thread only
 * draws, so typing and scrolling stay smooth while the model loads and generates. Query parameters:
 *   ?model=        hub id (org/name[@rev]) or folder URL (served with CORS); default DEFAULT_CHAT_MODEL
 *   ?dtype=        weights: f32 | f16 | q8 | q4 | w8a8 | w4a8 (default q4)
 *   ?kv=           KV cache: f16 | f32 | int8 (default int8, which every adapter runs)
 *   ?max_tokens=, ?temperature=, ?system=   the settings (temperature 0 = greedy)
 *   ?schema=       a JSON Schema every reply must satisfy; ?tools=1 offers get_weather (?tool_choice=required)
 *   ?prompt=       a first message; ?messages= a JSON list of {role, content} to start from
 *   ?autorun=1     sends that first message (or answers the last user message) once loaded
 *   ?hub=          hub base URL (default https://huggingface.co); ?cache=0 skips the download cache
 * The page publishes window.__webqChat (status, messages, last usage, errors) for the browser test.
 */
import { KV_DTYPES, LINEAR_DTYPES, type ChatMessage, type ChatTool, type ChatUsage, type KvDType, type LinearDType, type ToolCall } from '../src/index.ts';
import { WebqWorker, WorkerLlmModel } from '../src/worker/index.ts';
import { networkAdvice } from './diagnose.ts';
import { mib, progressReporter } from './progress.ts';

const DEFAULT_CHAT_MODEL = 'HuggingFaceTB/SmolLM2-135M-Instruct';

type Finish = 'stop' | 'length' | 'tool_calls' | 'aborted' | 'error';

interface ChatState {
  status: 'loading' | 'ready' | 'generating' | 'error';
  model: string;
  dtype: string;
  kv: string;
  adapter?: string;
  f16?: boolean;
  weightBytes?: number;
  kvBytes?: number;
  /** Milliseconds: the load in the worker and its warm-up forward (shader compilation). */
  loadMs?: number;
  warmupMs?: number;
  /** What the model sees: the system prompt (when set), then every turn; a reply being streamed is last. */
  messages: ChatMessage[];
  /** Replies finished in any way (done, stopped, failed). */
  replies: number;
  /** Content chunks the last reply arrived in. */
  chunks: number;
  lastFinish?: Finish;
  lastUsage?: ChatUsage;
  /** get_weather calls the model made, with the answers this page gave. */
  toolCalls: { name: string; arguments: string; result: string }[];
  errors: string[];
}

declare global {
  interface Window {
    __webqChat?: ChatState;
  }
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  form: $<HTMLFormElement>('model-form'),
  model: $<HTMLInputElement>('model'),
  dtype: $<HTMLSelectElement>('dtype'),
  kv: $<HTMLSelectElement>('kv'),
  status: $<HTMLDivElement>('status'),
  progress: $<HTMLProgressElement>('progress'),
  device: $<HTMLDivElement>('device'),
  stats: $<HTMLDivElement>('stats'),
  error: $<HTMLPreElement>('error'),
  maxTokens: $<HTMLInputElement>('max-tokens'),
  temperature: $<HTMLInputElement>('temperature'),
  clear: $<HTMLButtonElement>('clear'),
  system: $<HTMLTextAreaElement>('system'),
  messages: $<HTMLDivElement>('messages'),
  sendForm: $<HTMLFormElement>('send-form'),
  input: $<HTMLTextAreaElement>('input'),
  send: $<HTMLButtonElement>('send'),
  stop: $<HTMLButtonElement>('stop'),
  replyStats: $<HTMLSpanElement>('reply-stats'),
  schema: $<HTMLTextAreaElement>('schema'),
  tools: $<HTMLInputElement>('tools'),
  toolChoice: $<HTMLSelectElement>('tool-choice'),
  structured: $<HTMLDetailsElement>('structured'),
};

/** The tool the page offers; its answers are made up here (a demo has no weather service). */
const WEATHER_TOOL: ChatTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The current weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 24 }, unit: { enum: ['celsius', 'fahrenheit'] } }, required: ['city', 'unit'] },
  },
};

/** A reproducible made-up answer: the temperature follows from the city's name. */
function weatherFor(args: string): string {
  const { city = '', unit = 'celsius' } = JSON.parse(args) as { city?: string; unit?: string };
  let h = 0;
  for (const ch of String(city)) h = (h * 31 + ch.charCodeAt(0)) % 1000;
  const c = 5 + (h % 25);
  return JSON.stringify({ city, temperature: unit === 'fahrenheit' ? Math.round(c * 1.8 + 32) : c, unit, sky: ['sunny', 'cloudy', 'rainy'][h % 3] });
}

const params = new URLSearchParams(location.search);
const modelId = params.get('model') || DEFAULT_CHAT_MODEL;
const dtypeParam = params.get('dtype') || 'q4';
const kvParam = params.get('kv') || 'int8';

const state: ChatState = { status: 'loading', model: modelId, dtype: dtypeParam, kv: kvParam, messages: [], replies: 0, chunks: 0, toolCalls: [], errors: [] };
window.__webqChat = state;

let llm: WorkerLlmModel | undefined;
/** The conversation after the system prompt, which is read from its box at every send. */
let turns: ChatMessage[] = [];
let abort: AbortController | undefined;

function conversation(): ChatMessage[] {
  const system = ui.system.value.trim();
  return [...(system ? [{ role: 'system', content: system }] : []), ...turns];
}

/** Copies the conversation into the published state (the live reply included). */
function publish(): void {
  state.messages = conversation().map((m) => ({ ...m }));
}

function setStatus(status: ChatState['status']): void {
  state.status = status;
  const generating = status === 'generating';
  ui.send.disabled = status !== 'ready';
  ui.stop.disabled = !generating;
}

async function showError(e: unknown): Promise<void> {
  const advice = llm ? undefined : await networkAdvice(e).catch(() => undefined);
  const message = (e instanceof Error ? `${e.name}: ${e.message}` : String(e)) + (advice ? `\n\n${advice}` : '');
  state.errors.push(message);
  ui.error.hidden = false;
  ui.error.textContent = message;
  if (!llm) {
    ui.status.textContent = 'the model is not loaded';
    ui.status.className = 'bad';
    ui.progress.hidden = true;
    setStatus('error');
  }
  publish();
}

/** A message bubble: its text, and a meta line under replies. */
function bubble(role: string, content: string): { el: HTMLDivElement; text: HTMLSpanElement; meta: HTMLSpanElement } {
  const el = document.createElement('div');
  el.className = `msg ${role}`;
  const text = el.appendChild(document.createElement('span'));
  text.className = 'text';
  text.textContent = content;
  const meta = el.appendChild(document.createElement('span'));
  meta.className = 'meta';
  meta.hidden = true;
  ui.messages.appendChild(el);
  return { el, text, meta };
}


async function load(): Promise<void> {
  if (!LINEAR_DTYPES.includes(dtypeParam as LinearDType)) throw new Error(`unknown dtype '${dtypeParam}' in the URL: use one of ${LINEAR_DTYPES.join(', ')}`);
  if (!KV_DTYPES.includes(kvParam as KvDType)) throw new Error(`unknown kv '${kvParam}' in the URL: use one of ${KV_DTYPES.join(', ')}`);
  ui.status.textContent = 'opening WebGPU in a worker…';
  // The worker makes its device first: the page shows the adapter, and checks f16, before any download.
  const worker = await WebqWorker.start({ worker: new Worker(new URL('../src/worker/worker.ts', import.meta.url), { type: 'module', name: 'webq' }) });
  try {
    llm = await loadInto(worker);
  } catch (e) {
    worker.terminate();
    throw e;
  }
  setStatus('ready');
}

async function loadInto(worker: WebqWorker): Promise<WorkerLlmModel> {
  const { adapter, f16, software } = worker.caps;
  Object.assign(state, { adapter, f16 });
  ui.device.textContent = `adapter: ${adapter}${software ? ' (software)' : ''} · shader-f16: ${f16 ? 'yes' : 'no'} · weights: ${dtypeParam} · KV cache: ${kvParam}`;
  if (!f16) {
    // Quantized weights fall back to f32 activations by themselves; f16 weights and an f16 cache cannot.
    for (const select of [ui.dtype, ui.kv]) {
      const o = [...select.options].find((x) => x.value === 'f16');
      if (o) Object.assign(o, { disabled: true, textContent: 'f16 (needs shader-f16)' });
    }
    const wants = [dtypeParam === 'f16' && 'f16 weights', kvParam === 'f16' && 'an f16 KV cache'].filter(Boolean);
    if (wants.length) {
      throw new Error(`${wants.join(' and ')} need the shader-f16 feature, which this adapter (${adapter}) lacks: pick f32 or a quantized dtype for the weights, and f32 or int8 for the KV cache`);
    }
  }
  ui.status.textContent = `loading ${modelId}…`;
  const hubUrl = params.get('hub') ?? undefined;
  const t0 = performance.now();
  const model = await WorkerLlmModel.load(modelId, {
    worker,
    dtype: dtypeParam as LinearDType,
    kv: kvParam as KvDType,
    onProgress: progressReporter(ui),
    // Shaders compile during load (a prompt of 8 tokens, 3 generated), not on the first message.
    onWarmup: () => {
      ui.progress.hidden = false;
      ui.progress.removeAttribute('value'); // indeterminate
      ui.status.textContent = 'compiling shaders (a warm-up: 8 prompt tokens, 3 generated)…';
    },
    ...(hubUrl && { hubUrl }),
    ...(params.get('cache') === '0' && { cache: false }),
  });
  if (!model.hasChatTemplate) {
    await model.dispose();
    throw new Error(`${modelId} has no chat template (no chat_template.jinja, no chat_template in tokenizer_config.json), so it cannot take chat messages: pick an instruct or chat version of the model`);
  }
  const c = model.config;
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  Object.assign(state, { dtype: model.dtype, kv: model.kv, weightBytes: model.weightBytes, kvBytes: model.kvBytes, loadMs: model.loadMs, warmupMs: model.warmupMs });
  ui.progress.hidden = true;
  ui.status.className = 'ok';
  ui.status.textContent = `ready: ${model.describe} · ${c.numLayers} layers, hidden ${c.hiddenSize}, context ${model.contextLength} · loaded in ${s(performance.now() - t0)} (shaders ${s(model.warmupMs)})`;
  ui.stats.textContent = `memory: weights ${mib(model.weightBytes)} (${model.dtype}) + KV cache ${mib(model.kvBytes)} (${model.kv}) = ${mib(model.weightBytes + model.kvBytes)}`;
  return model;
}

/** The schema box and the tools switch as request fields; `followUp` answers a tool result (no new call). */
function readStructured(followUp: boolean): { response_format?: { type: 'json_schema'; json_schema: { name: string; schema: Record<string, unknown> } }; tools?: ChatTool[]; tool_choice?: 'auto' | 'required' | 'none'; parallel_tool_calls?: boolean } {
  const out: ReturnType<typeof readStructured> = {};
  const text = ui.schema.value.trim();
  if (text) {
    let schema: unknown;
    try {
      schema = JSON.parse(text);
    } catch (e) {
      throw new Error(`the JSON schema box does not hold JSON: ${(e as Error).message}`);
    }
    if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) throw new Error('the JSON schema box must hold a JSON object (a schema)');
    out.response_format = { type: 'json_schema', json_schema: { name: 'page_schema', schema: schema as Record<string, unknown> } };
  }
  if (ui.tools.checked) {
    out.tools = [WEATHER_TOOL];
    out.tool_choice = followUp ? 'none' : (ui.toolChoice.value as 'auto' | 'required');
    // One call per turn: with parallel calls allowed a small model may open a second <tool_call>
    // after a complete first one and run out of max_tokens there (finish 'length', no call answered).
    out.parallel_tool_calls = false;
  }
  return out;
}

function readSettings(): { max_tokens: number; temperature: number } {
  const max = Number(ui.maxTokens.value);
  if (!Number.isSafeInteger(max) || max < 1) throw new Error(`max tokens must be a positive whole number, got '${ui.maxTokens.value}'`);
  const temperature = Number(ui.temperature.value);
  if (ui.temperature.value.trim() === '' || !Number.isFinite(temperature) || temperature < 0) throw new Error(`temperature must be 0 (greedy) or more, got '${ui.temperature.value}'`);
  return { max_tokens: max, temperature };
}

/** The reply's stats: its usage (the usage so far for a stopped or failed one, see reply()). */
function describeReply(u: ChatUsage | undefined, finish: Finish): string {
  const tps = (x: number) => `${x.toFixed(x < 10 ? 1 : 0)} tok/s`;
  const end = { stop: 'done', length: 'hit max tokens', tool_calls: 'called a tool', aborted: 'stopped', error: 'failed' }[finish];
  if (!u) return `${end} before the first token`;
  const cached = u.prompt_tokens_details.cached_tokens;
  return (
    `${u.completion_tokens} token${u.completion_tokens === 1 ? '' : 's'} · prompt ${u.prompt_tokens}${cached ? ` (${cached} cached)` : ''} · ` +
    `prefill ${tps(u.prefill_tokens_per_second)} · decode ${tps(u.decode_tokens_per_second)} · ${end}`
  );
}

/** Streams the model's answer to the conversation so far into a new reply bubble. */
async function reply(followUp = false): Promise<void> {
  if (!llm || state.status !== 'ready') return;
  let settings: ReturnType<typeof readSettings> & ReturnType<typeof readStructured>;
  try {
    settings = { ...readSettings(), ...readStructured(followUp) };
  } catch (e) {
    return showError(e);
  }
  const messages = conversation();
  const answer: ChatMessage = { role: 'assistant', content: '' };
  turns.push(answer);
  const b = bubble('assistant', '');
  b.el.classList.add('streaming');
  ui.error.hidden = true;
  ui.replyStats.textContent = 'generating…';
  Object.assign(state, { chunks: 0, lastUsage: undefined, lastFinish: undefined });
  const ac = (abort = new AbortController());
  setStatus('generating');
  publish();
  let finish: Finish = 'error';
  const calls: { id: string; name: string; arguments: string }[] = [];
  try {
    // The usage so far on every chunk, so a stopped reply can say how many tokens it got.
    const stream = llm.chat.completions.create({ messages, stream: true, stream_options: { continuous_usage_stats: true }, ...settings }, { signal: ac.signal });
    for await (const chunk of stream) {
      const choice = chunk.choices[0];
      if (choice.delta.content) {
        answer.content += choice.delta.content;
        b.text.textContent = answer.content;
        state.chunks++;
        publish();
        b.el.scrollIntoView({ block: 'nearest' });
      }
      for (const t of choice.delta.tool_calls ?? []) {
        calls[t.index] ??= { id: '', name: '', arguments: '' };
        calls[t.index].id += t.id ?? '';
        calls[t.index].name += t.function?.name ?? '';
        calls[t.index].arguments += t.function?.arguments ?? '';
        b.text.textContent = calls.map((c) => `→ ${c.name}(${c.arguments})`).join('\n');
      }
      if (choice.finish_reason) finish = choice.finish_reason;
      if (chunk.usage) state.lastUsage = chunk.usage;
    }
  } catch (e) {
    if (ac.signal.aborted) finish = 'aborted';
    else await showError(e);
  } finally {
    abort = undefined;
    // A reply that never started is not part of the conversation; a stopped one keeps what came.
    const at = turns.indexOf(answer);
    if (at >= 0 && answer.content === '' && finish !== 'stop' && finish !== 'length' && finish !== 'tool_calls') turns.splice(at, 1);
    b.el.classList.remove('streaming');
    if (finish === 'error') b.el.classList.add('failed');
    b.meta.hidden = false;
    b.meta.textContent = describeReply(state.lastUsage, finish);
    ui.replyStats.textContent = '';
    state.lastFinish = finish;
    state.kvBytes = llm.kvBytes;
    state.replies++;
    setStatus('ready');
    publish();
  }
  if (finish === 'tool_calls' && calls.length) await answerTools(answer, calls);
}

/** The page plays the tool: each call's result goes back as a role 'tool' message, then the model answers. */
async function answerTools(answer: ChatMessage, calls: { id: string; name: string; arguments: string }[]): Promise<void> {
  answer.tool_calls = calls.map((c): ToolCall => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } }));
  for (const c of calls) {
    let result: string;
    try {
      result = c.name === WEATHER_TOOL.function.name ? weatherFor(c.arguments) : JSON.stringify({ error: `no tool named ${c.name}` });
    } catch (e) {
      result = JSON.stringify({ error: `bad arguments: ${(e as Error).message}` });
    }
    state.toolCalls.push({ name: c.name, arguments: c.arguments, result });
    turns.push({ role: 'tool', content: result, tool_call_id: c.id });
    bubble('tool', result);
  }
  publish();
  await reply(true);
}

async function send(text: string): Promise<void> {
  const content = text.trim();
  if (!llm || state.status !== 'ready' || content === '') return;
  turns.push({ role: 'user', content });
  bubble('user', content);
  ui.input.value = '';
  await reply();
}

function newChat(): void {
  abort?.abort();
  turns = [];
  ui.messages.replaceChildren();
  ui.replyStats.textContent = '';
  publish();
}

/** ?messages= -> the system box and the turns shown so far. */
function startingMessages(): void {
  const raw = params.get('messages');
  if (raw === null) return;
  let list: unknown;
  try {
    list = JSON.parse(raw);
  } catch {
    throw new Error('?messages= must be a JSON list of {"role": ..., "content": ...} objects');
  }
  const ok = (m: unknown): m is ChatMessage =>
    typeof m === 'object' && m !== null && typeof (m as ChatMessage).role === 'string' && typeof (m as ChatMessage).content === 'string';
  if (!Array.isArray(list) || !list.every(ok)) throw new Error('?messages= must be a JSON list of {"role": ..., "content": ...} objects');
  for (const [i, m] of list.entries()) {
    if (i === 0 && m.role === 'system') ui.system.value = m.content;
    else {
      turns.push({ role: m.role, content: m.content });
      bubble(m.role, m.content);
    }
  }
}

ui.model.value = modelId;
ui.dtype.value = LINEAR_DTYPES.includes(dtypeParam as LinearDType) ? dtypeParam : 'q4';
ui.kv.value = KV_DTYPES.includes(kvParam as KvDType) ? kvParam : 'int8';
for (const [name, input] of [['max_tokens', ui.maxTokens], ['temperature', ui.temperature], ['system', ui.system], ['prompt', ui.input]] as const) {
  const v = params.get(name);
  if (v !== null) input.value = v;
}

ui.schema.value = params.get('schema') ?? '';
ui.tools.checked = params.get('tools') === '1';
ui.toolChoice.value = params.get('tool_choice') === 'required' ? 'required' : 'auto';
ui.structured.open = ui.schema.value !== '' || ui.tools.checked;

// A new model, dtype or KV type reloads the page: a fresh device, and a URL that can be shared.
ui.form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const next = new URLSearchParams(params);
  for (const k of ['prompt', 'messages', 'autorun']) next.delete(k);
  next.set('model', ui.model.value.trim() || DEFAULT_CHAT_MODEL);
  next.set('dtype', ui.dtype.value);
  next.set('kv', ui.kv.value);
  location.search = next.toString();
});
ui.sendForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  void send(ui.input.value);
});
ui.input.addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    void send(ui.input.value);
  }
});
ui.stop.addEventListener('click', () => abort?.abort());
ui.clear.addEventListener('click', newChat);
ui.system.addEventListener('input', publish);

Promise.resolve()
  .then(startingMessages)
  .then(publish)
  .then(load)
  .then(() => {
    if (params.get('autorun') !== '1') return;
    if (ui.input.value.trim()) return send(ui.input.value);
    if (turns.at(-1)?.role === 'user') return reply();
  })
  .catch(showError);

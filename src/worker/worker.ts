/**
 * The webq worker script: runs BertModel and LlmModel off the page's thread. It answers the
 * requests of src/worker/protocol.ts: one WebGPU device per worker (made by `init`), any number
 * of models by handle, one AbortController per running request. dist/webq.worker.js is this file
 * bundled (scripts/build-browser.mjs); under Vite, `new Worker(new URL('./worker.ts',
 * import.meta.url), { type: 'module' })` runs it from the sources.
 */
import { BertModel } from '../api/bert.ts';
import { LlmModel } from '../api/llm.ts';
import { WebqError } from '../errors.ts';
import { GpuContext } from '../gpu/context.ts';
import type { DownloadProgress } from '../io/hub/progress.ts';
import { abortableFetch } from './abortable-fetch.ts';
import type { BertInfo, LlmInfo, Op, Reply, Request, Results, SerializedError } from './protocol.ts';

interface WorkerScope {
  postMessage(message: Reply, transfer?: Transferable[]): void;
  addEventListener(type: 'message', listener: (ev: MessageEvent<Request>) => void): void;
}
const scope = globalThis as unknown as WorkerScope;

let device: Promise<GpuContext> | undefined;
const models = new Map<number, BertModel | LlmModel>();
const running = new Map<number, AbortController>();
let nextModel = 1;
const now = () => performance.now();

function post(reply: Reply, transfer: Transferable[] = []): void {
  scope.postMessage(reply, transfer);
}

function serialize(e: unknown): SerializedError {
  if (e instanceof WebqError) return { name: e.name, message: e.message, code: e.code };
  if (e instanceof Error) return { name: e.name, message: e.message };
  return { name: 'Error', message: String(e) };
}

/** The buffers under `arrays`, each once (two views of one buffer cannot both be transferred). */
function buffersOf(arrays: Float32Array[]): Transferable[] {
  return [...new Set(arrays.map((a) => a.buffer))].filter((b): b is ArrayBuffer => b instanceof ArrayBuffer);
}

function model(handle: number): BertModel | LlmModel {
  const m = models.get(handle);
  if (!m) throw new WebqError('DISPOSED', `model ${handle} is not loaded in this worker (disposed?)`);
  return m;
}
const bert = (handle: number) => model(handle) as BertModel;
const llm = (handle: number) => model(handle) as LlmModel;

/** A plain-data copy (configs are JSON data; this keeps anything else from failing the post). */
const data = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

async function load(req: Extract<Request, { op: 'load' }>, signal: AbortSignal): Promise<Results['load']> {
  const ctx = await (device ??= GpuContext.create());
  const fetchFn = abortableFetch((...a) => fetch(...a), signal);
  const common = { context: ctx, fetch: fetchFn, onProgress: (event: DownloadProgress) => post({ id: req.id, type: 'progress', event }) };
  const t0 = now();
  const m = req.kind === 'bert' ? await BertModel.load(req.location, { ...req.options, ...common }) : await LlmModel.load(req.location, { ...req.options, ...common });
  try {
    signal.throwIfAborted();
    const loadMs = now() - t0;
    let warmupMs = 0;
    if (req.warmup) {
      // Small forwards compile the shaders now, so the first real call does not wait for them.
      post({ id: req.id, type: 'warmup' });
      const t1 = now();
      // Matrix products take one kernel up to 4 rows and another beyond (src/ops/matmul.ts,
      // qmatmul.ts): the warm-up runs both sizes.
      if (m instanceof BertModel) {
        await m.embed(['a warm-up sentence that is several tokens long']);
        await m.embed(['hi']);
      } else {
        // A prompt no real one starts with (end-of-sequence ids), so no cached prefix is shared:
        // a prefill of 8 rows, decode steps of one, greedy and sampled (both sampler entry points).
        const prompt = new Array<number>(Math.max(1, Math.min(8, m.contextLength - 3))).fill(m.eosTokenIds[0] ?? 0);
        await m.generate(prompt, { maxTokens: 2, temperature: 0, ignoreEos: true, signal });
        await m.generate(prompt, { maxTokens: 1, temperature: 1, seed: 1, ignoreEos: true, signal });
      }
      warmupMs = now() - t1;
      signal.throwIfAborted();
    }
    const handle = nextModel++;
    models.set(handle, m);
    const info: BertInfo | LlmInfo =
      m instanceof BertModel
        ? { kind: 'bert', config: data(m.config), dtype: m.dtype, activations: m.activations, describe: m.describe, weightBytes: m.weightBytes, version: m.version, pooling: { ...m.pooling }, loadMs, warmupMs }
        : {
            kind: 'llm', config: data(m.config), dtype: m.dtype, activations: m.activations, kv: m.kv, describe: m.describe, weightBytes: m.weightBytes, version: m.version, kvBytes: m.kvBytes,
            contextLength: m.contextLength, generationDefaults: data(m.generationDefaults), eosTokenIds: [...m.eosTokenIds], hasChatTemplate: m.chatTemplate !== null, loadMs, warmupMs,
          };
    return { model: handle, info };
  } catch (e) {
    m.dispose();
    throw e;
  }
}

async function handle(req: Request, signal: AbortSignal): Promise<{ value: Results[Op]; transfer?: Transferable[] }> {
  switch (req.op) {
    case 'init': {
      if (device) throw new WebqError('WORKER_PROTOCOL', 'this worker already has a device');
      const ctx = await (device = GpuContext.create(req.device));
      return { value: { ...ctx.caps } };
    }
    case 'load':
      return { value: await load(req, signal) };
    case 'embed': {
      const v = await bert(req.model).embed(req.texts, req.options);
      return { value: v, transfer: buffersOf(v) };
    }
    case 'classify':
      return { value: await bert(req.model).classify(req.texts, req.options) };
    case 'tokenClassify':
      return { value: await bert(req.model).tokenClassify(req.texts, req.options) };
    case 'logits': {
      const r = await llm(req.model).logits(req.prompt, req.options);
      return { value: r, transfer: buffersOf([r.logits]) };
    }
    case 'generate': {
      const m = llm(req.model);
      if (!req.stream) return { value: await m.generate(req.prompt, { ...req.options, signal }) };
      const s = m.generate(req.prompt, { ...req.options, signal, stream: true });
      for await (const chunk of s) post({ id: req.id, type: 'chunk', chunk });
      return { value: await s.result };
    }
    case 'chat': {
      const m = llm(req.model);
      if (!req.request?.stream) return { value: await m.chat.completions.create({ ...req.request, stream: false }, { signal }) };
      for await (const chunk of m.chat.completions.create({ ...req.request, stream: true }, { signal })) post({ id: req.id, type: 'chunk', chunk });
      return { value: null };
    }
    case 'applyDelta': {
      const m = model(req.model);
      const applied = await m.applyDelta(req.delta, req.options);
      return { value: { applied, version: m.version, weightBytes: m.weightBytes } };
    }
    case 'recover': {
      const m = model(req.model);
      return { value: { recovered: await m.recover(), weightBytes: m.weightBytes } };
    }
    case 'loseDevice':
      // As WEBGL_lose_context.loseContext(): the device goes as a driver reset takes it.
      if (device) {
        const ctx = await device;
        ctx.dev.gpu.destroy();
        await ctx.dev.settled(); // the loss is known when the caller hears back
      }
      return { value: null };
    case 'dispose':
      models.get(req.model)?.dispose();
      models.delete(req.model);
      return { value: null };
    default:
      throw new WebqError('WORKER_PROTOCOL', `unknown request ${JSON.stringify((req as { op?: unknown }).op)}`);
  }
}

scope.addEventListener('message', (ev) => {
  const req = ev.data;
  if (req.op === 'abort') return void running.get(req.id)?.abort();
  const ac = new AbortController();
  running.set(req.id, ac);
  handle(req, ac.signal)
    .then(({ value, transfer }) => post({ id: req.id, type: 'result', value }, transfer))
    // A failed request, or a result that could not be posted: the caller hears why either way.
    .catch((e: unknown) => post({ id: req.id, type: 'error', error: serialize(e) }))
    .finally(() => running.delete(req.id));
});

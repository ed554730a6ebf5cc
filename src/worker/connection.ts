/**
 * WebqWorker: the main thread's end of one webq worker (src/worker/worker.ts), which holds a WebGPU
 * device and any number of models. It numbers requests, routes each reply to its caller, turns
 * aborts into `abort` messages and worker-side errors back into WebqErrors with the same code and
 * message. WorkerBertModel and WorkerLlmModel are built on it; start one yourself to share a worker
 * (and its device) between models.
 */
import { WebqError } from '../errors.ts';
import type { Capabilities } from '../gpu/device.ts';
import type { DownloadProgress } from '../io/hub/progress.ts';
import type { Op, Reply, Request, RequestBody, Results, SerializedError, WorkerDeltaInput } from './protocol.ts';
import { defaultWorkerUrl } from './script-url.ts';

// Empty, so that it merges with lib DOM's Worker (or Deno's) in a consumer's build and is an opaque
// object where there is none (Node without lib DOM); see src/gpu/webgpu-types.ts.
declare global {
  interface Worker {}
}

/** A Web Worker. */
export type DomWorker = globalThis.Worker;

export interface WorkerStartOptions {
  /**
   * A Worker already running webq's worker script (a module worker), e.g. one your bundler made:
   * `new Worker(new URL('./node_modules/webq/dist/webq.worker.js', import.meta.url), { type: 'module' })`.
   */
  worker?: DomWorker;
  /** The worker script's URL; default beside webq (dist/webq.worker.js next to dist/webq.browser.js). */
  workerUrl?: string | URL;
  /** Allow shader-f16 on the worker's device (default true). */
  f16?: boolean;
  /** Kernel family on the worker's device; default by adapter. */
  kernels?: 'gpu' | 'cpu';
}

/** What a caller hears while its request runs. */
export interface RequestHandlers {
  progress?: (e: DownloadProgress) => void;
  warmup?: () => void;
  chunk?: (c: unknown) => void;
  signal?: AbortSignal;
}

type Pending = RequestHandlers & { resolve(v: unknown): void; reject(e: unknown): void };

/** The worker's error as the main thread's: a WebqError keeps its code, name and message. */
export function rebuildError(e: SerializedError): Error {
  if (e.code !== undefined) {
    const err = new WebqError(e.code, e.message);
    err.name = e.name;
    return err;
  }
  const native: Record<string, ErrorConstructor> = { TypeError, RangeError, SyntaxError, ReferenceError };
  if (native[e.name]) return new native[e.name](e.message);
  if (e.name === 'AbortError' && typeof DOMException !== 'undefined') return new DOMException(e.message, 'AbortError');
  const err = new Error(e.message);
  err.name = e.name;
  return err;
}

export class WebqWorker {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private dead: Error | undefined;
  private device: Capabilities | undefined;

  private constructor(worker: Worker) {
    this.worker = worker;
  }

  /** The worker's WebGPU adapter and device features. */
  get caps(): Capabilities {
    return this.device!;
  }

  /** Starts a worker (or adopts `options.worker`) and creates its WebGPU device. */
  static async start(options: WorkerStartOptions = {}): Promise<WebqWorker> {
    let worker = options.worker;
    const url = options.workerUrl ?? defaultWorkerUrl();
    if (!worker) {
      if (typeof Worker === 'undefined') {
        throw new WebqError('NO_WORKER', 'Web Workers are not available in this runtime (Node has none): use BertModel / LlmModel directly, or run in a browser or Deno');
      }
      worker = new Worker(url, { type: 'module', name: 'webq' });
    }
    const w = new WebqWorker(worker);
    w.listen(options.worker ? 'the webq worker' : `the webq worker script ${String(url)}`);
    try {
      w.device = await w.request({ op: 'init', device: { f16: options.f16, kernels: options.kernels } });
      return w;
    } catch (e) {
      w.terminate();
      throw e;
    }
  }

  private listen(what: string): void {
    this.worker.addEventListener('message', (ev: MessageEvent<Reply>) => this.onReply(ev.data));
    // A script that 404s, fails to parse or throws at the top level: the start fails, saying so.
    // (Later, requests are answered one by one; a stray error there only reaches the console.)
    this.worker.addEventListener('error', (ev: ErrorEvent) => {
      if (this.device) return;
      ev.preventDefault();
      const detail = ev.message ? `: ${ev.message}` : ' (no details: is the URL right, and served as JavaScript?)';
      this.fail(new WebqError('WORKER_FAILED', `${what} failed${detail}; pass workerUrl (or a worker) pointing at webq.worker.js`));
    });
    this.worker.addEventListener('messageerror', () => this.fail(new WebqError('WORKER_FAILED', `${what} sent a message that could not be read`)));
  }

  private fail(e: Error): void {
    this.dead ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  private onReply(r: Reply): void {
    const p = this.pending.get(r.id);
    if (!p) return; // a request whose caller has gone (terminated)
    switch (r.type) {
      case 'progress':
        return p.progress?.(r.event);
      case 'warmup':
        return p.warmup?.();
      case 'chunk':
        return p.chunk?.(r.chunk);
      case 'result':
        this.pending.delete(r.id);
        return p.resolve(r.value);
      case 'error':
        this.pending.delete(r.id);
        // Aborted by the caller: the caller's reason, as a local call would throw it.
        return p.reject(p.signal?.aborted ? p.signal.reason : rebuildError(r.error));
    }
  }

  /** Sends one request and settles with its result. (For WorkerBertModel and WorkerLlmModel.) */
  request<K extends Op>(req: RequestBody & { op: K }, on: RequestHandlers = {}): Promise<Results[K]> {
    if (this.dead) return Promise.reject(this.dead);
    if (on.signal?.aborted) return Promise.reject(on.signal.reason);
    const id = this.nextId++;
    return new Promise<Results[K]>((resolve, reject) => {
      const signal = on.signal;
      const onAbort = () => this.worker.postMessage({ id, op: 'abort' } satisfies Request);
      signal?.addEventListener('abort', onAbort, { once: true });
      const done = () => signal?.removeEventListener('abort', onAbort);
      this.pending.set(id, {
        ...on,
        resolve: (v) => (done(), resolve(v as Results[K])),
        reject: (e) => (done(), reject(e)),
      });
      try {
        this.worker.postMessage({ ...req, id } as Request);
      } catch (e) {
        // Something in the request cannot be cloned (a function in the options, say).
        this.pending.delete(id);
        done();
        reject(new WebqError('BAD_OPTION', `cannot send this call to the worker: ${e instanceof Error ? e.message : e}`));
      }
    });
  }

  /**
   * Destroys the worker's WebGPU device as a driver reset would (WEBGL_lose_context's loseContext
   * for WebGPU): for testing a page's recovery. Calls running reject with a GPUDeviceError;
   * models recover() (or recover by themselves with autoRecover).
   */
  loseDevice(): Promise<void> {
    return this.request({ op: 'loseDevice' }).then(() => undefined);
  }

  /** Stops the worker at once: its models and device go with it; calls still running reject. */
  terminate(): void {
    this.worker.terminate();
    this.fail(new WebqError('WORKER_TERMINATED', 'the webq worker was terminated'));
  }
}

/**
 * Values pushed by one side, read by a `for await` on the other; ends on end() or fail(). A reader
 * that stops early (break, return, a throw in its loop body) calls `onStop`, which ends the
 * request in the worker as ending a local stream ends its generation.
 */
export class Channel<T> implements AsyncIterable<T> {
  constructor(private readonly onStop?: () => void) {}

  private readonly queue: T[] = [];
  private waiting: ((r: IteratorResult<T>) => void) | undefined;
  private failWaiting: ((e: unknown) => void) | undefined;
  private ended = false;
  private error: unknown;
  private failed = false;

  push(v: T): void {
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = this.failWaiting = undefined;
      w({ value: v, done: false });
    } else this.queue.push(v);
  }

  end(): void {
    this.ended = true;
    this.waiting?.({ value: undefined, done: true });
    this.waiting = this.failWaiting = undefined;
  }

  fail(e: unknown): void {
    this.failed = true;
    this.error = e;
    this.failWaiting?.(e);
    this.waiting = this.failWaiting = undefined;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    try {
      for (;;) {
        if (this.queue.length) yield this.queue.shift()!;
        else if (this.failed) throw this.error;
        else if (this.ended) return;
        else {
          const r = await new Promise<IteratorResult<T>>((resolve, reject) => {
            this.waiting = resolve;
            this.failWaiting = reject;
          });
          if (r.done) return;
          yield r.value;
        }
      }
    } finally {
      if (!this.ended && !this.failed) this.onStop?.();
    }
  }
}

/** How a Worker* model gets its worker; the rest of its load options go to the worker. */
export interface WorkerModelOptions {
  /**
   * A started WebqWorker to share (its device too: dispose() then leaves it running), or a Worker
   * running webq's worker script (the model takes it over). Default: a new worker for this model.
   */
  worker?: WebqWorker | DomWorker;
  /** For a new worker: the worker script's URL (default: webq.worker.js beside webq). */
  workerUrl?: string | URL;
  /** For a new worker's device: allow shader-f16 (default true), kernel family. */
  f16?: boolean;
  kernels?: 'gpu' | 'cpu';
  /**
   * Run one small forward right after loading (embed a short text, generate two tokens), so the
   * shaders are compiled during load and not on the first call (default true).
   */
  warmup?: boolean;
  /** Called when the warm-up forward starts (the downloads and the upload are done). */
  onWarmup?: () => void;
  /** Stops the load (downloads included); the load then rejects with the signal's reason. */
  signal?: AbortSignal;
  onProgress?: (e: DownloadProgress) => void;
}

const LOCAL_ONLY = ['worker', 'workerUrl', 'f16', 'kernels', 'warmup', 'onWarmup', 'signal', 'onProgress'] as const;

/**
 * Splits a Worker* model's options: what stays on the main thread, and the load options the
 * worker gets. A fetch function or a GpuContext cannot cross to a worker: that is an error.
 */
export function splitOptions<T extends WorkerModelOptions>(opts: T): { local: WorkerModelOptions; remote: Omit<T, (typeof LOCAL_ONLY)[number]> } {
  for (const k of ['fetch', 'context'] as const) {
    if (k in opts && (opts as Record<string, unknown>)[k] !== undefined) {
      throw new WebqError('BAD_OPTION', `option '${k}' cannot be passed to a model in a worker (it cannot cross to another thread); load with BertModel / LlmModel on this thread to use it`);
    }
  }
  const local: Record<string, unknown> = {};
  const remote: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(opts)) ((LOCAL_ONLY as readonly string[]).includes(k) ? local : remote)[k] = v;
  return { local: local as WorkerModelOptions, remote: remote as Omit<T, (typeof LOCAL_ONLY)[number]> };
}

/** The worker a model loads into, and whether the model owns it (its dispose() then ends it). */
export async function workerFor(o: WorkerModelOptions): Promise<{ worker: WebqWorker; owned: boolean }> {
  if (o.worker instanceof WebqWorker) return { worker: o.worker, owned: false };
  return { worker: await WebqWorker.start({ worker: o.worker, workerUrl: o.workerUrl, f16: o.f16, kernels: o.kernels }), owned: true };
}

/**
 * A delta for applyDelta in a worker: bytes and Blobs as they are, a URL (or a string, resolved
 * against the page) as an absolute URL the worker fetches. An opened Delta cannot cross.
 */
export function deltaForWorker(d: unknown): WorkerDeltaInput {
  if (d instanceof ArrayBuffer || d instanceof Uint8Array || (typeof Blob !== 'undefined' && d instanceof Blob)) return d;
  if (d instanceof URL) return d.href;
  if (typeof d === 'string') {
    const base = (globalThis as { location?: { href?: string } }).location?.href;
    return base ? new URL(d, base).href : d;
  }
  throw new WebqError('BAD_OPTION', 'applyDelta in a worker takes the delta as a URL, a Blob or its bytes (an opened Delta cannot cross to the worker)');
}

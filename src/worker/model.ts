/**
 * What WorkerBertModel and WorkerLlmModel share: the load in a worker (a worker the model started
 * ends if the load fails), the model's handle there, the weight bytes and version that applyDelta
 * and recover move, and dispose. Each subclass adds its architecture's calls.
 */
import type { ApplyDeltaOptions, DeltaApplied } from '../delta/loaded-update.ts';
import { WebqError } from '../errors.ts';
import type { Activations, LinearDType } from '../ops/linear.ts';
import { deltaForWorker, splitOptions, workerFor, type WebqWorker, type WorkerModelOptions } from './connection.ts';
import type { BertInfo, LlmInfo, RequestBody } from './protocol.ts';

type Info = BertInfo | LlmInfo;
type InfoOf<K extends Info['kind']> = Extract<Info, { kind: K }>;
const CLASS_NAME = { bert: 'WorkerBertModel', llm: 'WorkerLlmModel' } as const;

export abstract class WorkerModel<I extends Info> {
  readonly config: I['config'];
  readonly dtype: LinearDType;
  /** What the quantized Linears do with their input (BertModel.activations, LlmModel.activations). */
  readonly activations: Activations;
  readonly describe: string;
  /** Milliseconds the load took in the worker (downloads, upload), and the warm-up after it. */
  readonly loadMs: number;
  readonly warmupMs: number;
  /** The worker the model lives in. */
  readonly worker: WebqWorker;
  protected readonly handle: number;
  private bytes: number;
  private modelVersion: string | null;
  private readonly ownsWorker: boolean;
  private disposed: Promise<void> | undefined;

  protected constructor(worker: WebqWorker, ownsWorker: boolean, handle: number, info: I) {
    this.worker = worker;
    this.ownsWorker = ownsWorker;
    this.handle = handle;
    this.config = info.config;
    this.dtype = info.dtype;
    this.activations = info.activations;
    this.describe = info.describe;
    this.bytes = info.weightBytes;
    this.modelVersion = info.version;
    this.loadMs = info.loadMs;
    this.warmupMs = info.warmupMs;
  }

  /** Loads `location` as `kind` in a worker (started here, or the one `opts` gives) and makes the model with `make`. */
  protected static async loadIn<K extends Info['kind'], M>(kind: K, location: string, opts: WorkerModelOptions, make: (worker: WebqWorker, owned: boolean, handle: number, info: InfoOf<K>) => M): Promise<M> {
    const { local, remote } = splitOptions(opts);
    const { worker, owned } = await workerFor(local);
    try {
      const req = { op: 'load', kind, location: String(location), options: remote, warmup: local.warmup ?? true } as RequestBody & { op: 'load' };
      const { model, info } = await worker.request(req, { progress: local.onProgress, warmup: local.onWarmup, signal: local.signal });
      if (info.kind !== kind) throw new WebqError('WORKER_PROTOCOL', `the worker loaded a ${info.kind} model for ${CLASS_NAME[kind]}`);
      return make(worker, owned, model, info as InfoOf<K>);
    } catch (e) {
      if (owned) worker.terminate();
      throw e;
    }
  }

  /** Weight bytes on the GPU. */
  get weightBytes(): number {
    return this.bytes;
  }

  /** The model's version, as the model's in the worker (moved by applyDelta). */
  get version(): string | null {
    return this.modelVersion;
  }

  /**
   * applyDelta of the model in the worker: the delta as a URL (a string is resolved against the
   * page), a Blob or its bytes (copied to the worker).
   */
  async applyDelta(delta: string | URL | Blob | ArrayBuffer | Uint8Array, opts: ApplyDeltaOptions = {}): Promise<DeltaApplied> {
    this.check();
    const r = await this.worker.request({ op: 'applyDelta', model: this.handle, delta: deltaForWorker(delta), options: opts });
    this.bytes = r.weightBytes;
    this.modelVersion = r.version;
    return r.applied;
  }

  protected check(): void {
    if (this.disposed) throw new WebqError('DISPOSED', `${this.describe}: this model was disposed`);
  }

  /**
   * As recover() of the model in the worker: after a device loss, a new device for the worker and
   * the weights uploaded again; calls wait for it. False when there was nothing to do.
   */
  async recover(): Promise<boolean> {
    this.check();
    const r = await this.worker.request({ op: 'recover', model: this.handle });
    this.bytes = r.weightBytes;
    return r.recovered;
  }

  /** Frees the model in the worker, and ends the worker if the model started it. */
  dispose(): Promise<void> {
    const end = () => (this.ownsWorker ? this.worker.terminate() : undefined);
    return (this.disposed ??= this.worker.request({ op: 'dispose', model: this.handle }).then(end, end));
  }
}

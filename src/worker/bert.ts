/**
 * WorkerBertModel: BertModel in a dedicated worker. Same load options, same embed / classify,
 * same errors (WebqErrors with the same code and message); the page's thread only posts texts and
 * receives the vectors (transferred, not copied).
 */
import type { BertLoadOptions, Classification, EmbedOptions, TextOptions } from '../api/bert.ts';
import type { ApplyDeltaOptions, DeltaApplied } from '../delta/loaded-update.ts';
import { WebqError } from '../errors.ts';
import type { BertConfig } from '../models/config.ts';
import type { Activations, LinearDType } from '../ops/linear.ts';
import { deltaForWorker, splitOptions, workerFor, type WebqWorker, type WorkerModelOptions } from './connection.ts';
import type { BertInfo } from './protocol.ts';

export type WorkerBertLoadOptions = Omit<BertLoadOptions, 'onProgress' | 'fetch' | 'context'> & WorkerModelOptions;

export class WorkerBertModel {
  readonly config: BertConfig;
  readonly dtype: LinearDType;
  /** What the quantized Linears do with their input (BertModel.activations). */
  readonly activations: Activations;
  readonly describe: string;
  /** Weight bytes on the GPU. */
  readonly pooling: Required<EmbedOptions>;
  /** Milliseconds the load took in the worker (downloads, upload), and the warm-up forward after it. */
  readonly loadMs: number;
  readonly warmupMs: number;
  /** The worker the model lives in. */
  readonly worker: WebqWorker;
  private readonly handle: number;
  private bytes: number;
  private modelVersion: string | null;
  private readonly ownsWorker: boolean;
  private disposed: Promise<void> | undefined;

  private constructor(worker: WebqWorker, ownsWorker: boolean, handle: number, info: BertInfo) {
    this.worker = worker;
    this.ownsWorker = ownsWorker;
    this.handle = handle;
    this.config = info.config;
    this.dtype = info.dtype;
    this.activations = info.activations;
    this.describe = info.describe;
    this.bytes = info.weightBytes;
    this.modelVersion = info.version;
    this.pooling = info.pooling;
    this.loadMs = info.loadMs;
    this.warmupMs = info.warmupMs;
  }

  /** Loads `location` (a folder URL or a hub id) in a worker: see BertLoadOptions and WorkerModelOptions. */
  static async load(location: string, opts: WorkerBertLoadOptions = {}): Promise<WorkerBertModel> {
    const { local, remote } = splitOptions(opts);
    const { worker, owned } = await workerFor(local);
    try {
      const { model, info } = await worker.request(
        { op: 'load', kind: 'bert', location: String(location), options: remote, warmup: local.warmup ?? true },
        { progress: local.onProgress, warmup: local.onWarmup, signal: local.signal },
      );
      if (info.kind !== 'bert') throw new WebqError('WORKER_PROTOCOL', `the worker loaded a ${info.kind} model for WorkerBertModel`);
      return new WorkerBertModel(worker, owned, model, info);
    } catch (e) {
      if (owned) worker.terminate();
      throw e;
    }
  }

  /** Weight bytes on the GPU. */
  get weightBytes(): number {
    return this.bytes;
  }

  /** The model's version, as BertModel.version (moved by applyDelta). */
  get version(): string | null {
    return this.modelVersion;
  }

  /**
   * BertModel.applyDelta in the worker: the delta as a URL (a string is resolved against the page), a
   * Blob or its bytes (copied to the worker).
   */
  async applyDelta(delta: string | URL | Blob | ArrayBuffer | Uint8Array, opts: ApplyDeltaOptions = {}): Promise<DeltaApplied> {
    this.check();
    const r = await this.worker.request({ op: 'applyDelta', model: this.handle, delta: deltaForWorker(delta), options: opts });
    this.bytes = r.weightBytes;
    this.modelVersion = r.version;
    return r.applied;
  }

  private check(): void {
    if (this.disposed) throw new WebqError('DISPOSED', `${this.describe}: this model was disposed`);
  }

  /** One vector per text, as BertModel.embed. */
  async embed(texts: string[], opts: EmbedOptions & TextOptions = {}): Promise<Float32Array[]> {
    this.check();
    return this.worker.request({ op: 'embed', model: this.handle, texts, options: opts });
  }

  /** Labels and softmax scores, as BertModel.classify. */
  async classify(texts: string[], opts: TextOptions = {}): Promise<Classification[]> {
    this.check();
    return this.worker.request({ op: 'classify', model: this.handle, texts, options: opts });
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
    return (this.disposed ??= this.worker.request({ op: 'dispose', model: this.handle }).then(
      () => (this.ownsWorker ? this.worker.terminate() : undefined),
      () => (this.ownsWorker ? this.worker.terminate() : undefined),
    ));
  }
}

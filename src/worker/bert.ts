/**
 * WorkerBertModel: BertModel in a dedicated worker. Same load options, same embed / classify / tokenClassify,
 * same errors (WebqErrors with the same code and message); the page's thread only posts texts and
 * receives the vectors (transferred, not copied).
 */
import type { BertLoadOptions, Classification, EmbedOptions, TextOptions } from '../api/bert.ts';
import type { TokenClassification, TokenClassifyOptions } from '../api/token-classification.ts';
import type { WebqWorker, WorkerModelOptions } from './connection.ts';
import { WorkerModel } from './model.ts';
import type { BertInfo } from './protocol.ts';

export type WorkerBertLoadOptions = Omit<BertLoadOptions, 'onProgress' | 'fetch' | 'context'> & WorkerModelOptions;

export class WorkerBertModel extends WorkerModel<BertInfo> {
  readonly pooling: Required<Pick<EmbedOptions, 'pooling' | 'normalize'>>;

  private constructor(worker: WebqWorker, ownsWorker: boolean, handle: number, info: BertInfo) {
    super(worker, ownsWorker, handle, info);
    this.pooling = info.pooling;
  }

  /** Loads `location` (a folder URL or a hub id) in a worker: see BertLoadOptions and WorkerModelOptions. */
  static load(location: string, opts: WorkerBertLoadOptions = {}): Promise<WorkerBertModel> {
    return WorkerModel.loadIn('bert', location, opts, (w, owned, handle, info) => new WorkerBertModel(w, owned, handle, info));
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

  /** Token labels or entity spans, as BertModel.tokenClassify. */
  async tokenClassify(texts: string[], opts: TokenClassifyOptions & TextOptions = {}): Promise<TokenClassification[]> {
    this.check();
    return this.worker.request({ op: 'tokenClassify', model: this.handle, texts, options: opts });
  }
}

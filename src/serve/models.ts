/**
 * The models a server holds, all on one GpuContext: LLMs (chat and text completions: Llama,
 * Mistral, Qwen, SmolLM, from folders, hub ids or GGUF files) and BERT encoders (embeddings),
 * each with its own queue, so requests to one model run one after another while different models
 * run side by side on the device. `id=location` names a model; otherwise its id is the location.
 */
import { modelTypeEntry } from '../models/registry.ts';
import { BertModel } from '../api/bert.ts';
import { LlmModel, type LlmLoadOptions } from '../api/llm.ts';
import { WebqError } from '../errors.ts';
import { isGgufLocation } from '../gguf/files.ts';
import { GpuContext } from '../gpu/context.ts';
import { openModelFiles } from '../io/hub/hub.ts';
import { isJsonObject } from '../quant/imports/common.ts';
import { loadTokenizer, type TextTokenizer } from '../text/tokenizer.ts';
import { ApiError, badRequest } from './errors.ts';
import type { ModelGauges } from './metrics.ts';
import { ModelQueue } from './queue.ts';

export type ModelKind = 'chat' | 'embedding';

export interface ServedModel {
  readonly id: string;
  readonly kind: ModelKind;
  readonly location: string;
  /** Unix seconds the model was loaded (OpenAI's `created`). */
  readonly created: number;
  readonly llm?: LlmModel;
  readonly bert?: BertModel;
  /** An encoder's tokenizer, to count prompt tokens for usage. */
  readonly tokenizer?: TextTokenizer;
  readonly queue: ModelQueue;
}

export type ServeLoadOptions = Omit<LlmLoadOptions, 'context' | 'embeddings' | 'group' | 'symmetric'>;

/** "id=location" -> both; "location" -> id = location. */
export function parseModelSpec(spec: string): { id: string; location: string } {
  const m = /^([A-Za-z0-9][\w.:-]*)=(.+)$/.exec(spec);
  return m && !/^[a-z]+:\/\//i.test(spec) ? { id: m[1], location: m[2] } : { id: spec, location: spec };
}

/** 'embedding' for an encoder (config.json model_type of an encoder in src/models/registry.ts), else 'chat'. */
async function kindOf(location: string, opts: ServeLoadOptions): Promise<ModelKind> {
  if (isGgufLocation(location, opts.file)) return 'chat';
  const files = await openModelFiles(location, opts);
  const config = await files.readJson('config.json');
  return isJsonObject(config) && typeof config.model_type === 'string' && modelTypeEntry(config.model_type)?.forward === 'encoder' ? 'embedding' : 'chat';
}

export class ModelRegistry {
  private constructor(
    private readonly models: Map<string, ServedModel>,
    readonly ctx: GpuContext,
    private readonly ownsContext: boolean,
  ) {}

  /** Loads every model (one after another, on one device); a failure frees what was loaded. */
  static async load(specs: readonly string[], opts: ServeLoadOptions & { queue: number; context?: GpuContext }): Promise<ModelRegistry> {
    if (specs.length === 0) throw new WebqError('BAD_OPTION', 'serve: give at least one model');
    const { queue, context, ...load } = opts;
    const ctx = context ?? (await GpuContext.create({ f16: load.f16, kernels: load.kernels }));
    const models = new Map<string, ServedModel>();
    const registry = new ModelRegistry(models, ctx, !context);
    try {
      for (const spec of specs) {
        const { id, location } = parseModelSpec(spec);
        if (models.has(id)) throw new WebqError('BAD_OPTION', `serve: two models are named "${id}"; name them with id=location`);
        const kind = await kindOf(location, load);
        // A chat model loaded with concurrency B runs up to B requests at once (they share decode forwards).
        const base = { id, kind, location, created: Math.floor(Date.now() / 1000), queue: new ModelQueue(id, queue, kind === 'chat' ? load.concurrency ?? 1 : 1) };
        if (kind === 'chat') {
          models.set(id, { ...base, llm: await LlmModel.load(location, { ...load, context: ctx }) });
        } else {
          const { dtype, revision, onProgress, cache, offline, refresh, hubUrl, cacheDir, fetch, headers, timeoutMs } = load;
          const bert = await BertModel.load(location, { dtype, revision, onProgress, cache, offline, refresh, hubUrl, cacheDir, fetch, headers, timeoutMs, context: ctx });
          models.set(id, { ...base, bert }); // held, so a failure below frees it with the rest
          const files = await openModelFiles(location, { revision, cache, offline, hubUrl, cacheDir, fetch, headers, timeoutMs });
          models.set(id, { ...base, bert, tokenizer: await loadTokenizer(files, { name: files.describe }) });
        }
      }
    } catch (e) {
      registry.dispose();
      throw e;
    }
    return registry;
  }

  list(): ServedModel[] {
    return [...this.models.values()];
  }

  /**
   * The model a request names (`model`), which must be of `kind`; without a name, the only model
   * of that kind. 404 for an unknown model (OpenAI's model_not_found), 400 for the wrong kind.
   */
  pick(requested: unknown, kind: ModelKind): ServedModel {
    const ofKind = this.list().filter((m) => m.kind === kind);
    if (requested === undefined || requested === null) {
      if (ofKind.length === 1) return ofKind[0];
      throw badRequest(`"model" is required: this server has ${ofKind.length === 0 ? `no ${kind} models` : `several ${kind} models (${ofKind.map((m) => m.id).join(', ')})`}`, 'model', 'missing_required_parameter');
    }
    if (typeof requested !== 'string') throw badRequest(`"model" must be a string, got ${JSON.stringify(requested)}`, 'model');
    const m = this.models.get(requested);
    if (!m) throw new ApiError(404, `The model \`${requested.slice(0, 200)}\` does not exist on this server; it serves ${this.list().map((x) => x.id).join(', ')} (GET /v1/models)`, 'invalid_request_error', 'model_not_found', 'model');
    if (m.kind !== kind) {
      const what = kind === 'chat' ? 'generates no text (it is an embedding model: use /v1/embeddings)' : 'makes no embeddings (it is a text generation model: use /v1/chat/completions or /v1/completions)';
      throw badRequest(`model "${m.id}" ${what}`, 'model', 'model_not_supported');
    }
    return m;
  }

  gauges(): ModelGauges[] {
    return this.list().map((m) => ({
      id: m.id,
      waiting: m.queue.waiting,
      running: m.queue.busy,
      weightBytes: m.llm?.weightBytes ?? m.bert?.weightBytes ?? 0,
      kvBytes: m.llm?.kvBytes ?? 0,
    }));
  }

  dispose(): void {
    for (const m of this.models.values()) (m.llm ?? m.bert)?.dispose();
    this.models.clear();
    if (this.ownsContext) this.ctx.dispose();
  }
}

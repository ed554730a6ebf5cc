/**
 * What BertModel and LlmModel share in their load, applyDelta and recover(), so both take the same
 * steps and clean up the same way:
 *
 *   load      loadCheckpoint: the options checked, the dtype resolved (the caller's, a pre-quantized
 *             file's, an imported format's, else the architecture's default; DTYPE_MISMATCH against
 *             a pre-quantized file), the checkpoint's tensors checked before any device is made,
 *             the context (the caller's or a new one), and on any failure one cleanup: what the
 *             build held, newest first, then the context if it was made here. The checkpoint
 *             closes either way.
 *   weights   LoadedWeights: the current version and the older ones calls still run on
 *             (src/delta/loaded-versions.ts), the version at load and the deltas since, and the
 *             device generation they live on.
 *   update    LoadedWeights.apply: one update at a time; the delta prepared and checked, what it
 *             changes uploaded, the rest verified, the model's guard measured and the swap made
 *             (LlmModel: in its queue of calls); on any failure the new upload is freed and the
 *             model stays as it was.
 *   recover   LoadedWeights.reload: the weights again on the context's new device (src/api/recovery.ts).
 */
import { checkGuard, guardError, loadedVersion, prepareUpdate, type ApplyDeltaOptions, type DeltaApplied, type DeltaInput, type PreparedUpdate } from '../delta/loaded-update.ts';
import { WeightVersions, type VersionedWeights } from '../delta/loaded-versions.ts';
import { WebqError } from '../errors.ts';
import { GpuContext } from '../gpu/context.ts';
import type { ModelFiles } from '../io/hub/model-files.ts';
import type { JsonValue } from '../io/json.ts';
import type { TensorStore } from '../io/safetensors/reader.ts';
import { EMBEDDING_DTYPES, type UploadOptions, type UploadReuse } from '../models/upload.ts';
import { ACTIVATIONS, LINEAR_DTYPES, type LinearDType } from '../ops/linear.ts';
import { parseQuantizationConfig } from '../quant/imports/index.ts';
import { readPrequantInfo, type PrequantInfo } from '../quant/prequantized.ts';
import type { ModelVersion } from '../quant/versions.ts';
import type { LlmLoadOptions } from './llm-options.ts';
import { isStale, reloadWeights, type AppliedDelta } from './recovery.ts';

/** The load options BertLoadOptions and LlmLoadOptions share (documented on each). */
export type ModelLoadOptions = Pick<LlmLoadOptions, 'dtype' | 'activations' | 'group' | 'symmetric' | 'embeddings' | 'context' | 'f16' | 'kernels'>;

/** What a model's build gets from loadCheckpoint. */
export interface Loading {
  store: TensorStore;
  ctx: GpuContext;
  dtype: LinearDType;
  prequant: PrequantInfo | null;
  version: ModelVersion | null;
  /** The caller's upload options (group, symmetric, embeddings, activations), kept for updates. */
  uploadOptions: UploadOptions;
  /** `x`, freed if the load fails after this point (newest first, before the context). */
  hold<T extends { dispose(): void }>(x: T): T;
}

/** Throws the option errors both loaders give (UNKNOWN_DTYPE, BAD_OPTION), before anything is read. */
export function checkLoadOptions(opts: ModelLoadOptions): void {
  if (opts.dtype !== undefined && !LINEAR_DTYPES.includes(opts.dtype)) throw new WebqError('UNKNOWN_DTYPE', `unknown dtype '${opts.dtype}': use one of ${LINEAR_DTYPES.join(', ')}`);
  if (opts.activations !== undefined && !ACTIVATIONS.includes(opts.activations)) throw new WebqError('BAD_OPTION', `unknown activations '${opts.activations}': use one of ${ACTIVATIONS.join(', ')}`);
  if (opts.embeddings !== undefined && !EMBEDDING_DTYPES.includes(opts.embeddings)) throw new WebqError('BAD_OPTION', `unknown embeddings '${opts.embeddings}': use one of ${EMBEDDING_DTYPES.join(', ')}`);
}

/**
 * Opens the checkpoint of `files` and runs `build` on it with the resolved dtype and a context
 * (see the top of this file). `arch.check` sees the store before any device is made (the
 * architecture's tensors all there); `arch.fallback` is the dtype of a float checkpoint.
 */
export async function loadCheckpoint<T>(
  files: ModelFiles,
  opts: ModelLoadOptions,
  arch: { fallback: LinearDType; quantizationConfig: JsonValue | null; check(store: TensorStore): void },
  build: (l: Loading) => Promise<T>,
): Promise<T> {
  const store = await files.checkpoint();
  const held: { dispose(): void }[] = [];
  let ctx: GpuContext | null = null;
  try {
    // A webq pre-quantized checkpoint fixes the dtype (its weights are already packed).
    const prequant = readPrequantInfo(store);
    // GPTQ / AWQ / compressed-tensors / bitsandbytes folders run in their own bits by default.
    const imported = parseQuantizationConfig(arch.quantizationConfig ?? undefined, `${files.describe}/config.json`);
    const dtype = (opts.dtype ?? prequant?.dtype ?? imported?.dtype ?? arch.fallback) as LinearDType;
    if (prequant && dtype !== prequant.dtype) {
      throw new WebqError('DTYPE_MISMATCH', `${files.describe}: is pre-quantized as ${prequant.dtype}; load it with dtype '${prequant.dtype}' (or quantize the float checkpoint to ${dtype})`);
    }
    arch.check(store);
    const version = loadedVersion(store.metadata, files.describe);
    ctx = opts.context ?? (await GpuContext.create({ f16: opts.f16, kernels: opts.kernels }));
    const uploadOptions = { group: opts.group, symmetric: opts.symmetric, embeddings: opts.embeddings, activations: opts.activations };
    const hold = <X extends { dispose(): void }>(x: X): X => (held.push(x), x);
    return await build({ store, ctx, dtype, prequant, version, uploadOptions, hold });
  } catch (e) {
    for (const x of held.reverse()) x.dispose();
    if (ctx && !opts.context) ctx.dispose();
    throw e;
  } finally {
    await store.close?.();
  }
}

/** The weights an update or a recovery uploads: `store` read with the load's options, reusing `reuse`'s objects. */
export type Upload<W> = (store: TensorStore, prequant: PrequantInfo | null, reuse?: UploadReuse) => Promise<W>;

/** How a model takes an update (LoadedWeights.apply). */
export interface UpdateSteps<W> {
  /** Throws when the model cannot take one now (disposed, or its device lost). Run at the start and just before the swap. */
  check(): void;
  /** With ApplyDeltaOptions.check: what is measured (for the message) and how, made before anything is read. */
  guard?(texts: readonly string[]): { what: string; measure(old: W, next: W): Promise<number> };
  /** Runs the guard and the swap when the model allows (LlmModel: in its queue of calls). */
  exclusive?<T>(fn: () => Promise<T>): Promise<T>;
  /** The model's own part of the swap (LlmModel: the decoder's weights), just before `next` becomes current. */
  swap?(next: W): void;
}

type Weights = VersionedWeights & { dispose(): void; readonly bytes: number; readonly uploadedBytes: number };

export class LoadedWeights<W extends Weights> {
  /** The current weights, and older versions that calls started before an update still run on. */
  versions: WeightVersions<W>;
  /** The model's version (moved by updates), or null for a file without one. */
  version: ModelVersion | null;
  /** The context's device generation the weights live on (reload() moves it). */
  private generation: number;
  /** The version at load, and the deltas applied since (reload() applies them again). */
  private readonly loadedAt: ModelVersion | null;
  private readonly deltas: AppliedDelta[] = [];
  /** Updates, one after another. */
  private updates: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly ctx: GpuContext,
    private readonly source: { describe: string; files: ModelFiles; dtype: LinearDType },
    private readonly upload: Upload<W>,
    weights: W,
    version: ModelVersion | null,
  ) {
    this.versions = new WeightVersions(weights);
    this.version = this.loadedAt = version;
    this.generation = ctx.generation;
  }

  get current(): W {
    return this.versions.current;
  }

  /** The weights live on a device that is gone (see recover()). */
  get stale(): boolean {
    return isStale(this.ctx, this.generation);
  }

  /** Moves the weights to the version `input` makes, after the updates before it (see the top of this file). */
  apply(input: DeltaInput, opts: ApplyDeltaOptions, steps: UpdateSteps<W>): Promise<DeltaApplied> {
    const run = this.updates.then(() => this.update(input, opts, steps));
    this.updates = run.catch(() => undefined);
    return run;
  }

  private async update(input: DeltaInput, opts: ApplyDeltaOptions, steps: UpdateSteps<W>): Promise<DeltaApplied> {
    steps.check();
    checkGuard(opts);
    const guard = opts.check && steps.guard?.(opts.check.texts);
    const u = await prepareUpdate({ ...this.source, version: this.version }, input, opts.publicKey);
    const old = this.versions.use();
    try {
      const next = await this.upload(u.store, u.prequant, u.reuse(old.weights.objects));
      try {
        await u.verifyRest();
        const swap = async (): Promise<DeltaApplied> => {
          steps.check();
          const error = guard && (await this.measure(u, guard, old.weights, next, opts.check!.maxError));
          steps.check();
          steps.swap?.(next);
          this.versions.replace(next);
          this.version = u.target;
          this.deltas.push({ input, publicKey: opts.publicKey });
          return { from: u.base.version, to: u.target.version, units: u.units, uploadedBytes: next.uploadedBytes, ...(error !== undefined && { error }) };
        };
        return await (steps.exclusive ? steps.exclusive(swap) : swap());
      } catch (e) {
        this.versions.discard(next);
        throw e;
      }
    } finally {
      old.release();
      await u.close();
    }
  }

  private async measure(u: PreparedUpdate, guard: ReturnType<NonNullable<UpdateSteps<W>['guard']>>, old: W, next: W, maxError: number): Promise<number> {
    const error = await guard.measure(old, next);
    if (!(error <= maxError)) throw guardError(u, guard.what, error, maxError);
    return error;
  }

  /**
   * The weights uploaded again on the context's current device at the model's version, and what
   * `build` makes on them (LlmModel: a decoder and its cache); the old ones, on the dead device,
   * are freed. Nothing changes if it fails.
   */
  async reload<B = null>(build?: (w: W) => B): Promise<B> {
    const { versions, built } = await reloadWeights({ ...this.source, loadedAt: this.loadedAt, current: this.version, deltas: this.deltas, upload: this.upload, build });
    this.versions.dispose();
    [this.versions, this.generation] = [versions, this.ctx.generation];
    return built;
  }

  dispose(): void {
    this.versions.dispose();
  }
}

/**
 * Getting a loaded model back after its device was lost (LlmModel.recover, BertModel.recover).
 *
 * The context gets a new device (GpuContext.recover); the model then uploads its weights again
 * from where they came from: its ModelFiles (the folder, or the download cache for hub ids and
 * URLs, which a hub model reads without the network), then every delta applied since the load,
 * in order, each reusing what the previous version uploaded, exactly as applyDelta did. So the
 * model comes back at the version it was at. A weights file that has moved to another version
 * since the load (patched on disk or in the cache) is used as it is when it is the model's
 * current version; any other version is refused (RECOVER_VERSION): reload the model.
 *
 * The deltas are kept as they were given (a path or URL is read again; bytes and Blobs stay in
 * memory; an opened Delta must stay open).
 */
import { loadedVersion, prepareUpdate, type DeltaInput } from '../delta/loaded-update.ts';
import { WeightVersions, type VersionedWeights } from '../delta/loaded-versions.ts';
import type { PublicKeyInput } from '../delta/sign.ts';
import { GPUDeviceError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { ModelFiles } from '../io/hub/model-files.ts';
import type { TensorStore } from '../io/safetensors/reader.ts';
import type { UploadReuse } from '../models/upload.ts';
import type { LinearDType } from '../ops/linear.ts';
import { readPrequantInfo, type PrequantInfo } from '../quant/prequantized.ts';
import type { ModelVersion } from '../quant/versions.ts';

/** A delta applied to a loaded model, kept to apply again after a device loss. */
export interface AppliedDelta {
  input: DeltaInput;
  publicKey?: PublicKeyInput;
}

export interface ReloadSpec<W extends VersionedWeights & { dispose(): void }> {
  describe: string;
  files: ModelFiles;
  dtype: LinearDType;
  /** The version the model was loaded at, and the one it is at now (after its deltas). */
  loadedAt: ModelVersion | null;
  current: ModelVersion | null;
  deltas: readonly AppliedDelta[];
  /** The architecture's upload of `store` (with `reuse` for a delta's version). */
  upload(store: TensorStore, prequant: PrequantInfo | null, reuse?: UploadReuse): Promise<W>;
}

/**
 * The model's weights at its current version, uploaded again on the context's current device,
 * and what `build` makes on them (a decoder and its cache); nothing is left on the GPU if either fails.
 */
export async function reloadWeights<W extends VersionedWeights & { dispose(): void }, B = null>(s: ReloadSpec<W> & { build?: (w: W) => B }): Promise<{ versions: WeightVersions<W>; built: B }> {
  const versions = await uploadAgain(s);
  try {
    return { versions, built: s.build ? s.build(versions.current) : (null as B) };
  } catch (e) {
    versions.dispose();
    throw e;
  }
}

async function uploadAgain<W extends VersionedWeights & { dispose(): void }>(s: ReloadSpec<W>): Promise<WeightVersions<W>> {
  const store = await s.files.checkpoint();
  let versions: WeightVersions<W> | null = null;
  try {
    const onDisk = loadedVersion(store.metadata, s.describe);
    const replay = onDisk?.version === s.current?.version ? [] : onDisk?.version === s.loadedAt?.version ? s.deltas : null;
    if (replay === null) {
      throw new GPUDeviceError(
        'RECOVER_VERSION',
        `${s.describe}: cannot recover: its weights file is now ${onDisk ? `version ${onDisk.version}` : 'without a version'}, neither version ${s.loadedAt?.version ?? '(none)'} it was loaded at nor ${s.current?.version ?? '(none)'} it is at; load the model again`,
      );
    }
    versions = new WeightVersions(await s.upload(store, readPrequantInfo(store)));
    let at = onDisk;
    for (const d of replay) {
      const u = await prepareUpdate({ describe: s.describe, version: at, files: s.files, dtype: s.dtype }, d.input, d.publicKey);
      try {
        const next = await s.upload(u.store, u.prequant, u.reuse(versions.current.objects));
        try {
          await u.verifyRest();
        } catch (e) {
          versions.discard(next);
          throw e;
        }
        versions.replace(next);
        at = u.target;
      } finally {
        await u.close();
      }
    }
    return versions;
  } catch (e) {
    versions?.dispose();
    throw e;
  } finally {
    await store.close?.();
  }
}

/**
 * The message of a call on a model whose buffers belong to a device that is gone (a model sharing
 * a context that another model recovered, or one whose recover() failed).
 */
export function staleError(describe: string): GPUDeviceError {
  return new GPUDeviceError('DEVICE_LOST', `${describe}: its GPU device was lost; call recover() (or load with autoRecover: true) to upload the model to a new device`);
}

/** Whether `ctx` is on a device newer than the one `generation` counted (the model's buffers are dead). */
export function isStale(ctx: GpuContext, generation: number): boolean {
  return ctx.generation !== generation;
}

/** Model versions and delta packages (`webq diff` / `webq patch`, applyDelta on loaded models, updateCachedModel on cached ones). */
export { sha256Hex } from '../quant/hash.ts';
export { readModelVersion, requireModelVersion, type ModelVersion, type UnitVersion, type StoredAs } from '../quant/versions.ts';
export { openDelta, DeltaError, DELTA_FORMAT, type Delta, type DeltaManifest, type OpenDeltaOptions, type EncodeDeltaOptions } from './format.ts';
export { generateDeltaKeys, importPrivateKey, importPublicKey, type PublicKeyInput } from './sign.ts';
export { diffModel, mergeDeltas, writeDeltaFile, type DeltaContents } from './diff.ts';
export { preparePatch, checkBaseVersion, type PatchBase, type PatchedModel } from './patch-prepare.ts';
export { patchModelFolder, type PatchOptions, type PatchReport } from './patch-disk.ts';
export { updateCachedModel, type CacheUpdateOptions, type CacheUpdateReport } from './patch-cache.ts';
export type { PatchStep } from '../io/patch-journal.ts';
export type { ApplyDeltaOptions, DeltaApplied, DeltaInput } from './loaded-update.ts';

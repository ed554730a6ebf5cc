/** Public surface of the io layer: byte sources, safetensors reading/writing, half-float bits. */
export { SafetensorsError, SourceError, type SafetensorsErrorCode, type SourceErrorCode } from './errors.ts';
export { DTYPES, DTYPE_SIZE, isDType, type DType, type TensorInfo } from './dtypes.ts';
export { parseStrictJson, JsonSyntaxError, JsonDuplicateKeyError, type JsonValue, type JsonObject } from './json.ts';
export {
  openSource,
  fileSource,
  bytesSource,
  blobSource,
  urlSource,
  type ByteSource,
  type SourceInput,
  type UrlSourceOptions,
} from './source.ts';
export { SafetensorsFile, type TensorStore, type OpenOptions } from './safetensors.ts';
export { MAX_HEADER_BYTES } from './safetensors-header.ts';
export { type ReadTarget, type ReadAsResult } from './convert.ts';
export { ShardedCheckpoint, readIndex, type ShardIndex, type Shard } from './sharded.ts';
export { openCheckpoint, type Checkpoint } from './checkpoint.ts';
export { encodeSafetensors, writeSafetensorsFile, type TensorToWrite } from './writer.ts';
export {
  f32ToF16Bits,
  f16BitsToF32,
  f32ToBf16Bits,
  bf16BitsToF32,
  f32ArrayToF16,
  f16ArrayToF32,
  bf16ArrayToF32,
  f32ArrayToBf16,
} from './half.ts';
export {
  openModelFiles,
  parseModelLocation,
  hubBaseUrl,
  DEFAULT_HUB_URL,
  HubError,
  type HubErrorCode,
  type ModelFiles,
  type ModelLocation,
  type OpenModelOptions,
  type DownloadProgress,
  type ProgressCallback,
  type ProgressInfo,
  type ProgressStatus,
} from './hub.ts';
export { openFileCache, defaultCacheDir, diskCache, browserCache, type FileCache, type CachedFile, type CacheEntry } from './cache.ts';
export { CacheQuotaError } from './cache-quota.ts';
export { listCachedModels, removeCachedModel, type CachedModel, type CacheLocationOptions, type RemoveCachedOptions } from './cached-models.ts';
export { DEFAULT_NETWORK_TIMEOUT_MS } from './http.ts';
export { DEFAULT_RECHECK_MS } from './remote-files.ts';

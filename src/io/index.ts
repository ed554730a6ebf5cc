/** Public surface of the io layer: byte sources, safetensors reading/writing, half-float bits. */
export { SafetensorsError, SourceError, type SafetensorsErrorCode, type SourceErrorCode } from './errors.ts';
export { DTYPES, DTYPE_SIZE, isDType, type DType, type TensorInfo } from './safetensors/dtypes.ts';
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
export { SafetensorsFile, type TensorStore, type OpenOptions } from './safetensors/reader.ts';
export { MAX_HEADER_BYTES } from './safetensors/header.ts';
export { type ReadTarget, type ReadAsResult } from './safetensors/convert.ts';
export { ShardedCheckpoint, readIndex, type ShardIndex, type Shard } from './safetensors/sharded.ts';
export { openCheckpoint, type Checkpoint } from './safetensors/checkpoint.ts';
export { encodeSafetensors, writeSafetensorsFile, type TensorToWrite } from './safetensors/writer.ts';
export {
  f32ToF16Bits,
  f16BitsToF32,
  f32ToBf16Bits,
  bf16BitsToF32,
  f32ArrayToF16,
  f16ArrayToF32,
  bf16ArrayToF32,
  f32ArrayToBf16,
} from './safetensors/half.ts';
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
} from './hub/hub.ts';
export { openFileCache, defaultCacheDir, diskCache, browserCache, type FileCache, type CachedFile, type CacheEntry } from './hub/cache.ts';
export { CacheQuotaError } from './hub/cache-quota.ts';
export { listCachedModels, removeCachedModel, type CachedModel, type CacheLocationOptions, type RemoveCachedOptions } from './hub/cached-models.ts';
export { DEFAULT_NETWORK_TIMEOUT_MS } from './http.ts';
export { DEFAULT_RECHECK_MS } from './hub/remote-files.ts';

/**
 * Loading progress, in the shape transformers.js reports it, so code written for its
 * `progress_callback` ports over. For each remote file that is found:
 *
 *   initiate -> (download -> progress ... ) -> done      (download/progress only when fetched)
 *
 * and once per model, when its checkpoint is open (every weight file local or reachable):
 * `ready`. Files that turn out not to exist (optional files) get no events.
 */
import { SafetensorsFile, type TensorStore } from '../safetensors/reader.ts';
import { ShardedCheckpoint } from '../safetensors/sharded.ts';
export type ProgressStatus = 'initiate' | 'download' | 'progress' | 'done' | 'ready';

export interface DownloadProgress {
  status: ProgressStatus;
  /** The model: a hub id ("org/name"), a folder URL or a folder path (transformers.js' `name`). */
  name: string;
  /** File name relative to the model, e.g. "model.safetensors" ("ready": the checkpoint's file). */
  file: string;
  /** Bytes so far: 0 at "initiate" and "download", the size at "done" and "ready". */
  loaded: number;
  /** The size when known (Content-Length, or the cached file's size). */
  total: number | undefined;
  /** loaded / total in percent (0-100), when total is known. */
  progress?: number;
}

/** transformers.js calls the event ProgressInfo. */
export type ProgressInfo = DownloadProgress;

export type ProgressCallback = (p: DownloadProgress) => void;

/** Sends events for one model to `callback` (which may be absent). A throwing callback is the caller's bug, not a failed download: it is not caught. */
export class ProgressReporter {
  constructor(
    private readonly name: string,
    private readonly callback: ProgressCallback | undefined,
  ) {}

  emit(status: ProgressStatus, file: string, loaded: number, total: number | undefined): void {
    if (!this.callback) return;
    const known = total !== undefined && Number.isFinite(total);
    const event: DownloadProgress = { status, name: this.name, file, loaded, total: known ? total : undefined };
    if (known) event.progress = total > 0 ? Math.min(100, (100 * loaded) / total) : 100;
    this.callback(event);
  }

  /** A file found in the cache: initiate, done. */
  cached(file: string, size: number): void {
    this.emit('initiate', file, 0, size);
    this.emit('done', file, size, size);
  }

  /**
   * The checkpoint is open: 'ready', with the bytes of its weight files. `file` defaults to the
   * last part of the checkpoint's name (its index for a sharded one).
   */
  ready(store: TensorStore, file?: string): void {
    const sharded = store instanceof ShardedCheckpoint;
    const files = sharded ? store.shards.map((s) => s.store) : [store];
    // A safetensors file is its header and its tensors, nothing else (the reader checks that).
    const bytes = files.reduce((sum, f) => sum + (f instanceof SafetensorsFile ? f.dataStart : 0) + f.tensors.reduce((s, t) => s + t.byteLength, 0), 0);
    this.emit('ready', file ?? (sharded ? store.index.name : store.name).split(/[\\/]/).pop()!, bytes, bytes);
  }
}

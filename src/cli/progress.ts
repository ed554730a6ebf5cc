/**
 * Download progress for model-loading commands, on stderr so stdout stays pure data (--json).
 * On a terminal one line is redrawn in place (a bar per file); elsewhere (logs, CI, pipes) a
 * redrawn line would be a mess of carriage returns, so each file gets one line when it is done.
 * Files read from the cache say nothing: only downloads are news.
 */
import type { ProgressStatus } from '../io/hub/progress.ts';
import type { CliIO } from './command.ts';
import { formatBytes } from './info.ts';

interface FileState {
  loaded: number;
  total: number | undefined;
  done: boolean;
}

const BAR = 24;
/** Redraws at most this often: a chunk callback per 64 KiB would flood a slow terminal. */
const REDRAW_MS = 100;

export class DownloadBar {
  private readonly files = new Map<string, FileState>();
  private lastDraw = 0;
  private drawn = false;

  constructor(private readonly io: CliIO) {}

  /**
   * Pass as BertLoadOptions.onProgress. Events without a status (the shape before
   * transformers.js' was adopted) count as 'progress'.
   */
  readonly onProgress = (e: { status?: ProgressStatus; file: string; loaded: number; total?: number }): void => {
    const status = e.status ?? 'progress';
    if (status === 'initiate' || status === 'ready') return;
    let st = this.files.get(e.file);
    if (!st) {
      if (status === 'done') return; // a cache hit: initiate, done, no download
      this.files.set(e.file, (st = { loaded: 0, total: undefined, done: false }));
    }
    if (st.done) return;
    st.loaded = e.loaded;
    st.total = e.total;
    if (status === 'done' || (st.total !== undefined && st.loaded >= st.total)) {
      st.done = true;
      this.clear();
      this.io.stderr(`downloaded ${e.file} (${formatBytes(st.loaded)})\n`);
      return;
    }
    if (!this.io.stderrIsTTY) return;
    const now = Date.now();
    if (now - this.lastDraw < REDRAW_MS) return;
    this.lastDraw = now;
    this.io.stderr(`\r\x1b[K${line(e.file, st)}`);
    this.drawn = true;
  };

  /**
   * Call once loading has ended (either way). Files whose size the server never said are only
   * known to be complete now, so they get their line here.
   */
  finish(ok: boolean): void {
    this.clear();
    if (!ok) return;
    for (const [file, st] of this.files) {
      if (!st.done) this.io.stderr(`downloaded ${file} (${formatBytes(st.loaded)})\n`);
      st.done = true;
    }
  }

  private clear(): void {
    if (this.drawn) this.io.stderr('\r\x1b[K');
    this.drawn = false;
  }
}

function line(file: string, st: FileState): string {
  if (st.total === undefined || st.total === 0) return `${file}  ${formatBytes(st.loaded)}`;
  const frac = Math.min(1, st.loaded / st.total);
  const full = Math.round(frac * BAR);
  const bar = '#'.repeat(full) + '-'.repeat(BAR - full);
  return `${file}  [${bar}] ${String(Math.floor(frac * 100)).padStart(3)}%  ${formatBytes(st.loaded)} / ${formatBytes(st.total)}`;
}

/** A line redrawn in place on a terminal; nothing elsewhere (logs stay clean). */
export function progressLine(io: CliIO) {
  let last = 0;
  let drawn = false;
  return {
    update(stage: string, done: number, total: number) {
      if (!io.stderrIsTTY) return;
      const t = Date.now();
      if (t - last < 100 && done < total) return;
      last = t;
      const w = 24;
      const f = total ? Math.round((w * done) / total) : 0;
      io.stderr(`\r\x1b[K${stage.padEnd(11)} [${'#'.repeat(f)}${'.'.repeat(w - f)}] ${done}/${total}`);
      drawn = true;
    },
    clear() {
      if (drawn) io.stderr('\r\x1b[K');
      drawn = false;
    },
  };
}

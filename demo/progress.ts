/** Download progress for the demo pages: one bar over every file being downloaded, and a status line. */

export interface ProgressEvent {
  status?: string;
  file: string;
  loaded: number;
  total?: number;
}

export function mib(n: number): string {
  return n < 1 << 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / (1 << 20)).toFixed(1)} MiB`;
}

/**
 * A callback for `onProgress`. Only download events move the bar: a file served from the cache
 * reports 'initiate' then 'done'. 'ready' (the weights are open) turns the bar indeterminate for
 * the upload to the GPU.
 */
export function progressReporter(ui: { progress: HTMLProgressElement; status: HTMLElement }): (e: ProgressEvent) => void {
  const files = new Map<string, { loaded: number; total?: number }>();
  return (e) => {
    if (e.status === 'ready') {
      // Every weight file is here (downloaded or cached): what follows is the upload to the GPU.
      ui.progress.hidden = false;
      ui.progress.removeAttribute('value'); // indeterminate
      ui.status.textContent = `uploading ${mib(e.loaded)} of weights to the GPU…`;
      return;
    }
    if (e.status !== undefined && e.status !== 'download' && e.status !== 'progress') return;
    files.set(e.file, { loaded: e.loaded, total: e.total });
    let loaded = 0;
    let total = 0;
    for (const f of files.values()) {
      loaded += f.loaded;
      total += f.total ?? f.loaded;
    }
    ui.progress.hidden = false;
    ui.progress.value = total ? loaded / total : 0;
    const pct = e.total ? ` ${Math.floor((100 * e.loaded) / e.total)}%` : '';
    ui.status.textContent = `downloading ${e.file}${pct} (${mib(loaded)} of ${mib(total)} so far)`;
  };
}

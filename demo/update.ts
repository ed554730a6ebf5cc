/**
 * The demo's update panel. A model loaded from a URL sits in the browser's Cache API; a delta
 * served beside it (`<model>/../delta.safetensors`, or ?delta=) is downloaded once and updates the
 * cached files in place and atomically (webq.delta.updateCachedModel), then the loaded model: by
 * its applyDelta where the model has one, else by loading it again from the updated cache. The
 * panel shows the version before and after, the bytes downloaded, and a similarity before and after.
 *
 * ?publicKey=<base64 Ed25519 key> refuses any delta not signed by that key (`webq diff --sign`).
 *
 * Test hook: ?stopAt=staged|committed|moved-one freezes the update at that step, as a closed tab
 * would leave it; a reload then finds the old model (staged) or the new one. The panel publishes
 * window.__webqUpdate, which the browser test reads.
 */
import { cosineSimilarity, delta, io, type WorkerBertModel } from '../src/index.ts';
import { mib } from './progress.ts';

export interface UpdateState {
  status: 'idle' | 'updating' | 'stopped' | 'done' | 'error';
  /** The cached model's version, as last read from the cache. */
  version?: string;
  from?: string;
  to?: string;
  deltaBytes?: number;
  /** How the loaded model got the update: its own applyDelta, or a load from the updated cache. */
  applied?: 'model' | 'reload';
  /** The loaded model's version after the update, where the model tells it. */
  loadedVersion?: string | null;
  /** Where ?stopAt= froze the update. */
  step?: string;
  embeddingsBefore?: number[][];
  embeddingsAfter?: number[][];
  error?: string;
}

declare global {
  interface Window {
    __webqUpdate?: UpdateState;
  }
}

/** What the panel needs of the page. */
export interface UpdateHost {
  model: string;
  hubUrl?: string;
  bert(): WorkerBertModel;
  /** Loads the model again (from the cache). */
  reload(): Promise<void>;
  /** Embeds the textarea's sentences and draws the matrix. */
  embed(): Promise<{ texts: string[]; vectors: Float32Array[] }>;
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

/** The version recorded in the cached model.safetensors (nothing is downloaded). */
async function cachedVersion(model: string, hubUrl: string | undefined): Promise<string | undefined> {
  const files = await io.openModelFiles(model, { offline: true, ...(hubUrl && { hubUrl }) });
  const st = await files.checkpoint();
  try {
    return delta.readModelVersion(st.metadata, model)?.version;
  } finally {
    await st.close();
  }
}

/** The delta, downloaded whole once: the cache and the loaded model both take it from memory. */
async function download(url: string, onBytes: (loaded: number, total: number) => void): Promise<Blob> {
  const res = await fetch(url);
  if (!res.ok || !res.body) throw new Error(`${url}: cannot download the delta (HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''})`);
  const total = Number(res.headers.get('content-length') ?? 0);
  const parts: Uint8Array<ArrayBuffer>[] = [];
  let loaded = 0;
  for (const reader = res.body.getReader(); ; ) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value as Uint8Array<ArrayBuffer>);
    loaded += value.byteLength;
    onBytes(loaded, total);
  }
  return new Blob(parts);
}

/** `<model>/../delta.safetensors` for a folder URL; nothing for a hub id. */
function defaultDelta(model: string): string {
  return /^https?:\/\//.test(model) ? new URL('../delta.safetensors', model.endsWith('/') ? model : `${model}/`).href : '';
}

export async function setupUpdatePanel(host: UpdateHost, params: URLSearchParams): Promise<void> {
  const ui = {
    panel: $<HTMLElement>('update'),
    delta: $<HTMLInputElement>('delta-url'),
    run: $<HTMLButtonElement>('update-run'),
    version: $<HTMLDivElement>('update-version'),
    status: $<HTMLDivElement>('update-status'),
    error: $<HTMLDivElement>('update-error'),
  };
  if (params.get('cache') === '0') return; // the update works on the cached files
  const stopAt = params.get('stopAt');
  const publicKey = params.get('publicKey') ?? undefined;
  const state: UpdateState = { status: 'idle' };
  const publish = () => void (window.__webqUpdate = structuredClone(state));
  const showVersion = async () => {
    state.version = await cachedVersion(host.model, host.hubUrl).catch(() => undefined);
    ui.version.textContent = `cached model: version ${state.version ?? 'unknown (not a webq-quantized model, or not cached)'}`;
  };
  ui.panel.hidden = false;
  ui.delta.value = params.get('delta') ?? defaultDelta(host.model);
  await showVersion();
  ui.run.disabled = false;
  publish();

  const similarity = (v: Float32Array[]) => (v.length > 1 ? cosineSimilarity(v[0], v[1]).toFixed(4) : '–');
  const run = async () => {
    const url = ui.delta.value.trim();
    if (!url) throw new Error('give the URL of a delta (made by `webq diff`)');
    Object.assign(state, { status: 'updating', error: undefined, step: undefined });
    publish();
    const before = await host.embed();
    const bytes = await download(url, (loaded, total) => (ui.status.textContent = `downloading the delta: ${mib(loaded)}${total ? ` of ${mib(total)}` : ''}`));
    const r = await delta.updateCachedModel(host.model, bytes, {
      ...(host.hubUrl && { hubUrl: host.hubUrl }),
      publicKey,
      onStep: (step) => {
        ui.status.textContent = `updating the cached files: ${step}`;
        if (step !== stopAt) return;
        Object.assign(state, { status: 'stopped', step });
        publish();
        return new Promise<void>(() => undefined); // frozen for good: the test reloads the page now
      },
    });
    const what = `${r.changed.length} changed, ${r.added.length} added, ${r.removed.length} removed, ${r.renamed.length} renamed`;
    ui.status.textContent = `cached files updated: version ${r.from} → ${r.to} (${what}); downloaded ${mib(r.deltaBytes)} for a ${mib(r.modelBytes)} model`;
    // Then the model in the worker: in place where it can be, else again from the updated cache.
    const loaded = host.bert() as unknown as { applyDelta?: (delta: Blob, opts: { publicKey?: string }) => Promise<unknown> };
    let applied: UpdateState['applied'] = 'reload';
    if (typeof loaded.applyDelta === 'function') {
      try {
        await loaded.applyDelta(bytes, { publicKey });
        applied = 'model';
      } catch (e) {
        ui.status.textContent += ` · applyDelta failed (${(e as Error).message}); loading it again from the cache`;
      }
    }
    if (applied === 'reload') await host.reload();
    const after = await host.embed();
    await showVersion();
    const how = applied === 'model' ? 'updated in place (applyDelta)' : 'loaded again from the updated cache';
    ui.status.textContent += ` · the page's model ${how} · similarity of sentences 1 and 2: ${similarity(before.vectors)} → ${similarity(after.vectors)}`;
    Object.assign(state, {
      status: 'done', from: r.from, to: r.to, deltaBytes: r.deltaBytes, applied, loadedVersion: (host.bert() as { version?: string | null }).version,
      embeddingsBefore: before.vectors.map((v) => Array.from(v)), embeddingsAfter: after.vectors.map((v) => Array.from(v)),
    });
    publish();
  };
  ui.run.addEventListener('click', () => {
    ui.run.disabled = true;
    ui.error.hidden = true;
    void run()
      .catch(async (e: unknown) => {
        // One line: what was wrong. A refused delta leaves the cached model as it was.
        state.error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
        state.status = 'error';
        ui.error.textContent = state.error;
        ui.error.hidden = false;
        ui.status.textContent = '';
        await showVersion();
        publish();
      })
      .finally(() => (ui.run.disabled = false));
  });
}

/**
 * Replacing a model's files atomically. A model is several files (weights, config, tokenizer) and
 * no store replaces several at once, so an update is a redo journal:
 *
 *   1. every new file is written complete into a staging area beside the model's files
 *   2. the journal (what to move in, what to delete) is written in one atomic step: the commit point
 *   3. each staged file is moved over the model's (one atomic step each), deleted files go
 *   4. the staging area and the journal are dropped
 *
 * A crash before 2 leaves the old files plus a staging area that the next open discards; a crash
 * after it leaves a journal that the next open completes (every open calls finishInterrupted). So
 * a reader sees the old model or the new one, never a mix.
 *
 * Two stores hold models: a folder on disk (`webq patch` in place: staging in `<model>/.webq-patch/`,
 * the journal `.webq-patch/COMMIT.json`, renames; below), and the download cache (a cached remote
 * model updated by a delta: src/io/hub/cache-update.ts, entries instead of files).
 */
import { WebqError } from '../errors.ts';
import { loadFs, loadPath } from './node-fs.ts';

export const STAGING = '.webq-patch';
const COMMIT = 'COMMIT.json';

export interface PatchJournal {
  /** Model-relative paths staged that replace (or add) the model's. */
  moves: string[];
  /** Model-relative paths to delete. */
  removes: string[];
}

/** Where one model's update is staged and journaled. */
export interface JournalStore {
  /** For messages: the model, and where its journal is. */
  readonly describe: string;
  readonly journalName: string;
  /** What a user can do when an interrupted update cannot be finished. */
  readonly remedy: string;
  /** True when an update was begun (something staged, or a journal). */
  begun(): Promise<boolean>;
  /** The journal's text, or undefined before the commit point. */
  readJournal(): Promise<string | undefined>;
  /** Writes the journal in one atomic step (the commit point). */
  writeJournal(text: string): Promise<void>;
  /** Moves a staged file over the model's; false when it is not staged (moved before a crash). */
  moveIn(path: string): Promise<boolean>;
  remove(path: string): Promise<void>;
  /** Makes the moves durable, then drops the staging area and the journal. */
  clear(): Promise<void>;
}

/** The points where a test can stop an update, as a crash or a closed tab would. */
export type PatchStep = 'staged' | 'committed' | 'moved-one';

export interface StepHook {
  /** Called at each step; a promise that never settles freezes the update there (tests). */
  onStep?: (step: PatchStep) => void | Promise<void>;
}

/** Test hook: WEBQ_CRASH_AT=<step> ends the process there, as a power cut would (no clean-up runs). */
export function crashPoint(step: string): void {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined>; exit(code: number): never } }).process;
  if (proc?.env?.WEBQ_CRASH_AT === step) proc.exit(86);
}

export async function reachStep(step: PatchStep, hook?: StepHook): Promise<void> {
  crashPoint(step);
  await hook?.onStep?.(step);
}

/** Commits a staged update (step 2) and applies it (steps 3-4). */
export async function commitJournal(store: JournalStore, journal: PatchJournal, hook?: StepHook): Promise<void> {
  const text = JSON.stringify(journal);
  await store.writeJournal(text);
  // A store that may drop a write quietly (a full browser cache) is read back: no journal, no commit.
  if ((await store.readJournal()) !== text) throw new WebqError('PATCH_JOURNAL', `${store.journalName}: the journal could not be written, so the update was not made (storage full?)`);
  await reachStep('committed', hook);
  try {
    await applyJournal(store, journal, hook);
  } catch (e) {
    if (e instanceof WebqError) throw e;
    throw new WebqError('PATCH_JOURNAL', `${store.describe}: the update is committed but could not be finished (${(e as Error).message}); the next open of the model completes it`, { cause: e });
  }
}

async function applyJournal(store: JournalStore, journal: PatchJournal, hook?: StepHook): Promise<void> {
  for (const [i, p] of journal.moves.entries()) {
    if ((await store.moveIn(p)) && i === 0) await reachStep('moved-one', hook);
  }
  for (const p of journal.removes) await store.remove(p);
  await store.clear();
}

/** Journals are small: a model has a few side files. Anything larger was not written by webq. */
const MAX_JOURNAL = 64 * 1024;
const MAX_PATHS = 256;

/** A path a journal may name: relative, inside the model, not the staging area. */
function journalPath(p: unknown): p is string {
  if (typeof p !== 'string' || p.length === 0 || p.length > 512 || /[\u0000-\u001f\u007f\\:]/.test(p) || p.startsWith('/')) return false;
  const segs = p.split('/');
  return segs[0] !== STAGING && !segs.some((s) => s === '' || s === '.' || s === '..');
}

/**
 * The journal in `text`, or undefined when it is not one webq wrote (not JSON, wrong shape, a path
 * outside the model, the weights among the files to delete): recovery never acts on such a journal.
 */
export function parseJournal(text: string): PatchJournal | undefined {
  if (text.length > MAX_JOURNAL) return undefined;
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    return undefined;
  }
  const o = j as Partial<PatchJournal> | null;
  if (!o || typeof o !== 'object' || Array.isArray(o) || Object.keys(o).length !== 2) return undefined;
  const { moves, removes } = o;
  if (!Array.isArray(moves) || !Array.isArray(removes) || moves.length + removes.length > MAX_PATHS) return undefined;
  if (!moves.every(journalPath) || !removes.every(journalPath)) return undefined;
  if (removes.some((p) => p === 'model.safetensors' || moves.includes(p))) return undefined;
  return { moves, removes };
}

/**
 * Completes or discards an update a crash interrupted (see the top of this file). Returns what it
 * did; 'none' when there was nothing to do. A journal webq did not write (parseJournal) is
 * discarded with the staging area, and the model's files stay as they are.
 */
export async function finishInterrupted(store: JournalStore): Promise<'none' | 'completed' | 'discarded'> {
  if (!(await store.begun())) return 'none';
  const text = await store.readJournal().catch(() => undefined);
  const journal = text === undefined ? undefined : parseJournal(text);
  try {
    if (journal === undefined) {
      await store.clear();
      return 'discarded';
    }
    await applyJournal(store, journal);
    return 'completed';
  } catch (e) {
    if (e instanceof WebqError) throw e;
    throw new WebqError('PATCH_JOURNAL', `${store.describe}: an interrupted update could not be ${journal === undefined ? 'discarded' : 'completed'} (${(e as Error).message}); ${store.remedy}`);
  }
}

/** fsync of a folder (so renames in it are durable), where the platform allows it. */
export async function syncDir(dir: string): Promise<void> {
  const fs = await loadFs(dir);
  try {
    const h = await fs.open(dir, 'r');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  } catch {
    // Windows cannot open folders for fsync; its renames are journaled by NTFS.
  }
}

/** Writes `path` complete and fsynced under a temporary name, then renames it into place. */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const fs = await loadFs(path);
  const tmp = `${path}.tmp-${Math.random().toString(36).slice(2)}`;
  const h = await fs.open(tmp, 'wx');
  try {
    await h.writeFile(data);
    await h.sync();
  } finally {
    await h.close();
  }
  try {
    await fs.rename(tmp, path);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
}

/** A model folder as a journal store: staged files in `<dir>/.webq-patch/`, fsyncs and renames. */
async function folderJournal(dir: string): Promise<JournalStore> {
  const fs = await loadFs(dir);
  const path = await loadPath(dir);
  const staging = path.join(dir, STAGING);
  const commit = path.join(staging, COMMIT);
  return {
    describe: dir,
    journalName: commit,
    remedy: 'check that the folder is writable, or restore the model folder from its source',
    begun: async () => (await fs.stat(staging).catch(() => null)) !== null,
    readJournal: async () => {
      const st = await fs.stat(commit).catch(() => null);
      if (!st) return undefined;
      return st.size > MAX_JOURNAL ? '' : fs.readFile(commit, 'utf8'); // '' is no journal webq wrote: discarded
    },
    async writeJournal(text) {
      await syncDir(staging);
      await writeFileAtomic(commit, text);
      await syncDir(staging);
    },
    async moveIn(p) {
      const from = path.join(staging, ...p.split('/'));
      const to = path.join(dir, ...p.split('/'));
      if (!(await fs.stat(from).catch(() => null))) return false;
      await fs.mkdir(path.dirname(to), { recursive: true });
      await fs.rename(from, to);
      return true;
    },
    remove: (p) => fs.rm(path.join(dir, ...p.split('/')), { force: true }),
    async clear() {
      await syncDir(dir);
      await fs.rm(staging, { recursive: true, force: true });
    },
  };
}

/** Commits a staged update of the folder `dir` (files staged in `<dir>/.webq-patch/`) and applies it. */
export async function commitPatch(dir: string, journal: PatchJournal): Promise<void> {
  await commitJournal(await folderJournal(dir), journal);
}

/** finishInterrupted for a model folder (every local open of a model folder calls it). */
export async function finishInterruptedPatch(dir: string): Promise<'none' | 'completed' | 'discarded'> {
  return finishInterrupted(await folderJournal(dir));
}

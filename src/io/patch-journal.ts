/**
 * Replacing a model folder's files atomically (`webq patch` in place). A folder holds several
 * files (weights, config, tokenizer) and no file system renames several at once, so the update is
 * a redo journal:
 *
 *   1. every new file is written complete and fsynced into `<model>/.webq-patch/`
 *   2. `.webq-patch/COMMIT.json` (what to move in, what to delete) is written beside under a
 *      temporary name, fsynced and renamed into place: the commit point
 *   3. each staged file is renamed over its target (one atomic rename each), deleted files go
 *   4. `.webq-patch/` is removed
 *
 * A crash before 2 leaves the old files plus a staging folder that the next open discards; a crash
 * after it leaves a journal that the next open (every local open of a model folder calls
 * finishInterruptedPatch) completes. So a reader sees the old model or the new one, never a mix.
 */
import { WebqError } from '../errors.ts';
import { loadFs, loadPath } from './node-fs.ts';

export const STAGING = '.webq-patch';
const COMMIT = 'COMMIT.json';

export interface PatchJournal {
  /** Model-relative paths staged under .webq-patch/ that replace (or add) the folder's. */
  moves: string[];
  /** Model-relative paths to delete. */
  removes: string[];
}

/** Test hook: WEBQ_CRASH_AT=<step> ends the process there, as a power cut would (no clean-up runs). */
export function crashPoint(step: string): void {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined>; exit(code: number): never } }).process;
  if (proc?.env?.WEBQ_CRASH_AT === step) proc.exit(86);
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

/** Commits a staged update (step 2) and applies it (steps 3-4). */
export async function commitPatch(dir: string, journal: PatchJournal): Promise<void> {
  const path = await loadPath(dir);
  const staging = path.join(dir, STAGING);
  await syncDir(staging);
  await writeFileAtomic(path.join(staging, COMMIT), JSON.stringify(journal));
  await syncDir(staging);
  crashPoint('committed');
  await applyJournal(dir, journal);
}

async function applyJournal(dir: string, journal: PatchJournal): Promise<void> {
  const fs = await loadFs(dir);
  const path = await loadPath(dir);
  const staging = path.join(dir, STAGING);
  for (const [i, p] of journal.moves.entries()) {
    const from = path.join(staging, ...p.split('/'));
    const to = path.join(dir, ...p.split('/'));
    if (!(await fs.stat(from).catch(() => null))) continue; // moved before a crash
    await fs.mkdir(path.dirname(to), { recursive: true });
    await fs.rename(from, to);
    if (i === 0) crashPoint('moved-one');
  }
  for (const p of journal.removes) await fs.rm(path.join(dir, ...p.split('/')), { force: true });
  await syncDir(dir);
  await fs.rm(staging, { recursive: true, force: true });
}

/**
 * Completes or discards an update a crash interrupted (see the top of this file). Returns what it
 * did; 'none' when there was nothing to do.
 */
export async function finishInterruptedPatch(dir: string): Promise<'none' | 'completed' | 'discarded'> {
  const fs = await loadFs(dir);
  const path = await loadPath(dir);
  const staging = path.join(dir, STAGING);
  if (!(await fs.stat(staging).catch(() => null))) return 'none';
  let text: string | null = null;
  try {
    text = await fs.readFile(path.join(staging, COMMIT), 'utf8');
  } catch {
    text = null;
  }
  try {
    if (text === null) {
      await fs.rm(staging, { recursive: true, force: true });
      return 'discarded';
    }
    let journal: PatchJournal;
    try {
      journal = JSON.parse(text);
    } catch {
      throw new WebqError('PATCH_JOURNAL', `${path.join(staging, COMMIT)}: is not JSON; the interrupted update cannot be completed (restore the model folder from its source)`);
    }
    await applyJournal(dir, journal);
    return 'completed';
  } catch (e) {
    if (e instanceof WebqError) throw e;
    throw new WebqError('PATCH_JOURNAL', `${dir}: an interrupted update could not be ${text === null ? 'discarded' : 'completed'} (${(e as Error).message}); check that the folder is writable`);
  }
}

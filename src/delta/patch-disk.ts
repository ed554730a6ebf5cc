/**
 * `webq patch <model> <delta> [--out DIR]` on disk (Node, Deno). Everything is checked
 * (checks.ts, patch-prepare.ts) before anything is written; then the new files are written beside the old ones and
 * swapped in: with --out a temporary folder renamed to DIR, in place through the redo journal of
 * src/io/patch-journal.ts, so a crash at any point leaves the old model or the new one.
 */
import { WebqError } from '../errors.ts';
import { SafetensorsFile } from '../io/safetensors/reader.ts';
import { loadFs, loadPath } from '../io/node-fs.ts';
import { commitPatch, crashPoint, finishInterruptedPatch, STAGING } from '../io/patch-journal.ts';
import { checkWritten, preparePatch, type PatchBase, type PatchedModel } from './patch-prepare.ts';
import { DeltaError, openDelta } from './format.ts';
import type { PublicKeyInput } from './sign.ts';

export interface PatchReport {
  from: string;
  to: string;
  /** Where the patched model is. */
  dir: string;
  added: string[];
  changed: string[];
  removed: string[];
  renamed: [string, string][];
  deltaBytes: number;
  modelBytes: number;
}

export interface PatchOptions {
  /** Write the patched model to this new folder and leave the model as it is. */
  out?: string;
  /** Refuse the delta unless it is signed by this Ed25519 key (src/delta/sign.ts). */
  publicKey?: PublicKeyInput;
}

/** A file system error before the commit point: nothing was changed. */
function ioError(e: unknown, dir: string): never {
  if (e instanceof WebqError) throw e;
  throw new DeltaError('DELTA_IO', `${dir}: could not write the patched model (${(e as Error).message}); nothing was changed`, { cause: e });
}

/**
 * The files an update writes and removes must land where their names say: every folder on the
 * way is a real folder inside the model (not a file, not a link out of it), and what is replaced
 * or removed is a file (or a link, which is replaced, never followed).
 */
async function checkDestinations(dir: string, paths: readonly string[]): Promise<void> {
  const fs = await loadFs(dir);
  const path = await loadPath(dir);
  for (const p of paths) {
    const segs = p.split('/');
    for (let i = 1; i <= segs.length; i++) {
      const at = path.join(dir, ...segs.slice(0, i));
      const st = await fs.lstat(at).catch(() => null);
      if (!st) break;
      const last = i === segs.length;
      if (last ? st.isDirectory() : !st.isDirectory() || st.isSymbolicLink()) {
        throw new DeltaError('DELTA_IO', `${at}: is ${st.isSymbolicLink() ? 'a link' : st.isDirectory() ? 'a folder' : 'a file'}, so the update cannot ${last ? 'replace' : 'write inside'} it; nothing was changed`);
      }
    }
  }
}

/** Opens the written model and its side files with webq's reader and checks every hash (checks.ts, patch-prepare.ts). */
async function checkFolder(folder: string, p: PatchedModel, delta: Awaited<ReturnType<typeof openDelta>>, files: readonly string[]): Promise<void> {
  const fs = await loadFs(folder);
  const path = await loadPath(folder);
  const store = await SafetensorsFile.open(path.join(folder, 'model.safetensors'));
  try {
    await checkWritten(store, async (f) => new Uint8Array(await fs.readFile(path.join(folder, ...f.split('/')))), delta, files);
  } finally {
    await store.close();
  }
}

async function writeModelFile(path: string, p: PatchedModel): Promise<void> {
  const fs = await loadFs(path);
  const h = await fs.open(path, 'wx');
  try {
    const put = async (b: Uint8Array) => {
      for (let done = 0; done < b.byteLength; ) done += (await h.write(b, done, b.byteLength - done)).bytesWritten;
    };
    await put(p.header);
    for (const t of p.tensors) await put(await t.read());
    await h.sync();
  } finally {
    await h.close();
  }
}

async function writeSynced(path: string, bytes: Uint8Array): Promise<void> {
  const fs = await loadFs(path);
  const pathMod = await loadPath(path);
  await fs.mkdir(pathMod.dirname(path), { recursive: true });
  const h = await fs.open(path, 'wx');
  try {
    await h.writeFile(bytes);
    await h.sync();
  } finally {
    await h.close();
  }
}

/** Applies `deltaPath` to the model folder `dir` (see the top of this file). */
export async function patchModelFolder(dir: string, deltaPath: string, opts: PatchOptions = {}): Promise<PatchReport> {
  const fs = await loadFs(dir);
  const path = await loadPath(dir);
  await finishInterruptedPatch(dir);
  if (opts.out !== undefined && (await fs.stat(opts.out).catch(() => null))) throw new DeltaError('OUTPUT_EXISTS', `${opts.out}: already exists; choose a new output folder (or leave out --out to patch in place)`);
  const modelFile = path.join(dir, 'model.safetensors');
  const st = await fs.stat(modelFile).catch(() => null);
  if (!st) throw new DeltaError('DELTA_BASE', `${dir}: has no model.safetensors (a \`webq quantize\` output folder is expected)`);
  const store = await SafetensorsFile.open(modelFile);
  const delta = await openDelta(deltaPath, undefined, { publicKey: opts.publicKey }).catch(async (e) => {
    await store.close();
    throw e;
  });
  try {
    const base: PatchBase = {
      store,
      describe: dir,
      readFile: async (f) => {
        const p = path.join(dir, ...f.split('/'));
        const st = await fs.stat(p).catch(() => null);
        if (st && !st.isFile()) throw new DeltaError('DELTA_BASE', `${p}: is not a file; the model's side file ${f} was expected there`);
        return st ? new Uint8Array(await fs.readFile(p)) : undefined;
      },
    };
    const p = await preparePatch(base, delta);
    const m = delta.manifest;
    const report = (to: string): PatchReport => ({
      from: p.base.version, to: p.target.version, dir: to, added: m.added, changed: m.changed, removed: m.removed, renamed: m.renamed, deltaBytes: delta.size, modelBytes: p.size,
    });
    if (opts.out !== undefined) {
      const out = opts.out.replace(/[\\/]+$/, '');
      const tmp = `${out}.tmp-${Math.random().toString(36).slice(2)}`;
      try {
        await fs.mkdir(tmp, { recursive: true });
        await writeModelFile(path.join(tmp, 'model.safetensors'), p);
        for (const [f, read] of p.files) await writeSynced(path.join(tmp, ...f.split('/')), await read());
        await checkFolder(tmp, p, delta, [...p.files.keys()]);
        await fs.rename(tmp, out);
      } catch (e) {
        await fs.rm(tmp, { recursive: true, force: true });
        ioError(e, out);
      }
      return report(out);
    }
    // In place: stage the files that change, then the journal's commit and swap.
    const staging = path.join(dir, STAGING);
    try {
      const moves = ['model.safetensors', ...[...p.files.keys()].filter((f) => m.files[f] === 'delta')];
      await checkDestinations(dir, [...moves, ...p.removedFiles]);
      await fs.rm(staging, { recursive: true, force: true });
      await fs.mkdir(staging);
      await writeModelFile(path.join(staging, 'model.safetensors'), p);
      for (const f of moves.slice(1)) await writeSynced(path.join(staging, ...f.split('/')), await p.files.get(f)!());
      await checkFolder(staging, p, delta, moves.slice(1));
      crashPoint('staged');
      await store.close(); // the old file is about to be replaced
      await commitPatch(dir, { moves, removes: p.removedFiles });
    } catch (e) {
      // Before the commit point the staging folder is simply dropped; after it, the next open completes it.
      if (!(await fs.stat(path.join(staging, 'COMMIT.json')).catch(() => null))) {
        await fs.rm(staging, { recursive: true, force: true });
        ioError(e, dir);
      }
      throw e;
    }
    return report(dir);
  } finally {
    await store.close().catch(() => undefined);
    await delta.close();
  }
}

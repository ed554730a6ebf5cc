/**
 * `webq patch <model> <delta> [--out DIR]` on disk (Node, Deno). Everything is checked
 * (apply.ts) before anything is written; then the new files are written beside the old ones and
 * swapped in: with --out a temporary folder renamed to DIR, in place through the redo journal of
 * src/io/patch-journal.ts, so a crash at any point leaves the old model or the new one.
 */
import { SafetensorsFile } from '../io/safetensors.ts';
import { loadFs, loadPath } from '../io/node-fs.ts';
import { commitPatch, crashPoint, finishInterruptedPatch, STAGING } from '../io/patch-journal.ts';
import { preparePatch, type PatchBase, type PatchedModel } from './apply.ts';
import { DeltaError, openDelta } from './format.ts';

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
  const delta = await openDelta(deltaPath).catch(async (e) => {
    await store.close();
    throw e;
  });
  try {
    const base: PatchBase = {
      store,
      describe: dir,
      readFile: async (f) => {
        const p = path.join(dir, ...f.split('/'));
        return (await fs.stat(p).catch(() => null)) ? new Uint8Array(await fs.readFile(p)) : undefined;
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
      await fs.mkdir(tmp, { recursive: true });
      try {
        await writeModelFile(path.join(tmp, 'model.safetensors'), p);
        for (const [f, read] of p.files) await writeSynced(path.join(tmp, ...f.split('/')), await read());
        await fs.rename(tmp, out);
      } catch (e) {
        await fs.rm(tmp, { recursive: true, force: true });
        throw e;
      }
      return report(out);
    }
    // In place: stage the files that change, then the journal's commit and swap.
    const staging = path.join(dir, STAGING);
    await fs.rm(staging, { recursive: true, force: true });
    await fs.mkdir(staging);
    try {
      await writeModelFile(path.join(staging, 'model.safetensors'), p);
      const moves = ['model.safetensors'];
      for (const [f, read] of p.files) {
        if (m.files[f] !== 'delta') continue;
        await writeSynced(path.join(staging, ...f.split('/')), await read());
        moves.push(f);
      }
      crashPoint('staged');
      await store.close(); // the old file is about to be replaced
      await commitPatch(dir, { moves, removes: p.removedFiles });
    } catch (e) {
      // Before the commit point the staging folder is simply dropped; after it, the next open completes it.
      if (!(await fs.stat(path.join(staging, 'COMMIT.json')).catch(() => null))) await fs.rm(staging, { recursive: true, force: true });
      throw e;
    }
    return report(dir);
  } finally {
    await store.close().catch(() => undefined);
    await delta.close();
  }
}

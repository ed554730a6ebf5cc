/**
 * `webq diff`: the delta from a quantized model to a new float checkpoint, and the fold of
 * consecutive deltas into one. The new checkpoint is planned exactly as `webq quantize` would plan
 * it with the base's options (dtype, group, symmetry, tables), and each unit's source hash is
 * compared with the base's:
 *
 *   same source, same options          the base's stored tensors are reused (not in the delta)
 *   a removed unit's source            renamed: the base's tensors under the new name (not in it)
 *   anything else                      re-quantized with those options, into the delta
 *
 * Only round-to-nearest models take deltas: GPTQ, AWQ, SmoothQuant, static activation scales and
 * mixed precision depend on the whole model and its calibration, so one changed tensor can change
 * others; those models are quantized again in full.
 */
import { WebqError } from '../errors.ts';
import type { ModelFiles } from '../io/hub/model-files.ts';
import { loadFs } from '../io/node-fs.ts';
import { writeOrder, type TensorToWrite } from '../io/safetensors/writer.ts';
import { parseModelConfig } from '../models/config.ts';
import {
  fileHashes, outputEntries, planQuantized, quantizeMetadata, readSideFiles, storedAs, unitTensors, UnitHasher,
  type QuantizeDType,
} from '../quantize/checkpoint.ts';
import { EMBEDDING_DTYPES, type EmbeddingDType } from '../models/upload.ts';
import type { LinearDType } from '../ops/linear.ts';
import { readPrequantInfo } from '../quant/prequantized.ts';
import { deltaFile, DeltaError, DELTA_FORMAT, encodeDelta, fileTensor, type Delta, type DeltaManifest, type EncodeDeltaOptions, type TargetEntry, type UnitSource } from './format.ts';
import { classify } from './manifest.ts';
import { requireModelVersion, sameStoredAs, versionMetadata, versionOf, type UnitVersion } from '../quant/versions.ts';

const DELTA_DTYPES: readonly QuantizeDType[] = ['q8', 'q4', 'w8a8', 'w4a8'];

export interface DeltaContents {
  manifest: DeltaManifest;
  tensors: TensorToWrite[];
}

/** How the base was quantized, or an error when deltas cannot reproduce it. */
function baseOptions(meta: Readonly<Record<string, string>>, where: string): { dtype: QuantizeDType; group: number | 'channel'; symmetric: boolean; embeddings: EmbeddingDType; clipSearch: boolean } {
  const method = meta['webq.method'];
  if (method !== 'rtn' || meta['webq.static_activations'] !== undefined || meta['webq.smooth'] !== undefined) {
    const how = meta['webq.static_activations'] !== undefined ? 'static activation scales' : meta['webq.smooth'] !== undefined ? '--smooth' : `--method/--dtype ${method}`;
    throw new DeltaError('DELTA_UNSUPPORTED', `${where}: was quantized with ${how}, which depends on the whole model and its calibration; deltas need round-to-nearest models (quantize the new checkpoint in full instead)`);
  }
  const dtype = meta['webq.dtype'] as QuantizeDType;
  if (!DELTA_DTYPES.includes(dtype)) throw new DeltaError('DELTA_UNSUPPORTED', `${where}: webq.dtype is ${JSON.stringify(dtype)}; deltas are made for ${DELTA_DTYPES.join(', ')} models`);
  const embeddings = meta['webq.embeddings'] as EmbeddingDType;
  if (!EMBEDDING_DTYPES.includes(embeddings)) throw new DeltaError('DELTA_UNSUPPORTED', `${where}: webq.embeddings is ${JSON.stringify(embeddings)}; expected one of ${EMBEDDING_DTYPES.join(', ')}`);
  // Files written before webq.clip_search existed were min-max (false), as its absence says.
  return { dtype, group: meta['webq.group'] === 'channel' ? 'channel' : Number(meta['webq.group']), symmetric: meta['webq.symmetric'] === 'true', embeddings, clipSearch: meta['webq.clip_search'] === 'true' };
}

/** The delta from the quantized model `base` to the float checkpoint `next`. */
export async function diffModel(base: ModelFiles, next: ModelFiles, onProgress?: (done: number, total: number) => void): Promise<DeltaContents> {
  const baseStore = await base.checkpoint();
  const nextStore = await next.checkpoint();
  try {
    const where = `${base.describe}/model.safetensors`;
    const bv = requireModelVersion(baseStore.metadata, where);
    if (!readPrequantInfo(baseStore)) throw new DeltaError('DELTA_UNSUPPORTED', `${where}: is not a webq quantized model`);
    const o = baseOptions(baseStore.metadata, where);
    const baseConfig = parseModelConfig(await base.readJson('config.json'), `${base.describe}/config.json`);
    const config = parseModelConfig(await next.readJson('config.json'), `${next.describe}/config.json`);
    if (config.modelType !== baseConfig.modelType) throw new DeltaError('DELTA_MISMATCH', `${next.describe}: is a ${config.modelType} checkpoint, but ${base.describe} is ${baseConfig.modelType}; a delta goes between versions of one model`);
    const plan = planQuantized(nextStore, config, o.dtype as LinearDType, { group: o.group, symmetric: o.symmetric, embeddings: o.embeddings, clipSearch: o.clipSearch });
    const targetNames = new Set(plan.tensors.map((t) => t.ref.name));
    // Base units that are gone: a new unit with one of their sources is a rename.
    const gone = new Map<string, string>();
    for (const [name, u] of Object.entries(bv.tensors)) if (!targetNames.has(name)) gone.set(`${u.source}|${JSON.stringify(u.as)}`, name);
    const hasher = new UnitHasher();
    const units = Object.create(null) as Record<string, UnitSource>;
    const tensors: TensorToWrite[] = [];
    const version = Object.create(null) as Record<string, UnitVersion>;
    const entries: TargetEntry[] = [];
    for (const [i, t] of plan.tensors.entries()) {
      onProgress?.(i, plan.tensors.length);
      const name = t.ref.name;
      const as = storedAs(t, t.spec);
      const src = await nextStore.readBytes(name);
      const h = await hasher.source(name, nextStore.get(name)!, src);
      const outs = outputEntries(nextStore, t, t.spec);
      entries.push(...outs.map((e) => ({ ...e, unit: name })));
      const prev = bv.tensors[name];
      const key = `${h}|${JSON.stringify(as)}`;
      let made: { src: UnitSource; quantized: string };
      if (prev && prev.source === h && sameStoredAs(prev.as, as)) made = { src: { from: 'base', name }, quantized: prev.quantized };
      else if (gone.has(key)) {
        const old = gone.get(key)!;
        gone.delete(key);
        made = { src: { from: 'base', name: old }, quantized: bv.tensors[old].quantized };
      } else {
        const list = await unitTensors(nextStore, t, src);
        for (const e of outs) {
          const x = list.find((l) => l.name === e.name)!;
          await hasher.part(name, e, new Uint8Array(x.data.buffer, x.data.byteOffset, x.data.byteLength));
        }
        tensors.push(...list);
        made = { src: { from: 'delta' }, quantized: await hasher.quantized(name) };
      }
      units[name] = made.src;
      version[name] = { source: h, quantized: made.quantized, as };
    }
    // Side files: the new checkpoint's, as quantize would copy them.
    const side = await readSideFiles(next);
    const files = await fileHashes(side);
    const fileFrom = Object.create(null) as Record<string, 'delta' | 'base'>;
    for (const [f, h] of Object.entries(files)) {
      fileFrom[f] = bv.files[f] === h ? 'base' : 'delta';
      if (fileFrom[f] === 'delta') tensors.push(fileTensor(f, side.get(f)!));
    }
    const targetVersion = await versionOf(version, files);
    const metadata = { ...quantizeMetadata(plan, o.dtype, 'rtn', {}), ...versionMetadata({ version: targetVersion, tensors: version, files }) };
    const order = new Map(writeOrder(entries).map((e, i) => [e.name, i]));
    entries.sort((a, b) => order.get(a.name)! - order.get(b.name)!);
    const manifest: DeltaManifest = {
      format: DELTA_FORMAT,
      architecture: config.modelType,
      base: { version: bv.version, tensors: Object.fromEntries(Object.entries(bv.tensors).map(([n, u]) => [n, u.quantized])), files: bv.files },
      target: { version: targetVersion, metadata, entries },
      units,
      files: fileFrom,
      ...classify(Object.keys(bv.tensors), units),
      filesRemoved: Object.keys(bv.files).filter((f) => !(f in files)),
    };
    return { manifest, tensors };
  } finally {
    await baseStore.close();
    await nextStore.close();
  }
}

/** Folds consecutive deltas (d1: A -> B, d2: B -> C, ...) into one A -> C. */
export async function mergeDeltas(deltas: readonly Delta[]): Promise<DeltaContents> {
  if (deltas.length < 2) throw new WebqError('USAGE', 'diff --merge: give at least two deltas, oldest first');
  let acc: DeltaContents = { manifest: deltas[0].manifest, tensors: await deltaTensors(deltas[0]) };
  for (const d of deltas.slice(1)) acc = await mergeTwo(acc, d);
  return acc;
}

async function deltaTensors(d: Delta): Promise<TensorToWrite[]> {
  const out: TensorToWrite[] = [];
  for (const t of d.store.tensors) out.push({ name: t.name, dtype: t.dtype, shape: t.shape, data: await d.store.readBytes(t.name) });
  return out;
}

async function mergeTwo(first: DeltaContents, second: Delta): Promise<DeltaContents> {
  const a = first.manifest;
  const b = second.manifest;
  if (b.base.version !== a.target.version) {
    throw new DeltaError('DELTA_BASE', `${second.describe}: applies to version ${b.base.version}, but the delta before it makes version ${a.target.version}; give the deltas in order, each starting where the last one ends`);
  }
  const firstData = new Map(first.tensors.map((t) => [t.name, t]));
  const tensors: TensorToWrite[] = [];
  const units = Object.create(null) as Record<string, UnitSource>;
  for (const [u, src] of Object.entries(b.units)) {
    if (src.from === 'delta') {
      for (const e of b.target.entries.filter((e) => e.unit === u)) tensors.push({ name: e.name, dtype: e.dtype, shape: e.shape, data: await second.store.readBytes(e.name) });
      units[u] = src;
      continue;
    }
    const prev = a.units[src.name];
    if (prev?.from === 'delta') {
      // The middle version's tensors of src.name, renamed to u.
      for (const e of a.target.entries.filter((e) => e.unit === src.name)) {
        const t = firstData.get(e.name);
        if (!t) throw new DeltaError('DELTA_CORRUPT', `merge: the first delta lacks ${e.name}`);
        tensors.push({ ...t, name: u + e.name.slice(src.name.length) });
      }
      units[u] = { from: 'delta' };
    } else if (prev) units[u] = { from: 'base', name: prev.name };
    else throw new DeltaError('DELTA_CORRUPT', `merge: unit ${src.name} is not in the first delta's target`);
  }
  const files = Object.create(null) as Record<string, 'delta' | 'base'>;
  for (const [f, from] of Object.entries(b.files)) {
    if (from === 'delta') tensors.push(fileTensor(f, await deltaFile(second, f)));
    else if (a.files[f] === 'delta') tensors.push({ ...firstData.get(`file:${f}`)! });
    files[f] = from === 'delta' || a.files[f] === 'delta' ? 'delta' : 'base';
  }
  const manifest: DeltaManifest = {
    format: DELTA_FORMAT,
    architecture: b.architecture,
    base: a.base,
    target: b.target,
    units,
    files,
    ...classify(Object.keys(a.base.tensors), units),
    filesRemoved: Object.keys(a.base.files).filter((f) => !(f in b.files)),
  };
  return { manifest, tensors };
}

/** Writes a delta file (signed with `opts.sign`): complete under a temporary name, then renamed; an existing `path` is an error. */
export async function writeDeltaFile(path: string, d: DeltaContents, opts: EncodeDeltaOptions = {}): Promise<number> {
  const fs = await loadFs(path);
  if (await fs.stat(path).catch(() => null)) throw new DeltaError('OUTPUT_EXISTS', `${path}: already exists; choose a new name for the delta`);
  const tmp = `${path}.tmp-${Math.random().toString(36).slice(2)}`;
  const h = await fs.open(tmp, 'wx');
  let size = 0;
  try {
    for (const chunk of await encodeDelta(d.manifest, d.tensors, opts)) {
      for (let done = 0; done < chunk.byteLength; ) done += (await h.write(chunk, done, chunk.byteLength - done)).bytesWritten;
      size += chunk.byteLength;
    }
    await h.sync();
    await h.close();
    await fs.rename(tmp, path);
  } catch (e) {
    await h.close().catch(() => undefined);
    await fs.rm(tmp, { force: true });
    throw e;
  }
  return size;
}

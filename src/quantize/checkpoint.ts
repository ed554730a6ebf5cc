/**
 * Writes a webq pre-quantized copy of a checkpoint (format: src/quant/prequantized.ts), for every
 * architecture webq runs. It works by tensor role: config.json names the architecture, that
 * architecture's weight table (the one the loader uses) says what each tensor is, and
 *
 *   Linear weights     packed in the chosen dtype (.qvalues / .qscales / .qzeros)
 *   embedding tables   --embeddings: int8 or int4, packed the architecture's way with their own
 *                      spec in the metadata; or f16; or f32 (not rounded: as stored). Default
 *                      int8, except an untied LLM table: f16 (llamaTableDefault says why)
 *   everything else    F16 (norms, biases, position tables: the loader rounds them to f16 values
 *                      under quantized dtypes too, so the file loses nothing)
 *
 *   bert              query/key/value/attention output/intermediate/output, pooler, classifier;
 *                     table: the word embeddings (int8: one scale per row)
 *   llama-family      q/k/v/o, gate/up/down, and lm_head when it is not tied to the embeddings;
 *                     table: embed_tokens (int8: groups of 32)
 *
 * The quantization is the one loading the float checkpoint with that dtype would make (LLMs' q8
 * uses groups of 32, llamaQuantDefaults), so both give the same model. Config and tokenizer files
 * are copied beside the weights. Everything goes into a temporary folder renamed into place at the
 * end, so a failed run leaves no half-written model behind. planQuantized() says what each tensor
 * becomes, and its bytes, without reading any data. The file is written tensor by tensor
 * (src/io/safetensors/writer.ts): the header from the plan, then each tensor read, quantized, written and
 * dropped, so a checkpoint larger than memory (or than one ArrayBuffer) still quantizes.
 *
 * Beyond round-to-nearest (methods, mixed precision, static activations, SmoothQuant) and for any
 * measurement (--max-error, --report), calibrated.ts runs the model on the GPU first.
 * Dtypes past the runtime's: w8a8-static is a w8a8 file with an activation scale per Linear
 * (webq.spec.<W> act_scale); mixed is a q4 file whose Linears each carry their own bits.
 */
import { WebqError } from '../errors.ts';
import type { ModelFiles } from '../io/hub/model-files.ts';
import { loadFs, loadPath } from '../io/node-fs.ts';
import type { TensorStore } from '../io/safetensors/reader.ts';
import { f32ArrayToF16 } from '../io/safetensors/half.ts';
import { writeOrder, writeStreaming, type TensorEntry, type TensorToWrite } from '../io/safetensors/writer.ts';
import { DTYPE_SIZE } from '../io/safetensors/dtypes.ts';
import { convert } from '../io/safetensors/convert.ts';
import { sha256Hex, tensorHash, unitHash } from '../quant/hash.ts';
import { HASH_PLACEHOLDER, VERSION_PLACEHOLDER, versionMetadata, versionOf, type ModelVersion, type StoredAs, type UnitVersion } from '../quant/versions.ts';
import type { LinearDType } from '../ops/linear.ts';
import { quantSpecFor } from '../models/prepare-linear.ts';
import { describeError, type ModelError } from '../quant/guard.ts';
import { prequantMetadata, quantizedTensors, type LinearQuantMeta } from '../quant/prequantized.ts';
import { byteSizes, layoutFor, type QuantSpec } from '../quant/layout.ts';
import { quantizeWeight } from '../quant/rtn.ts';
import { archOf } from '../models/archs.ts';
import type { WeightRef } from '../models/weight-ref.ts';
import { parseModelConfig, type ModelConfig } from '../models/config.ts';
import { CalibratedQuantization } from './calibrated.ts';
import type { QuantMethod } from './methods.ts';
import { checkQuantizeOptions, fileDType, QuantizeRefusedError, type LayerReport, type QuantizeDType, type QuantizeOptions, type QuantizeReport } from './options.ts';
import { TABLE_LINEAR_DTYPE, type EmbeddingDType } from '../models/upload.ts';

export * from './options.ts';

/** Small files copied beside the weights when the source has them (LLM and BERT ones alike). */
export const SIDE_FILES = [
  'config.json',
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'chat_template.jinja',
  'special_tokens_map.json',
  'vocab.txt',
  'modules.json',
  '1_Pooling/config.json',
];

/** What one tensor becomes: packed with `spec`, F16, or its bytes as stored. */
export interface PlannedTensor {
  ref: WeightRef;
  as: 'packed' | 'F16' | 'stored';
  spec?: QuantSpec;
  /** Data bytes in the source and in the output. */
  bytesIn: number;
  bytesOut: number;
}

export interface QuantizePlan {
  architecture: string;
  /** The Linears' spec. */
  spec: QuantSpec;
  embeddings: EmbeddingDType;
  tensors: PlannedTensor[];
  /** Packed tables, with their own spec (webq.spec.<name>). */
  tableSpecs: Map<string, QuantSpec>;
  linears: number;
  bytesIn: number;
  bytesOut: number;
}

/**
 * What `webq quantize` makes of each tensor of `store` (a float checkpoint), and the bytes: from
 * the headers alone, so it also sizes models never written (a test sizes MiniLM this way).
 */
export function planQuantized(store: TensorStore, config: ModelConfig, dtype: LinearDType, opts: QuantizeOptions = {}): QuantizePlan {
  quantSpecFor(dtype); // an unknown or float dtype fails before any work
  const roles = archOf(config).tensorRoles(store, config, dtype);
  if (roles.all.some((r) => r.quantized || r.imported)) throw new WebqError('ALREADY_QUANTIZED', `${store.name}: is already pre-quantized; quantize the float checkpoint instead`);
  // The Linears' range search as loading would run it (LLMs at 4 bits); tables keep min-max.
  const clipSearch = opts.clipSearch ?? roles.defaultClipSearch;
  const spec = quantSpecFor(dtype, { group: opts.group ?? roles.defaultGroup, symmetric: opts.symmetric ?? roles.defaultSymmetric, clipSearch });
  const embeddings = opts.embeddings ?? roles.tableDefault;
  const tableSpec = embeddings === 'int8' || embeddings === 'int4' ? quantSpecFor(TABLE_LINEAR_DTYPE[embeddings], { ...roles.tableSpecs[embeddings], clipSearch: false }) : null;
  const tableSpecs = new Map<string, QuantSpec>();
  const tensors = roles.all.map((ref): PlannedTensor => {
    const info = store.get(ref.name)!;
    const [N, K] = ref.shape;
    const packed = (s: QuantSpec): PlannedTensor => {
      const b = byteSizes(N, K, s);
      // byteSizes counts f32 scales (as held in memory); files store them, and zeros, as F16.
      return { ref, as: 'packed', spec: s, bytesIn: info.byteLength, bytesOut: b.values + (b.scales + b.zeros) / 2 };
    };
    if (roles.linears.has(ref.name)) return packed(spec);
    if (roles.tables.has(ref.name) && tableSpec) {
      tableSpecs.set(ref.name, tableSpec);
      return packed(tableSpec);
    }
    if (roles.tables.has(ref.name) && embeddings === 'f32') return { ref, as: 'stored', bytesIn: info.byteLength, bytesOut: info.byteLength };
    return { ref, as: 'F16', bytesIn: info.byteLength, bytesOut: 2 * ref.shape.reduce((a, b) => a * b, 1) };
  });
  const sum = (f: (t: PlannedTensor) => number) => tensors.reduce((s, t) => s + f(t), 0);
  return { architecture: config.modelType, spec, embeddings, tensors, tableSpecs, linears: roles.linears.size, bytesIn: sum((t) => t.bytesIn), bytesOut: sum((t) => t.bytesOut) };
}

/** The tensors to write for one planned tensor, from its source bytes (`bytes`: read here when absent). */
export async function unitTensors(store: TensorStore, t: PlannedTensor, bytes?: Uint8Array): Promise<TensorToWrite[]> {
  const info = store.get(t.ref.name)!;
  const raw = bytes ?? (await store.readBytes(t.ref.name));
  const f32 = () => convert(raw, info.dtype, 'f32', `${store.name}: tensor "${t.ref.name}"`) as Float32Array;
  if (t.as === 'packed') return quantizedTensors(t.ref.name, quantizeWeight(f32(), t.ref.shape[0], t.ref.shape[1], t.spec!));
  if (t.as === 'stored' || info.dtype === 'F16') return [{ name: t.ref.name, dtype: info.dtype, shape: info.shape, data: raw }];
  return [{ name: t.ref.name, dtype: 'F16', shape: info.shape, data: f32ArrayToF16(f32()) }];
}

/** How a planned tensor is stored, as its version records it (`layout`: a calibrated session's, 16 for F16). */
export function storedAs(t: PlannedTensor, layout: QuantSpec | 16 | undefined): StoredAs {
  if (t.as === 'packed' && layout !== 16) return { bits: layout!.bits, group: layout!.group, symmetric: layout!.symmetric };
  return t.as === 'stored' ? 'stored' : 'F16';
}

/** The side files a model folder has (SIDE_FILES), as the bytes quantize writes. */
export async function readSideFiles(files: ModelFiles): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for (const f of SIDE_FILES) if (await files.exists(f)) out.set(f, new TextEncoder().encode(await files.readText(f)));
  return out;
}

/**
 * Bias correction by default for calibrated methods, except sequential GPTQ: each of its units
 * already saw the quantized model's inputs, and the mean shift on top measured worse there (test
 * BERT, 1 - cosine 6.17e-4 with it, 5.92e-4 without; AWQ's halves with it: 2.90e-4 / 5.48e-4).
 */
function defaultBiasCorrection(method: QuantMethod, dtype: QuantizeDType, fdt: string, opts: QuantizeOptions): boolean {
  if (method === 'gptq' && opts.sequential !== false) return false;
  return method !== 'rtn' || dtype !== fdt;
}

/** The metadata quantize writes before the version entries (also what a delta's target gets). */
export function quantizeMetadata(plan: QuantizePlan, dtype: QuantizeDType, method: QuantMethod, opts: QuantizeOptions, linearMeta?: ReadonlyMap<string, LinearQuantMeta>): Record<string, string> {
  const fdt = fileDType(dtype);
  const meta: Record<string, string> = { format: 'pt', ...prequantMetadata(fdt, plan.spec, plan.tableSpecs, linearMeta), 'webq.embeddings': plan.embeddings, 'webq.method': dtype === 'mixed' ? `mixed+${method}` : method };
  if (dtype === 'w8a8-static') meta['webq.static_activations'] = opts.actCalibration ?? 'percentile';
  if (opts.smooth !== undefined) meta['webq.smooth'] = String(opts.smooth);
  // Recorded whenever the search ran, so that a delta quantizes changed units the same way.
  if (plan.spec.clipSearch) meta['webq.clip_search'] = 'true';
  return meta;
}

/** Hashes of a model's units as they are written: sources when read, stored parts as produced. */
export class UnitHasher {
  private readonly sources = new Map<string, string>();
  private readonly parts = new Map<string, { suffix: string; hash: string }[]>();

  /** Hashes a unit's source tensor; returns the hash. */
  async source(name: string, info: { dtype: string; shape: readonly number[] }, bytes: Uint8Array): Promise<string> {
    const h = await tensorHash(info.dtype, info.shape, bytes);
    this.sources.set(name, h);
    return h;
  }

  async part(unit: string, e: TensorEntry, bytes: Uint8Array): Promise<void> {
    const list = this.parts.get(unit) ?? [];
    list.push({ suffix: e.name.slice(unit.length), hash: await tensorHash(e.dtype, e.shape, bytes) });
    this.parts.set(unit, list);
  }

  /** The hash of a unit's stored tensors (all of them given to part()). */
  async quantized(unit: string): Promise<string> {
    const parts = this.parts.get(unit);
    if (!parts) throw new WebqError('INTERNAL', `quantize: no stored tensors hashed for ${unit}`);
    return unitHash(parts);
  }

  /** The version of the finished model: units in plan order. */
  async version(units: readonly { name: string; as: StoredAs }[], files: Record<string, string>): Promise<ModelVersion> {
    const tensors: Record<string, UnitVersion> = {};
    for (const u of units) {
      const source = this.sources.get(u.name);
      const parts = this.parts.get(u.name);
      if (!source || !parts) throw new WebqError('INTERNAL', `quantize: no hash made for ${u.name}`);
      tensors[u.name] = { source, quantized: await unitHash(parts), as: u.as };
    }
    return { version: await versionOf(tensors, files), tensors, files };
  }
}

/** The metadata with placeholder version entries of the final length. */
export function placeholderVersion(units: readonly { name: string; as: StoredAs }[], files: Record<string, string>): Record<string, string> {
  const tensors = Object.fromEntries(units.map((u) => [u.name, { source: HASH_PLACEHOLDER, quantized: HASH_PLACEHOLDER, as: u.as }]));
  return versionMetadata({ version: VERSION_PLACEHOLDER, tensors, files });
}

/** Hashes of side files by path. */
export async function fileHashes(side: ReadonlyMap<string, Uint8Array>): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [f, b] of side) out[f] = await sha256Hex(b);
  return out;
}

/** Writes a webq pre-quantized copy of a checkpoint (see the top of this file); returns what it did. */
export async function quantizeCheckpoint(files: ModelFiles, outDir: string, dtype: QuantizeDType, opts: QuantizeOptions = {}): Promise<QuantizeReport> {
  const t0 = (globalThis.performance ?? Date).now();
  checkQuantizeOptions(dtype, opts); // before any work
  const fdt = fileDType(dtype);
  const method = opts.method ?? 'rtn';
  const fs = await loadFs(outDir);
  const path = await loadPath(outDir);
  // An existing non-empty folder is never overwritten (checked before any work).
  const existing = await fs.readdir(outDir).catch(() => null);
  if (existing && existing.length) throw new WebqError('OUTPUT_EXISTS', `${outDir}: already exists and is not empty; choose a new output folder`);
  const config = parseModelConfig(await files.readJson('config.json'), `${files.describe}/config.json`);
  const store = await files.checkpoint();
  let session: CalibratedQuantization | null = null;
  try {
    // mixed: the forward's own base options (ModelArch.mixedDefaults) under what was asked.
    const mixed = archOf(config).mixedDefaults;
    const plan = planQuantized(store, config, fdt, dtype === 'mixed' ? { ...opts, embeddings: opts.embeddings ?? mixed.embeddings, group: opts.group ?? mixed.group, symmetric: opts.symmetric ?? mixed.symmetric } : opts);
    const calibrated = method !== 'rtn' || dtype !== fdt || opts.smooth !== undefined || opts.maxError !== undefined || !!opts.measure;
    session = calibrated
      ? await CalibratedQuantization.open(files, store, config, {
          spec: plan.spec, fileDType: fdt, method, mixedBudget: opts.budget, group: opts.group, symmetric: opts.symmetric,
          staticActs: dtype === 'w8a8-static' ? (opts.actCalibration ?? 'percentile') : undefined, smooth: opts.smooth, actOrder: opts.actOrder, sequential: opts.sequential,
          biasCorrection: opts.biasCorrection ?? defaultBiasCorrection(method, dtype, fdt, opts), calib: opts.calib, eval: opts.eval, maxError: opts.maxError, calibTokens: opts.calibTokens, calibSeed: opts.calibSeed, context: opts.context, onProgress: opts.onProgress,
        })
      : null;
    await session?.prepare();
    const isLinear = (t: PlannedTensor) => t.as === 'packed' && !plan.tableSpecs.has(t.ref.name);
    // Every output tensor's name, dtype and shape, known before any data: the header goes first.
    const entries = new Map<string, PlannedTensor>();
    const manifest: TensorEntry[] = [];
    for (const t of plan.tensors) {
      const layout = isLinear(t) && session ? session.layout(t.ref.name) : t.spec;
      for (const e of outputEntries(store, t, layout)) {
        entries.set(e.name, t);
        manifest.push(e);
      }
    }
    // The version (src/quant/versions.ts): hashes made as tensors are read and written.
    const side = await readSideFiles(files);
    const sideHashes = await fileHashes(side);
    const units = plan.tensors.map((t) => ({ name: t.ref.name, as: storedAs(t, isLinear(t) && session ? session.layout(t.ref.name) : t.spec) }));
    const base = quantizeMetadata(plan, dtype, method, opts, session?.linearMeta());
    const meta = { ...base, ...placeholderVersion(units, sideHashes) };
    const hasher = new UnitHasher();
    const tmpDir = `${outDir.replace(/[\\/]+$/, '')}.tmp-${Math.random().toString(36).slice(2)}`;
    await fs.mkdir(tmpDir, { recursive: true });
    let model: ModelError | undefined;
    let bytesOut = 0;
    const order = writeOrder(manifest);
    // What was done (also for a run the guard refuses: the CLI's --report shows why).
    const report = (): QuantizeReport => {
      const summary = session?.summary();
      const linears = plan.tensors.filter(isLinear);
      const linearParams = linears.reduce((s, t) => s + t.ref.shape[0] * t.ref.shape[1], 0);
      const linearNames = new Set(linears.map((t) => t.ref.name));
      const linearBytes = manifest.filter((e) => linearNames.has(entries.get(e.name)!.ref.name)).reduce((s, e) => s + e.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[e.dtype], 0);
      const layers = summary?.layers ?? defaultLayers(plan, method);
      return {
        architecture: plan.architecture, dtype, fileDType: fdt, method, spec: plan.spec, embeddings: plan.embeddings, tensors: plan.tensors.length, quantized: plan.linears,
        bytesIn: plan.bytesIn, bytesOut, linearParams, linearBytes, bitsPerWeight: (8 * linearBytes) / linearParams,
        seconds: ((globalThis.performance ?? Date).now() - t0) / 1000, layers, model,
        calibration: summary ? { source: summary.source, texts: summary.texts, tokens: summary.tokens, sensitivityTokens: summary.sensitivityTokens, unknownShare: summary.unknownShare } : undefined,
        smooth: opts.smooth, actCalibration: dtype === 'w8a8-static' ? (opts.actCalibration ?? 'percentile') : undefined, budget: opts.budget,
      };
    };
    try {
      // Each planned tensor is made when its first output is due; its other outputs wait here.
      const made = new Map<string, Map<string, ArrayBufferView>>();
      bytesOut = await writeStreaming(path.join(tmpDir, 'model.safetensors'), order, meta, async (e, i) => {
        opts.onProgress?.('write', i, order.length);
        const t = entries.get(e.name)!;
        let m = made.get(t.ref.name);
        if (!m) {
          const src = await store.readBytes(t.ref.name);
          await hasher.source(t.ref.name, store.get(t.ref.name)!, src);
          const list = (await session?.tensors(t.ref.name)) ?? (await unitTensors(store, t, src));
          made.set(t.ref.name, (m = new Map(list.map((x) => [x.name, x.data]))));
        }
        const data = m.get(e.name);
        if (!data) throw new WebqError('INTERNAL', `quantize: no data made for ${e.name}`);
        await hasher.part(t.ref.name, e, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
        m.delete(e.name);
        if (!m.size) made.delete(t.ref.name);
        return data;
      }, async () => ({ ...base, ...versionMetadata(await hasher.version(units, sideHashes)) }));
      for (const [f, bytes] of side) {
        const target = path.join(tmpDir, ...f.split('/'));
        await fs.mkdir(path.dirname(target), { recursive: true });
        await fs.writeFile(target, bytes);
      }
      if (session) {
        opts.onProgress?.('evaluate', 0, 1);
        model = await session.evaluate(path.join(tmpDir, 'model.safetensors'));
      }
      if (opts.maxError !== undefined && model && !(model.error <= opts.maxError)) {
        const worst = (await session!.costliest(path.join(tmpDir, 'model.safetensors'))).slice(0, 3);
        const named = worst.map((w) => `${w.id} (${w.error.toExponential(2)} alone)`).join(', ');
        throw new QuantizeRefusedError(`quantized model error ${model.error.toExponential(3)} exceeds --max-error ${opts.maxError} (${describeError(model)}); nothing written. Costliest layers: ${named}. Try --dtype q8, a smaller --group, --method gptq or awq, or --dtype mixed --budget BITS`, report());
      }
      if (existing) await fs.rmdir(outDir);
      await fs.rename(tmpDir, outDir);
    } catch (e) {
      await fs.rm(tmpDir, { recursive: true, force: true });
      throw e;
    }
    return report();
  } finally {
    session?.dispose();
    await store.close();
  }
}

/** The output tensors of one planned tensor (a packed one with `layout`: its spec, or 16 for F16). */
export function outputEntries(store: TensorStore, t: PlannedTensor, layout: QuantSpec | 16 | undefined): TensorEntry[] {
  const name = t.ref.name;
  const [N, K] = t.ref.shape;
  if (t.as === 'packed' && layout !== 16) {
    const { Kp, groups } = layoutFor(K, layout!);
    const out: TensorEntry[] = [
      { name: `${name}.qvalues`, dtype: 'U32', shape: [N, (Kp * layout!.bits) / 32] },
      { name: `${name}.qscales`, dtype: 'F16', shape: [N, groups] },
    ];
    if (!layout!.symmetric) out.push({ name: `${name}.qzeros`, dtype: 'F16', shape: [N, groups] });
    return out;
  }
  if (t.as === 'stored') {
    const info = store.get(name)!;
    return [{ name, dtype: info.dtype, shape: info.shape }];
  }
  return [{ name, dtype: 'F16', shape: [...t.ref.shape] }];
}

/** The report's layers when nothing was calibrated: each packed Linear with the file's spec. */
function defaultLayers(plan: QuantizePlan, method: QuantMethod): LayerReport[] {
  return plan.tensors
    .filter((t) => t.as === 'packed' && !plan.tableSpecs.has(t.ref.name))
    .map((t) => ({ id: t.ref.name, tensors: [t.ref.name], params: t.ref.shape[0] * t.ref.shape[1], bits: t.spec!.bits, group: t.spec!.group, symmetric: t.spec!.symmetric, method }));
}

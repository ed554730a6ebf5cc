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
 * becomes, and its bytes, without reading any data.
 */
import { WebqError } from '../errors.ts';
import type { ModelFiles } from '../io/model-files.ts';
import { loadFs, loadPath } from '../io/node-fs.ts';
import type { TensorStore } from '../io/safetensors.ts';
import { f32ArrayToF16 } from '../io/half.ts';
import { writeSafetensorsFile, type TensorToWrite } from '../io/writer.ts';
import { quantSpecFor, type LinearDType } from '../ops/linear.ts';
import { prequantMetadata, quantizedTensors } from '../quant/prequantized.ts';
import { byteSizes, type QuantSpec } from '../quant/layout.ts';
import { quantizeWeight } from '../quant/rtn.ts';
import { BERT_TABLES, bertTableDefault } from './bert.ts';
import { resolveBertWeights, type WeightRef } from './bert-weights.ts';
import { parseModelConfig, type BertConfig, type ModelConfig } from './config.ts';
import type { LlamaConfig } from './llama-config.ts';
import { LLAMA_TABLES, llamaQuantDefaults, llamaTableDefault } from './llama.ts';
import { resolveLlamaWeights } from './llama-weights.ts';
import { TABLE_LINEAR_DTYPE, type EmbeddingDType, type LinearPart, type TableSpecs } from './upload.ts';

/** Small files copied beside the weights when the source has them (LLM and BERT ones alike). */
const SIDE_FILES = [
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

export interface QuantizeOptions {
  /** Group size (default: the dtype's, as loading with it would use). */
  group?: number | 'channel';
  symmetric?: boolean;
  /** Embedding tables (a tied LM head too): int8, int4, f16 or f32; default int8 (an untied LLM table: f16). */
  embeddings?: EmbeddingDType;
}

export interface QuantizeReport {
  /** config.json model_type. */
  architecture: string;
  spec: QuantSpec;
  embeddings: EmbeddingDType;
  tensors: number;
  /** Linear weights packed. */
  quantized: number;
  /** Tensor data bytes read and written (headers not counted). */
  bytesIn: number;
  bytesOut: number;
}

/** Which tensors a checkpoint keeps, which are Linear weights and tables, and the group size loading uses. */
interface TensorRoles {
  all: WeightRef[];
  linears: Set<string>;
  tables: Set<string>;
  tableSpecs: TableSpecs;
  tableDefault: EmbeddingDType;
  defaultGroup?: number | 'channel';
}

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

function bertRoles(store: TensorStore, config: BertConfig, dtype: LinearDType): TensorRoles {
  const refs = resolveBertWeights(store, config);
  const linears = new Set<string>();
  for (const l of refs.layers) for (const lin of [l.query, l.key, l.value, l.attnOut, l.intermediate, l.output]) linears.add(lin.weight.name);
  if (refs.pooler) linears.add(refs.pooler.weight.name);
  if (refs.classifier) linears.add(refs.classifier.weight.name);
  return { all: [...refs.all], linears, tables: new Set([refs.embeddings.word.name]), tableSpecs: BERT_TABLES, tableDefault: bertTableDefault(dtype) };
}

function llamaRoles(store: TensorStore, config: LlamaConfig, dtype: LinearDType): TensorRoles {
  const refs = resolveLlamaWeights(store, config);
  const all: WeightRef[] = [refs.embed];
  const linears = new Set<string>();
  const linear = (p: LinearPart) => {
    all.push(p.weight);
    if (p.bias) all.push(p.bias);
    linears.add(p.weight.name);
  };
  for (const l of refs.layers) {
    all.push(l.inputNorm, l.postNorm);
    if (l.qNorm) all.push(l.qNorm);
    if (l.kNorm) all.push(l.kNorm);
    [l.q, l.k, l.v, l.o, l.gate, l.up, l.down].forEach(linear);
  }
  all.push(refs.norm);
  if (refs.lmHead) linear({ weight: refs.lmHead });
  return { all, linears, tables: new Set([refs.embed.name]), tableSpecs: LLAMA_TABLES, tableDefault: llamaTableDefault(!refs.lmHead), defaultGroup: llamaQuantDefaults(dtype).group };
}

/**
 * What `webq quantize` makes of each tensor of `store` (a float checkpoint), and the bytes: from
 * the headers alone, so it also sizes models never written (a test sizes MiniLM this way).
 */
export function planQuantized(store: TensorStore, config: ModelConfig, dtype: LinearDType, opts: QuantizeOptions = {}): QuantizePlan {
  quantSpecFor(dtype); // an unknown or float dtype fails before any work
  const roles = config.modelType === 'bert' ? bertRoles(store, config, dtype) : llamaRoles(store, config, dtype);
  if (roles.all.some((r) => r.quantized)) throw new WebqError('ALREADY_QUANTIZED', `${store.name}: is already pre-quantized; quantize the float checkpoint instead`);
  const spec = quantSpecFor(dtype, { group: opts.group ?? roles.defaultGroup, symmetric: opts.symmetric });
  const embeddings = opts.embeddings ?? roles.tableDefault;
  const tableSpec = embeddings === 'int8' || embeddings === 'int4' ? quantSpecFor(TABLE_LINEAR_DTYPE[embeddings], roles.tableSpecs[embeddings]) : null;
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

/** The tensors to write for one planned tensor. */
async function output(store: TensorStore, t: PlannedTensor): Promise<TensorToWrite[]> {
  const info = store.get(t.ref.name)!;
  if (t.as === 'packed') return quantizedTensors(t.ref.name, quantizeWeight((await store.readAs(t.ref.name, 'f32')) as Float32Array, t.ref.shape[0], t.ref.shape[1], t.spec!));
  if (t.as === 'stored' || info.dtype === 'F16') return [{ name: t.ref.name, dtype: info.dtype, shape: info.shape, data: await store.readBytes(t.ref.name) }];
  return [{ name: t.ref.name, dtype: 'F16', shape: info.shape, data: f32ArrayToF16((await store.readAs(t.ref.name, 'f32')) as Float32Array) }];
}

export async function quantizeCheckpoint(files: ModelFiles, outDir: string, dtype: LinearDType, opts: QuantizeOptions = {}): Promise<QuantizeReport> {
  quantSpecFor(dtype); // an unknown or float dtype fails before any work
  const fs = await loadFs(outDir);
  const path = await loadPath(outDir);
  // An existing non-empty folder is never overwritten (checked before any work).
  const existing = await fs.readdir(outDir).catch(() => null);
  if (existing && existing.length) throw new WebqError('OUTPUT_EXISTS', `${outDir}: already exists and is not empty; choose a new output folder`);
  const config = parseModelConfig(await files.readJson('config.json'), `${files.describe}/config.json`);
  const store = await files.checkpoint();
  try {
    const plan = planQuantized(store, config, dtype, opts);
    // The whole output is held in memory until written: fine for the models webq runs in a browser.
    const out: TensorToWrite[] = [];
    for (const t of plan.tensors) out.push(...(await output(store, t)));
    const meta = { format: 'pt', ...prequantMetadata(dtype, plan.spec, plan.tableSpecs), 'webq.embeddings': plan.embeddings };
    const tmpDir = `${outDir.replace(/[\\/]+$/, '')}.tmp-${Math.random().toString(36).slice(2)}`;
    await fs.mkdir(tmpDir, { recursive: true });
    try {
      await writeSafetensorsFile(path.join(tmpDir, 'model.safetensors'), out, meta);
      for (const f of SIDE_FILES) {
        if (!(await files.exists(f))) continue;
        const target = path.join(tmpDir, ...f.split('/'));
        await fs.mkdir(path.dirname(target), { recursive: true });
        await fs.writeFile(target, await files.readText(f));
      }
      if (existing) await fs.rmdir(outDir);
      await fs.rename(tmpDir, outDir);
    } catch (e) {
      await fs.rm(tmpDir, { recursive: true, force: true });
      throw e;
    }
    const bytesOut = out.reduce((s, t) => s + t.data.byteLength, 0);
    return { architecture: plan.architecture, spec: plan.spec, embeddings: plan.embeddings, tensors: plan.tensors.length, quantized: plan.linears, bytesIn: plan.bytesIn, bytesOut };
  } finally {
    await store.close();
  }
}

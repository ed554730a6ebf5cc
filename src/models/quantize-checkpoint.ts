/**
 * Writes a webq pre-quantized copy of a checkpoint (format: src/quant/prequantized.ts), for every
 * architecture webq runs. It works by tensor role: config.json names the architecture, that
 * architecture's weight table (the one the loader uses) says which tensors are Linear weights, and
 *
 *   Linear weights    packed in the chosen dtype (.qvalues / .qscales / .qzeros)
 *   everything else   as stored (embeddings, norms, biases; so a tied LM head stays float too)
 *
 *   bert              query/key/value/attention output/intermediate/output, pooler, classifier
 *   llama-family      q/k/v/o, gate/up/down, and lm_head when it is not tied to the embeddings
 *
 * The quantization is the one loading the float checkpoint with that dtype would make (LLMs' q8
 * uses groups of 32, llamaQuantDefaults), so both give the same model. Config and tokenizer files
 * are copied beside the weights. Everything goes into a temporary folder renamed into place at the
 * end, so a failed run leaves no half-written model behind.
 */
import { WebqError } from '../errors.ts';
import type { ModelFiles } from '../io/model-files.ts';
import { loadFs, loadPath } from '../io/node-fs.ts';
import type { TensorStore } from '../io/safetensors.ts';
import { writeSafetensorsFile, type TensorToWrite } from '../io/writer.ts';
import { quantSpecFor, type LinearDType } from '../ops/linear.ts';
import { prequantMetadata, quantizedTensors } from '../quant/prequantized.ts';
import type { QuantSpec } from '../quant/layout.ts';
import { quantizeWeight } from '../quant/rtn.ts';
import { resolveBertWeights, type WeightRef } from './bert-weights.ts';
import { parseModelConfig, type BertConfig } from './config.ts';
import type { LlamaConfig } from './llama-config.ts';
import { llamaQuantDefaults } from './llama.ts';
import { resolveLlamaWeights } from './llama-weights.ts';
import type { LinearPart } from './upload.ts';

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
}

export interface QuantizeReport {
  /** config.json model_type. */
  architecture: string;
  spec: QuantSpec;
  tensors: number;
  quantized: number;
  bytesIn: number;
  bytesOut: number;
}

/** Which tensors a checkpoint keeps, which of them are Linear weights, and the group size loading uses. */
interface TensorRoles {
  all: WeightRef[];
  linears: Set<string>;
  defaultGroup?: number | 'channel';
}

function bertRoles(store: TensorStore, config: BertConfig): TensorRoles {
  const refs = resolveBertWeights(store, config);
  const linears = new Set<string>();
  for (const l of refs.layers) for (const lin of [l.query, l.key, l.value, l.attnOut, l.intermediate, l.output]) linears.add(lin.weight.name);
  if (refs.pooler) linears.add(refs.pooler.weight.name);
  if (refs.classifier) linears.add(refs.classifier.weight.name);
  return { all: [...refs.all], linears };
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
  return { all, linears, defaultGroup: llamaQuantDefaults(dtype).group };
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
    const roles = config.modelType === 'bert' ? bertRoles(store, config) : llamaRoles(store, config, dtype);
    if (roles.all.some((r) => r.quantized)) throw new WebqError('ALREADY_QUANTIZED', `${files.describe}: is already pre-quantized; quantize the float checkpoint instead`);
    const spec = quantSpecFor(dtype, { group: opts.group ?? roles.defaultGroup, symmetric: opts.symmetric });
    // The whole output is held in memory until written: fine for the models webq runs in a browser.
    const out: TensorToWrite[] = [];
    let bytesIn = 0;
    for (const r of roles.all) {
      const info = store.get(r.name)!;
      bytesIn += info.byteLength;
      if (roles.linears.has(r.name)) {
        const [N, K] = r.shape;
        out.push(...quantizedTensors(r.name, quantizeWeight((await store.readAs(r.name, 'f32')) as Float32Array, N, K, spec)));
      } else {
        out.push({ name: r.name, dtype: info.dtype, shape: info.shape, data: await store.readBytes(r.name) });
      }
    }
    const tmpDir = `${outDir.replace(/[\\/]+$/, '')}.tmp-${Math.random().toString(36).slice(2)}`;
    await fs.mkdir(tmpDir, { recursive: true });
    try {
      await writeSafetensorsFile(path.join(tmpDir, 'model.safetensors'), out, { format: 'pt', ...prequantMetadata(dtype, spec) });
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
    return { architecture: config.modelType, spec, tensors: roles.all.length, quantized: roles.linears.size, bytesIn, bytesOut };
  } finally {
    await store.close();
  }
}

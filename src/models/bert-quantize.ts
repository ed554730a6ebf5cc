/**
 * Writes a webq pre-quantized copy of a BERT checkpoint (format: src/quant/prequantized.ts):
 * every Linear weight packed in the chosen dtype, every other tensor as stored, plus the config and
 * tokenizer files, into a new folder. Everything is written to a temporary folder that is renamed
 * into place, so a failed run leaves no half-written model behind.
 */
import { WebqError } from '../errors.ts';
import type { ModelFiles } from '../io/model-files.ts';
import { loadFs, loadPath } from '../io/node-fs.ts';
import { writeSafetensorsFile, type TensorToWrite } from '../io/writer.ts';
import { quantSpecFor, type LinearDType } from '../ops/linear.ts';
import { prequantMetadata, quantizedTensors } from '../quant/prequantized.ts';
import { quantizeWeight } from '../quant/rtn.ts';
import { resolveBertWeights } from './bert-weights.ts';
import { parseBertConfig } from './config.ts';

/** Small files copied beside the weights when the source has them. */
const SIDE_FILES = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.txt', 'modules.json', '1_Pooling/config.json'];

export interface QuantizeReport {
  tensors: number;
  quantized: number;
  bytesIn: number;
  bytesOut: number;
}

export async function quantizeBertCheckpoint(files: ModelFiles, outDir: string, dtype: LinearDType, opts: { group?: number | 'channel'; symmetric?: boolean } = {}): Promise<QuantizeReport> {
  const spec = quantSpecFor(dtype, opts);
  const fs = await loadFs(outDir);
  const path = await loadPath(outDir);
  // An existing non-empty folder is never overwritten (checked before any work), and the new one
  // appears whole: every file goes into a sibling temporary folder renamed into place at the end.
  const existing = await fs.readdir(outDir).catch(() => null);
  if (existing && existing.length) throw new WebqError('OUTPUT_EXISTS', `${outDir}: already exists and is not empty; choose a new output folder`);
  const config = parseBertConfig(await files.readJson('config.json'), `${files.describe}/config.json`);
  const store = await files.checkpoint();
  try {
    const refs = resolveBertWeights(store, config);
    if (refs.all.some((r) => r.quantized)) throw new WebqError('ALREADY_QUANTIZED', `${files.describe}: is already pre-quantized; quantize the float checkpoint instead`);
    const linears = new Set<string>();
    for (const l of refs.layers) for (const lin of [l.query, l.key, l.value, l.attnOut, l.intermediate, l.output]) linears.add(lin.weight.name);
    if (refs.pooler) linears.add(refs.pooler.weight.name);
    if (refs.classifier) linears.add(refs.classifier.weight.name);
    const out: TensorToWrite[] = [];
    let bytesIn = 0;
    for (const r of refs.all) {
      const info = store.get(r.name)!;
      bytesIn += info.byteLength;
      if (linears.has(r.name)) {
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
    return { tensors: refs.all.length, quantized: linears.size, bytesIn, bytesOut };
  } finally {
    await store.close();
  }
}

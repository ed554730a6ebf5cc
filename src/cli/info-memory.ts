/**
 * The memory section of `webq info`: webq's own estimate of what the model would hold on the GPU
 * (src/models/memory-estimate.ts: weights at the dtype a load would use, the KV cache at the
 * context, the activations of one forward) and, where WebGPU is available, whether its largest
 * buffers fit this adapter's limits, exactly as a load checks them. A config.json webq cannot
 * read (another architecture, hostile sizes) is reported in one line, not raised: the tensor
 * listing stands on its own.
 */
import { DEFAULT_CONTEXT } from '../api/llm.ts';
import { GpuContext } from '../gpu/context.ts';
import type { TensorStore } from '../io/safetensors/reader.ts';
import { openModelFiles } from '../io/hub/hub.ts';
import { parseModelConfig, type ModelConfig } from '../models/config.ts';
import { archOf } from '../models/archs.ts';
import { checkEstimate, gib, type MemoryEstimate } from '../models/memory-estimate.ts';
import type { LinearDType } from '../ops/linear.ts';
import { parseQuantizationConfig } from '../quant/imports/index.ts';
import { readPrequantInfo } from '../quant/prequantized.ts';

export interface MemorySection {
  text: string[];
  json: (MemoryEstimate & { adapter: string | null; fits: boolean | null; check: string | null }) | { error: string };
}

/** The model folder a location names: a folder, a URL or hub id, or the folder of a file in one. */
function folderOf(location: string): string {
  return /\.(safetensors|json)$/i.test(location) && !/^https?:\/\//i.test(location) ? location.replace(/[/\\][^/\\]*$/, '') || '.' : location;
}

export async function memorySection(location: string, store: TensorStore, o: { revision?: string; offline?: boolean; dtype?: LinearDType; context?: number; gpu: boolean }): Promise<MemorySection | null> {
  let files;
  try {
    files = await openModelFiles(folderOf(location), { revision: o.revision, ...(o.offline ? { offline: true } : { cache: false }) });
    if (!(await files.exists('config.json'))) return null;
  } catch {
    return null; // no folder around the checkpoint: nothing to estimate
  }
  let cfgJson: unknown;
  try {
    cfgJson = await files.readJson('config.json'); // capped in size: a hostile giant is not read
  } catch (err) {
    const error = (err as Error).message;
    return { text: [`memory estimate: not available: ${error}`], json: { error } };
  }
  let cfg: ModelConfig;
  let e: MemoryEstimate;
  const estimate = (f16: boolean, dtype: LinearDType, context?: number) => archOf(cfg).estimate(cfg, { dtype, f16, context: context ?? Math.min(cfg.maxPositions, DEFAULT_CONTEXT) });
  try {
    cfg = parseModelConfig(cfgJson as object, 'config.json');
    const imported = parseQuantizationConfig(cfg.quantizationConfig ?? undefined, 'config.json');
    e = estimate(true, (o.dtype ?? readPrequantInfo(store)?.dtype ?? imported?.dtype ?? archOf(cfg).defaultDType) as LinearDType, o.context);
  } catch (err) {
    const error = (err as Error).message;
    return { text: [`memory estimate: not available: ${error}`], json: { error } };
  }
  const what = e.kv ? `dtype ${e.dtype}, context ${e.tokens}, kv ${e.kv}` : `dtype ${e.dtype}, a batch of ${e.tokens} tokens`;
  const text = [
    `memory estimate (${what}, ${e.activations_dtype} activations): weights ${gib(e.weights)}, KV cache ${gib(e.kv_cache)}, activations ${gib(e.activations)}; total ${gib(e.total)}`,
    ...e.buffers.map((b) => `  largest buffers: ${b.what}: ${gib(b.bytes)}`),
  ];
  let adapter: string | null = null;
  let fits: boolean | null = null;
  let check: string | null = null;
  if (o.gpu) {
    let ctx: GpuContext | undefined;
    try {
      ctx = await GpuContext.create();
      adapter = ctx.caps.adapter;
      const limit = Math.min(ctx.caps.maxBufferSize, ctx.caps.maxStorageBufferBindingSize);
      // The adapter may lack shader-f16: then activations are f32, as a load would make them.
      const real = estimate(ctx.caps.f16, e.dtype, e.tokens);
      try {
        checkEstimate(real, ctx.caps, 'config.json', (n) => `a load needs ${e.kv ? `contextLength ${n}` : `batches of ${n} tokens`} or less`);
        fits = true;
        check = `fits ${adapter} (buffer limit ${gib(limit)})`;
      } catch (err) {
        fits = false;
        check = (err as Error).message;
      }
    } catch (err) {
      check = `not checked against an adapter: ${(err as Error).message}`;
    } finally {
      ctx?.dispose();
    }
    text.push(`  ${check}`);
  }
  return { text, json: { ...e, adapter, fits, check } };
}

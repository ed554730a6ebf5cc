/**
 * `webq info`'s account of an imported checkpoint: for each quantized Linear, the webq layout a
 * load gives it and whether that is exact, decided from headers and g_idx tensors only (symmetry
 * as configured); and the config.json beside a checkpoint location that says the format.
 */
import { isHubId, openModelFiles } from '../../io/hub/hub.ts';
import { parseStrictJson, type JsonValue } from '../../io/json.ts';
import { checkTextSize } from '../../io/hub/model-files.ts';
import type { TensorStore } from '../../io/safetensors/reader.ts';
import { isHttpUrl, openSource } from '../../io/source.ts';
import { layoutFor } from '../layout.ts';
import { isJsonObject, type ImportDType, type ImportFormat } from './common.ts';
import { parseQuantizationConfig } from './formats.ts';
import { planLayout, specText } from './int-weight.ts';

export interface ImportReport {
  /** The format as configured. */
  description: string;
  /** How a load runs it by default: the Linear dtype, and float activations unless int8 is the format's own (W8A8). */
  loads: { dtype: ImportDType; activations: 'float' | 'int8' };
  /** How its Linears land in webq: one entry per layout. */
  layouts: { layout: string; converted: boolean; linears: number; fileBytes: number; gpuBytes: number }[];
}

/**
 * What loading `store` under `format` does to each quantized Linear: reads only headers and the
 * g_idx tensors that decide the layout. For `webq info`.
 */
export async function importReport(store: TensorStore, format: ImportFormat): Promise<ImportReport> {
  const byLayout = new Map<string, ImportReport['layouts'][number]>();
  for (const t of store.tensors) {
    if (!t.name.endsWith(format.marker)) continue;
    const base = t.name.slice(0, -format.marker.length);
    const [N, K] = await format.shapeOf(store, base);
    const lin = format.linear(store, base, N, K);
    if (!lin) continue;
    const plan = planLayout(K, lin.bits, { gIdx: await lin.readGIdx() }, lin.symmetric);
    const { groups, wordsPerRow } = layoutFor(K, plan.spec);
    const layout = specText(plan.spec);
    const key = `${layout}|${plan.exact}`;
    const entry = byLayout.get(key) ?? { layout, converted: !plan.exact, linears: 0, fileBytes: 0, gpuBytes: 0 };
    entry.linears++;
    entry.fileBytes += lin.tensors.reduce((s, n) => s + (store.get(n)?.byteLength ?? 0), 0);
    // Codes, plus f16 scales (and zero points) as a shader-f16 device holds them.
    entry.gpuBytes += N * wordsPerRow * 4 + N * groups * 2 * (plan.spec.symmetric ? 1 : 2);
    byLayout.set(key, entry);
  }
  return { description: format.description, loads: { dtype: format.dtype, activations: format.dtype === 'w8a8' ? 'int8' : 'float' }, layouts: [...byLayout.values()] };
}

function mib(n: number): string {
  return n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 / 1024).toFixed(2)} MiB`;
}

/** The report as lines for `webq info`. */
export function importReportText(r: ImportReport): string[] {
  const out = [`quantization (config.json quantization_config): ${r.description}`];
  for (const l of r.layouts) {
    const how = l.converted
      ? `re-quantized at load to webq ${l.layout} (their groups are not contiguous runs of columns, as with act-order g_idx, which no webq layout holds exactly)`
      : `loaded as webq ${l.layout}, codes and scales as stored (no re-quantization)`;
    out.push(`  ${l.linears} Linear${l.linears === 1 ? '' : 's'}, ${mib(l.fileBytes)} in the file: ${how}; ${mib(l.gpuBytes)} on the GPU`);
  }
  if (r.layouts.length === 0) out.push('  no quantized Linears found in the checkpoint');
  const { dtype, activations } = r.loads;
  out.push(
    activations === 'float'
      ? `  runs by default as ${dtype} with float activations (weight-only, as the format computes; --activations int8 for int8 activation blocks)`
      : `  runs by default as ${dtype}: int8 activations per token, as the format computes`,
  );
  return out;
}

/** config.json's text beside a checkpoint location (folder, file in it, URL, or hub id), or undefined. */
async function configNear(location: string, opts: { revision?: string; offline?: boolean }): Promise<string | undefined> {
  const read = async (where: string | URL) => {
    const src = openSource(where);
    try {
      const size = await src.size();
      checkTextSize('config.json', size, String(where)); // a hostile giant is not read
      return new TextDecoder().decode(await src.read(0, size));
    } finally {
      await src.close?.();
    }
  };
  const local = /\.(safetensors|json)$/i.test(location) ? location.replace(/[^/\\]*$/, 'config.json') : `${location.replace(/[/\\]+$/, '')}/config.json`;
  try {
    if (isHttpUrl(location)) return await read(new URL('config.json', location));
    return await read(local);
  } catch {
    if (!isHubId(location)) return undefined; // a bare checkpoint: nothing to report
  }
  try {
    const files = await openModelFiles(location, { revision: opts.revision, ...(opts.offline ? { offline: true } : { cache: false }) });
    return await files.readText('config.json');
  } catch {
    return undefined;
  }
}

/**
 * What `webq info <location>` says about quantization: null for a float (or webq) checkpoint; the
 * report, or the reason webq cannot load it, for one with a quantization_config.
 */
export async function quantizationSection(location: string, store: TensorStore, opts: { revision?: string; offline?: boolean } = {}): Promise<{ report: ImportReport | null; error: string | null; text: string[] } | null> {
  const text = await configNear(location, opts);
  if (text === undefined) return null;
  let qc: JsonValue | undefined;
  try {
    const json = parseStrictJson(text);
    qc = isJsonObject(json) ? json.quantization_config : undefined;
  } catch {
    return null;
  }
  if (qc === undefined || qc === null) return null;
  try {
    const format = parseQuantizationConfig(qc);
    if (!format) return null;
    const report = await importReport(store, format);
    return { report, error: null, text: importReportText(report) };
  } catch (e) {
    const error = (e as Error).message;
    return { report: null, error, text: [`quantization (config.json quantization_config): webq cannot load it: ${error}`] };
  }
}

/**
 * `webq info model.gguf`: the file's tensors and metadata, and how webq loads each type: codes
 * and scales copied into its int8/int4 layout, re-quantized to int8 from the exact dequantization
 * (named, with the count and bytes), or read as floats. Only the header is read.
 */
import { specText } from '../quant/imports/index.ts';
import { openGgufFiles } from './files.ts';
import { packPlan, type PackMethod } from './pack.ts';
import type { GgufHeader, MetadataValue } from './parse.ts';

export interface GgufTypeReport {
  type: string;
  tensors: number;
  bytes: number;
  /** 'float': read as stored; 'copy': codes and scales copied into `layout`; else re-quantized into it (pack.ts). */
  mapping: 'float' | PackMethod;
  layout: string | null;
  /** The GGUF names of the tensors (matrices only for packed types). */
  names: string[];
}

export interface GgufReport {
  file: string;
  version: number;
  architecture: string;
  modelType: string;
  fileSize: number;
  tokenizer: string | null;
  chatTemplate: boolean;
  types: GgufTypeReport[];
  tensors: { name: string; hfName: string; type: string; shape: readonly number[]; bytes: number }[];
  metadata: Record<string, string>;
}

function shown(v: MetadataValue): string {
  if (Array.isArray(v)) return v.length > 8 ? `[${v.length} values: ${v.slice(0, 3).map(shown).join(', ')}, ...]` : `[${v.map(shown).join(', ')}]`;
  const s = typeof v === 'string' ? JSON.stringify(v) : String(v);
  return s.length > 160 ? `${s.slice(0, 160)}... (${s.length} chars)` : s;
}

/** What webq makes of the GGUF file at `location` (a path or URL); reads the header only. */
export async function ggufReport(location: string): Promise<GgufReport> {
  const files = await openGgufFiles(location, { cache: false });
  const h: GgufHeader = files.header;
  const hfOf = new Map([...files.model.tensors].map(([hf, t]) => [t.gguf.name, hf]));
  const byType = new Map<string, GgufTypeReport>();
  for (const t of h.tensors) {
    const plan = t.shape.length === 2 ? packPlan(t.type) : null;
    const mapping = plan?.method ?? 'float';
    const key = `${t.type.name}|${mapping}`;
    const r = byType.get(key) ?? { type: t.type.name, tensors: 0, bytes: 0, mapping, layout: plan ? specText(plan.spec) : null, names: [] };
    r.tensors++;
    r.bytes += t.byteLength;
    r.names.push(t.name);
    byType.set(key, r);
  }
  const meta: Record<string, string> = {};
  for (const [k, v] of h.metadata) if (!['version', 'tensor_count', 'kv_count'].includes(k)) meta[k] = shown(v.value);
  return {
    file: h.name,
    version: h.version,
    architecture: files.model.arch,
    modelType: files.model.modelType,
    fileSize: h.fileSize,
    tokenizer: typeof h.metadata.get('tokenizer.ggml.model')?.value === 'string' ? (h.metadata.get('tokenizer.ggml.model')!.value as string) : null,
    chatTemplate: h.metadata.has('tokenizer.chat_template'),
    types: [...byType.values()],
    tensors: h.tensors.map((t) => ({ name: t.name, hfName: hfOf.get(t.name) ?? '(rope scaling factors)', type: t.type.name, shape: t.shape, bytes: t.byteLength })),
    metadata: meta,
  };
}

function mib(n: number): string {
  return n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 / 1024).toFixed(2)} MiB`;
}

/** The lines `webq info` prints about how each type loads. */
export function ggufLoadLines(r: GgufReport): string[] {
  const out = [`how webq loads it (as ${r.modelType}):`];
  for (const t of r.types) {
    const what = `${t.tensors} ${t.type} tensor${t.tensors === 1 ? '' : 's'} (${mib(t.bytes)})`;
    const few = t.names.length <= 4 ? `: ${t.names.join(', ')}` : '';
    if (t.mapping === 'float') out.push(`  ${what}: read as floats`);
    else if (t.mapping === 'copy') out.push(`  ${what}: loaded as webq ${t.layout}, codes and f16 scales as stored (no re-quantization)`);
    else if (t.mapping === 'affine') {
      out.push(`  ${what}: RE-QUANTIZED at load to webq ${t.layout}: each code times k, scale D/k, zero point k*M/D rounded to an integer (webq's zero points are integers), so a group's values move together by at most D/(2k)${few}`);
    } else if (t.mapping === 'scaled') {
      out.push(`  ${what}: RE-QUANTIZED at load to webq ${t.layout}: two 16-wide sub-blocks per group of 32 share one scale, the least-squares one among each sub-block's step / k and round-to-nearest's${few}`);
    } else out.push(`  ${what}: RE-QUANTIZED at load to webq ${t.layout} by round-to-nearest from the exact dequantization (16-wide sub-blocks with their own mins)${few}`);
  }
  return out;
}

/** The `webq info` text of a GGUF file. */
export function ggufReportText(r: GgufReport, formatBytes: (n: number) => string): string {
  const rows = r.tensors.map((t) => [t.name, t.type, `[${t.shape.join(', ')}]`, formatBytes(t.bytes), t.hfName]);
  const head = ['NAME', 'TYPE', 'SHAPE', 'SIZE', 'AS'];
  const w = head.map((x, i) => Math.max(x.length, ...rows.map((c) => c[i].length)));
  const line = (c: string[]) => c.map((x, i) => (i === 3 ? x.padStart(w[i]) : x.padEnd(w[i]))).join('  ').trimEnd();
  const meta = Object.entries(r.metadata).map(([k, v]) => `  ${k}: ${v}`);
  return [
    `GGUF v${r.version}, ${r.architecture}, ${r.tensors.length} tensors, ${formatBytes(r.fileSize)}; tokenizer ${r.tokenizer ?? 'none'}${r.chatTemplate ? ', chat template' : ''}`,
    line(head),
    ...rows.map(line),
    '',
    'metadata:',
    ...meta,
    '',
    ...ggufLoadLines(r),
    '',
  ].join('\n');
}

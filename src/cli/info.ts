/**
 * `webq info <file|folder|url|hub id>`: lists a checkpoint's tensors, metadata and totals. Only
 * headers are read, so this is instant even for remote multi-gigabyte checkpoints (a GPTQ, AWQ,
 * compressed-tensors or bitsandbytes one also has its small g_idx tensors read, to say how each
 * quantized Linear loads: src/quant/imports/report.ts).
 */
import { stat } from 'node:fs/promises';
import { envFlag } from '../env.ts';
import { isGgufLocation } from '../gguf/files.ts';
import { ggufReport, ggufReportText } from '../gguf/report.ts';
import { openCheckpoint } from '../io/safetensors/checkpoint.ts';
import { formatShape } from '../io/safetensors/dtypes.ts';
import { isHubId, openModelFiles } from '../io/hub/hub.ts';
import type { TensorStore } from '../io/safetensors/reader.ts';
import { ShardedCheckpoint } from '../io/safetensors/sharded.ts';
import { describeStoredAs, readModelVersion, type ModelVersion } from '../quant/versions.ts';
import { quantizationSection } from '../quant/imports/index.ts';
import { LINEAR_DTYPES, type LinearDType } from '../ops/linear.ts';
import { UsageError, type CliIO, type Command } from './command.ts';
import { memorySection, type MemorySection } from './info-memory.ts';

const USAGE = `usage: webq info [options] <file.safetensors | file.gguf | folder | model.safetensors.index.json | http(s) URL | org/name[@revision]>

Prints each tensor's name, dtype, shape and size, the file metadata, and totals.
For a GGUF file: its tensors, types and metadata, and how webq loads each type
(copied as stored, or re-quantized: named, with counts and sizes).
A folder (or a URL ending in "/") may hold model.safetensors or a sharded
model.safetensors.index.json. A hub id (org/name, from $WEBQ_HUB_URL or
huggingface.co) is read the same way, by range requests: nothing is downloaded
but the headers. Offline, a hub id or folder URL is read from the download cache.

With a config.json beside the checkpoint, also webq's estimate of the GPU memory
the model needs (weights at the dtype a load uses, KV cache at the context,
activations of one forward) and whether its largest buffers fit this adapter.

options:
  --json          print one JSON object instead of a table
  --dtype D       estimate for this load dtype (default: the checkpoint's, else q4 / q8)
  --context N     estimate an LLM's KV cache and prefill at N positions (default min(max_position_embeddings, 4096))
  --no-gpu        do not ask for a WebGPU adapter to check the estimate against
  --revision R    hub branch, tag or commit (default main)
  --offline       never touch the network (also WEBQ_OFFLINE=1): read the cached copy
  -h, --help`;

/** 1536 -> "1.5 KiB". */
export function formatBytes(n: number): string {
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  if (n < 1024) return `${n} B`;
  let v = n;
  let u = -1;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

/** 1234567 -> "1.23M" (parameter counts are quoted this way for models). */
function formatCount(n: number): string {
  const steps: [number, string][] = [
    [1e12, 'T'],
    [1e9, 'B'],
    [1e6, 'M'],
    [1e3, 'K'],
  ];
  for (const [div, s] of steps) if (n >= div) return `${(n / div).toFixed(2)}${s}`;
  return String(n);
}

interface Args {
  json: boolean;
  dtype: LinearDType | undefined;
  context: number | undefined;
  gpu: boolean;
  offline: boolean;
  revision: string | undefined;
  location: string;
}

function parseArgs(args: string[]): Args {
  const out: Omit<Args, 'location'> = { json: false, offline: false, revision: undefined, dtype: undefined, context: undefined, gpu: true };
  const positional: string[] = [];
  let literal = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (literal || !a.startsWith('-') || a === '-') positional.push(a);
    else if (a === '--') literal = true;
    else if (a === '--json') out.json = true;
    else if (a === '--offline') out.offline = true;
    else if (a === '--no-gpu') out.gpu = false;
    else if (a === '--dtype') {
      const d = args[++i];
      if (!LINEAR_DTYPES.includes(d as LinearDType)) throw new UsageError(`info: --dtype must be one of ${LINEAR_DTYPES.join(', ')}`);
      out.dtype = d as LinearDType;
    } else if (a === '--context') {
      const n = Number(args[++i]);
      if (!Number.isSafeInteger(n) || n < 2) throw new UsageError('info: --context must be an integer of at least 2');
      out.context = n;
    }
    else if (a === '--revision' || a.startsWith('--revision=')) {
      out.revision = a === '--revision' ? args[++i] : a.slice('--revision='.length);
      if (!out.revision) throw new UsageError('info: option --revision needs a value (run "webq info --help")');
    } else throw new UsageError(`info: unknown option ${JSON.stringify(a)} (run "webq info --help")`);
  }
  if (positional.length !== 1) {
    throw new UsageError(`info: expected one file, folder, URL or hub id, got ${positional.length} (run "webq info --help")`);
  }
  return { ...out, location: positional[0] };
}

/**
 * A hub id goes through the hub (revision, headers, errors that name the model) by range requests;
 * offline, a hub id or folder URL is read from the download cache and nothing else is allowed. An
 * org/name that is a local path, or that names a file, is a path.
 */
async function open(a: Args): Promise<TensorStore> {
  const url = /^https?:\/\//i.test(a.location);
  const hub = !url && isHubId(a.location) && !/\.(safetensors|json)$/i.test(a.location) && !(await stat(a.location).then(() => true, () => false));
  if (!url && !hub) return openCheckpoint(a.location);
  if (a.offline || envFlag('WEBQ_OFFLINE')) return (await openModelFiles(a.location, { revision: a.revision, offline: true })).checkpoint();
  if (url) return openCheckpoint(a.location); // a file, an index or a folder URL
  return (await openModelFiles(a.location, { revision: a.revision, cache: false })).checkpoint();
}

interface Row {
  name: string;
  dtype: string;
  shape: readonly number[];
  bytes: number;
  elements: number;
  shard?: string;
}

function rows(ckpt: TensorStore): Row[] {
  const sharded = ckpt instanceof ShardedCheckpoint ? ckpt : undefined;
  return ckpt.tensors.map((t) => ({
    name: t.name,
    dtype: t.dtype,
    shape: t.shape,
    bytes: t.byteLength,
    elements: t.elements,
    ...(sharded ? { shard: sharded.shardOf(t.name)!.file } : {}),
  }));
}

/** Metadata values can be whole JSON configs: keep the table one line per key and readable. */
function displayValue(v: string): string {
  // eslint-disable-next-line no-control-regex
  const flat = /[\u0000-\u001f]/.test(v) ? JSON.stringify(v) : v;
  return flat.length > 200 ? `${flat.slice(0, 200)}... (${v.length} chars; use --json for all)` : flat;
}

/** The model version (webq quantize): per unit, how it was stored and its hashes (first 12 digits). */
function versionSection(v: ModelVersion): string[] {
  const rows = Object.entries(v.tensors).map(([n, u]) => [n, describeStoredAs(u.as), u.source.slice(0, 12), u.quantized.slice(0, 12)]);
  const head = ['UNIT', 'STORED AS', 'SOURCE', 'QUANTIZED'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (c: string[]) => c.map((x, i) => x.padEnd(w[i])).join('  ').trimEnd();
  const files = Object.entries(v.files).map(([f, h]) => `  ${f}  ${h.slice(0, 12)}`);
  return [`version: ${v.version} (${rows.length} units, hashes sha256, first 12 hex digits)`, line(head), ...rows.map(line), ...(files.length ? ['files:', ...files] : [])];
}

function table(ckpt: TensorStore, list: Row[]): string {
  const sharded = ckpt instanceof ShardedCheckpoint;
  const head = ['NAME', 'DTYPE', 'SHAPE', 'SIZE', ...(sharded ? ['SHARD'] : [])];
  const cells = list.map((r) => [r.name, r.dtype, formatShape(r.shape), formatBytes(r.bytes), ...(r.shard !== undefined ? [r.shard] : [])]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) =>
    c
      .map((x, i) => (i === 3 ? x.padStart(widths[i]) : i === c.length - 1 ? x : x.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  const out = [line(head), ...cells.map(line)];

  const meta = Object.entries(ckpt.metadata);
  out.push('', meta.length ? 'metadata:' : 'metadata: (none)', ...meta.map(([k, v]) => `  ${k}: ${displayValue(v)}`));
  const v = readModelVersion(ckpt.metadata, ckpt.name);
  if (v) out.push('', ...versionSection(v));
  if (ckpt instanceof ShardedCheckpoint) out.push(`shards: ${ckpt.shards.length} (${ckpt.shards.map((s) => s.file).join(', ')})`);

  const params = list.reduce((s, r) => s + r.elements, 0);
  const bytes = list.reduce((s, r) => s + r.bytes, 0);
  out.push(
    `total: ${list.length} tensors, ${params.toLocaleString('en-US')} parameters (${formatCount(params)}), ` +
      `${formatBytes(bytes)} (${bytes.toLocaleString('en-US')} bytes)`,
  );
  return `${out.join('\n')}\n`;
}

function json(ckpt: TensorStore, list: Row[], quant: Awaited<ReturnType<typeof quantizationSection>>, memory: MemorySection | null): string {
  const obj = {
    source: ckpt.name,
    sharded: ckpt instanceof ShardedCheckpoint,
    ...(ckpt instanceof ShardedCheckpoint ? { shards: ckpt.shards.map((s) => s.file) } : {}),
    metadata: { ...ckpt.metadata },
    ...(readModelVersion(ckpt.metadata, ckpt.name) ? { version: readModelVersion(ckpt.metadata, ckpt.name) } : {}),
    tensors: list.map((r) => ({ name: r.name, dtype: r.dtype, shape: r.shape, bytes: r.bytes, ...(r.shard ? { shard: r.shard } : {}) })),
    totals: {
      tensors: list.length,
      parameters: list.reduce((s, r) => s + r.elements, 0),
      bytes: list.reduce((s, r) => s + r.bytes, 0),
    },
    ...(quant ? { quantization: quant.report ?? { error: quant.error } } : {}),
    ...(memory ? { memory: memory.json } : {}),
  };
  // Indented for reading, but number arrays (shapes) on one line. Only multi-line arrays match, and
  // JSON strings never contain a raw newline, so string contents can't be touched.
  const text = JSON.stringify(obj, null, 2).replace(/\[\n\s*(-?\d+(?:,\n\s*-?\d+)*)\n\s*\]/g, (_, nums: string) => `[${nums.split(/,\s*/).join(', ')}]`);
  return `${text}\n`;
}

export const infoCommand: Command = {
  summary: 'list the tensors, metadata and size of a safetensors checkpoint',
  usage: USAGE,
  async run(args: string[], io: CliIO): Promise<number> {
    const opts = parseArgs(args);
    if (isGgufLocation(opts.location)) {
      // A GGUF file: its tensors and metadata, and how each of its types loads (src/gguf/report.ts).
      const r = await ggufReport(opts.location);
      io.stdout(opts.json ? `${JSON.stringify(r, null, 2)}\n` : ggufReportText(r, formatBytes));
      return 0;
    }
    if (opts.revision !== undefined && !isHubId(opts.location)) throw new UsageError(`info: --revision is for hub ids (org/name), not ${JSON.stringify(opts.location.slice(0, 200))}`);
    const ckpt = await open(opts);
    try {
      const list = rows(ckpt);
      const offline = opts.offline || envFlag('WEBQ_OFFLINE');
      const quant = await quantizationSection(opts.location, ckpt, { revision: opts.revision, offline });
      const memory = await memorySection(opts.location, ckpt, { revision: opts.revision, offline, dtype: opts.dtype, context: opts.context, gpu: opts.gpu });
      io.stdout(opts.json ? json(ckpt, list, quant, memory) : table(ckpt, list) + (quant ? `${quant.text.join('\n')}\n` : '') + (memory ? `${memory.text.join('\n')}\n` : ''));
      return 0;
    } finally {
      await ckpt.close();
    }
  },
};

/**
 * `webq info <file|folder|url>`: lists a checkpoint's tensors, metadata and totals. Only headers
 * are read, so this is instant even for remote multi-gigabyte checkpoints.
 */
import { openCheckpoint, type Checkpoint } from '../io/checkpoint.ts';
import { formatShape } from '../io/dtypes.ts';
import { ShardedCheckpoint } from '../io/sharded.ts';
import { UsageError, type CliIO, type Command } from './command.ts';

const USAGE = `usage: webq info [--json] <file.safetensors | folder | model.safetensors.index.json | http(s) URL>

Prints each tensor's name, dtype, shape and size, the file metadata, and totals.
A folder (or a URL ending in "/") may hold model.safetensors or a sharded
model.safetensors.index.json.

options:
  --json    print one JSON object instead of a table
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

function parseArgs(args: string[]): { json: boolean; location: string } {
  let json = false;
  const positional: string[] = [];
  let literal = false;
  for (const a of args) {
    if (literal || !a.startsWith('-') || a === '-') positional.push(a);
    else if (a === '--') literal = true;
    else if (a === '--json') json = true;
    else throw new UsageError(`info: unknown option ${JSON.stringify(a)} (run "webq info --help")`);
  }
  if (positional.length !== 1) {
    throw new UsageError(`info: expected one file, folder or URL, got ${positional.length} (run "webq info --help")`);
  }
  return { json, location: positional[0] };
}

interface Row {
  name: string;
  dtype: string;
  shape: readonly number[];
  bytes: number;
  elements: number;
  shard?: string;
}

function rows(ckpt: Checkpoint): Row[] {
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

function table(ckpt: Checkpoint, list: Row[]): string {
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
  if (ckpt instanceof ShardedCheckpoint) out.push(`shards: ${ckpt.shards.length} (${ckpt.shards.map((s) => s.file).join(', ')})`);

  const params = list.reduce((s, r) => s + r.elements, 0);
  const bytes = list.reduce((s, r) => s + r.bytes, 0);
  out.push(
    `total: ${list.length} tensors, ${params.toLocaleString('en-US')} parameters (${formatCount(params)}), ` +
      `${formatBytes(bytes)} (${bytes.toLocaleString('en-US')} bytes)`,
  );
  return `${out.join('\n')}\n`;
}

function json(ckpt: Checkpoint, list: Row[]): string {
  const obj = {
    source: ckpt.name,
    sharded: ckpt instanceof ShardedCheckpoint,
    ...(ckpt instanceof ShardedCheckpoint ? { shards: ckpt.shards.map((s) => s.file) } : {}),
    metadata: { ...ckpt.metadata },
    tensors: list.map((r) => ({ name: r.name, dtype: r.dtype, shape: r.shape, bytes: r.bytes, ...(r.shard ? { shard: r.shard } : {}) })),
    totals: {
      tensors: list.length,
      parameters: list.reduce((s, r) => s + r.elements, 0),
      bytes: list.reduce((s, r) => s + r.bytes, 0),
    },
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
    const ckpt = await openCheckpoint(opts.location);
    try {
      const list = rows(ckpt);
      io.stdout(opts.json ? json(ckpt, list) : table(ckpt, list));
      return 0;
    } finally {
      await ckpt.close();
    }
  },
};

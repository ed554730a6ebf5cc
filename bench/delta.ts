/**
 * `npm run bench -- delta`: how big a delta package is against the model it updates, and how long
 * `webq diff` and `webq patch` take, for a MiniLM-shaped checkpoint (vocabulary 30522, hidden
 * 384, 6 layers; random weights) and three kinds of fine-tune:
 *
 *   ffn, one layer     layer 3's intermediate and output dense weights changed
 *   attention, all     every layer's query/key/value/output weights changed
 *   everything         every tensor changed (the delta is the whole model)
 *
 * Each is quantized with `webq quantize` (q4 and q8), diffed against the new checkpoint, patched
 * with --out, and the patched folder compared byte for byte with a fresh quantization. Needs no
 * GPU (round-to-nearest quantization runs on the CPU).
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { diffModel, writeDeltaFile } from '../src/delta/diff.ts';
import { patchModelFolder } from '../src/delta/patch-disk.ts';
import { openModelFiles } from '../src/io/hub/hub.ts';
import { quantizeCheckpoint } from '../src/quantize/checkpoint.ts';
import { editCheckpoint, MINILM_SHAPE, writeBertCheckpoint } from '../fixtures/index.ts';
import { fmt, report, table, type BenchIO } from './lib/measure.ts';

const USAGE = `usage: npm run bench -- delta [--json] [--dtypes q4,q8] [--layers 6]
  --dtypes   the quantized models to update (default q4,q8)
  --layers   encoder layers of the MiniLM-shaped checkpoint (default 6)
`;

const CHANGES = [
  { name: 'ffn, one layer', nudge: /^encoder\.layer\.3\.(intermediate|output)\.dense\.weight$/ },
  { name: 'attention, all layers', nudge: /attention\.(self\.(query|key|value)|output\.dense)\.weight$/ },
  { name: 'everything', nudge: /./ },
] as const;

export interface DeltaResult {
  model: string;
  dtype: 'q4' | 'q8';
  change: string;
  changed_units: number;
  delta_bytes: number;
  model_bytes: number;
  f32_bytes: number;
  /** delta_bytes / model_bytes. */
  delta_vs_model: number;
  diff_s: number;
  patch_s: number;
  /** The patched folder equals a fresh quantization of the new checkpoint, file for file. */
  byte_identical: boolean;
}

async function folderHashes(dir: string): Promise<string> {
  const parts: string[] = [];
  for (const f of (await readdir(dir, { recursive: true })).sort()) {
    const p = join(dir, f);
    if ((await stat(p)).isFile()) parts.push(`${f}:${createHash('sha256').update(await readFile(p)).digest('hex')}`);
  }
  return parts.join('\n');
}

export async function run(args: string[], io: BenchIO): Promise<number> {
  let v: { json?: boolean; help?: boolean; dtypes?: string; layers?: string };
  try {
    v = parseArgs({ args, options: { json: { type: 'boolean' }, help: { type: 'boolean' }, dtypes: { type: 'string' }, layers: { type: 'string' } } }).values;
  } catch (e) {
    io.stderr(`bench delta: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (v.help) {
    io.stdout(USAGE);
    return 0;
  }
  const dtypes = (v.dtypes ?? 'q4,q8').split(',') as ('q4' | 'q8')[];
  if (dtypes.some((d) => d !== 'q4' && d !== 'q8')) {
    io.stderr(`bench delta: --dtypes takes q4 and q8\n${USAGE}`);
    return 2;
  }
  const layers = Number(v.layers ?? MINILM_SHAPE.layers);
  const dir = await mkdtemp(join(tmpdir(), 'webq-bench-delta-'));
  try {
    const v1 = join(dir, 'v1');
    const { describe } = await writeBertCheckpoint(v1, { ...MINILM_SHAPE, layers });
    const f32 = (await stat(join(v1, 'model.safetensors'))).size;
    io.stderr(`${describe}; f32 checkpoint ${fmt(f32 / 2 ** 20)} MiB\n`);
    const results: DeltaResult[] = [];
    for (const [ci, c] of CHANGES.entries()) {
      const v2 = await editCheckpoint(v1, join(dir, `v2-${ci}`), { nudge: c.nudge });
      for (const dtype of dtypes) {
        const q1 = join(dir, `q1-${ci}-${dtype}`);
        const q2 = join(dir, `q2-${ci}-${dtype}`);
        await quantizeCheckpoint(await openModelFiles(v1), q1, dtype);
        await quantizeCheckpoint(await openModelFiles(v2), q2, dtype);
        let t0 = performance.now();
        const d = await diffModel(await openModelFiles(q1), await openModelFiles(v2));
        const deltaPath = join(dir, `d-${ci}-${dtype}.safetensors`);
        const bytes = await writeDeltaFile(deltaPath, d);
        const diffS = (performance.now() - t0) / 1000;
        t0 = performance.now();
        const out = join(dir, `p-${ci}-${dtype}`);
        await patchModelFolder(q1, deltaPath, { out });
        const patchS = (performance.now() - t0) / 1000;
        const model = (await stat(join(q2, 'model.safetensors'))).size;
        results.push({
          model: describe, dtype, change: c.name, changed_units: d.manifest.changed.length, delta_bytes: bytes, model_bytes: model, f32_bytes: f32,
          delta_vs_model: bytes / model, diff_s: diffS, patch_s: patchS, byte_identical: (await folderHashes(out)) === (await folderHashes(q2)),
        });
        await Promise.all([q1, q2, out, deltaPath].map((p) => rm(p, { recursive: true, force: true })));
      }
      await rm(v2, { recursive: true, force: true });
    }
    const rows = results.map((r) => [r.change, r.dtype, String(r.changed_units), fmt(r.delta_bytes / 2 ** 20), fmt(r.model_bytes / 2 ** 20), `${(100 * r.delta_vs_model).toFixed(1)}%`, fmt(r.diff_s), fmt(r.patch_s), r.byte_identical ? 'yes' : 'NO']);
    report(io, !!v.json, table(['change', 'dtype', 'units', 'delta MiB', 'model MiB', 'delta/model', 'diff s', 'patch s', 'identical'], rows), results);
    return results.every((r) => r.byte_identical) ? 0 : 1;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * A quantized tiny BERT (v1), a delta to its one-layer fine-tune (v2) with the patched model that
 * `webq patch --out` makes of it, the same delta signed, and bad deltas: a flipped data byte, a truncated file, a delta for
 * another version (wrong base), and a manifest whose unit hash does not match its data.
 */
import { createHash } from 'node:crypto';
import { cp, mkdir, readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { main } from '../../src/cli/main.ts';
import { encodeDelta, openDelta } from '../../src/delta/format.ts';
import { generateDeltaKeys } from '../../src/delta/sign.ts';
import { versionOf } from '../../src/quant/versions.ts';
import { writeOutlierBert } from './quantize-fixtures.ts';
import { editCheckpoint } from '../../fixtures/checkpoint-edit.ts';

export interface DeltaFixtures {
  /** Served folder: `model/` (v1 quantized), `delta.safetensors` (v1 -> v2) and the bad deltas. */
  served: string;
  /** The quantized v1 and what `webq patch --out` makes of it with the delta. */
  v1: string;
  v2: string;
  bad: { flipped: string; truncated: string; wrongBase: string; forged: string };
  /** `signed.safetensors` in `served`: the same delta signed (webq diff --sign) by `publicKey` (base64). */
  signed: string;
  publicKey: string;
}

async function cli(...argv: string[]): Promise<void> {
  let err = '';
  const code = await main(argv, { stdout: () => undefined, stderr: (t) => void (err += t) });
  if (code !== 0) throw new Error(`webq ${argv.join(' ')}: exit ${code}: ${err}`);
}

/** Every file under `dir` by relative path ("/" separated), with its sha256 (a link: where it points). */
export async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      const key = relative(dir, p).split('\\').join('/');
      if (e.isSymbolicLink()) out[key] = `link:${await readlink(p)}`;
      else if (e.isDirectory()) await walk(p);
      else out[key] = createHash('sha256').update(await readFile(p)).digest('hex');
    }
  };
  await walk(dir);
  return out;
}

export async function makeDeltaFixtures(dir: string): Promise<DeltaFixtures> {
  const shape = { hidden: 64, heads: 2, intermediate: 128, layers: 2 };
  const f1 = (await writeOutlierBert(join(dir, 'f1'), { ...shape, seed: 3 })).dir;
  const f2 = await editCheckpoint(f1, join(dir, 'f2'), { nudge: /^encoder\.layer\.1\.(intermediate|output)\.dense\.weight$/ });
  const f3 = await editCheckpoint(f2, join(dir, 'f3'), { nudge: /^encoder\.layer\.0\.output\.dense\.weight$/, seed: 5 });
  const served = join(dir, 'served');
  await mkdir(served);
  const v1 = join(dir, 'q1');
  await cli('quantize', f1, '--dtype', 'q8', '--out', v1);
  await cp(v1, join(served, 'model'), { recursive: true });
  const delta = join(served, 'delta.safetensors');
  await cli('diff', v1, f2, '--out', delta);
  const v2 = join(dir, 'q2');
  await cli('patch', v1, delta, '--out', v2);

  const bytes = await readFile(delta);
  const flipped = join(served, 'bad-flipped.safetensors');
  const b = Buffer.from(bytes);
  b[b.length - 10] ^= 0x40;
  await writeFile(flipped, b);
  const truncated = join(served, 'bad-truncated.safetensors');
  await writeFile(truncated, bytes.subarray(0, bytes.length - 100));
  const wrongBase = join(served, 'bad-base.safetensors');
  await cli('diff', v2, f3, '--out', wrongBase);
  // The target's recorded hash of a changed unit replaced, its version recomputed, the header
  // checksum rewritten: only the data check can tell.
  const d = await openDelta(delta);
  const m = structuredClone(d.manifest);
  const meta = JSON.parse(m.target.metadata['webq.tensors']);
  meta[m.changed[0]].quantized = 'f'.repeat(64);
  m.target.metadata['webq.tensors'] = JSON.stringify(meta);
  m.target.version = await versionOf(meta, JSON.parse(m.target.metadata['webq.files']));
  m.target.metadata['webq.version'] = m.target.version;
  const tensors = [];
  for (const t of d.store.tensors) tensors.push({ name: t.name, dtype: t.dtype, shape: t.shape, data: await d.store.readBytes(t.name) });
  await d.close();
  const forged = join(served, 'bad-forged.safetensors');
  await writeFile(forged, Buffer.concat(await encodeDelta(m, tensors)));
  const keys = await generateDeltaKeys();
  const key = join(dir, 'delta-key');
  await writeFile(key, keys.privateKey);
  const signed = join(served, 'signed.safetensors');
  await cli('diff', v1, f2, '--out', signed, '--sign', key);
  return { served, v1, v2, bad: { flipped, truncated, wrongBase, forged }, signed, publicKey: keys.publicKeyBase64 };
}

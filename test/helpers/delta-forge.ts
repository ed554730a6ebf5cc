/**
 * Crafted deltas, as an attacker who controls a delta's URL would make them: the manifest and the
 * tensors of a real delta read raw (no validation), edited, and written back with the header
 * checksum recomputed (it is an unkeyed sha256, so anyone can). `revise` also recomputes the
 * target's version from its metadata, so that only deeper checks can tell.
 */
import { writeFile } from 'node:fs/promises';
import { encodeDelta } from '../../src/delta/format.ts';
import type { DeltaManifest } from '../../src/delta/manifest.ts';
import { SafetensorsFile } from '../../src/io/safetensors/reader.ts';
import type { TensorToWrite } from '../../src/io/safetensors/writer.ts';
import { sha256Hex } from '../../src/quant/hash.ts';
import { versionOf } from '../../src/quant/versions.ts';

/** A delta's parts, raw: the manifest as plain JSON (any shape), the tensors with their bytes. */
export interface RawDelta {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  manifest: any;
  tensors: TensorToWrite[];
}

export async function readRawDelta(path: string): Promise<RawDelta> {
  const st = await SafetensorsFile.open(path);
  try {
    const tensors: TensorToWrite[] = [];
    for (const t of st.tensors) tensors.push({ name: t.name, dtype: t.dtype, shape: t.shape, data: await st.readBytes(t.name) });
    return { manifest: JSON.parse(st.metadata['webq.delta']), tensors };
  } finally {
    await st.close();
  }
}

/** The delta's bytes, checksum recomputed. */
export async function encodeRaw(d: RawDelta): Promise<Uint8Array> {
  return new Uint8Array(Buffer.concat(await encodeDelta(d.manifest as DeltaManifest, d.tensors)));
}

export async function writeRaw(path: string, d: RawDelta): Promise<string> {
  await writeFile(path, await encodeRaw(d));
  return path;
}

/** Recomputes the target's version from its metadata (when it parses), as a careful forger would. */
export async function revise(d: RawDelta): Promise<void> {
  const meta = d.manifest?.target?.metadata;
  try {
    const tensors = JSON.parse(meta['webq.tensors']);
    const files = JSON.parse(meta['webq.files']);
    const v = await versionOf(tensors, files);
    meta['webq.version'] = v;
    d.manifest.target.version = v;
  } catch {
    // Not parseable: nothing to recompute.
  }
}

/** Ships `bytes` as side file `path`: the tensor, its hash in the target's files, the manifest's entry. */
export async function shipFile(d: RawDelta, path: string, bytes: Uint8Array): Promise<void> {
  d.tensors.push({ name: `file:${path}`, dtype: 'U8', shape: [bytes.byteLength], data: bytes });
  const meta = d.manifest.target.metadata;
  const files = JSON.parse(meta['webq.files']);
  files[path] = await sha256Hex(bytes);
  meta['webq.files'] = JSON.stringify(files);
  d.manifest.files[path] = 'delta';
  await revise(d);
}

/**
 * The delta package: one safetensors file holding the stored tensors of every unit that changed
 * (under their names in the new model), changed side files as U8 tensors named `file:<path>`, and
 * in `__metadata__`:
 *
 *   webq.delta        the manifest (JSON, DeltaManifest): base and target versions with every
 *                     unit's hash, the target's full metadata and tensor order (so a patch writes
 *                     exactly the file a fresh quantization would), where each target unit comes
 *                     from (the delta, or a base unit by name), and what was added, changed,
 *                     removed and renamed
 *   webq.delta.check  sha256 of the manifest text and of every tensor entry of the header (name,
 *                     dtype, shape, offsets): a flipped byte anywhere in the header is caught. An
 *                     integrity sum only: whoever edits a delta can recompute it
 *   webq.delta.signature, webq.delta.key   optional: an Ed25519 signature of the checksum and the
 *                     signer's public key (sign.ts); a patch given a public key requires them
 *
 * The manifest is untrusted input: manifest.ts checks its every field before anything is used. Data is checked against the manifest's hashes when the delta is applied (unit by unit), so a
 * flipped byte in a tensor is caught too; a truncated file fails the safetensors header check.
 */
import type { DType } from '../io/safetensors/dtypes.ts';
import { SafetensorsFile } from '../io/safetensors/reader.ts';
import type { SourceInput } from '../io/source.ts';
import { encodeHeader, writeOrder, type TensorToWrite } from '../io/safetensors/writer.ts';
import { sha256Hex } from '../quant/hash.ts';
import type { ModelVersion } from '../quant/versions.ts';
import type { CryptoKey } from './crypto-types.ts';
import { DeltaError } from './errors.ts';
import { DELTA_FORMAT, FILE_PREFIX, LIMITS, parseManifest, type DeltaManifest } from './manifest.ts';
import { importPublicKey, signCheck, verifyCheck, type PublicKeyInput } from './sign.ts';

export { DeltaError } from './errors.ts';
export { DELTA_FORMAT, FILE_PREFIX, type DeltaManifest, type TargetEntry, type UnitSource } from './manifest.ts';

const MANIFEST_KEY = 'webq.delta';
const CHECK_KEY = 'webq.delta.check';

export interface Delta {
  manifest: DeltaManifest;
  /** The target's version as recorded in its metadata. */
  target: ModelVersion;
  store: SafetensorsFile;
  describe: string;
  /** Bytes of the delta file. */
  size: number;
  /** Whether it was checked against a public key (openDelta's `publicKey`). */
  verified: boolean;
  close(): Promise<void>;
}

export interface OpenDeltaOptions {
  /** Refuse the delta unless it is signed by this key (see sign.ts). */
  publicKey?: PublicKeyInput;
}

export interface EncodeDeltaOptions {
  /** Sign the delta with this Ed25519 private key; `signer` (its public key) is recorded to name it. */
  sign?: CryptoKey;
  signer?: CryptoKey;
}

async function headerCheck(manifestText: string, tensors: readonly { name: string; dtype: string; shape: readonly number[]; dataOffsets?: readonly number[] }[]): Promise<string> {
  return sha256Hex([manifestText, ...tensors.map((t) => `${t.name}|${t.dtype}|${t.shape.join(',')}|${t.dataOffsets?.join(',') ?? ''}`)].join('\n'));
}

/** The delta file's bytes: header, then the tensors. Units' tensors and side files in `tensors`. */
export async function encodeDelta(manifest: DeltaManifest, tensors: readonly TensorToWrite[], opts: EncodeDeltaOptions = {}): Promise<Uint8Array[]> {
  const order = writeOrder(tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })));
  const byName = new Map(tensors.map((t) => [t.name, t]));
  let off = 0;
  const withOffsets = order.map((e) => {
    const n = byName.get(e.name)!.data.byteLength;
    const r = { ...e, dataOffsets: [off, off + n] };
    off += n;
    return r;
  });
  const text = JSON.stringify(manifest);
  const check = await headerCheck(text, withOffsets);
  const signature = opts.sign ? await signCheck(check, opts.sign, opts.signer) : {};
  const head = encodeHeader(order, { [MANIFEST_KEY]: text, [CHECK_KEY]: check, ...signature });
  const bytes = (d: Uint8Array | ArrayBufferView) => new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
  return [head, ...order.map((e) => bytes(byName.get(e.name)!.data))];
}

function bad(where: string, what: string): never {
  throw new DeltaError('DELTA_CORRUPT', `${where}: ${what}`);
}

/** Every tensor of the delta file is one the manifest ships, as the manifest describes it. */
function checkStore(store: SafetensorsFile, m: DeltaManifest, where: string): void {
  const shipped = new Map<string, { dtype: DType; shape: readonly number[] }>();
  for (const e of m.target.entries) if (m.units[e.unit].from === 'delta') shipped.set(e.name, e);
  for (const [f, from] of Object.entries(m.files)) if (from === 'delta') shipped.set(FILE_PREFIX + f, { dtype: 'U8', shape: [-1] });
  for (const t of store.tensors) {
    const want = shipped.get(t.name);
    if (!want) bad(where, `holds tensor ${JSON.stringify(t.name.slice(0, 80))}, which the manifest does not ship`);
    if (t.name.startsWith(FILE_PREFIX)) {
      if (t.dtype !== 'U8' || t.shape.length !== 1 || t.byteLength > LIMITS.fileBytes) bad(where, `side file tensor ${t.name}: expected U8 [bytes] of at most ${LIMITS.fileBytes} bytes`);
    } else if (t.dtype !== want.dtype || t.shape.join() !== want.shape.join()) bad(where, `tensor ${t.name}: expected ${want.dtype} [${want.shape.join(', ')}] in the delta, found ${t.dtype} [${t.shape.join(', ')}]`);
    shipped.delete(t.name);
  }
  const missing = shipped.keys().next();
  if (!missing.done) bad(where, `the manifest ships ${missing.value}, which the delta does not hold`);
}

/**
 * Opens a delta and checks its header: the checksum, the signature when a public key is given, the
 * manifest's schema (manifest.ts) and that the file holds exactly the tensors the manifest ships.
 * Data is checked against its hashes when the delta is applied.
 */
export async function openDelta(input: SourceInput, name?: string, opts: OpenDeltaOptions = {}): Promise<Delta> {
  const where = name ?? (typeof input === 'string' ? input : input instanceof URL ? input.href : 'delta');
  const key = opts.publicKey === undefined ? undefined : await importPublicKey(opts.publicKey);
  let store: SafetensorsFile;
  try {
    store = await SafetensorsFile.open(input);
  } catch (e) {
    const code = (e as { code?: string }).code ?? '';
    if (/NOT_FOUND|ENOENT|404/.test(code) || /ENOENT/.test((e as Error).message)) throw new DeltaError('DELTA_MISSING', `${where}: cannot read the delta (${(e as Error).message})`);
    throw new DeltaError('DELTA_CORRUPT', `${where}: not a complete webq delta (truncated or damaged): ${(e as Error).message}`);
  }
  try {
    const text = store.metadata[MANIFEST_KEY];
    if (typeof text !== 'string') bad(where, `has no ${MANIFEST_KEY} manifest: it is not a webq delta (make one with \`webq diff\`)`);
    const check = await headerCheck(text, store.tensors);
    if (store.metadata[CHECK_KEY] !== check) bad(where, `header checksum mismatch (${CHECK_KEY}): the file was damaged or edited`);
    if (key) await verifyCheck(store.metadata, check, key, where);
    const { manifest, target } = await parseManifest(text, where);
    checkStore(store, manifest, where);
    return { manifest, target, store, describe: where, size: await store.source.size(), verified: key !== undefined, close: () => store.close() };
  } catch (e) {
    await store.close();
    throw e;
  }
}

/** The delta's bytes of a side file. */
export async function deltaFile(d: Delta, path: string): Promise<Uint8Array> {
  return d.store.readBytes(FILE_PREFIX + path);
}

/** A side file as a delta tensor. */
export function fileTensor(path: string, bytes: Uint8Array): TensorToWrite {
  return { name: FILE_PREFIX + path, dtype: 'U8' as DType, shape: [bytes.byteLength], data: bytes };
}

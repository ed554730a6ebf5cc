/**
 * Signed deltas. The header checksum (webq.delta.check) only proves a delta arrived as it was
 * written: anyone who can edit a delta can recompute it. A signature proves who wrote it. `webq diff
 * --sign KEY` signs the checksum with an Ed25519 private key, and a patch given the matching public
 * key (`--public-key`, `{ publicKey }`) refuses any delta that is unsigned or signed by another key.
 * The checksum covers the manifest (every hash of every unit and side file) and every tensor
 * entry, and applying a delta checks the data against those hashes, so the signature covers all of it.
 *
 * In the delta's `__metadata__`:
 *
 *   webq.delta.signature   base64 Ed25519 signature of "webq-delta-1 signature\n" + the checksum
 *   webq.delta.key         base64 of the signer's raw 32-byte public key (to name it in messages)
 *
 * WebCrypto's Ed25519 does the work (Node >= 20, Deno, current browsers). Keys: a private key as
 * PKCS#8 PEM (`webq keygen`, or `openssl genpkey -algorithm ed25519`); a public key as SPKI PEM,
 * the base64 of its 32 raw bytes, those bytes, or a CryptoKey.
 */
import type { CryptoKey } from './crypto-types.ts';
import { DeltaError } from './errors.ts';

export const SIGNATURE_KEY = 'webq.delta.signature';
export const SIGNER_KEY = 'webq.delta.key';
const ALG = { name: 'Ed25519' } as const;

/** A public key: SPKI PEM text, base64 of the raw 32 bytes, the raw bytes, or a CryptoKey. */
export type PublicKeyInput = string | Uint8Array | CryptoKey;

function subtle(): SubtleCrypto {
  const s = globalThis.crypto?.subtle;
  if (!s) throw new DeltaError('DELTA_SIGNATURE', 'signed deltas need WebCrypto (crypto.subtle), which this runtime lacks (a page served over plain http from another host has none)');
  return s;
}

function b64(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

function unb64(text: string, what: string): Uint8Array<ArrayBuffer> {
  try {
    return Uint8Array.from(atob(text.replace(/\s+/g, '')), (c) => c.charCodeAt(0));
  } catch {
    throw new DeltaError('DELTA_KEY', `${what}: not base64`);
  }
}

function pemBody(text: string, label: string): Uint8Array<ArrayBuffer> | undefined {
  const m = new RegExp(`-----BEGIN ${label}-----([^-]+)-----END ${label}-----`).exec(text);
  return m ? unb64(m[1], `${label} PEM`) : undefined;
}

function pem(label: string, der: ArrayBuffer): string {
  const body = b64(new Uint8Array(der)).replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
}

/** The message a signature is over: the checksum, with the format's name so it signs nothing else. */
function signedText(check: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(`webq-delta-1 signature\n${check}`);
}

/** A new key pair: the private key as PKCS#8 PEM, the public key as SPKI PEM and as base64 raw bytes. */
export async function generateDeltaKeys(): Promise<{ privateKey: string; publicKey: string; publicKeyBase64: string }> {
  const k = (await subtle().generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const raw = new Uint8Array(await subtle().exportKey('raw', k.publicKey));
  return { privateKey: pem('PRIVATE KEY', await subtle().exportKey('pkcs8', k.privateKey)), publicKey: pem('PUBLIC KEY', await subtle().exportKey('spki', k.publicKey)), publicKeyBase64: b64(raw) };
}

/** A private key from PKCS#8 PEM text (or a CryptoKey). */
export async function importPrivateKey(key: string | CryptoKey, what = 'private key'): Promise<CryptoKey> {
  if (typeof key !== 'string') return key;
  const der = pemBody(key, 'PRIVATE KEY');
  if (!der) throw new DeltaError('DELTA_KEY', `${what}: expected an Ed25519 private key in PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"; make one with \`webq keygen\`)`);
  try {
    return await subtle().importKey('pkcs8', der, ALG, false, ['sign']);
  } catch (e) {
    throw new DeltaError('DELTA_KEY', `${what}: not an Ed25519 private key (${(e as Error).message})`);
  }
}

/** A public key from any PublicKeyInput form. */
export async function importPublicKey(key: PublicKeyInput, what = 'public key'): Promise<CryptoKey> {
  if (typeof key === 'object' && !(key instanceof Uint8Array)) return key;
  let format: 'raw' | 'spki' = 'raw';
  let der: Uint8Array<ArrayBuffer>;
  if (typeof key === 'string') {
    const spki = pemBody(key, 'PUBLIC KEY');
    if (spki) [format, der] = ['spki', spki];
    else der = unb64(key.trim(), what);
  } else der = new Uint8Array(key);
  if (format === 'raw' && der.byteLength !== 32) throw new DeltaError('DELTA_KEY', `${what}: expected an Ed25519 public key (SPKI PEM, or 32 bytes as base64), got ${der.byteLength} bytes`);
  try {
    return await subtle().importKey(format, der, ALG, true, ['verify']);
  } catch (e) {
    throw new DeltaError('DELTA_KEY', `${what}: not an Ed25519 public key (${(e as Error).message})`);
  }
}

/** The metadata entries that sign the checksum `check` with `key`. */
export async function signCheck(check: string, key: CryptoKey, publicKey?: CryptoKey): Promise<Record<string, string>> {
  const sig = new Uint8Array(await subtle().sign(ALG, key, signedText(check)));
  const out: Record<string, string> = { [SIGNATURE_KEY]: b64(sig) };
  if (publicKey) out[SIGNER_KEY] = b64(new Uint8Array(await subtle().exportKey('raw', publicKey)));
  return out;
}

/** The public key that belongs to a private key (PKCS#8 PEM), via a round trip through JWK. */
export async function publicKeyOf(privatePem: string): Promise<CryptoKey> {
  const der = pemBody(privatePem, 'PRIVATE KEY');
  if (!der) throw new DeltaError('DELTA_KEY', 'private key: expected PKCS#8 PEM');
  const k = await subtle().importKey('pkcs8', der, ALG, true, ['sign']);
  const jwk = await subtle().exportKey('jwk', k);
  return subtle().importKey('jwk', { kty: jwk.kty, crv: jwk.crv, x: jwk.x }, ALG, true, ['verify']);
}

/**
 * Checks that `metadata` carries a signature of `check` by `key`; a DeltaError otherwise:
 * DELTA_UNSIGNED when there is none, DELTA_SIGNATURE when it does not verify.
 */
export async function verifyCheck(metadata: Readonly<Record<string, string>>, check: string, key: CryptoKey, where: string): Promise<void> {
  const sig = metadata[SIGNATURE_KEY];
  if (sig === undefined) throw new DeltaError('DELTA_UNSIGNED', `${where}: is not signed, and a public key was given: only deltas signed by that key are applied (sign with \`webq diff --sign KEY\`)`);
  const bytes = typeof sig === 'string' && sig.length < 200 ? unb64(sig, `${where}: ${SIGNATURE_KEY}`) : new Uint8Array(0);
  const ok = bytes.byteLength === 64 && (await subtle().verify(ALG, key, bytes, signedText(check)).catch(() => false));
  if (!ok) {
    const signer = typeof metadata[SIGNER_KEY] === 'string' ? ` (it names signer key ${metadata[SIGNER_KEY].slice(0, 44)})` : '';
    throw new DeltaError('DELTA_SIGNATURE', `${where}: its signature does not verify with the given public key${signer}: signed by another key, or edited after signing`);
  }
}

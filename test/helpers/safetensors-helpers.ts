/** Helpers for the safetensors tests: temp dirs and hand-crafted (possibly broken) files. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';

/**
 * Registers a temp directory for the calling describe block (or file): created before its tests,
 * removed after them. Read `.dir` inside tests.
 */
export function useTempDir(prefix = 'webq-st-'): { dir: string } {
  const ref = { dir: '' };
  beforeAll(async () => {
    ref.dir = await mkdtemp(join(tmpdir(), prefix));
  });
  afterAll(async () => {
    if (ref.dir) await rm(ref.dir, { recursive: true, force: true });
  });
  return ref;
}

/**
 * Builds a safetensors file byte by byte: `header` is a JSON string (or a value to stringify) used
 * verbatim, so tests can produce layouts the writer never would (unaligned, overlapping, ...).
 */
export function craft(header: string | object, data: Uint8Array | number[] = [], opts: { lengthField?: bigint } = {}): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  return craftRaw(json, data, opts);
}

/** Like craft but with raw header bytes (e.g. invalid UTF-8). */
export function craftRaw(headerBytes: Uint8Array, data: Uint8Array | number[] = [], opts: { lengthField?: bigint } = {}): Uint8Array {
  const body = data instanceof Uint8Array ? data : Uint8Array.from(data);
  const out = new Uint8Array(8 + headerBytes.length + body.length);
  new DataView(out.buffer).setBigUint64(0, opts.lengthField ?? BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  out.set(body, 8 + headerBytes.length);
  return out;
}

export async function writeTemp(dir: string, name: string, bytes: Uint8Array | string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, bytes);
  return path;
}

/** Little-endian bytes of a typed array. */
export function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

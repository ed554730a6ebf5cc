/**
 * Random-access byte sources. Checkpoints are often larger than what one ArrayBuffer (or a browser
 * tab) can hold, so everything above this layer reads exact ranges on demand instead of loading
 * whole files.
 */
import { SourceError } from './errors.ts';
import { fsError, loadFs } from './node-fs.ts';
import { urlSource, type UrlSourceOptions } from './url-source.ts';

export { urlSource, type UrlSourceOptions } from './url-source.ts';

export interface ByteSource {
  /** Shown in every error message: the path, URL or file name. */
  readonly name: string;
  /** Total size in bytes. */
  size(): Promise<number>;
  /**
   * Exactly `length` bytes starting at `offset`, in a new array the caller owns (implementations
   * must not reuse or alias it). Fewer bytes available is a SourceError, never a short array.
   */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Releases handles; reads after close are undefined. */
  close?(): Promise<void>;
}

export type SourceInput = string | URL | Blob | ArrayBuffer | Uint8Array | ByteSource;

function checkRange(name: string, offset: number, length: number, size: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new RangeError(`${name}: invalid read range offset=${offset} length=${length}`);
  }
  if (offset + length > size) {
    throw new SourceError(
      'SOURCE_SHORT_READ',
      `${name}: read of ${length} bytes at offset ${offset} goes past the end (${size} bytes)`,
    );
  }
}

/** A local file (Node or Deno). The file is opened on first use and read by range. */
export function fileSource(path: string | URL): ByteSource {
  const name = typeof path === 'string' ? path : path.href;
  let handle: Promise<import('node:fs/promises').FileHandle> | undefined;
  let knownSize: number | undefined;
  const open = () => {
    handle ??= loadFs(name).then((fs) =>
      fs.open(path, 'r').catch((e: unknown) => {
        handle = undefined; // allow a retry after e.g. the file appears
        throw fsError(name, 'open file', e);
      }),
    );
    return handle;
  };
  return {
    name,
    async size() {
      if (knownSize !== undefined) return knownSize;
      const h = await open();
      const st = await h.stat().catch((e: unknown) => {
        throw fsError(name, 'stat file', e);
      });
      if (!st.isFile()) throw new SourceError('SOURCE_IO', `${name}: not a regular file`);
      knownSize = st.size;
      return knownSize;
    },
    async read(offset, length) {
      const h = await open();
      const out = new Uint8Array(length);
      let done = 0;
      // A positional read may return fewer bytes than asked (large reads, pipes): loop until full.
      while (done < length) {
        const { bytesRead } = await h.read(out, done, length - done, offset + done).catch((e: unknown) => {
          throw fsError(name, 'read file', e);
        });
        if (bytesRead === 0) {
          throw new SourceError(
            'SOURCE_SHORT_READ',
            `${name}: file ended after ${offset + done} bytes; wanted ${length} bytes at offset ${offset} (truncated?)`,
          );
        }
        done += bytesRead;
      }
      return out;
    },
    async close() {
      const h = handle;
      handle = undefined;
      if (h) await (await h.catch(() => undefined))?.close();
    },
  };
}

/** Bytes already in memory. Reads copy, so callers may mutate what they get. */
export function bytesSource(data: ArrayBuffer | Uint8Array, name = '<memory>'): ByteSource {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  return {
    name,
    size: async () => bytes.byteLength,
    async read(offset, length) {
      checkRange(name, offset, length, bytes.byteLength);
      return bytes.slice(offset, offset + length);
    },
  };
}

/** A Blob or File (browser file picker, drag and drop, or a downloaded Blob). */
export function blobSource(blob: Blob, name?: string): ByteSource {
  const label = name ?? (typeof File !== 'undefined' && blob instanceof File && blob.name ? blob.name : '<blob>');
  return {
    name: label,
    size: async () => blob.size,
    async read(offset, length) {
      checkRange(label, offset, length, blob.size);
      // slice() is lazy: only this range is materialised.
      const buf = await blob.slice(offset, offset + length).arrayBuffer();
      if (buf.byteLength !== length) {
        throw new SourceError('SOURCE_SHORT_READ', `${label}: got ${buf.byteLength} of ${length} bytes at offset ${offset}`);
      }
      return new Uint8Array(buf);
    },
  };
}

function isByteSource(x: unknown): x is ByteSource {
  const s = x as ByteSource | null;
  return typeof s === 'object' && s !== null && typeof s.read === 'function' && typeof s.size === 'function';
}

/** True for strings that name an http(s) URL rather than a local path. */
export function isHttpUrl(s: string): boolean {
  return /^https?:\/\//i.test(s);
}

/**
 * Picks the source for `input`: http(s) strings and URLs -> HTTP range reads, other strings and
 * file: URLs -> local file, Blob/File -> blob, ArrayBuffer/Uint8Array -> memory; a ByteSource is
 * returned as is.
 */
export function openSource(input: SourceInput, options: UrlSourceOptions = {}): ByteSource {
  if (typeof input === 'string') return isHttpUrl(input) ? urlSource(input, options) : fileSource(input);
  if (input instanceof URL) {
    if (input.protocol === 'http:' || input.protocol === 'https:') return urlSource(input, options);
    if (input.protocol === 'file:') return fileSource(input);
    throw new SourceError('SOURCE_UNSUPPORTED', `${input.href}: unsupported URL scheme ${input.protocol}`);
  }
  if (typeof Blob !== 'undefined' && input instanceof Blob) return blobSource(input);
  if (input instanceof ArrayBuffer || input instanceof Uint8Array) return bytesSource(input);
  if (isByteSource(input)) return input;
  const got = input === null ? 'null' : Array.isArray(input) ? 'an array' : typeof input;
  throw new SourceError('SOURCE_BAD_INPUT', `expected a path, URL, Blob, ArrayBuffer, Uint8Array or ByteSource to read, got ${got}`);
}

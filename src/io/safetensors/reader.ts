/**
 * Reading one safetensors file: the header is read and validated once on open; tensor data is
 * read on demand, one exact byte range per tensor, so opening a 10 GB file costs one small read.
 */
import { checkReadTarget, convert, type ReadAsResult, type ReadTarget } from './convert.ts';
import type { TensorInfo } from './dtypes.ts';
import { SafetensorsError, SourceError, q } from '../errors.ts';
import { checkHeaderLength, parseHeader } from './header.ts';
import { openSource, type ByteSource, type SourceInput } from '../source.ts';
import type { UrlSourceOptions } from '../url-source.ts';

/** The read API shared by a single file and a sharded checkpoint. */
export interface TensorStore {
  /** Path, URL or file name, as shown in errors. */
  readonly name: string;
  readonly tensors: readonly TensorInfo[];
  /** `__metadata__` (string to string); empty when absent. */
  readonly metadata: Readonly<Record<string, string>>;
  /** The tensor's info, or undefined if there is no such tensor. */
  get(name: string): TensorInfo | undefined;
  has(name: string): boolean;
  /** The tensor's raw little-endian bytes in a fresh array whose offset suits any typed view. */
  readBytes(name: string): Promise<Uint8Array>;
  /** The tensor converted to `target` (see ReadAsResult); may share memory with nothing else. */
  readAs<T extends ReadTarget>(name: string, target: T): Promise<ReadAsResult[T]>;
  close(): Promise<void>;
}

export type OpenOptions = UrlSourceOptions;

/** Largest element size; a byteOffset that is a multiple of it suits every typed-array view. */
const MAX_ALIGN = 8;

async function readExact(source: ByteSource, offset: number, length: number): Promise<Uint8Array> {
  const bytes = await source.read(offset, length);
  if (bytes.length !== length) {
    // Guards custom ByteSources that break the "exactly length bytes" contract.
    throw new SourceError('SOURCE_SHORT_READ', `${source.name}: got ${bytes.length} of ${length} bytes at offset ${offset}`);
  }
  return bytes;
}

export class SafetensorsFile implements TensorStore {
  readonly name: string;
  readonly tensors: readonly TensorInfo[];
  readonly metadata: Readonly<Record<string, string>>;
  /** File offset where the data buffer starts (8 + header length). */
  readonly dataStart: number;
  readonly source: ByteSource;
  private readonly byName: ReadonlyMap<string, TensorInfo>;

  private constructor(source: ByteSource, tensors: readonly TensorInfo[], metadata: Readonly<Record<string, string>>, dataStart: number) {
    this.source = source;
    this.name = source.name;
    this.tensors = Object.freeze([...tensors]);
    this.metadata = metadata;
    this.dataStart = dataStart;
    this.byName = new Map(tensors.map((t) => [t.name, t]));
  }

  /**
   * Opens and validates a safetensors file from a path, URL, Blob, bytes or ByteSource. On any
   * failure the source is closed again (unless it was passed in as a ByteSource).
   */
  static async open(input: SourceInput, options: OpenOptions = {}): Promise<SafetensorsFile> {
    const source = openSource(input, options);
    try {
      const size = await source.size();
      const prefix = size >= 8 ? await readExact(source, 0, 8) : new Uint8Array(0);
      const headerLength = checkHeaderLength(prefix, size, source.name);
      const header = await readExact(source, 8, headerLength);
      const parsed = parseHeader(header, size, source.name);
      return new SafetensorsFile(source, parsed.tensors, parsed.metadata, parsed.dataStart);
    } catch (e) {
      if (source !== input) await source.close?.().catch(() => undefined);
      throw e;
    }
  }

  get(name: string): TensorInfo | undefined {
    return this.byName.get(name);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  private require(name: string): TensorInfo {
    const t = this.byName.get(name);
    if (t === undefined) {
      throw new SafetensorsError('SAFETENSORS_TENSOR_NOT_FOUND', `${this.name}: no tensor named ${q(name)}`);
    }
    return t;
  }

  async readBytes(name: string): Promise<Uint8Array> {
    const t = this.require(name);
    if (t.byteLength === 0) return new Uint8Array(0);
    const bytes = await readExact(this.source, this.dataStart + t.dataOffsets[0], t.byteLength);
    // Typed-array views need byteOffset % elementSize == 0. Sources return fresh arrays (offset 0),
    // but a custom source might hand out a view into a larger buffer: copy those.
    return bytes.byteOffset % MAX_ALIGN === 0 ? bytes : bytes.slice();
  }

  async readAs<T extends ReadTarget>(name: string, target: T): Promise<ReadAsResult[T]> {
    const t = this.require(name);
    checkReadTarget(target, `${this.name}: tensor ${q(name)}`);
    const bytes = await this.readBytes(name);
    return convert(bytes, t.dtype, target, `${this.name}: tensor ${q(name)}`);
  }

  async close(): Promise<void> {
    await this.source.close?.();
  }
}

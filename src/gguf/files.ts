/**
 * A GGUF file as the ModelFiles webq's loaders read (src/io/hub/model-files.ts): config.json,
 * tokenizer.json, tokenizer_config.json and generation_config.json are made from its metadata
 * (model.ts, tokenizer.ts), and checkpoint() is the file's tensors (store.ts). Where it lives:
 *
 *   ./model.gguf, /abs/model.gguf, file:///...    a local file
 *   https://host/path/model.gguf                   downloaded into the cache (or read by range
 *                                                  requests with cache: false), as folder URLs are
 *   org/name + { file: 'model-Q4_0.gguf' }         a file of a hub model (likewise)
 *   ./folder + { file: 'model.gguf' }              a file in a local folder
 *
 * The header is read once here (the file is closed again), so opening costs one small read; the
 * tensor data is read by the checkpoint as the model uploads.
 */
import { WebqError } from '../errors.ts';
import { SourceError } from '../io/errors.ts';
import type { JsonValue } from '../io/json.ts';
import { fileSegments, parseJsonText, type ModelFiles, type OpenModelOptions } from '../io/hub/model-files.ts';
import { openModelFiles } from '../io/hub/hub.ts';
import { loadPath } from '../io/node-fs.ts';
import { RemoteFiles } from '../io/hub/remote-files.ts';
import type { TensorStore } from '../io/safetensors/reader.ts';
import { fileSource, type ByteSource } from '../io/source.ts';
import { LINEAR_DTYPES, type LinearDType } from '../ops/linear.ts';
import { dequantize } from './dequant.ts';
import { ggufModel, type GgufModel } from './model.ts';
import { readGgufHeader, type GgufHeader } from './parse.ts';
import { defaultGgufDType, GgufStore } from './store.ts';
import { ggufTokenizer } from './tokenizer.ts';

/** `location` (or `file` inside it) names a GGUF file. */
export function isGgufLocation(location: string | URL, file?: string): boolean {
  const name = file ?? (location instanceof URL ? location.pathname : location.replace(/[?#].*$/, ''));
  return typeof name === 'string' && /\.gguf$/i.test(name);
}

export interface GgufOpenOptions extends OpenModelOptions {
  /** A file inside `location` (a hub id, folder URL or folder). */
  file?: string;
  /** The dtype the model will load with: f32/f16 read every weight as floats; default: the file's (defaultGgufDType). */
  dtype?: LinearDType;
}

export class GgufFiles implements ModelFiles {
  readonly kind: ModelFiles['kind'];
  readonly describe: string;
  /** The dtype the checkpoint is presented for: the one asked for, else the file's own. */
  readonly dtype: LinearDType;
  private readonly texts = new Map<string, string>();

  constructor(
    kind: ModelFiles['kind'],
    describe: string,
    readonly header: GgufHeader,
    readonly model: GgufModel,
    private readonly open: () => Promise<ByteSource>,
    dtype: LinearDType | undefined,
  ) {
    this.kind = kind;
    this.describe = describe;
    this.dtype = dtype ?? defaultGgufDType(model);
    const tok = ggufTokenizer(header, Number(model.config.vocab_size));
    const json = (v: unknown) => JSON.stringify(v, null, 1);
    this.texts.set('config.json', json({ ...model.config, ...(tok.bosTokenId !== undefined && { bos_token_id: tok.bosTokenId }) }));
    this.texts.set('tokenizer.json', JSON.stringify(tok.tokenizerJson));
    this.texts.set('tokenizer_config.json', json(tok.tokenizerConfig));
    this.texts.set('generation_config.json', json({ ...(tok.bosTokenId !== undefined && { bos_token_id: tok.bosTokenId }), eos_token_id: tok.eosTokenIds }));
  }

  async readText(file: string): Promise<string> {
    fileSegments(file);
    const t = this.texts.get(file);
    if (t === undefined) throw new SourceError('SOURCE_NOT_FOUND', `${this.describe}: a GGUF file has no ${file} (webq makes ${[...this.texts.keys()].join(', ')} from its metadata)`);
    return t;
  }

  async readJson(file: string): Promise<JsonValue> {
    return parseJsonText(await this.readText(file), `${this.describe}: ${file}`);
  }

  async exists(file: string): Promise<boolean> {
    return this.texts.has(file);
  }

  async checkpoint(): Promise<TensorStore> {
    return new GgufStore(await this.open(), this.model, this.dtype);
  }
}

/** Where the bytes of the GGUF file come from, and how to name it. */
async function locate(location: string | URL, opts: GgufOpenOptions): Promise<{ kind: ModelFiles['kind']; describe: string; open: () => Promise<ByteSource> }> {
  const href = location instanceof URL ? location.href : location;
  const isUrl = /^https?:\/\//i.test(href);
  if (opts.file === undefined) {
    if (isUrl) {
      const url = new URL(href);
      const file = decodeURIComponent(url.pathname.split('/').pop()!);
      const remote = (await openModelFiles(new URL('.', url), opts)) as RemoteFiles;
      return { kind: 'url', describe: url.href, open: () => remote.source(file) };
    }
    const path = /^file:/i.test(href) ? decodeURIComponent(new URL(href).pathname) : href;
    return { kind: 'folder', describe: path, open: async () => fileSource(path) };
  }
  fileSegments(opts.file);
  const files = await openModelFiles(location, opts);
  if (files instanceof RemoteFiles) return { kind: files.kind, describe: `${files.describe}: ${opts.file}`, open: () => files.source(opts.file!) };
  const path = (await loadPath(files.describe)).join(files.describe, ...opts.file.split('/'));
  return { kind: 'folder', describe: path, open: async () => fileSource(path) };
}

/** Opens a GGUF model (see the top of this file); its header is read and checked here. */
export async function openGgufFiles(location: string | URL, opts: GgufOpenOptions = {}): Promise<GgufFiles> {
  if (opts.dtype !== undefined && !LINEAR_DTYPES.includes(opts.dtype)) throw new WebqError('UNKNOWN_DTYPE', `unknown dtype '${opts.dtype}': use one of ${LINEAR_DTYPES.join(', ')}`);
  const where = await locate(location, opts);
  const source = await where.open();
  let header: GgufHeader;
  let ropeFactors: Float32Array | null = null;
  try {
    header = await readGgufHeader(source);
    const rf = header.tensors.find((t) => t.name === 'rope_freqs.weight');
    if (rf) ropeFactors = dequantize(rf.type, await source.read(rf.offset, rf.byteLength), rf.elements);
  } finally {
    await source.close?.();
  }
  return new GgufFiles(where.kind, where.describe, header, ggufModel(header, ropeFactors), where.open, opts.dtype);
}

/**
 * The files of an LLM: a GGUF file when `location` or `opts.file` names one, else a model folder,
 * folder URL or hub id (src/io/hub/hub.ts).
 */
export async function openLlmFiles(location: string | URL, opts: GgufOpenOptions = {}): Promise<ModelFiles> {
  if (isGgufLocation(location, opts.file)) return openGgufFiles(location, opts);
  if (opts.file !== undefined) throw new WebqError('BAD_OPTION', `file "${String(opts.file).slice(0, 200)}": only a .gguf file can be loaded on its own; a safetensors model is loaded from its folder, folder URL or hub id`);
  return openModelFiles(location, opts);
}

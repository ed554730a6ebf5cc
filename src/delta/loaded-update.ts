/**
 * applyDelta on a loaded model (BertModel, LlmModel; src/api): the checks, then the target model
 * as a TensorStore the architecture's upload runs on, with UploadOptions.reuse so that only the
 * groups touching a changed unit are read and uploaded. Its tensors come from
 *
 *   the delta            units it changed or added
 *   the model's files    unchanged units a changed group reads again (q and v beside a changed k,
 *                        stacked into one weight), under the base's names, or under the target's
 *                        when the files were patched on disk since the model was loaded
 *
 * and each unit is hashed against its recorded hash as it is read, so a damaged delta or an edited
 * model file stops the update before anything is swapped in. Refused up front, with the loaded
 * model unchanged: a delta for another version, one that changes config.json or the tokenizer
 * (those need a reload), a model loaded in another dtype than the target file's.
 */
import { convert, type ReadAsResult, type ReadTarget } from '../io/safetensors/convert.ts';
import { DTYPE_SIZE, type TensorInfo } from '../io/safetensors/dtypes.ts';
import { SafetensorsError } from '../io/errors.ts';
import type { ModelFiles } from '../io/hub/model-files.ts';
import type { TensorStore } from '../io/safetensors/reader.ts';
import type { GpuObject, UploadReuse } from '../models/upload.ts';
import type { LinearDType } from '../ops/linear.ts';
import { readPrequantInfo, type PrequantInfo } from '../quant/prequantized.ts';
import { checkVersion, entriesByUnit, readUnit, sourceName } from './checks.ts';
import { DeltaError, openDelta, type Delta, type TargetEntry } from './format.ts';
import { importPublicKey, type PublicKeyInput } from './sign.ts';
import { readModelVersion, type ModelVersion } from '../quant/versions.ts';

/** A delta, or where its bytes are (a path or URL, a Blob, the bytes themselves). */
export type DeltaInput = Delta | string | URL | Blob | ArrayBuffer | Uint8Array;

export interface ApplyDeltaOptions {
  /**
   * Outputs on `texts` before and after; past `maxError` the update is rolled back (a DeltaError
   * 'DELTA_GUARD') and the model stays on its version. The error: for BertModel the largest
   * 1 - cosine between a text's embeddings, for LlmModel the mean KL(old || new) of the next-token
   * distributions over every position of the texts.
   */
  check?: { texts: string[]; maxError: number };
  /** Refuse the delta unless it is signed by this Ed25519 key (src/delta/sign.ts). */
  publicKey?: PublicKeyInput;
}

export interface DeltaApplied {
  /** The version before and after. */
  from: string;
  to: string;
  /** Units (source tensor names) the delta changed or added. */
  units: string[];
  /** Bytes uploaded to the GPU: the groups that touch a changed unit. */
  uploadedBytes: number;
  /** With `check`: the measured error. */
  error?: number;
}

/** What an update needs to know of the loaded model. */
export interface LoadedModel {
  describe: string;
  version: ModelVersion | null;
  /** The files the model was loaded from (unchanged units are read from them again). */
  files: ModelFiles;
  dtype: LinearDType;
}

/** An update being prepared: the target as a store, what the upload may reuse, and the checks left. */
export interface PreparedUpdate {
  delta: Delta;
  base: ModelVersion;
  target: ModelVersion;
  /** The target model's tensors and metadata. */
  store: TensorStore;
  prequant: PrequantInfo | null;
  /** Units in the delta. */
  units: string[];
  /** UploadOptions.reuse over the current weights' objects. */
  reuse(objects: ReadonlyMap<string, GpuObject>): UploadReuse;
  /** Verifies the delta's units the upload did not read (each is checked against its hash). */
  verifyRest(): Promise<void>;
  /** Closes what was opened (the delta when it came as bytes or a location, the model's file). */
  close(): Promise<void>;
}

/** The target model as a TensorStore (see the top of this file). */
class TargetStore implements TensorStore {
  readonly name: string;
  readonly tensors: readonly TensorInfo[];
  readonly metadata: Readonly<Record<string, string>>;
  private readonly entries: Map<string, TargetEntry>;
  private readonly infos: Map<string, TensorInfo>;
  private readonly byUnit: Map<string, TargetEntry[]>;
  /** A unit's checked bytes by tensor, each taken by its read (a second read reads the unit again). */
  private readonly pending = new Map<string, Promise<Map<string, Uint8Array>>>();
  /** Units read and checked. */
  readonly checked = new Set<string>();
  private readonly delta: Delta;
  private readonly model: LoadedModel;
  private readonly base: ModelVersion;
  private baseFiles: Promise<{ store: TensorStore; patched: boolean }> | null = null;

  constructor(delta: Delta, model: LoadedModel, base: ModelVersion) {
    const m = delta.manifest;
    this.delta = delta;
    this.model = model;
    this.base = base;
    this.name = `${model.describe} + ${delta.describe}`;
    this.metadata = m.target.metadata;
    this.entries = new Map(m.target.entries.map((e) => [e.name, e]));
    let off = 0;
    this.tensors = m.target.entries.map((e) => {
      const elements = e.shape.reduce((a, b) => a * b, 1);
      const byteLength = elements * DTYPE_SIZE[e.dtype];
      const t = { name: e.name, dtype: e.dtype, shape: e.shape, elements, byteLength, dataOffsets: [off, off + byteLength] as const };
      off += byteLength;
      return t;
    });
    this.infos = new Map(this.tensors.map((t) => [t.name, t]));
    this.byUnit = entriesByUnit(delta);
  }

  get(name: string): TensorInfo | undefined {
    return this.infos.get(name);
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  async readBytes(name: string): Promise<Uint8Array> {
    const e = this.entries.get(name);
    if (!e) throw new SafetensorsError('SAFETENSORS_TENSOR_NOT_FOUND', `${this.name}: no tensor named "${name}"`);
    for (;;) {
      let unit = this.pending.get(e.unit);
      if (!unit) this.pending.set(e.unit, (unit = this.readUnit(e.unit)));
      const forget = () => this.pending.get(e.unit) === unit && this.pending.delete(e.unit);
      const parts = await unit.catch((err: unknown) => {
        forget();
        throw err;
      });
      const bytes = parts.get(name);
      if (bytes === undefined) {
        forget(); // taken by an earlier read: read the unit again
        continue;
      }
      parts.delete(name);
      if (parts.size === 0) forget();
      return bytes;
    }
  }

  async readAs<T extends ReadTarget>(name: string, target: T): Promise<ReadAsResult[T]> {
    const e = this.entries.get(name);
    return convert(await this.readBytes(name), e?.dtype ?? 'F32', target, `${this.name}: tensor "${name}"`);
  }

  /** Every stored tensor of `unit`, from where it is, checked against the unit's hash. */
  private async readUnit(unit: string): Promise<Map<string, Uint8Array>> {
    const m = this.delta.manifest;
    const src = m.units[unit];
    const entries = this.byUnit.get(unit)!;
    let out: Map<string, Uint8Array>;
    if (src.from === 'delta') {
      out = await readUnit(entries, {
        store: this.delta.store, describe: this.delta.describe, fromDelta: true, nameOf: (e) => e.name, want: this.delta.target.tensors[unit]?.quantized,
        mismatch: `${this.delta.describe}: the data of ${unit} does not match its hash in the manifest (damaged delta); the model stays on version ${this.base.version}`,
      });
    } else {
      const files = await this.modelFiles();
      out = await readUnit(entries, {
        store: files.store, describe: this.model.describe, fromDelta: false,
        nameOf: (e) => (files.patched ? e.name : sourceName(this.delta, e)),
        want: files.patched ? this.delta.target.tensors[unit]?.quantized : m.base.tensors[src.name],
        mismatch: `${this.model.describe}: the stored tensors of ${unit} do not match their recorded hash (the model file was changed or damaged since it was loaded); reload the model`,
      });
    }
    this.checked.add(unit);
    return out;
  }

  /** The model's weights file, at the base version or already patched to the target. */
  private modelFiles(): Promise<{ store: TensorStore; patched: boolean }> {
    this.baseFiles ??= (async () => {
      const store = await this.model.files.checkpoint();
      const v = loadedVersion(store.metadata, this.model.describe)?.version;
      if (v === this.base.version || v === this.delta.target.version) return { store, patched: v !== this.base.version };
      await store.close();
      throw new DeltaError('DELTA_BASE', `${this.model.describe}: its weights file is now ${v ? `version ${v}` : 'without a version'}, neither version ${this.base.version} it was loaded as nor ${this.delta.target.version}; reload the model`);
    })();
    return this.baseFiles;
  }

  async close(): Promise<void> {
    const f = await this.baseFiles?.catch(() => null);
    await f?.store.close();
  }
}

/** The version a loaded file records; a malformed one loads as none (applyDelta then says so). */
export function loadedVersion(metadata: Readonly<Record<string, string>>, where: string): ModelVersion | null {
  try {
    return readModelVersion(metadata, where);
  } catch {
    return null;
  }
}

/** Opens `input` as a delta (checked against `publicKey` when given); close() closes it only when it was opened here. */
async function open(input: DeltaInput, publicKey?: PublicKeyInput): Promise<{ delta: Delta; close(): Promise<void> }> {
  const given = typeof input === 'object' && input !== null && 'manifest' in input && 'store' in input;
  if (given) {
    const delta = input as Delta;
    if (publicKey !== undefined) {
      await importPublicKey(publicKey);
      if (!delta.verified) throw new DeltaError('DELTA_UNSIGNED', `${delta.describe}: was opened without a public key; open it with openDelta(input, name, { publicKey }) or pass its location`);
    }
    return { delta, close: async () => undefined };
  }
  const delta = await openDelta(input as Exclude<DeltaInput, Delta>, undefined, { publicKey });
  return { delta, close: () => delta.close() };
}

/** Side files whose hash the target changes (added, edited or removed). */
function changedFiles(base: Record<string, string>, target: Record<string, string>): string[] {
  return [...new Set([...Object.keys(base), ...Object.keys(target)])].filter((f) => base[f] !== target[f]).sort();
}

/** Opens and checks `input` against the loaded model (see the top of this file). */
export async function prepareUpdate(model: LoadedModel, input: DeltaInput, publicKey?: PublicKeyInput): Promise<PreparedUpdate> {
  if (model.version === null) {
    throw new DeltaError('DELTA_BASE', `${model.describe}: has no model version (a float checkpoint, or a file not written by \`webq quantize\`), so no delta applies to it; load a \`webq quantize\` output`);
  }
  const { delta, close } = await open(input, publicKey);
  try {
    const m = delta.manifest;
    const base = checkVersion(model.version, model.describe, delta);
    const files = changedFiles(base.files, delta.target.files);
    if (files.length) {
      throw new DeltaError('DELTA_RELOAD', `${delta.describe}: changes ${files.join(', ')}, which a loaded model cannot take in place; apply it to the files (\`webq patch\`) and load the model again`);
    }
    const store = new TargetStore(delta, model, base);
    const prequant = readPrequantInfo(store);
    if (prequant && prequant.dtype !== model.dtype) {
      throw new DeltaError('DELTA_DTYPE', `${delta.describe}: makes a ${prequant.dtype} model, but ${model.describe} is loaded as ${model.dtype}; load the patched files instead`);
    }
    if (prequant?.actScales?.size) {
      throw new DeltaError('DELTA_UNSUPPORTED', `${delta.describe}: the new version has static activation scales, which depend on the whole model; load the patched files instead`);
    }
    const units = Object.keys(m.units).filter((u) => m.units[u].from === 'delta');
    return {
      delta, base, target: delta.target, store, prequant, units,
      reuse: (objects) => ({ objects, previousName: (n) => (m.units[n]?.from === 'base' ? (m.units[n] as { name: string }).name : undefined) }),
      verifyRest: async () => {
        for (const u of units) if (!store.checked.has(u)) for (const e of m.target.entries.filter((x) => x.unit === u)) await store.readBytes(e.name);
      },
      close: async () => {
        await store.close();
        await close();
      },
    };
  } catch (e) {
    await close();
    throw e;
  }
}

/** The guard's message: what was measured, the threshold, and that nothing changed. */
export function guardError(u: PreparedUpdate, what: string, error: number, maxError: number): DeltaError {
  return new DeltaError('DELTA_GUARD', `${u.delta.describe}: ${what}, ${error.toExponential(3)}, exceeds maxError ${maxError}; rolled back, the model stays on version ${u.base.version}`);
}

/** The guard's texts and threshold, checked before anything is uploaded. */
export function checkGuard(opts: ApplyDeltaOptions): void {
  const c = opts.check;
  if (c === undefined) return;
  if (!Array.isArray(c.texts) || c.texts.length === 0 || c.texts.some((t) => typeof t !== 'string')) throw new DeltaError('BAD_OPTION', 'applyDelta: check.texts must be a non-empty array of strings');
  if (typeof c.maxError !== 'number' || !(c.maxError >= 0)) throw new DeltaError('BAD_OPTION', `applyDelta: check.maxError must be a number >= 0, got ${c.maxError}`);
}

/**
 * Sharded checkpoints: `model.safetensors.index.json` maps each tensor to a shard file. The index
 * is cross-checked against the shards' own headers, because a stale index (shards re-exported,
 * index not) otherwise shows up much later as a missing or wrong weight.
 */
import type { ReadAsResult, ReadTarget } from './convert.ts';
import type { TensorInfo } from './dtypes.ts';
import { SafetensorsError, SourceError, q, showJson } from '../errors.ts';
import { JsonDuplicateKeyError, parseStrictJson, type JsonObject, type JsonValue } from '../json.ts';
import { SafetensorsFile, type OpenOptions, type TensorStore } from './reader.ts';
import type { ByteSource, SourceInput } from '../source.ts';

/** Index files are small; anything past this is not an index. */
const MAX_INDEX_BYTES = 100_000_000;

export interface ShardIndex {
  /** Where the index came from, for messages. */
  readonly name: string;
  /** Tensor name -> shard file name (relative to the index's folder). */
  readonly weightMap: ReadonlyMap<string, string>;
  /** The index's "metadata" object as is (total_size is informational only). */
  readonly metadata: Readonly<JsonObject>;
}

function badIndex(source: string, what: string, cause?: unknown): SafetensorsError {
  return new SafetensorsError('SAFETENSORS_BAD_INDEX', `${source}: ${what}`, { cause });
}

function isObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Rejects shard names that would escape the checkpoint folder (absolute, "..", backslashes). */
function checkShardName(source: string, tensor: string, shard: string): void {
  const segments = shard.split('/');
  if (shard === '' || shard.startsWith('/') || shard.includes('\\') || /^[a-z][a-z0-9+.-]*:/i.test(shard) || segments.includes('..')) {
    throw badIndex(source, `weight_map[${q(tensor)}] = ${q(shard)}: expected a shard file name inside the checkpoint folder`);
  }
}

/** Reads and validates an index file, then closes its source. */
export async function readIndex(source: ByteSource): Promise<ShardIndex> {
  const name = source.name;
  let root: JsonValue;
  try {
    const size = await source.size();
    if (size > MAX_INDEX_BYTES) throw badIndex(name, `index is ${size} bytes; at most ${MAX_INDEX_BYTES} are accepted`);
    const bytes = await source.read(0, size);
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch (e) {
      throw badIndex(name, 'index is not valid UTF-8 text', e);
    }
    try {
      root = parseStrictJson(text);
    } catch (e) {
      if (e instanceof JsonDuplicateKeyError && e.path.length === 1 && e.path[0] === 'weight_map') {
        throw new SafetensorsError('SAFETENSORS_SHARD_DUPLICATE', `${name}: tensor ${q(e.key)} is listed twice in weight_map`, { cause: e });
      }
      throw badIndex(name, `index is not valid JSON: ${e instanceof Error ? e.message : e}`, e);
    }
  } finally {
    await source.close?.().catch(() => undefined);
  }
  if (!isObject(root)) throw badIndex(name, 'index must be a JSON object with a "weight_map" object');
  const wm = root.weight_map;
  if (!isObject(wm)) throw badIndex(name, `"weight_map" must be an object of tensor name -> shard file, got ${wm === undefined ? 'nothing' : showJson(wm)}`);
  const meta = root.metadata ?? Object.create(null);
  if (!isObject(meta)) throw badIndex(name, '"metadata" must be an object when present');
  const weightMap = new Map<string, string>();
  for (const [tensor, shard] of Object.entries(wm)) {
    if (tensor === '__proto__') {
      throw new SafetensorsError('SAFETENSORS_FORBIDDEN_NAME', `${name}: tensor name "__proto__" is not allowed`);
    }
    if (typeof shard !== 'string') throw badIndex(name, `weight_map[${q(tensor)}] must be a shard file name (string), got ${showJson(shard)}`);
    checkShardName(name, tensor, shard);
    weightMap.set(tensor, shard);
  }
  if (weightMap.size === 0) throw badIndex(name, '"weight_map" is empty; expected at least one tensor -> shard entry');
  return { name, weightMap, metadata: meta };
}

export interface Shard {
  /** File name as written in the index. */
  readonly file: string;
  readonly store: SafetensorsFile;
}

export class ShardedCheckpoint implements TensorStore {
  readonly name: string;
  readonly tensors: readonly TensorInfo[];
  /** Merged `__metadata__` of the shards (usually identical; the first shard wins on conflict). */
  readonly metadata: Readonly<Record<string, string>>;
  readonly index: ShardIndex;
  readonly shards: readonly Shard[];
  private readonly owner: ReadonlyMap<string, Shard>;

  private constructor(index: ShardIndex, shards: Shard[], owner: Map<string, Shard>) {
    this.name = index.name;
    this.index = index;
    this.shards = Object.freeze(shards);
    this.owner = owner;
    this.tensors = Object.freeze(shards.flatMap((s) => s.store.tensors));
    const metadata: Record<string, string> = Object.create(null);
    for (const s of [...shards].reverse()) Object.assign(metadata, s.store.metadata);
    this.metadata = Object.freeze(metadata);
  }

  /**
   * Opens every shard the index names (`resolve` turns a shard file name into a path or URL) and
   * checks that each tensor lives in exactly one shard, the one the index says.
   */
  static async open(index: ShardIndex, resolve: (shard: string) => SourceInput, options: OpenOptions = {}): Promise<ShardedCheckpoint> {
    const files = [...new Set(index.weightMap.values())].sort();
    const opened = await Promise.allSettled(files.map((f) => SafetensorsFile.open(resolve(f), options)));
    const shards: Shard[] = [];
    opened.forEach((r, i) => r.status === 'fulfilled' && shards.push({ file: files[i], store: r.value }));
    try {
      opened.forEach((r, i) => {
        if (r.status === 'fulfilled') return;
        const e: unknown = r.reason;
        if (e instanceof SourceError && e.code === 'SOURCE_NOT_FOUND') {
          const example = [...index.weightMap].find(([, s]) => s === files[i])![0];
          throw new SafetensorsError(
            'SAFETENSORS_SHARD_MISSING',
            `${index.name}: shard ${q(files[i])} (holding e.g. tensor ${q(example)}) does not exist: ${e.message}`,
            { cause: e },
          );
        }
        throw e;
      });
      const owner = new Map<string, Shard>();
      for (const shard of shards) {
        for (const t of shard.store.tensors) {
          const other = owner.get(t.name);
          if (other) {
            throw new SafetensorsError(
              'SAFETENSORS_SHARD_DUPLICATE',
              `${index.name}: tensor ${q(t.name)} is in both shard ${q(other.file)} and shard ${q(shard.file)}`,
            );
          }
          owner.set(t.name, shard);
        }
      }
      for (const [tensor, file] of index.weightMap) {
        const holder = owner.get(tensor);
        if (holder?.file !== file) {
          const actually = holder ? ` (it is in ${q(holder.file)})` : '';
          throw new SafetensorsError(
            'SAFETENSORS_TENSOR_NOT_FOUND',
            `${index.name}: weight_map puts tensor ${q(tensor)} in shard ${q(file)}, but that shard has no such tensor${actually}`,
          );
        }
      }
      // Tensors a shard holds but the index doesn't list are kept: each still has one home.
      return new ShardedCheckpoint(index, shards, owner);
    } catch (e) {
      await Promise.all(shards.map((s) => s.store.close().catch(() => undefined)));
      throw e;
    }
  }

  get(name: string): TensorInfo | undefined {
    return this.owner.get(name)?.store.get(name);
  }

  has(name: string): boolean {
    return this.owner.has(name);
  }

  /** The shard holding `name`, or undefined. */
  shardOf(name: string): Shard | undefined {
    return this.owner.get(name);
  }

  private route(name: string): SafetensorsFile {
    const s = this.owner.get(name);
    if (!s) throw new SafetensorsError('SAFETENSORS_TENSOR_NOT_FOUND', `${this.name}: no tensor named ${q(name)} in any shard`);
    return s.store;
  }

  readBytes(name: string): Promise<Uint8Array> {
    return Promise.resolve().then(() => this.route(name).readBytes(name));
  }

  readAs<T extends ReadTarget>(name: string, target: T): Promise<ReadAsResult[T]> {
    return Promise.resolve().then(() => this.route(name).readAs(name, target));
  }

  async close(): Promise<void> {
    await Promise.all(this.shards.map((s) => s.store.close()));
  }
}

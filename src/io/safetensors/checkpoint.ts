/**
 * Opening a checkpoint wherever it lives: a single .safetensors file, a sharded checkpoint described
 * by `model.safetensors.index.json`, or a folder (local or URL ending in "/") holding either.
 */
import { SafetensorsError, SourceError } from '../errors.ts';
import { fileUrlToPath, fsError, loadFs, loadPath } from '../node-fs.ts';
import { readIndex, ShardedCheckpoint } from './sharded.ts';
import { SafetensorsFile, type OpenOptions } from './reader.ts';
import { isHttpUrl, openSource, type SourceInput } from '../source.ts';

export { ShardedCheckpoint } from './sharded.ts';

export type Checkpoint = SafetensorsFile | ShardedCheckpoint;

const SINGLE = 'model.safetensors';
const INDEX = 'model.safetensors.index.json';

function isNotFound(e: unknown): boolean {
  return e instanceof SourceError && e.code === 'SOURCE_NOT_FOUND';
}

/** Opens from an index file's location; shard names resolve against `base`. */
async function openIndexAt(input: SourceInput, resolve: (shard: string) => SourceInput, options: OpenOptions) {
  const source = openSource(input, options);
  const index = await readIndex(source);
  return ShardedCheckpoint.open(index, resolve, options);
}

async function openUrl(url: URL, options: OpenOptions): Promise<Checkpoint> {
  const resolve = (shard: string) => new URL(shard, url);
  if (url.pathname.endsWith('.json')) return openIndexAt(url, resolve, options);
  if (!url.pathname.endsWith('/')) return SafetensorsFile.open(url, options);
  // A folder URL: try the single-file name first (the common case for small models).
  try {
    return await SafetensorsFile.open(new URL(SINGLE, url), options);
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
  try {
    return await openIndexAt(new URL(INDEX, url), resolve, options);
  } catch (e) {
    if (!isNotFound(e)) throw e;
    throw new SafetensorsError('SAFETENSORS_NO_CHECKPOINT', `${url.href}: neither ${SINGLE} nor ${INDEX} exists under this URL`, {
      cause: e,
    });
  }
}

async function openFolder(dir: string, options: OpenOptions): Promise<Checkpoint> {
  const fs = await loadFs(dir);
  const path = await loadPath(dir);
  const names = await fs.readdir(dir).catch((e: unknown) => {
    throw fsError(dir, 'list folder', e);
  });
  const pick =
    (names.includes(SINGLE) && SINGLE) ||
    (names.includes(INDEX) && INDEX) ||
    // Other conventional names (adapter_model.safetensors, ...) when there is exactly one choice.
    only(names.filter((n) => n.endsWith('.safetensors.index.json'))) ||
    only(names.filter((n) => n.endsWith('.safetensors')));
  if (!pick) {
    const found = names.filter((n) => n.endsWith('.safetensors') || n.endsWith('.index.json'));
    const hint = found.length ? `; found ${found.join(', ')}: pass one of them` : '';
    throw new SafetensorsError('SAFETENSORS_NO_CHECKPOINT', `${dir}: folder has no ${SINGLE} and no ${INDEX}${hint}`);
  }
  const full = path.join(dir, pick);
  if (pick.endsWith('.json')) return openIndexAt(full, (shard) => path.join(dir, shard), options);
  return SafetensorsFile.open(full, options);
}

function only(xs: string[]): string | undefined {
  return xs.length === 1 ? xs[0] : undefined;
}

/**
 * Opens a checkpoint from a folder path, a .safetensors path, an index .json path, the same as
 * http(s) URLs (a folder URL must end in "/"), or a Blob / bytes / ByteSource of a single file.
 */
export async function openCheckpoint(location: SourceInput, options: OpenOptions = {}): Promise<Checkpoint> {
  if (location instanceof URL && location.protocol === 'file:') {
    location = await fileUrlToPath(location);
  }
  if (location instanceof URL) return openUrl(location, options);
  if (typeof location !== 'string') return SafetensorsFile.open(location, options);
  if (isHttpUrl(location)) return openUrl(new URL(location), options);

  const fs = await loadFs(location);
  const st = await fs.stat(location).catch((e: unknown) => {
    throw fsError(location, 'open', e);
  });
  if (st.isDirectory()) return openFolder(location, options);
  if (location.endsWith('.json')) {
    const path = await loadPath(location);
    const dir = path.dirname(location);
    return openIndexAt(location, (shard) => path.join(dir, shard), options);
  }
  return SafetensorsFile.open(location, options);
}

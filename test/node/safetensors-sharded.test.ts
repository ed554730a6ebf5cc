import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint, ShardedCheckpoint } from '../../src/io/safetensors/checkpoint.ts';
import { SafetensorsError } from '../../src/io/errors.ts';
import { SafetensorsFile } from '../../src/io/safetensors/reader.ts';
import { writeSafetensorsFile } from '../../src/io/safetensors/writer.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir();

async function makeDir(name: string): Promise<string> {
  const dir = join(tmp.dir, name);
  await mkdir(dir, { recursive: true });
  return dir;
}

async function writeIndex(dir: string, weightMap: Record<string, string>, file = 'model.safetensors.index.json'): Promise<string> {
  const path = join(dir, file);
  await writeFile(path, JSON.stringify({ metadata: { total_size: 1234 }, weight_map: weightMap }));
  return path;
}

/** Two shards: a, b in shard 1; c in shard 2. */
async function twoShards(dir: string): Promise<void> {
  await writeSafetensorsFile(
    join(dir, 'model-00001-of-00002.safetensors'),
    [
      { name: 'a', dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) },
      { name: 'b', dtype: 'F16', shape: [1], data: new Uint16Array([0x3c00]) },
    ],
    { format: 'pt' },
  );
  await writeSafetensorsFile(join(dir, 'model-00002-of-00002.safetensors'), [{ name: 'c', dtype: 'I32', shape: [3], data: new Int32Array([7, 8, 9]) }], {
    format: 'pt',
  });
}

const MAP = { a: 'model-00001-of-00002.safetensors', b: 'model-00001-of-00002.safetensors', c: 'model-00002-of-00002.safetensors' };

async function openError(location: string): Promise<SafetensorsError> {
  const e = await openCheckpoint(location).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(SafetensorsError);
  return e as SafetensorsError;
}

describe('sharded checkpoints', () => {
  let good: string;
  beforeAll(async () => {
    good = await makeDir('good');
    await twoShards(good);
    await writeIndex(good, MAP);
  });

  it('opens from the folder and from the index path, routing reads to the right shard', async () => {
    for (const location of [good, join(good, 'model.safetensors.index.json')]) {
      const ckpt = await openCheckpoint(location);
      expect(ckpt).toBeInstanceOf(ShardedCheckpoint);
      const sharded = ckpt as ShardedCheckpoint;
      expect(sharded.tensors.map((t) => t.name)).toEqual(['a', 'b', 'c']);
      expect(sharded.shards.map((s) => s.file)).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
      expect(sharded.shardOf('c')!.file).toBe('model-00002-of-00002.safetensors');
      expect({ ...sharded.metadata }).toEqual({ format: 'pt' });
      expect(sharded.index.metadata.total_size).toBe(1234);
      expect(await sharded.readAs('a', 'f32')).toEqual(new Float32Array([1, 2]));
      expect(await sharded.readAs('b', 'f32')).toEqual(new Float32Array([1]));
      expect(await sharded.readAs('c', 'i32')).toEqual(new Int32Array([7, 8, 9]));
      expect(sharded.get('c')!.shape).toEqual([3]);
      await expect(sharded.readBytes('zzz')).rejects.toMatchObject({ code: 'SAFETENSORS_TENSOR_NOT_FOUND' });
      await sharded.close();
    }
  });

  it('opens a folder or path holding a single model.safetensors', async () => {
    const dir = await makeDir('single');
    await writeSafetensorsFile(join(dir, 'model.safetensors'), [{ name: 'x', dtype: 'U8', shape: [1], data: new Uint8Array([5]) }]);
    for (const location of [dir, join(dir, 'model.safetensors')]) {
      const ckpt = await openCheckpoint(location);
      expect(ckpt).toBeInstanceOf(SafetensorsFile);
      expect(await ckpt.readAs('x', 'u8')).toEqual(new Uint8Array([5]));
      await ckpt.close();
    }
  });

  it('SHARD_MISSING names the missing shard file', async () => {
    const dir = await makeDir('missing');
    await twoShards(dir);
    await writeIndex(dir, { ...MAP, d: 'model-00003-of-00003.safetensors' });
    const e = await openError(dir);
    expect(e.code).toBe('SAFETENSORS_SHARD_MISSING');
    expect(e.message).toContain('model-00003-of-00003.safetensors');
    expect(e.message).toContain('model.safetensors.index.json');
  });

  it('SHARD_DUPLICATE when a tensor lives in two shards', async () => {
    const dir = await makeDir('dup');
    await twoShards(dir);
    await writeSafetensorsFile(join(dir, 'model-00002-of-00002.safetensors'), [
      { name: 'a', dtype: 'F32', shape: [2], data: new Float32Array([3, 4]) },
      { name: 'c', dtype: 'I32', shape: [3], data: new Int32Array([7, 8, 9]) },
    ]);
    await writeIndex(dir, MAP);
    const e = await openError(dir);
    expect(e.code).toBe('SAFETENSORS_SHARD_DUPLICATE');
    expect(e.message).toContain('"a"');
    expect(e.message).toContain('model-00001-of-00002.safetensors');
    expect(e.message).toContain('model-00002-of-00002.safetensors');
  });

  it('SHARD_DUPLICATE when the index lists a tensor twice', async () => {
    const dir = await makeDir('dup-index');
    await twoShards(dir);
    await writeFile(join(dir, 'model.safetensors.index.json'), `{"weight_map":{"a":"${MAP.a}","a":"${MAP.c}"}}`);
    expect((await openError(dir)).code).toBe('SAFETENSORS_SHARD_DUPLICATE');
  });

  it('TENSOR_NOT_FOUND when the index points at a shard without the tensor', async () => {
    const dir = await makeDir('stale');
    await twoShards(dir);
    await writeIndex(dir, { ...MAP, c: 'model-00001-of-00002.safetensors', z: 'model-00002-of-00002.safetensors' });
    const e = await openError(dir);
    expect(e.code).toBe('SAFETENSORS_TENSOR_NOT_FOUND');
    expect(e.message).toMatch(/"c"|"z"/);
  });

  it('BAD_INDEX for malformed index files', async () => {
    const cases: [string, string][] = [
      ['not json', 'not valid JSON'],
      ['[]', 'weight_map'],
      ['{"weight_map": []}', 'weight_map'],
      ['{"weight_map": {"a": 1}}', '"a"'],
      ['{"weight_map": {}}', 'empty'],
      ['{"weight_map": {"a": "../../etc/passwd"}}', '../../etc/passwd'],
      ['{"weight_map": {"a": "/abs.safetensors"}}', '/abs.safetensors'],
      ['{"weight_map": {"a": "x.safetensors"}, "metadata": 5}', 'metadata'],
    ];
    let i = 0;
    for (const [text, fragment] of cases) {
      const dir = await makeDir(`bad-index-${i++}`);
      await writeFile(join(dir, 'model.safetensors.index.json'), text);
      const e = await openError(dir);
      expect(e.code, text).toBe('SAFETENSORS_BAD_INDEX');
      expect(e.message).toContain(join(dir, 'model.safetensors.index.json'));
      expect(e.message).toContain(fragment);
    }
    const dir = await makeDir('proto-index');
    await writeFile(join(dir, 'model.safetensors.index.json'), '{"weight_map": {"__proto__": "x.safetensors"}}');
    expect((await openError(dir)).code).toBe('SAFETENSORS_FORBIDDEN_NAME');
  });

  it('NO_CHECKPOINT for a folder without model.safetensors or an index', async () => {
    const dir = await makeDir('empty');
    await writeFile(join(dir, 'README.md'), 'hi');
    const e = await openError(dir);
    expect(e.code).toBe('SAFETENSORS_NO_CHECKPOINT');
    expect(e.message).toContain(dir);
    await writeFile(join(dir, 'a.safetensors'), '');
    await writeFile(join(dir, 'b.safetensors'), '');
    expect((await openError(dir)).message).toContain('a.safetensors, b.safetensors');
  });

  it('a missing location is SOURCE_NOT_FOUND naming it', async () => {
    const path = join(tmp.dir, 'nowhere');
    await expect(openCheckpoint(path)).rejects.toMatchObject({ code: 'SOURCE_NOT_FOUND', message: expect.stringContaining(path) });
  });
});

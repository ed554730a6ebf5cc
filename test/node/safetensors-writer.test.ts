import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SafetensorsError } from '../../src/io/errors.ts';
import { SafetensorsFile } from '../../src/io/safetensors/reader.ts';
import { encodeSafetensors, writeOrder, writeSafetensorsFile, writeStreaming, type TensorToWrite } from '../../src/io/safetensors/writer.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir();
const ok: TensorToWrite = { name: 'w', dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) };

async function subdir(name: string): Promise<string> {
  const dir = join(tmp.dir, name);
  await mkdir(dir);
  return dir;
}

describe('writeSafetensorsFile', () => {
  it('leaves only the target file after success, and replaces an existing one whole', async () => {
    const dir = await subdir('success');
    const path = join(dir, 'out.safetensors');
    await writeFile(path, 'old contents');
    await writeSafetensorsFile(path, [ok], { a: 'b' });
    expect(await readdir(dir)).toEqual(['out.safetensors']);
    const f = await SafetensorsFile.open(path);
    expect(await f.readAs('w', 'f32')).toEqual(new Float32Array([1, 2]));
    await f.close();
  });

  it('does not create the target (or leave a temp file) when validation fails', async () => {
    const dir = await subdir('invalid');
    const path = join(dir, 'out.safetensors');
    const err = await writeSafetensorsFile(path, [{ ...ok, shape: [3] }]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SafetensorsError);
    expect(err).toMatchObject({ code: 'SAFETENSORS_SIZE_MISMATCH' });
    expect((err as Error).message).toContain(path);
    expect((err as Error).message).toContain('"w"');
    expect(await readdir(dir)).toEqual([]);
  });

  it('removes the temp file when the final rename fails', async () => {
    const dir = await subdir('rename-fails');
    const path = join(dir, 'out.safetensors');
    // A non-empty directory at the target path makes rename() fail after the data was written.
    await mkdir(path);
    await writeFile(join(path, 'keep'), 'x');
    await expect(writeSafetensorsFile(path, [ok])).rejects.toMatchObject({ code: 'SAFETENSORS_WRITE_FAILED' });
    expect(await readdir(dir)).toEqual(['out.safetensors']);
    expect((await stat(path)).isDirectory()).toBe(true);
  });

  it('fails cleanly when the folder does not exist', async () => {
    const path = join(tmp.dir, 'no-such-dir', 'out.safetensors');
    await expect(writeSafetensorsFile(path, [ok])).rejects.toMatchObject({
      code: 'SAFETENSORS_WRITE_FAILED',
      message: expect.stringContaining(path),
    });
    await expect(stat(join(tmp.dir, 'no-such-dir'))).rejects.toThrow();
  });
});

describe('encodeSafetensors input validation', () => {
  const cases: [string, TensorToWrite[], Record<string, string> | undefined, string][] = [
    ['duplicate names', [ok, ok], undefined, 'SAFETENSORS_DUPLICATE_NAME'],
    ['__proto__ name', [{ ...ok, name: '__proto__' }], undefined, 'SAFETENSORS_FORBIDDEN_NAME'],
    ['__metadata__ name', [{ ...ok, name: '__metadata__' }], undefined, 'SAFETENSORS_FORBIDDEN_NAME'],
    ['lone surrogate in a name', [{ ...ok, name: 'a\ud800' }], undefined, 'SAFETENSORS_BAD_ENTRY'],
    ['unknown dtype', [{ ...ok, dtype: 'Q4' as never }], undefined, 'SAFETENSORS_UNKNOWN_DTYPE'],
    ['negative dim', [{ ...ok, shape: [-2] }], undefined, 'SAFETENSORS_BAD_SHAPE'],
    ['byte length mismatch', [{ ...ok, data: new Float32Array(3) }], undefined, 'SAFETENSORS_SIZE_MISMATCH'],
    ['data not a typed array', [{ ...ok, data: [1, 2] as never }], undefined, 'SAFETENSORS_BAD_ENTRY'],
    ['non-string metadata', [ok], { a: 1 as never }, 'SAFETENSORS_BAD_METADATA'],
  ];
  for (const [what, tensors, metadata, code] of cases) {
    it(`rejects ${what} with ${code}`, () => {
      expect(() => encodeSafetensors(tensors, metadata, 'target.safetensors')).toThrow(
        expect.objectContaining({ code, message: expect.stringContaining('target.safetensors') }),
      );
    });
  }

  it('writes an empty file with only metadata', async () => {
    const f = await SafetensorsFile.open(new Blob(encodeSafetensors([], { only: 'meta' })));
    expect(f.tensors).toEqual([]);
    expect({ ...f.metadata }).toEqual({ only: 'meta' });
  });
});

describe('one ordering rule, one header encoder', () => {
  const mixed: TensorToWrite[] = [
    { name: 'b.scales', dtype: 'F16', shape: [2], data: new Uint16Array([0x3c00, 0x4000]) },
    { name: 'z.codes', dtype: 'U32', shape: [1], data: new Uint32Array([7]) },
    { name: 'a.mask', dtype: 'U8', shape: [3], data: new Uint8Array([1, 2, 3]) },
    { name: 'c.ids', dtype: 'I64', shape: [1], data: new BigInt64Array([5n]) },
    { name: 'a.codes', dtype: 'U32', shape: [2], data: new Uint32Array([8, 9]) },
  ];

  it('writeOrder puts larger elements first and keeps the given order within a size', () => {
    expect(writeOrder(mixed).map((t) => t.name)).toEqual(['c.ids', 'z.codes', 'a.codes', 'b.scales', 'a.mask']);
  });

  it('a streamed file is byte for byte the whole-file writer\'s for the same tensors in name order', async () => {
    const dir = await subdir('streamed');
    const byName = [...mixed].sort((a, b) => (a.name < b.name ? -1 : 1));
    const order = writeOrder(byName);
    const path = join(dir, 'streamed.safetensors');
    const meta = { k: 'placeholder' };
    const n = await writeStreaming(path, order, meta, async (e) => mixed.find((t) => t.name === e.name)!.data, async () => ({ k: 'final-value' }));
    expect(n).toBe(8 + 8 + 4 + 4 + 3);
    const whole = Buffer.concat(encodeSafetensors(mixed, { k: 'final-value' }));
    expect(Buffer.from(await readFile(path)).equals(whole)).toBe(true);
    const f = await SafetensorsFile.open(path);
    expect(f.tensors.map((t) => t.name)).toEqual(['c.ids', 'a.codes', 'z.codes', 'b.scales', 'a.mask']);
    expect(f.metadata).toEqual({ k: 'final-value' });
    await f.close();
  });

  it('a streamed tensor of the wrong size is a typed error naming the file and the tensor', async () => {
    const dir = await subdir('streamed-bad');
    const path = join(dir, 'bad.safetensors');
    const err = await writeStreaming(path, [ok], {}, async () => new Float32Array(3)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SafetensorsError);
    expect(err).toMatchObject({ code: 'SAFETENSORS_SIZE_MISMATCH' });
    expect((err as Error).message).toContain(path);
    expect((err as Error).message).toContain('"w"');
  });

  it('a streamed file refuses a reserved tensor name before writing anything', async () => {
    const dir = await subdir('streamed-reserved');
    const path = join(dir, 'reserved.safetensors');
    const err = await writeStreaming(path, [{ ...ok, name: '__metadata__' }], {}, async () => ok.data).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'SAFETENSORS_FORBIDDEN_NAME' });
    expect(await readdir(dir)).toEqual([]);
  });
});

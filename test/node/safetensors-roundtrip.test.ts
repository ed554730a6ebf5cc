import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DTYPES, DTYPE_SIZE, type DType } from '../../src/io/safetensors/dtypes.ts';
import { SafetensorsError } from '../../src/io/errors.ts';
import { SafetensorsFile } from '../../src/io/safetensors/reader.ts';
import { blobSource, bytesSource, type ByteSource } from '../../src/io/source.ts';
import { encodeSafetensors, writeSafetensorsFile, type TensorToWrite } from '../../src/io/safetensors/writer.ts';
import { bytesOf, craft, useTempDir, writeTemp } from '../helpers/safetensors-helpers.ts';

/** Deterministic pseudo-random bytes so failures reproduce. */
function pseudoBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed * 2654435761;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

function concat(chunks: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(chunks.reduce((s, c) => s + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

describe('safetensors round trip (writer -> reader)', () => {
  const tmp = useTempDir();

  const tensors: TensorToWrite[] = [
    ...DTYPES.map((dtype, i) => ({ name: `t.${dtype.toLowerCase()}`, dtype, shape: [2, 3], data: pseudoBytes(6 * DTYPE_SIZE[dtype], i + 1) })),
    { name: 'scalar', dtype: 'F32', shape: [], data: new Float32Array([3.5]) },
    { name: 'empty.f16', dtype: 'F16', shape: [0, 4], data: new Uint16Array(0) },
    { name: 'empty.i64', dtype: 'I64', shape: [3, 0], data: new Uint8Array(0) },
  ];
  const metadata = { format: 'pt', note: 'ünïcode ✓' };

  it('preserves every dtype, scalars, zero-size tensors and metadata', async () => {
    const path = join(tmp.dir, 'all.safetensors');
    await writeSafetensorsFile(path, tensors, metadata);
    const f = await SafetensorsFile.open(path);
    try {
      expect(f.name).toBe(path);
      expect({ ...f.metadata }).toEqual(metadata);
      expect(f.tensors.map((t) => t.name).sort()).toEqual(tensors.map((t) => t.name).sort());
      for (const t of tensors) {
        const info = f.get(t.name)!;
        expect(info.dtype).toBe(t.dtype);
        expect(info.shape).toEqual(t.shape);
        const bytes = await f.readBytes(t.name);
        expect(bytes.byteOffset % 8).toBe(0);
        expect([...bytes]).toEqual([...bytesOf(t.data)]);
      }
      expect(f.get('scalar')!.elements).toBe(1);
      expect(await f.readAs('scalar', 'f32')).toEqual(new Float32Array([3.5]));
      expect(f.get('empty.f16')!.byteLength).toBe(0);
      expect((await f.readAs('empty.f16', 'f32')).length).toBe(0);
      expect((await f.readBytes('empty.i64')).length).toBe(0);
    } finally {
      await f.close();
    }
  });

  it('lays out like the reference writer: header padded to 8 with spaces, aligned data, size-desc then name order', async () => {
    const chunks = encodeSafetensors(tensors, metadata);
    const file = concat(chunks);
    const n = Number(new DataView(file.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const headerText = new TextDecoder().decode(file.subarray(8, 8 + n));
    expect(headerText.startsWith('{"__metadata__"')).toBe(true);
    expect(headerText).toMatch(/} *$/);
    const f = await SafetensorsFile.open(file);
    const order = f.tensors.map((t) => t.name);
    const expected = [...tensors].sort((a, b) => DTYPE_SIZE[b.dtype] - DTYPE_SIZE[a.dtype] || (a.name < b.name ? -1 : 1)).map((t) => t.name);
    // Empty tensors share an offset with their neighbour, so compare the non-empty ones' order.
    const nonEmpty = (xs: string[]) => xs.filter((x) => !x.startsWith('empty'));
    expect(nonEmpty(order)).toEqual(nonEmpty(expected));
    for (const t of f.tensors) expect((f.dataStart + t.dataOffsets[0]) % DTYPE_SIZE[t.dtype]).toBe(0);
  });

  it('converts with readAs', async () => {
    const f32 = new Float32Array([1, -2.5, 65504, 1e-8]);
    const file = concat(
      encodeSafetensors([
        { name: 'f32', dtype: 'F32', shape: [4], data: f32 },
        { name: 'f64', dtype: 'F64', shape: [2], data: new Float64Array([0.1, -3]) },
        { name: 'i16', dtype: 'I16', shape: [3], data: new Int16Array([-32768, 0, 32767]) },
        { name: 'u8', dtype: 'U8', shape: [2], data: new Uint8Array([0, 255]) },
        { name: 'i32', dtype: 'I32', shape: [2], data: new Int32Array([-7, 1 << 30]) },
        { name: 'u32', dtype: 'U32', shape: [2], data: new Uint32Array([7, 0xffffffff]) },
        { name: 'i64', dtype: 'I64', shape: [2], data: new BigInt64Array([-5n, 6n]) },
        { name: 'bool', dtype: 'BOOL', shape: [3], data: new Uint8Array([1, 0, 1]) },
      ]),
    );
    const f = await SafetensorsFile.open(file);
    expect(await f.readAs('f32', 'f32')).toEqual(f32);
    expect(await f.readAs('f32', 'f16')).toEqual(new Uint16Array([0x3c00, 0xc100, 0x7bff, 0x0000]));
    expect(await f.readAs('f64', 'f32')).toEqual(new Float32Array([0.1, -3]));
    expect(await f.readAs('i16', 'f32')).toEqual(new Float32Array([-32768, 0, 32767]));
    expect(await f.readAs('i16', 'i32')).toEqual(new Int32Array([-32768, 0, 32767]));
    expect(await f.readAs('u8', 'u8')).toEqual(new Uint8Array([0, 255]));
    expect(await f.readAs('u8', 'i32')).toEqual(new Int32Array([0, 255]));
    expect(await f.readAs('i32', 'i32')).toEqual(new Int32Array([-7, 1 << 30]));
    expect(await f.readAs('u32', 'u32')).toEqual(new Uint32Array([7, 0xffffffff]));
    expect(await f.readAs('i64', 'i32')).toEqual(new Int32Array([-5, 6]));
    expect(await f.readAs('i64', 'f32')).toEqual(new Float32Array([-5, 6]));
    expect(await f.readAs('bool', 'u8')).toEqual(new Uint8Array([1, 0, 1]));
    expect(await f.readAs('bool', 'f32')).toEqual(new Float32Array([1, 0, 1]));
    await expect(f.readAs('u32', 'i32')).rejects.toMatchObject({ code: 'SAFETENSORS_VALUE_OUT_OF_RANGE' });
    await expect(f.readAs('i32', 'i8')).rejects.toMatchObject({ code: 'SAFETENSORS_VALUE_OUT_OF_RANGE' });
    await expect(f.readAs('f32', 'i32')).rejects.toMatchObject({ code: 'SAFETENSORS_UNSUPPORTED_CONVERSION' });
    await expect(f.readAs('i32', 'f16')).rejects.toMatchObject({ code: 'SAFETENSORS_UNSUPPORTED_CONVERSION' });
    const missing = await f.readBytes('nope').catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(SafetensorsError);
    expect(missing).toMatchObject({ code: 'SAFETENSORS_TENSOR_NOT_FOUND', message: expect.stringContaining('"nope"') });
    expect(f.get('nope')).toBeUndefined();
    expect(f.has('f32')).toBe(true);
  });
});

describe('unaligned tensor data', () => {
  // A 3-byte U8 tensor first puts the F32 tensor at an odd file offset, which the writer never does.
  const header = { a: { dtype: 'U8', shape: [3], data_offsets: [0, 3] }, b: { dtype: 'F32', shape: [2], data_offsets: [3, 11] } };
  const data = new Uint8Array(11);
  data.set([1, 2, 3]);
  data.set(bytesOf(new Float32Array([1.5, -2])), 3);
  const file = craft(header, data);

  const tmp = useTempDir();

  it('reads an F32 tensor at an odd offset from a file', async () => {
    const path = await writeTemp(tmp.dir, 'unaligned.safetensors', file);
    const f = await SafetensorsFile.open(path);
    expect((f.dataStart + f.get('b')!.dataOffsets[0]) % 4).not.toBe(0);
    expect(await f.readAs('b', 'f32')).toEqual(new Float32Array([1.5, -2]));
    expect(await f.readAs('a', 'u8')).toEqual(new Uint8Array([1, 2, 3]));
    await f.close();
  });

  it('copies when a custom source hands back views at odd offsets', async () => {
    const backing = bytesSource(file);
    const oddViews: ByteSource = {
      name: 'odd-views',
      size: () => backing.size(),
      async read(offset, length) {
        const big = new Uint8Array(length + 1);
        big.set(await backing.read(offset, length), 1);
        return big.subarray(1);
      },
    };
    const f = await SafetensorsFile.open(oddViews);
    const bytes = await f.readBytes('b');
    expect(bytes.byteOffset % 8).toBe(0);
    expect(await f.readAs('b', 'f32')).toEqual(new Float32Array([1.5, -2]));
  });
});

describe('other sources', () => {
  const tmp = useTempDir();
  const file = concat(encodeSafetensors([{ name: 'w', dtype: 'F32', shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) }], { k: 'v' }));

  it('reads from a Blob, reading only the ranges it needs', async () => {
    const blob = new Blob([file]);
    const src = blobSource(blob, 'model.blob');
    const reads: number[] = [];
    const spy: ByteSource = { name: src.name, size: () => src.size(), read: (o, l) => (reads.push(l), src.read(o, l)) };
    const f = await SafetensorsFile.open(spy);
    expect(f.name).toBe('model.blob');
    expect(await f.readAs('w', 'f32')).toEqual(new Float32Array([1, 2, 3, 4]));
    expect(Math.max(...reads)).toBeLessThan(file.length);
    expect(await (await SafetensorsFile.open(blob)).readAs('w', 'f32')).toEqual(new Float32Array([1, 2, 3, 4]));
  });

  it('reads from an ArrayBuffer and a Uint8Array', async () => {
    const ab = file.slice().buffer;
    expect({ ...(await SafetensorsFile.open(ab)).metadata }).toEqual({ k: 'v' });
    expect((await SafetensorsFile.open(file)).tensors[0].shape).toEqual([2, 2]);
  });

  it('reads a file written by the writer from disk byte-identically', async () => {
    const path = join(tmp.dir, 'w.safetensors');
    await writeSafetensorsFile(path, [{ name: 'w', dtype: 'F32', shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) }], { k: 'v' });
    expect(new Uint8Array(await readFile(path))).toEqual(file);
  });
});

describe('dtype coverage', () => {
  it('lists exactly the reference dtypes', () => {
    const expected: DType[] = ['BOOL', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'I16', 'U16', 'F16', 'BF16', 'I32', 'U32', 'F32', 'F64', 'I64', 'U64'];
    expect([...DTYPES].sort()).toEqual([...expected].sort());
  });
});

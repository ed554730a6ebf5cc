import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { WebqError } from '../../src/errors.ts';
import { SafetensorsError, type SafetensorsErrorCode } from '../../src/io/errors.ts';
import { SafetensorsFile } from '../../src/io/safetensors/reader.ts';
import { bytesSource, type ByteSource } from '../../src/io/source.ts';
import { craft, craftRaw, useTempDir, writeTemp } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir();
let counter = 0;

/** Writes `bytes` to a temp file, opens it, and checks the error's class, code and message. */
async function expectOpenError(bytes: Uint8Array, code: SafetensorsErrorCode, ...fragments: string[]): Promise<SafetensorsError> {
  const path = await writeTemp(tmp.dir, `case-${++counter}-${code.toLowerCase()}.safetensors`, bytes);
  const err = await SafetensorsFile.open(path).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${code}`).toBeInstanceOf(SafetensorsError);
  expect(err).toBeInstanceOf(WebqError);
  const e = err as SafetensorsError;
  expect(e.code).toBe(code);
  expect(e.message).toContain(path);
  for (const f of fragments) expect(e.message).toContain(f);
  return e;
}

const f32x2 = (offsets: [number, number]) => ({ dtype: 'F32', shape: [2], data_offsets: offsets });

describe('safetensors rejects malformed files with specific errors', () => {
  it('HEADER_TOO_SMALL: file shorter than the 8-byte length prefix', async () => {
    await expectOpenError(new Uint8Array([1, 0, 0, 0, 0]), 'SAFETENSORS_HEADER_TOO_SMALL', '5 bytes');
    await expectOpenError(new Uint8Array(0), 'SAFETENSORS_HEADER_TOO_SMALL');
  });

  it('HEADER_TOO_LARGE: a 200 MB header claim fails before any large read', async () => {
    await expectOpenError(craft('{}', [], { lengthField: 200_000_000n }), 'SAFETENSORS_HEADER_TOO_LARGE', '200000000');
    // Same through a spy source: nothing beyond the 8-byte prefix may be requested.
    const file = craft('{}', [], { lengthField: 200_000_000n });
    const inner = bytesSource(file, 'spy.safetensors');
    const reads: number[] = [];
    const spy: ByteSource = { name: inner.name, size: async () => 300_000_000, read: (o, l) => (reads.push(l), inner.read(o, l)) };
    const t0 = performance.now();
    await expect(SafetensorsFile.open(spy)).rejects.toMatchObject({ code: 'SAFETENSORS_HEADER_TOO_LARGE' });
    expect(performance.now() - t0).toBeLessThan(200);
    expect(reads).toEqual([8]);
    // A length with the high 32 bits set is rejected too, not truncated.
    await expectOpenError(craft('{}', [], { lengthField: (1n << 32n) + 2n }), 'SAFETENSORS_HEADER_TOO_LARGE');
  });

  it('HEADER_PAST_EOF: header length runs past the end of the file', async () => {
    await expectOpenError(craft('{}', [], { lengthField: 1000n }), 'SAFETENSORS_HEADER_PAST_EOF', '1000');
  });

  it('HEADER_NOT_UTF8: header bytes are not UTF-8', async () => {
    await expectOpenError(craftRaw(new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])), 'SAFETENSORS_HEADER_NOT_UTF8');
  });

  it('HEADER_NOT_JSON: header is not JSON (truncated, trailing junk, NUL padding, BOM)', async () => {
    await expectOpenError(craft('{"a": '), 'SAFETENSORS_HEADER_NOT_JSON');
    await expectOpenError(craft('{} x'), 'SAFETENSORS_HEADER_NOT_JSON');
    await expectOpenError(craft('{}\0\0\0'), 'SAFETENSORS_HEADER_NOT_JSON');
    await expectOpenError(craft('\ufeff{}'), 'SAFETENSORS_HEADER_NOT_JSON');
    await expectOpenError(craft(''), 'SAFETENSORS_HEADER_NOT_JSON');
  });

  it('HEADER_NOT_OBJECT: header is JSON but not an object', async () => {
    await expectOpenError(craft('[]'), 'SAFETENSORS_HEADER_NOT_OBJECT', 'an array');
    await expectOpenError(craft('null'), 'SAFETENSORS_HEADER_NOT_OBJECT');
  });

  it('BAD_ENTRY: entry not an object, missing fields, malformed data_offsets, repeated field', async () => {
    await expectOpenError(craft({ w: 5 }), 'SAFETENSORS_BAD_ENTRY', '"w"');
    await expectOpenError(craft({ w: { shape: [1], data_offsets: [0, 4] } }), 'SAFETENSORS_BAD_ENTRY', '"w"', '"dtype"');
    await expectOpenError(craft({ w: { dtype: 'F32', data_offsets: [0, 4] } }), 'SAFETENSORS_BAD_ENTRY', '"shape"');
    await expectOpenError(craft({ w: { dtype: 'F32', shape: [1] } }), 'SAFETENSORS_BAD_ENTRY', '"data_offsets"');
    await expectOpenError(craft({ w: { dtype: 'F32', shape: [1], data_offsets: [0] } }, [0, 0, 0, 0]), 'SAFETENSORS_BAD_ENTRY', 'data_offsets');
    await expectOpenError(craft({ w: { dtype: 'F32', shape: [1], data_offsets: [-4, 0] } }), 'SAFETENSORS_BAD_ENTRY', 'data_offsets');
    await expectOpenError(
      craft('{"w":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}', [0, 0, 0, 0]),
      'SAFETENSORS_BAD_ENTRY',
      '"w"',
      '"dtype"',
    );
  });

  it('UNKNOWN_DTYPE: dtype outside the supported list', async () => {
    await expectOpenError(craft({ w: { dtype: 'Q4_0', shape: [1], data_offsets: [0, 1] } }, [0]), 'SAFETENSORS_UNKNOWN_DTYPE', '"w"', 'Q4_0', 'F32');
    await expectOpenError(craft({ w: { dtype: 7, shape: [1], data_offsets: [0, 1] } }, [0]), 'SAFETENSORS_UNKNOWN_DTYPE', '"w"');
  });

  it('BAD_SHAPE: shape entries must be non-negative safe integers', async () => {
    for (const shape of [[-1], [1.5], '3', [2 ** 53], [null]]) {
      await expectOpenError(craft({ w: { dtype: 'U8', shape, data_offsets: [0, 0] } }), 'SAFETENSORS_BAD_SHAPE', '"w"');
    }
  });

  it('SHAPE_OVERFLOW: element or byte count past 2^53', async () => {
    await expectOpenError(craft({ w: { dtype: 'U8', shape: [2 ** 26, 2 ** 26, 2 ** 26], data_offsets: [0, 0] } }), 'SAFETENSORS_SHAPE_OVERFLOW', '"w"');
    await expectOpenError(craft({ w: { dtype: 'F64', shape: [2 ** 50, 16], data_offsets: [0, 0] } }), 'SAFETENSORS_SHAPE_OVERFLOW', '"w"');
  });

  it('INVALID_OFFSETS: end before begin', async () => {
    await expectOpenError(craft({ w: { dtype: 'U8', shape: [0], data_offsets: [8, 4] } }, new Uint8Array(8)), 'SAFETENSORS_INVALID_OFFSETS', '"w"', '[8, 4]');
  });

  it('SIZE_MISMATCH: span differs from shape x dtype size', async () => {
    await expectOpenError(craft({ w: f32x2([0, 4]) }, new Uint8Array(4)), 'SAFETENSORS_SIZE_MISMATCH', '"w"', 'needs 8');
  });

  it('OVERLAP: two tensors share bytes', async () => {
    await expectOpenError(craft({ a: f32x2([0, 8]), b: f32x2([4, 12]) }, new Uint8Array(12)), 'SAFETENSORS_OVERLAP', '"b"', '"a"');
    await expectOpenError(craft({ a: f32x2([0, 8]), b: f32x2([0, 8]) }, new Uint8Array(8)), 'SAFETENSORS_OVERLAP');
  });

  it('GAP: unused bytes between tensors or before the first one', async () => {
    await expectOpenError(craft({ a: f32x2([0, 8]), b: f32x2([12, 20]) }, new Uint8Array(20)), 'SAFETENSORS_GAP', '"b"', '"a"');
    await expectOpenError(craft({ a: f32x2([4, 12]) }, new Uint8Array(12)), 'SAFETENSORS_GAP', '"a"');
  });

  it('TRAILING_BYTES: data left after the last tensor', async () => {
    await expectOpenError(craft({ a: f32x2([0, 8]) }, new Uint8Array(11)), 'SAFETENSORS_TRAILING_BYTES', '3 unexpected bytes');
    await expectOpenError(craft({}, [1]), 'SAFETENSORS_TRAILING_BYTES');
  });

  it('DATA_PAST_EOF: tensors end beyond the file (truncated download)', async () => {
    await expectOpenError(craft({ a: f32x2([0, 8]) }, new Uint8Array(5)), 'SAFETENSORS_DATA_PAST_EOF', '"a"', 'truncated');
  });

  it('BAD_METADATA: __metadata__ must map strings to strings', async () => {
    await expectOpenError(craft({ __metadata__: { a: 1 } }), 'SAFETENSORS_BAD_METADATA', '"a"');
    await expectOpenError(craft({ __metadata__: ['x'] }), 'SAFETENSORS_BAD_METADATA');
    await expectOpenError(craft({ __metadata__: { a: { b: 'c' } } }), 'SAFETENSORS_BAD_METADATA');
    await expectOpenError(craft('{"__metadata__":{"k":"1","k":"2"}}'), 'SAFETENSORS_BAD_METADATA', '"k"');
  });

  it('FORBIDDEN_NAME: a tensor called __proto__', async () => {
    await expectOpenError(craft('{"__proto__":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', [7]), 'SAFETENSORS_FORBIDDEN_NAME', '__proto__');
    expect(({} as Record<string, unknown>).dtype).toBeUndefined(); // nothing leaked onto Object.prototype
  });

  it('DUPLICATE_NAME: the same tensor name twice', async () => {
    const header = '{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}';
    await expectOpenError(craft(header, [1, 2]), 'SAFETENSORS_DUPLICATE_NAME', '"w"');
  });

  it('TENSOR_NOT_FOUND: reading a name the file does not have', async () => {
    const path = await writeTemp(tmp.dir, 'one.safetensors', craft({ a: f32x2([0, 8]) }, new Uint8Array(8)));
    const f = await SafetensorsFile.open(path);
    const err = await f.readAs('b', 'f32').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SafetensorsError);
    expect(err).toMatchObject({ code: 'SAFETENSORS_TENSOR_NOT_FOUND' });
    expect((err as Error).message).toContain(path);
    expect((err as Error).message).toContain('"b"');
    await f.close();
  });

  it('a missing file is a SOURCE_NOT_FOUND error naming the path', async () => {
    const path = join(tmp.dir, 'does-not-exist.safetensors');
    await expect(SafetensorsFile.open(path)).rejects.toMatchObject({ code: 'SOURCE_NOT_FOUND', message: expect.stringContaining(path) });
  });
});

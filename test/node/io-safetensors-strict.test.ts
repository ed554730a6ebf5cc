// Loose ends in the reader: integers spelled 2.0 / 8e0 / -0 are refused as the reference reader
// refuses them, messages quote at most a few hundred characters of a name, and misuse is typed.
import { describe, expect, it } from 'vitest';
import { WebqError } from '../../src/errors.ts';
import { openCheckpoint } from '../../src/io/safetensors/checkpoint.ts';
import { SafetensorsError, SourceError } from '../../src/io/errors.ts';
import { parseStrictJson, JsonDuplicateKeyError } from '../../src/io/json.ts';
import { openSource } from '../../src/io/source.ts';
import { SafetensorsFile } from '../../src/io/safetensors/reader.ts';
import { encodeSafetensors } from '../../src/io/safetensors/writer.ts';
import { craft } from '../helpers/safetensors-helpers.ts';

async function rejection(p: Promise<unknown>): Promise<Error & { code: string }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { code: string };
  }
  throw new Error('expected a rejection');
}

const DATA = new Uint8Array(8);

describe('header integers', () => {
  it.each([
    ['shape 2.0', '{"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}', 'SAFETENSORS_BAD_SHAPE', 'shape holds the number 2.0'],
    ['shape 2e0', '{"w":{"dtype":"F32","shape":[2e0],"data_offsets":[0,8]}}', 'SAFETENSORS_BAD_SHAPE', 'shape holds the number 2e0'],
    ['offset 8e0', '{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8e0]}}', 'SAFETENSORS_BAD_ENTRY', 'data_offsets holds the number 8e0'],
    ['offset -0', '{"w":{"dtype":"F32","shape":[2],"data_offsets":[-0,8]}}', 'SAFETENSORS_BAD_ENTRY', 'data_offsets holds the number -0'],
    ['offset 8.000', '{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8.000]}}', 'SAFETENSORS_BAD_ENTRY', 'holds the number 8.000'],
  ])('rejects %s', async (_, header, code, text) => {
    const e = await rejection(SafetensorsFile.open(craft(header, DATA)));
    expect(e).toBeInstanceOf(SafetensorsError);
    expect(e.code).toBe(code);
    expect(e.message).toContain('tensor "w"');
    expect(e.message).toContain(text);
  });

  it('still reads plain integers, and numbers elsewhere are not its business', async () => {
    const ok = await SafetensorsFile.open(craft('{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', DATA));
    expect(ok.get('w')?.shape).toEqual([2]);
    // The hook sees every literal with its path; JSON itself still parses 2.0.
    const seen: string[] = [];
    expect(parseStrictJson('{"a":[2.0,-0],"b":{"c":8e0}}', { onNumber: (lit, path) => void seen.push(`${path.join('.')}=${lit}`) })).toEqual({ a: [2, -0], b: { c: 8 } });
    expect(seen).toEqual(['a=2.0', 'a=-0', 'b.c=8e0']);
  });
});

describe('long names in messages', () => {
  const long = 'x'.repeat(1_000_000);

  it('quotes at most a few hundred characters of a tensor name or dtype', async () => {
    const cases: [string, string][] = [
      [JSON.stringify({ [long]: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }), 'SAFETENSORS_SIZE_MISMATCH'],
      [JSON.stringify({ w: { dtype: long, shape: [2], data_offsets: [0, 8] } }), 'SAFETENSORS_UNKNOWN_DTYPE'],
      [`{"${long}":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"${long}":{}}`, 'SAFETENSORS_DUPLICATE_NAME'],
      [JSON.stringify({ w: { dtype: 'F32', shape: Array(100_000).fill(1.5), data_offsets: [0, 8] } }), 'SAFETENSORS_BAD_SHAPE'],
      [JSON.stringify({ __metadata__: { [long]: 1 } }), 'SAFETENSORS_BAD_METADATA'],
    ];
    for (const [header, code] of cases) {
      const e = await rejection(SafetensorsFile.open(craft(header, DATA)));
      expect(e.code).toBe(code);
      expect(e.message.length).toBeLessThan(1000);
    }
    const e = await rejection(SafetensorsFile.open(craft({ [long]: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, DATA)));
    expect(e.message).toContain(`"${'x'.repeat(200)}"... (1000000 characters)`);
  });

  it('in reads and in JSON errors too', async () => {
    const file = await SafetensorsFile.open(new Blob(encodeSafetensors([{ name: 'w', dtype: 'F32', shape: [2], data: new Float32Array(2) }])));
    const e = await rejection(file.readBytes(long));
    expect(e.code).toBe('SAFETENSORS_TENSOR_NOT_FOUND');
    expect(e.message.length).toBeLessThan(1000);
    let dup: unknown;
    try {
      parseStrictJson(`{"${long}":1,"${long}":2}`);
    } catch (err) {
      dup = err;
    }
    expect(dup).toBeInstanceOf(JsonDuplicateKeyError);
    expect((dup as Error).message.length).toBeLessThan(1000);
  });
});

describe('typed errors for misuse', () => {
  it("readAs with a dtype spelling ('F32') is a SafetensorsError that suggests 'f32'", async () => {
    const file = await SafetensorsFile.open(new Blob(encodeSafetensors([{ name: 'w', dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) }])));
    const e = await rejection(file.readAs('w', 'F32' as 'f32'));
    expect(e).toBeInstanceOf(SafetensorsError);
    expect(e.code).toBe('SAFETENSORS_BAD_TARGET');
    expect(e.message).toContain(`readAs target "F32" is not one of f32, f16, i32, u32, i8, u8 (did you mean 'f32'?`);
    expect((await rejection(file.readAs('w', 42 as unknown as 'f32'))).code).toBe('SAFETENSORS_BAD_TARGET');
    expect(await file.readAs('w', 'f32')).toEqual(new Float32Array([1, 2]));
  });

  it('open(null) and friends are SourceErrors', async () => {
    for (const p of [SafetensorsFile.open(null as never), openCheckpoint(undefined as never), SafetensorsFile.open(42 as never)]) {
      const e = await rejection(p);
      expect(e).toBeInstanceOf(SourceError);
      expect(e).toBeInstanceOf(WebqError);
      expect(e.code).toBe('SOURCE_BAD_INPUT');
      expect(e.message).toMatch(/expected a path, URL, Blob, ArrayBuffer, Uint8Array or ByteSource to read, got (null|undefined|number)/);
    }
    expect(() => openSource({} as never)).toThrow(SourceError);
  });
});

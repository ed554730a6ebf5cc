import { describe, expect, it } from 'vitest';
import { JsonDuplicateKeyError, JsonSyntaxError, parseStrictJson, type JsonObject } from '../../src/io/json.ts';

describe('strict JSON parser', () => {
  it('parses what JSON.parse parses', () => {
    const samples = [
      '{"a":[1,-2.5e3,0,true,false,null],"b":{"c":"d\\n\\u00e9\\ud83d\\ude00\\/"}}',
      ' [ ] ',
      '"x"',
      '-0',
      '1E+2',
      '{"":""}',
      '{"k":"caf\u00e9 ✓"}',
    ];
    for (const s of samples) expect(parseStrictJson(s)).toEqual(JSON.parse(s));
  });

  it('builds null-prototype objects, so __proto__ is plain data', () => {
    const v = parseStrictJson('{"__proto__":{"polluted":1},"constructor":2}') as JsonObject;
    expect(Object.getPrototypeOf(v)).toBeNull();
    expect(Object.keys(v)).toEqual(['__proto__', 'constructor']);
    expect(v.__proto__).toEqual({ polluted: 1 });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('rejects duplicate keys and says where', () => {
    const e = (() => {
      try {
        parseStrictJson('{"a":{"b":1,"b":2}}');
      } catch (err) {
        return err;
      }
    })();
    expect(e).toBeInstanceOf(JsonDuplicateKeyError);
    expect(e).toMatchObject({ key: 'b', path: ['a'], code: 'JSON_DUPLICATE_KEY' });
    // Escapes that decode to the same key are still duplicates.
    expect(() => parseStrictJson('{"a":1,"\\u0061":2}')).toThrow(JsonDuplicateKeyError);
  });

  it('rejects malformed input', () => {
    const bad = [
      '',
      '{',
      '{"a":1,}',
      '[1,]',
      '01',
      '1.',
      '.5',
      '+1',
      'NaN',
      "{'a':1}",
      '{"a" 1}',
      '"tab\there"',
      '"\\x"',
      '"\\ud800"', // lone surrogate escape
      '"\\udc00\\ud800"',
      'true false',
      '[1] x',
      '\u00a0{}',
    ];
    for (const s of bad) expect(() => parseStrictJson(s), s).toThrow(JsonSyntaxError);
  });

  it('limits nesting depth instead of overflowing the stack', () => {
    expect(() => parseStrictJson('['.repeat(100000))).toThrow(/nesting deeper/);
    expect(parseStrictJson('[[[1]]]', { maxDepth: 3 })).toEqual([[[1]]]);
    expect(() => parseStrictJson('[[[1]]]', { maxDepth: 2 })).toThrow(JsonSyntaxError);
  });
});

import { describe, expect, it } from 'vitest';
import { ShapeError, WebqError } from '../../src/errors.ts';
import {
  byteSizes,
  elementPosition,
  layoutFor,
  QuantSpecError,
  readCode,
  validateQuantizedWeight,
  validateSpec,
  writeCode,
  type QuantSpec,
} from '../../src/quant/layout.ts';
import { quantizeWeight } from '../../src/quant/rtn.ts';
import { randomWeights } from '../helpers/quant-util.ts';

describe('spec validation', () => {
  it('accepts the supported specs', () => {
    for (const bits of [4, 8] as const)
      for (const group of [32, 64, 128, 'channel'] as const)
        for (const symmetric of [true, false]) expect(() => validateSpec({ bits, group, symmetric })).not.toThrow();
  });

  it('rejects others with a message naming the field and the allowed values', () => {
    expect(() => validateSpec({ bits: 3 as 4, group: 32, symmetric: true })).toThrow(/bits must be 4 or 8, got 3/);
    expect(() => validateSpec({ bits: 4, group: 16, symmetric: true })).toThrow(/group must be 32, 64, 128 or 'channel', got 16/);
    expect(() => validateSpec({ bits: 4, group: 32 } as QuantSpec)).toThrow(/symmetric must be a boolean/);
    try {
      validateSpec({ bits: 8, group: 48, symmetric: true });
    } catch (e) {
      expect(e).toBeInstanceOf(QuantSpecError);
      expect(e).toBeInstanceOf(WebqError);
      expect((e as WebqError).code).toBe('QUANT_SPEC');
    }
  });

  it('quantizeWeight rejects wrong sizes and non-finite weights', () => {
    const spec: QuantSpec = { bits: 8, group: 32, symmetric: true };
    expect(() => quantizeWeight(new Float32Array(10), 2, 6, spec)).toThrow(ShapeError);
    const w = new Float32Array(64);
    w[37] = NaN;
    expect(() => quantizeWeight(w, 2, 32, spec)).toThrow(/weight\[1\]\[5\] is NaN/);
  });
});

describe('sizes', () => {
  it('pads K to the group (or to 32 per-channel)', () => {
    expect(layoutFor(100, { bits: 4, group: 32, symmetric: true })).toEqual({ Kp: 128, groupSize: 32, groups: 4, wordsPerRow: 16 });
    expect(layoutFor(130, { bits: 8, group: 128, symmetric: true })).toEqual({ Kp: 256, groupSize: 128, groups: 2, wordsPerRow: 64 });
    expect(layoutFor(33, { bits: 4, group: 'channel', symmetric: false })).toEqual({ Kp: 64, groupSize: 64, groups: 1, wordsPerRow: 8 });
  });

  it('byteSizes for a 4096x4096 weight', () => {
    expect(byteSizes(4096, 4096, { bits: 4, group: 128, symmetric: true })).toEqual({ values: 8388608, scales: 524288, zeros: 0 });
    expect(byteSizes(4096, 4096, { bits: 8, group: 'channel', symmetric: false })).toEqual({ values: 16777216, scales: 16384, zeros: 16384 });
  });

  it('validateQuantizedWeight catches inconsistent arrays', () => {
    const q = quantizeWeight(randomWeights(3 * 100, 1), 3, 100, { bits: 4, group: 64, symmetric: false });
    expect(() => validateQuantizedWeight(q)).not.toThrow();
    expect(() => validateQuantizedWeight({ ...q, values: q.values.subarray(1) })).toThrow(/values has 47 words, expected N\*Kp\/8 = 48/);
    expect(() => validateQuantizedWeight({ ...q, zeros: null })).toThrow(/needs zeros/);
    expect(() => validateQuantizedWeight({ ...q, Kp: 100 })).toThrow(/expected groupSize in 32\/64\/128/);
  });
});

describe('packing layout', () => {
  it('int8: byte b of word j is element 4j+b, two\'s complement', () => {
    // max |w| = 127 -> scale exactly 1, so the codes are the weights themselves.
    const w = new Float32Array(32);
    w.set([1, -2, 3, 127, -127, 0, 5, -1]);
    const q = quantizeWeight(w, 1, 32, { bits: 8, group: 32, symmetric: true });
    expect(q.scales[0]).toBe(1);
    expect(q.values[0]).toBe(0x7f03fe01);
    expect(q.values[1]).toBe(0xff050081);
    expect(Array.from(q.values.subarray(2))).toEqual(new Array(6).fill(0));
  });

  it('int4: byte b holds element 8j+b low and 8j+4+b high, symmetric nibble = code + 8', () => {
    const w = new Float32Array(32);
    w.set([1, 2, 3, 4, 5, 6, 7, -7, 0, -1]);
    const q = quantizeWeight(w, 1, 32, { bits: 4, group: 32, symmetric: true });
    expect(q.scales[0]).toBe(1);
    // nibbles of elements 0..7: 9 10 11 12 | 13 14 15 1
    expect(q.values[0]).toBe(0x1cfbead9);
    expect(q.values[0] & 0x0f0f0f0f).toBe(0x0c0b0a09); // elements 0..3 as int8 lanes
    expect((q.values[0] >>> 4) & 0x0f0f0f0f).toBe(0x010f0e0d); // elements 4..7
    // elements 8, 9 = 0, -1 -> nibbles 8, 7; the rest 8
    expect(q.values[1]).toBe(0x88888788); // byte 1 = element 9 low (7), element 13 high (8)
    expect(q.values[2]).toBe(0x88888888);
  });

  it('elementPosition / readCode / writeCode agree with the packer', () => {
    for (const bits of [4, 8] as const) {
      const q = quantizeWeight(randomWeights(5 * 70, 7), 5, 70, { bits, group: 32, symmetric: false });
      const rebuilt = new Uint32Array(q.values.length);
      for (let n = 0; n < q.N; n++) for (let k = 0; k < q.Kp; k++) writeCode(rebuilt, bits, q.Kp, n, k, readCode(q.values, bits, q.Kp, n, k));
      expect(rebuilt).toEqual(q.values);
    }
    expect(elementPosition(4, 64, 1, 13)).toEqual({ word: 8 + 1, shift: 4 + 8 }); // e=5: byte 1, high
    expect(elementPosition(8, 64, 2, 6)).toEqual({ word: 32 + 1, shift: 16 });
  });
});

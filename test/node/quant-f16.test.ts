import { describe, expect, it } from 'vitest';
// Scales and zero points go to f16 buffers through io/safetensors/half.ts's converter.
import { f32ArrayToF16 as toF16 } from '../../src/io/safetensors/half.ts';
import { f16BitsToF32 } from '../../src/io/safetensors/half.ts';

const f32ToF16Bits = (v: number) => toF16(new Float32Array([v]))[0];

describe('toF16', () => {
  it('converts known values with round-to-nearest-even', () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2, 0xc000],
      [65504, 0x7bff],
      [65520, 0x7c00], // halfway to the next binade rounds to even -> Infinity
      [1e6, 0x7c00],
      [Infinity, 0x7c00],
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -25, 0x0000], // exactly half of it: ties to even -> 0
      [1.5 * 2 ** -25, 0x0001],
      [6.103515625e-5, 0x0400], // smallest normal
      [1 + 2 ** -11, 0x3c00], // tie between 1 and 1+2^-10: even mantissa wins
      [1 + 3 * 2 ** -11, 0x3c02],
      [0.1, 0x2e66],
    ];
    for (const [v, h] of cases) expect(f32ToF16Bits(v), `f16(${v})`).toBe(h);
    expect(f32ToF16Bits(NaN) & 0x7c00).toBe(0x7c00);
    expect(f32ToF16Bits(NaN) & 0x3ff).not.toBe(0);
    // Zero points are small integers and must convert exactly.
    for (let z = -128; z <= 255; z++) expect(f16BitsToF32(f32ToF16Bits(z))).toBe(z);
  });

  it('converts arrays, including subarray views', () => {
    const backing = new Float32Array([9, 1, -0.5, 3]);
    expect(Array.from(toF16(backing.subarray(1)))).toEqual([0x3c00, 0xb800, 0x4200]);
    expect(Array.from(toF16(new Float32Array([1, -0.5, 3])))).toEqual([0x3c00, 0xb800, 0x4200]);
  });
});

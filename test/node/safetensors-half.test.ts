import { describe, expect, it } from 'vitest';
import { SafetensorsFile } from '../../src/io/safetensors/reader.ts';
import {
  bf16ArrayToF32,
  bf16BitsToF32,
  f16ArrayToF32,
  f16BitsToF32,
  f32ArrayToBf16,
  f32ArrayToF16,
  f32ToBf16Bits,
  f32ToF16Bits,
} from '../../src/io/safetensors/half.ts';
import { encodeSafetensors } from '../../src/io/safetensors/writer.ts';

const SUB_MIN = 2 ** -24; // smallest f16 subnormal
const SUB_MAX = 1023 * 2 ** -24; // largest f16 subnormal
const NORM_MIN = 2 ** -14;

// [f16 bits, value]
const F16_KNOWN: [number, number][] = [
  [0x0000, 0],
  [0x3c00, 1],
  [0xc000, -2],
  [0x3555, 0.333251953125],
  [0x7bff, 65504],
  [0x0001, SUB_MIN],
  [0x03ff, SUB_MAX],
  [0x0400, NORM_MIN],
  [0x7c00, Infinity],
  [0xfc00, -Infinity],
  [0x8001, -SUB_MIN],
];

describe('f16 bits -> f32', () => {
  it('decodes known values, subnormals and infinities', () => {
    for (const [h, v] of F16_KNOWN) expect(f16BitsToF32(h)).toBe(v);
    const arr = f16ArrayToF32(Uint16Array.from(F16_KNOWN.map(([h]) => h)));
    expect([...arr]).toEqual(F16_KNOWN.map(([, v]) => v));
  });

  it('keeps -0 and NaN', () => {
    expect(Object.is(f16BitsToF32(0x8000), -0)).toBe(true);
    expect(Object.is(f16ArrayToF32(new Uint16Array([0x8000]))[0], -0)).toBe(true);
    expect(f16BitsToF32(0x7e00)).toBeNaN();
    expect(f16BitsToF32(0x7c01)).toBeNaN(); // signalling payload still NaN, not inf
    expect(f16ArrayToF32(new Uint16Array([0xfe00]))[0]).toBeNaN();
  });

  it('is exact and round-trips for all 65536 bit patterns', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const f = f16ArrayToF32(all);
    const back = f32ArrayToF16(f);
    for (let h = 0; h < 65536; h++) {
      const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (isNaN) {
        expect(Number.isNaN(f[h])).toBe(true);
        expect(back[h] & 0x7c00).toBe(0x7c00);
        expect(back[h] & 0x3ff).not.toBe(0);
      } else if (back[h] !== h) {
        throw new Error(`0x${h.toString(16)} -> ${f[h]} -> 0x${back[h].toString(16)}`);
      }
    }
  });
});

describe('f32 -> f16 bits', () => {
  it('rounds to nearest, ties to even', () => {
    expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie between 1 and 1+2^-10: even is 1
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie: even is 1+2^-9
    expect(f32ToF16Bits(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01); // above the tie
    expect(f32ToF16Bits(65519)).toBe(0x7bff); // below the overflow threshold
    expect(f32ToF16Bits(65520)).toBe(0x7c00); // rounds to inf
    expect(f32ToF16Bits(1e10)).toBe(0x7c00);
    expect(f32ToF16Bits(-1e10)).toBe(0xfc00);
  });

  it('handles subnormals and underflow', () => {
    expect(f32ToF16Bits(SUB_MIN)).toBe(0x0001);
    expect(f32ToF16Bits(SUB_MAX)).toBe(0x03ff);
    expect(f32ToF16Bits(SUB_MIN / 2)).toBe(0x0000); // exact tie -> even (0)
    expect(f32ToF16Bits(SUB_MIN * 0.75)).toBe(0x0001);
    expect(f32ToF16Bits(SUB_MIN * 1.5)).toBe(0x0002); // tie between 1 and 2 -> even
    expect(f32ToF16Bits(SUB_MIN * 2.5)).toBe(0x0002); // tie between 2 and 3 -> even
    expect(f32ToF16Bits(NORM_MIN - SUB_MIN / 2)).toBe(0x0400); // rounds up into the normal range
    expect(f32ToF16Bits(1e-30)).toBe(0x0000);
    expect(f32ToF16Bits(-1e-30)).toBe(0x8000);
  });

  it('keeps inf, -0 and NaN', () => {
    expect(f32ToF16Bits(Infinity)).toBe(0x7c00);
    expect(f32ToF16Bits(-Infinity)).toBe(0xfc00);
    expect(f32ToF16Bits(-0)).toBe(0x8000);
    const nan = f32ToF16Bits(NaN);
    expect(nan & 0x7c00).toBe(0x7c00);
    expect(nan & 0x3ff).not.toBe(0);
    // A NaN whose payload sits only in the low 13 bits must not turn into inf.
    const bits = new Uint32Array([0x7f800001]);
    expect(f32ArrayToF16(new Float32Array(bits.buffer))[0] & 0x3ff).not.toBe(0);
  });

  it('matches a brute-force nearest-even search over all finite halves', () => {
    // Positive finite halves are monotonic in their bits: 0x0000..0x7bff.
    const values = f16ArrayToF32(new Uint16Array(0x7c00).map((_, i) => i));
    const reference = (x: number): number => {
      const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
      const a = Math.abs(x);
      if (a >= 65520) return sign | 0x7c00;
      let lo = 0;
      let hi = 0x7bff;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (values[mid] <= a) lo = mid;
        else hi = mid;
      }
      const dl = a - values[lo];
      const dh = values[hi] - a;
      return sign | (dl < dh ? lo : dh < dl ? hi : lo % 2 === 0 ? lo : hi);
    };
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const xs = new Float32Array(50000);
    for (let i = 0; i < xs.length; i++) xs[i] = (rand() - 0.5) * 2 ** (rand() * 44 - 28);
    // Exact ties between neighbouring halves, including in the subnormal range.
    for (let i = 0; i < 2000; i++) {
      const k = Math.floor(rand() * 0x7bfe);
      xs[i] = (values[k] + values[k + 1]) / 2;
    }
    const out = f32ArrayToF16(xs);
    for (let i = 0; i < xs.length; i++) {
      if (out[i] !== reference(xs[i])) throw new Error(`${xs[i]}: got 0x${out[i].toString(16)}, want 0x${reference(xs[i]).toString(16)}`);
      expect(f32ToF16Bits(xs[i])).toBe(out[i]);
    }
  });

  it('agrees with Math.f16round where the runtime has it', () => {
    const f16round = (Math as { f16round?: (x: number) => number }).f16round;
    if (!f16round) return;
    for (let i = 0; i < 20000; i++) {
      const x = (Math.random() - 0.5) * 2 ** (Math.random() * 40 - 26);
      expect(f16BitsToF32(f32ToF16Bits(Math.fround(x)))).toBe(f16round(Math.fround(x)));
    }
  });
});

describe('bfloat16', () => {
  it('decodes known values', () => {
    const known: [number, number][] = [
      [0x3f80, 1],
      [0xc000, -2],
      [0x7f80, Infinity],
      [0xff80, -Infinity],
      [0x0001, 2 ** -133], // smallest bf16 subnormal
      [0x4049, 3.140625],
    ];
    for (const [h, v] of known) expect(bf16BitsToF32(h)).toBe(v);
    expect([...bf16ArrayToF32(Uint16Array.from(known.map(([h]) => h)))]).toEqual(known.map(([, v]) => v));
    expect(Object.is(bf16ArrayToF32(new Uint16Array([0x8000]))[0], -0)).toBe(true);
    expect(bf16ArrayToF32(new Uint16Array([0x7fc0]))[0]).toBeNaN();
  });

  it('encodes with round to nearest even', () => {
    expect(f32ToBf16Bits(1)).toBe(0x3f80);
    expect(f32ToBf16Bits(1 + 2 ** -8)).toBe(0x3f80); // tie -> even
    expect(f32ToBf16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82); // tie -> even
    expect(f32ToBf16Bits(NaN) & 0x7f80).toBe(0x7f80);
    expect(f32ToBf16Bits(NaN) & 0x7f).not.toBe(0);
    expect([...f32ArrayToBf16(new Float32Array([3.140625, -0]))]).toEqual([0x4049, 0x8000]);
  });
});

describe('readAs from F16 / BF16 / FP8 tensors', () => {
  it('converts to f32 and f16', async () => {
    const f16 = Uint16Array.from(F16_KNOWN.map(([h]) => h));
    const bf16 = new Uint16Array([0x3f80, 0x8000, 0x7f80, 0x0001]);
    const e4m3 = new Uint8Array([0x38, 0xb8, 0x7e, 0x7f, 0x01, 0x80]); // 1, -1, 448, NaN, 2^-9, -0
    const e5m2 = new Uint8Array([0x3c, 0x7c, 0x01, 0xfe]); // 1, inf, 2^-16, NaN
    const chunks = encodeSafetensors([
      { name: 'h', dtype: 'F16', shape: [f16.length], data: f16 },
      { name: 'b', dtype: 'BF16', shape: [4], data: bf16 },
      { name: 'e4', dtype: 'F8_E4M3', shape: [6], data: e4m3 },
      { name: 'e5', dtype: 'F8_E5M2', shape: [4], data: e5m2 },
    ]);
    const f = await SafetensorsFile.open(new Blob(chunks));
    expect([...(await f.readAs('h', 'f32'))]).toEqual(F16_KNOWN.map(([, v]) => v));
    expect(await f.readAs('h', 'f16')).toEqual(f16);
    expect([...(await f.readAs('b', 'f32'))]).toEqual([1, -0, Infinity, 2 ** -133]);
    expect([...(await f.readAs('b', 'f16'))]).toEqual([0x3c00, 0x8000, 0x7c00, 0x0000]);
    const e4 = await f.readAs('e4', 'f32');
    expect([e4[0], e4[1], e4[2], e4[4]]).toEqual([1, -1, 448, 2 ** -9]);
    expect(e4[3]).toBeNaN();
    expect(Object.is(e4[5], -0)).toBe(true);
    const e5 = await f.readAs('e5', 'f32');
    expect([e5[0], e5[1], e5[2]]).toEqual([1, Infinity, 2 ** -16]);
    expect(e5[3]).toBeNaN();
  });
});

/**
 * IEEE binary16 (f16) and bfloat16 <-> f32 bit conversions.
 *
 * These run over whole weight tensors (hundreds of millions of elements), so they work on raw bits
 * through Uint32Array views instead of Math.* calls, and never allocate per element. Scalar helpers
 * share one module-level scratch view for the float <-> bits reinterpretation.
 */

// One 4-byte scratch buffer seen as float and as bits: reinterpreting through it avoids a DataView
// or a fresh array per call.
const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** f32 bits -> f16 bits, round to nearest even; overflow gives inf, NaN stays NaN (quiet). */
function bitsF32ToF16(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const man = x & 0x7fffff;
  if (exp === 0xff) {
    // Inf keeps mantissa 0; NaN keeps its top payload bits and forces the quiet bit so it can't
    // collapse into inf when the payload lived only in the dropped low bits.
    return man === 0 ? sign | 0x7c00 : sign | 0x7e00 | (man >>> 13);
  }
  const he = exp - 112; // rebias 127 -> 15
  if (he >= 0x1f) return sign | 0x7c00;
  if (he <= 0) {
    // Result is a half subnormal (or zero): value = M * 2^(exp-150), half unit = 2^-24.
    if (he < -10) return sign; // below half of the smallest subnormal: rounds to zero
    const m = man | 0x800000;
    const shift = 14 - he; // 14..24
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (h & 1) !== 0)) h++;
    return sign | h; // a carry into bit 10 is exactly the smallest normal's encoding
  }
  let h = (he << 10) | (man >>> 13);
  const rem = man & 0x1fff;
  // A carry out of the mantissa bumps the exponent, and from the top exponent lands on inf: both
  // are the correctly rounded results, so no special case is needed.
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0)) h++;
  return sign | h;
}

/** f16 bits -> f32 bits (exact: every half is representable as a float). */
function bitsF16ToF32(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  const man = h & 0x3ff;
  if (exp === 0) {
    if (man === 0) return sign;
    // Subnormal half: normalise so the leading 1 becomes the implicit bit of a normal float.
    const k = Math.clz32(man) - 21;
    return sign | ((113 - k) << 23) | (((man << k) & 0x3ff) << 13);
  }
  if (exp === 0x1f) return sign | 0x7f800000 | (man << 13);
  return sign | ((exp + 112) << 23) | (man << 13);
}

/** Converts a number to the bits of the nearest f16 (round to nearest even). */
export function f32ToF16Bits(x: number): number {
  scratchF32[0] = x;
  return bitsF32ToF16(scratchU32[0]);
}

/** Converts f16 bits (low 16 bits of `h`) to the number they encode. */
export function f16BitsToF32(h: number): number {
  scratchU32[0] = bitsF16ToF32(h & 0xffff);
  return scratchF32[0];
}

/** Converts a number to the bits of the nearest bfloat16 (round to nearest even; NaN stays NaN). */
export function f32ToBf16Bits(x: number): number {
  scratchF32[0] = x;
  return bitsF32ToBf16(scratchU32[0]);
}

/** Converts bfloat16 bits (low 16 bits of `h`) to the number they encode. */
export function bf16BitsToF32(h: number): number {
  scratchU32[0] = (h & 0xffff) << 16;
  return scratchF32[0];
}

function bitsF32ToBf16(x: number): number {
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) & 0xffff) | 0x40; // quiet NaN
  // Adding 0x7fff plus the lowest kept bit rounds half to even in one integer add.
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Float32 array -> f16 bits. */
export function f32ArrayToF16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < bits.length; i++) out[i] = bitsF32ToF16(bits[i]);
  return out;
}

/** f16 bits -> Float32 array. */
export function f16ArrayToF32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const outBits = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) outBits[i] = bitsF16ToF32(src[i]);
  return out;
}

/** bfloat16 bits -> Float32 array (bf16 is the top half of an f32, so this is a shift). */
export function bf16ArrayToF32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const outBits = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) outBits[i] = src[i] << 16;
  return out;
}

/** Float32 array -> bfloat16 bits (round to nearest even). */
export function f32ArrayToBf16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < bits.length; i++) out[i] = bitsF32ToBf16(bits[i]);
  return out;
}

/**
 * WGSL sources and their variants. Shaders are written once against `T` (the storage type of
 * activations) and get a small prelude per variant: WGSL has no preprocessor, and `enable f16;`
 * must not appear at all on devices without shader-f16, so the f16/f32 choice cannot be an
 * override constant. Everything else (workgroup size, group size, flags) is an `override`.
 */
import { WebqError } from '../errors.ts';
import { WGSL } from './shaders.generated.ts';

export type Precision = 'f32' | 'f16';

export interface Variant {
  precision: Precision;
  /**
   * Defines `fn idot4(a: u32, b: u32) -> i32`, the dot product of four packed int8 lanes:
   * 'native' is `dot4I8Packed` (needs the packed_4x8_integer_dot_product language feature),
   * 'emulated' unpacks with shifts for devices without it.
   */
  idot?: 'native' | 'emulated';
  /** Adds `enable subgroups;`. */
  subgroups?: boolean;
  /** Defines `alias KV` (the element type of a float KV cache), which may differ from `T`. */
  kv?: Precision;
}

export function variantName(v: Variant): string {
  return [v.precision, v.idot ? `idot-${v.idot}` : '', v.subgroups ? 'sg' : '', v.kv ? `kv-${v.kv}` : ''].filter(Boolean).join('+');
}

export function prelude(v: Variant): string {
  const lines: string[] = [];
  if (v.precision === 'f16' || v.kv === 'f16') lines.push('enable f16;');
  if (v.subgroups) lines.push('enable subgroups;');
  if (v.idot === 'native') lines.push('requires packed_4x8_integer_dot_product;');
  lines.push(`alias T = ${v.precision};`, `alias T4 = vec4<${v.precision}>;`);
  if (v.kv) lines.push(`alias KV = ${v.kv};`);
  if (v.idot === 'native') lines.push('fn idot4(a: u32, b: u32) -> i32 { return dot4I8Packed(a, b); }');
  if (v.idot === 'emulated') {
    // Sign-extend each byte: shift it to the top, then arithmetic-shift it back down.
    lines.push(
      'fn idot4(a: u32, b: u32) -> i32 {',
      '  let va = vec4<i32>(i32(a << 24u), i32(a << 16u), i32(a << 8u), i32(a)) >> vec4<u32>(24u);',
      '  let vb = vec4<i32>(i32(b << 24u), i32(b << 16u), i32(b << 8u), i32(b)) >> vec4<u32>(24u);',
      '  return dot(va, vb);',
      '}',
    );
  }
  return lines.join('\n') + '\n';
}

function source(name: string): string {
  const src = WGSL[name];
  if (src === undefined) throw new WebqError('UNKNOWN_SHADER', `no shader '${name}.wgsl' in shaders/ (have: ${Object.keys(WGSL).join(', ')})`);
  return src;
}

/**
 * The full WGSL of a kernel: the variant prelude, then the file with each `//! import NAME` line
 * replaced by shaders/NAME.wgsl (shared helpers; WGSL itself has no includes). Imports nest, and
 * each file is included once however many files import it.
 */
export function shaderSource(name: string, v: Variant): string {
  const seen = new Set<string>([name]);
  const expand = (src: string): string =>
    src.replace(/^\/\/! import (\w+)\s*$/gm, (_, lib: string) => {
      if (seen.has(lib)) return '';
      seen.add(lib);
      return expand(source(lib));
    });
  return prelude(v) + expand(source(name));
}

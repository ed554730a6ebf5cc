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
  /** Adds `requires packed_4x8_integer_dot_product;` (dot4I8Packed and friends). */
  dot4?: boolean;
  /** Adds `enable subgroups;`. */
  subgroups?: boolean;
}

export function variantName(v: Variant): string {
  return [v.precision, v.dot4 ? 'dot4' : '', v.subgroups ? 'sg' : ''].filter(Boolean).join('+');
}

export function prelude(v: Variant): string {
  const lines: string[] = [];
  if (v.precision === 'f16') lines.push('enable f16;');
  if (v.subgroups) lines.push('enable subgroups;');
  if (v.dot4) lines.push('requires packed_4x8_integer_dot_product;');
  lines.push(`alias T = ${v.precision};`, `alias T4 = vec4<${v.precision}>;`);
  return lines.join('\n') + '\n';
}

export function shaderSource(name: string, v: Variant): string {
  const src = WGSL[name];
  if (src === undefined) throw new WebqError('UNKNOWN_SHADER', `no shader '${name}.wgsl' in shaders/ (have: ${Object.keys(WGSL).join(', ')})`);
  return prelude(v) + src;
}

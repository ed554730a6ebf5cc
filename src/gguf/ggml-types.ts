/**
 * ggml tensor types: how many elements a block holds, its size in bytes, and what webq does with
 * it. A GGUF tensor's rows (ne0 elements, ggml's innermost dimension) are whole blocks, so a row
 * of K elements is K / blockElems blocks of blockBytes each, and rows follow each other.
 *
 *   float     F32, F16, BF16                     read as floats
 *   exact     Q8_0, Q4_0, Q5_0                   codes and f16 scales copied into webq's layout
 *   requant   Q4_1, Q5_1, Q2_K .. Q6_K           re-laid into int8 group 32 (pack.ts says how,
 *                                                and why no webq layout holds them exactly)
 *   (none)    IQ*, TQ*, MXFP4, ...               a GgufError naming the type
 */
import { GgufError } from './errors.ts';

export type GgmlMapping = 'float' | 'exact' | 'requant';

export interface GgmlType {
  readonly id: number;
  readonly name: string;
  readonly blockElems: number;
  readonly blockBytes: number;
  readonly mapping: GgmlMapping;
}

const T = (id: number, name: string, blockElems: number, blockBytes: number, mapping: GgmlMapping): GgmlType => ({ id, name, blockElems, blockBytes, mapping });

/** The types webq reads, by ggml type id. */
export const GGML_TYPES: ReadonlyMap<number, GgmlType> = new Map(
  [
    T(0, 'F32', 1, 4, 'float'),
    T(1, 'F16', 1, 2, 'float'),
    T(30, 'BF16', 1, 2, 'float'),
    T(2, 'Q4_0', 32, 18, 'exact'),
    T(3, 'Q4_1', 32, 20, 'requant'),
    T(6, 'Q5_0', 32, 22, 'exact'),
    T(7, 'Q5_1', 32, 24, 'requant'),
    T(8, 'Q8_0', 32, 34, 'exact'),
    T(10, 'Q2_K', 256, 84, 'requant'),
    T(11, 'Q3_K', 256, 110, 'requant'),
    T(12, 'Q4_K', 256, 144, 'requant'),
    T(13, 'Q5_K', 256, 176, 'requant'),
    T(14, 'Q6_K', 256, 210, 'requant'),
  ].map((t) => [t.id, t]),
);

/** Names of the types webq does not read, for messages. */
const UNSUPPORTED: Record<number, string> = {
  9: 'Q8_1', 15: 'Q8_K', 16: 'IQ2_XXS', 17: 'IQ2_XS', 18: 'IQ3_XXS', 19: 'IQ1_S', 20: 'IQ4_NL', 21: 'IQ3_S', 22: 'IQ2_S',
  23: 'IQ4_XS', 24: 'I8', 25: 'I16', 26: 'I32', 27: 'I64', 28: 'F64', 29: 'IQ1_M', 34: 'TQ1_0', 35: 'TQ2_0', 39: 'MXFP4',
  40: 'NVFP4', 41: 'Q1_0', 42: 'Q2_0',
};

/** The name of a type id, known or not ("type 99"). */
export function ggmlTypeName(id: number): string {
  return GGML_TYPES.get(id)?.name ?? UNSUPPORTED[id] ?? `type ${id}`;
}

const SUPPORTED_LIST = [...GGML_TYPES.values()].map((t) => t.name).join(', ');

/** The type of a tensor, or a GgufError naming the tensor and its type when webq cannot read it. */
export function ggmlType(id: number, where: string): GgmlType {
  const t = GGML_TYPES.get(id);
  if (t) return t;
  const name = ggmlTypeName(id);
  const why = name.startsWith('IQ')
    ? 'i-quants index lattice codebooks that no webq kernel reads'
    : name.startsWith('TQ')
      ? 'ternary types are not supported'
      : 'webq does not read this type';
  throw new GgufError('GGUF_UNSUPPORTED_TYPE', `${where} is ${name} (ggml type ${id}); ${why}. webq reads ${SUPPORTED_LIST}: re-quantize the model to one of them (llama-quantize, e.g. Q4_K_M or Q8_0)`);
}

/** Bytes of a row of `K` elements, or a GgufError when K is not whole blocks. */
export function rowBytes(t: GgmlType, K: number, where: string): number {
  if (K % t.blockElems !== 0) throw new GgufError('GGUF_TENSOR', `${where}: a ${t.name} row holds whole blocks of ${t.blockElems}, but the row has ${K} elements`);
  return (K / t.blockElems) * t.blockBytes;
}

/**
 * Matryoshka dimensions: the first D values of an embedding, normalized again when the full vector
 * was. Encoders trained with a Matryoshka loss (nomic-embed, mxbai-embed, bge-m3's dense head,
 * OpenAI's text-embedding-3) pack the most information into the leading dimensions, so a prefix is
 * a smaller embedding of the same text; for other encoders it is merely a worse one.
 */
import { WebqError } from '../errors.ts';

/** `dimensions` checked against the model's size: an integer from 1 to `hidden`, or undefined (keep all). */
export function checkDimensions(dimensions: unknown, hidden: number, where: string): number | undefined {
  if (dimensions === undefined) return undefined;
  if (typeof dimensions !== 'number' || !Number.isInteger(dimensions) || dimensions < 1 || dimensions > hidden) {
    const got = typeof dimensions === 'number' ? String(dimensions) : typeof dimensions === 'string' ? JSON.stringify(dimensions) : typeof dimensions;
    throw new WebqError('BAD_OPTION', `${where}: dimensions must be an integer from 1 to ${hidden} (the model's embedding size), got ${got}`);
  }
  return dimensions;
}

/** The first `dimensions` values of `v` (a copy), scaled to unit length when `normalize`. */
export function truncateEmbedding(v: Float32Array, dimensions: number, normalize: boolean): Float32Array {
  const out = v.slice(0, dimensions);
  if (!normalize) return out;
  let n = 0;
  for (const x of out) n += x * x;
  const inv = n > 0 ? 1 / Math.sqrt(n) : 0;
  for (let i = 0; i < out.length; i++) out[i] *= inv;
  return out;
}

import { ShapeError } from '../errors.ts';

/**
 * Cosine similarity of two vectors (for example two embeddings): dot(a, b) / (|a| |b|), and 0
 * when either vector is all zeros. Vectors of different lengths are a ShapeError.
 */
export function cosineSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new ShapeError(`cosineSimilarity: vectors of length ${a.length} and ${b.length}; expected equal lengths`);
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  const d = Math.sqrt(na) * Math.sqrt(nb);
  return d === 0 ? 0 : dot / d;
}

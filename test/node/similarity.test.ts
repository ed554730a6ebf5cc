import { describe, expect, it } from 'vitest';
import { cosineSimilarity, ShapeError } from '../../src/index.ts';

describe('cosineSimilarity', () => {
  it('is 1 for parallel, -1 for opposite and 0 for orthogonal vectors', () => {
    expect(cosineSimilarity([1, 2, 3], [2, 4, 6])).toBeCloseTo(1, 12);
    expect(cosineSimilarity(new Float32Array([1, -2]), new Float32Array([-1, 2]))).toBeCloseTo(-1, 12);
    expect(cosineSimilarity([1, 0], [0, 5])).toBe(0);
  });

  it('matches dot / (|a| |b|) on an arbitrary pair', () => {
    const a = [0.3, -1.2, 2.5, 0.7];
    const b = [1.1, 0.4, -0.6, 2.0];
    const dot = 0.3 * 1.1 - 1.2 * 0.4 - 2.5 * 0.6 + 0.7 * 2.0;
    const na = Math.hypot(...a);
    const nb = Math.hypot(...b);
    expect(cosineSimilarity(a, b)).toBeCloseTo(dot / (na * nb), 12);
  });

  it('is 0 when a vector is all zeros', () => {
    expect(cosineSimilarity([0, 0, 0], [1, 2, 3])).toBe(0);
  });

  it('rejects vectors of different lengths, naming both lengths', () => {
    expect(() => cosineSimilarity([1, 2, 3], [1, 2])).toThrow(ShapeError);
    expect(() => cosineSimilarity([1, 2, 3], [1, 2])).toThrow(/length 3 and 2/);
  });
});

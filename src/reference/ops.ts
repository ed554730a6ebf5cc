/**
 * Plain-loop CPU references for the float kernels, accumulating in f64. Tests compare GPU output
 * against these; nothing in the runtime calls them.
 */
import { gelu } from './math.ts';

/** out[i] = a[i] (op) b[i % b.length] */
export function refBinary(op: 'add' | 'mul', a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = op === 'add' ? a[i] + b[i % b.length] : a[i] * b[i % b.length];
  return out;
}

export function refUnary(f: (x: number) => number, x: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = f(x[i]);
  return out;
}

/** x [rows, cols] -> (x - mean) / sqrt(var + eps) * gamma + beta, per row */
export function refLayerNorm(x: Float32Array, rows: number, cols: number, gamma: Float32Array, beta: Float32Array, eps: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let c = 0; c < cols; c++) mean += x[r * cols + c];
    mean /= cols;
    let v = 0;
    for (let c = 0; c < cols; c++) v += (x[r * cols + c] - mean) ** 2;
    const inv = 1 / Math.sqrt(v / cols + eps);
    for (let c = 0; c < cols; c++) out[r * cols + c] = (x[r * cols + c] - mean) * inv * gamma[c] + beta[c];
  }
  return out;
}

/** x [rows, cols] -> x / sqrt(mean(x^2) + eps) * gamma, per row */
export function refRmsNorm(x: Float32Array, rows: number, cols: number, gamma: Float32Array, eps: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += x[r * cols + c] ** 2;
    const inv = 1 / Math.sqrt(s / cols + eps);
    for (let c = 0; c < cols; c++) out[r * cols + c] = x[r * cols + c] * inv * gamma[c];
  }
  return out;
}

/** x [rows, cols] -> softmax per row; a row of -inf gives zeros */
export function refSoftmax(x: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, x[r * cols + c]);
    if (m === -Infinity) continue;
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp(x[r * cols + c] - m);
    for (let c = 0; c < cols; c++) out[r * cols + c] = Math.exp(x[r * cols + c] - m) / s;
  }
  return out;
}

/** ids [T], table [V, D] -> out [T, D]; ids >= V give zero rows */
export function refEmbedding(ids: Uint32Array, table: Float32Array, vocab: number, dim: number): Float32Array {
  const out = new Float32Array(ids.length * dim);
  for (let t = 0; t < ids.length; t++) {
    if (ids[t] >= vocab) continue;
    for (let d = 0; d < dim; d++) out[t * dim + d] = table[ids[t] * dim + d];
  }
  return out;
}

/**
 * a [batch, M, K], b [bBatch, N, K] (transB) or [bBatch, K, N], bias [N] -> c [batch, M, N].
 * bBatch is 1 (shared weight) or batch.
 */
export function refMatmul(
  a: Float32Array, b: Float32Array, batch: number, M: number, N: number, K: number,
  opts: { transB: boolean; bias?: Float32Array; bShared?: boolean },
): Float32Array {
  const c = new Float32Array(batch * M * N);
  for (let z = 0; z < batch; z++) {
    const ao = z * M * K;
    const bo = opts.bShared ? 0 : z * N * K;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = opts.bias ? opts.bias[n] : 0;
        for (let k = 0; k < K; k++) s += a[ao + m * K + k] * (opts.transB ? b[bo + n * K + k] : b[bo + k * N + n]);
        c[z * M * N + m * N + n] = s;
      }
    }
  }
  return c;
}

/**
 * Encoder self-attention: qkv [B*T, 3H] (Q | K | V), mask [B*T] (0 = padding key) ->
 * out [B*T, H]; softmax(q.k / sqrt(D)) over unmasked keys, per head.
 */
/** `bias` (MPNet): table [buckets, heads] and buckets [2T - 1]; table[buckets[j - i + T - 1], h] joins the score. */
export function refAttention(qkv: Float32Array, mask: Uint32Array, B: number, T: number, heads: number, H: number, bias?: { table: Float32Array; buckets: Uint32Array }, window = Infinity): Float32Array {
  // `window`: a local layer's query i sees keys j with |i - j| <= window only (ModernBERT); a query with no key left gets zeros.
  const sees = (b: number, i: number, j: number) => mask[b * T + j] !== 0 && Math.abs(i - j) <= window;
  const D = H / heads;
  const out = new Float32Array(B * T * H);
  const s = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < T; i++) {
        const q = (b * T + i) * 3 * H + h * D;
        let m = -Infinity;
        for (let j = 0; j < T; j++) {
          if (!sees(b, i, j)) continue;
          const k = (b * T + j) * 3 * H + H + h * D;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += qkv[q + d] * qkv[k + d];
          s[j] = dot / Math.sqrt(D) + (bias ? bias.table[bias.buckets[j - i + T - 1] * heads + h] : 0);
          m = Math.max(m, s[j]);
        }
        let sum = 0;
        for (let j = 0; j < T; j++) if (sees(b, i, j)) sum += Math.exp(s[j] - m);
        for (let d = 0; d < D; d++) {
          let acc = 0;
          for (let j = 0; j < T; j++) if (sees(b, i, j)) acc += Math.exp(s[j] - m) * qkv[(b * T + j) * 3 * H + 2 * H + h * D + d];
          out[(b * T + i) * H + h * D + d] = sum > 0 ? acc / sum : 0;
        }
      }
    }
  }
  return out;
}

/**
 * BERT input embeddings: ids, types [rows] (rows = B * T), word [V, H], pos [P >= T, H],
 * type [TV, H] -> out [rows, H] = word[ids[r]] + pos[r % T] + type[types[r]].
 */
export function refEmbedSum(ids: Uint32Array, types: Uint32Array, word: Float32Array, pos: Float32Array, type: Float32Array, T: number, H: number, positions?: Uint32Array): Float32Array {
  const out = new Float32Array(ids.length * H);
  for (let r = 0; r < ids.length; r++) {
    const t = positions ? positions[r] : r % T; // absolute positions unless given
    for (let d = 0; d < H; d++) out[r * H + d] = word[ids[r] * H + d] + pos[t * H + d] + type[types[r] * H + d];
  }
  return out;
}

/**
 * Sentence pooling: x [B * T, H], mask [B * T] -> [B, H], the mean over unmasked tokens ('mean';
 * zeros for a row with none) or token 0 ('cls'), optionally L2-normalized (a zero vector stays zero).
 */
export function refPool(x: Float32Array, mask: Uint32Array, B: number, H: number, mode: 'mean' | 'cls', normalize: boolean): Float32Array {
  const T = mask.length / B;
  const out = new Float32Array(B * H);
  const row = new Float64Array(H);
  for (let b = 0; b < B; b++) {
    row.fill(0);
    if (mode === 'cls') {
      for (let d = 0; d < H; d++) row[d] = x[b * T * H + d];
    } else {
      let n = 0;
      for (let t = 0; t < T; t++) {
        if (!mask[b * T + t]) continue;
        n++;
        for (let d = 0; d < H; d++) row[d] += x[(b * T + t) * H + d];
      }
      for (let d = 0; d < H; d++) row[d] /= Math.max(n, 1);
    }
    let norm = 1;
    if (normalize) {
      let sq = 0;
      for (let d = 0; d < H; d++) sq += row[d] ** 2;
      norm = Math.max(Math.sqrt(sq), 1e-12);
    }
    for (let d = 0; d < H; d++) out[b * H + d] = row[d] / norm;
  }
  return out;
}

/** GeGLU: x [rows, 2 cols] (input | gate) -> gelu(input) * gate [rows, cols]. */
export function refGeglu(x: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r * cols + c] = gelu(x[r * 2 * cols + c]) * x[r * 2 * cols + cols + c];
  return out;
}

/**
 * Rotate-half RoPE on the Q and K heads of qkv [rows, 3H] (V untouched), token t = row % T, angle
 * t * base^(-2k/D) in f64: x1' = x1 cos - x2 sin, x2' = x2 cos + x1 sin for k < D/2.
 */
export function refRopeQkv(qkv: Float32Array, T: number, heads: number, H: number, base: number): Float32Array {
  const D = H / heads;
  const half = D / 2;
  const out = Float32Array.from(qkv);
  for (let r = 0; r < qkv.length / (3 * H); r++) {
    for (let slot = 0; slot < 2 * heads; slot++) {
      for (let k = 0; k < half; k++) {
        const a = (r % T) * Math.pow(base, (-2 * k) / D);
        const at = r * 3 * H + slot * D + k;
        out[at] = qkv[at] * Math.cos(a) - qkv[at + half] * Math.sin(a);
        out[at + half] = qkv[at + half] * Math.cos(a) + qkv[at] * Math.sin(a);
      }
    }
  }
  return out;
}

/**
 * Plain-loop CPU references for the decoder kernels (ops/rope-kv.ts, ops/decoder-attention.ts,
 * swiglu in ops/activation.ts and the int8 KV cache's rows), accumulating in f64. Tests compare GPU
 * output against these; nothing in the runtime calls them.
 */

/** out [rows, cols] = silu(gate) * up for x [rows, 2 * cols] holding gate | up along each row. */
export function refSwiglu(x: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const g = x[r * 2 * cols + c];
      const u = x[r * 2 * cols + cols + c];
      out[r * cols + c] = (g / (1 + Math.exp(-g))) * u;
    }
  }
  return out;
}

/** out [rows, cols] = gelu_tanh(gate) * up (Gemma's GeGLU), x [rows, 2 * cols] holding gate | up. */
export function refGegluTanh(x: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const g = x[r * 2 * cols + c];
      out[r * cols + c] = 0.5 * g * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (g + 0.044715 * g ** 3))) * x[r * 2 * cols + cols + c];
    }
  }
  return out;
}

/** cap tanh(x / cap) elementwise (Gemma's final_logit_softcapping). */
export function refSoftcap(x: Float32Array, cap: number): Float32Array {
  return Float32Array.from(x, (v) => cap * Math.tanh(v / cap));
}

export interface RopeKvRef {
  /** [T, nh * D]: normed (qkNorm) and roped. */
  q: Float32Array;
  /** [nkv, T, D]: the rows written into the cache at positions pos0 .. pos0 + T - 1. */
  k: Float32Array;
  v: Float32Array;
}

/**
 * qkv [T, (nh + 2 nkv) D] (Q heads | K heads | V heads along each row), rows at positions
 * pos0 .. pos0 + T - 1 -> q, k, v. With qkNorm, q and k heads get RMSNorm over D first and
 * `round` (the kernel's storage rounding, as transformers stores the norm's output in the model's
 * dtype; identity for f32). RoPE is rotate-half: dimension i pairs with i + D/2, angle
 * position * invFreq[i].
 */
export function refRopeKv(
  qkv: Float32Array, T: number, nh: number, nkv: number, D: number, pos0: number, invFreq: Float32Array,
  qkNorm?: { q: Float32Array; k: Float32Array; eps: number; round: (x: number) => number },
): RopeKvRef {
  const width = (nh + 2 * nkv) * D;
  const half = D / 2;
  const q = new Float32Array(T * nh * D);
  const k = new Float32Array(nkv * T * D);
  const v = new Float32Array(nkv * T * D);
  const head = new Float64Array(D);
  // Loads head `slot` of row t, norms it with g when given, ropes it at position pos0 + t into dst.
  const prepare = (t: number, slot: number, g: Float32Array | undefined, dst: Float32Array, at: number) => {
    for (let d = 0; d < D; d++) head[d] = qkv[t * width + slot * D + d];
    if (g && qkNorm) {
      let ss = 0;
      for (let d = 0; d < D; d++) ss += head[d] ** 2;
      const inv = 1 / Math.sqrt(ss / D + qkNorm.eps);
      for (let d = 0; d < D; d++) head[d] = qkNorm.round(head[d] * inv * g[d]);
    }
    const p = pos0 + t;
    for (let i = 0; i < half; i++) {
      const c = Math.cos(p * invFreq[i]);
      const s = Math.sin(p * invFreq[i]);
      dst[at + i] = head[i] * c - head[i + half] * s;
      dst[at + i + half] = head[i + half] * c + head[i] * s;
    }
  };
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < nh; h++) prepare(t, h, qkNorm?.q, q, (t * nh + h) * D);
    for (let h = 0; h < nkv; h++) {
      prepare(t, nh + h, qkNorm?.k, k, (h * T + t) * D);
      for (let d = 0; d < D; d++) v[(h * T + t) * D + d] = qkv[t * width + (nh + nkv + h) * D + d];
    }
  }
  return { q, k, v };
}

/**
 * The int8 KV cache's rows (ops/kv-cache.ts): x [rows, D] -> one scale per row, max |x| / 127,
 * and codes round(x / scale) in -127..127 (a zero row: scale 0, codes 0).
 */
export function refQuantizeKvRows(x: Float32Array, rows: number, D: number): { codes: Int8Array; scales: Float32Array } {
  const codes = new Int8Array(rows * D);
  const scales = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let d = 0; d < D; d++) m = Math.max(m, Math.abs(x[r * D + d]));
    scales[r] = m / 127;
    if (m === 0) continue;
    for (let d = 0; d < D; d++) codes[r * D + d] = Math.max(-127, Math.min(127, Math.round((x[r * D + d] * 127) / m)));
  }
  return { codes, scales };
}

/**
 * Causal attention of q [T, nh * D] (query rows at positions pos0 .. pos0 + T - 1) over a cache's
 * keys and values k, v [nkv, cap, D] (positions 0 .. pos0 + T - 1 are read; the rest is ignored).
 * Query head h reads KV head floor(h / (nh / nkv)); the row at position P sees keys
 * max(0, P - window + 1) .. P (window 0: all up to P). Scores are scaled by `scale` (default
 * 1 / sqrt(D)), then with softcap > 0 mapped to softcap tanh(s / softcap) (Gemma 2).
 */
export function refDecoderAttention(
  q: Float32Array, k: Float32Array, v: Float32Array, T: number, nh: number, nkv: number, D: number, cap: number, pos0: number, window = 0,
  scale = 1 / Math.sqrt(D), softcap = 0,
): Float32Array {
  const out = new Float32Array(T * nh * D);
  const group = nh / nkv;
  const w = new Float64Array(pos0 + T);
  for (let t = 0; t < T; t++) {
    const P = pos0 + t;
    const first = window > 0 ? Math.max(0, P - window + 1) : 0;
    for (let h = 0; h < nh; h++) {
      const qo = (t * nh + h) * D;
      const kv = Math.floor(h / group) * cap * D;
      let max = -Infinity;
      for (let j = first; j <= P; j++) {
        let s = 0;
        for (let d = 0; d < D; d++) s += q[qo + d] * k[kv + j * D + d];
        w[j] = softcap > 0 ? softcap * Math.tanh((s * scale) / softcap) : s * scale;
        max = Math.max(max, w[j]);
      }
      let sum = 0;
      for (let j = first; j <= P; j++) sum += w[j] = Math.exp(w[j] - max);
      for (let d = 0; d < D; d++) {
        let acc = 0;
        for (let j = first; j <= P; j++) acc += w[j] * v[kv + j * D + d];
        out[qo + d] = acc / sum;
      }
    }
  }
  return out;
}

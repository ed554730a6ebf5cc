// Fused multi-head attention for encoders (flash style): for batch b, head h and query i,
//   out[b, i, h] = sum_j softmax_j(q_i . k_j * scale + mask_j) v_j
// reading Q, K and V straight out of the fused QKV projection [B*T, 3H] (Q | K | V along the row)
// and writing the heads side by side into [B*T, H]. Scores never reach memory: each thread owns
// one query, keys and values stream through workgroup memory in blocks of BK, and the softmax is
// online (running max m, running sum l, accumulator rescaled once per block).
// mask[b, j] = 0 marks padding: those keys are skipped, so padding never changes a real token.
// A local layer (ModernBERT) also skips keys farther than p.win from the query (|i - j| > win);
// global layers pass win = 0xffffffff. It is a uniform, not an override: the same pipeline serves
// both kinds of layer.
// The head dim is the override HD (a multiple of 4): loops over it have a trip count the shader
// compiler knows, so q and the accumulator live in registers as vec4s, not in indexed memory.

struct Params { T: u32, H: u32, heads: u32, D: u32, scale: f32, win: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<T>;
@group(0) @binding(2) var<storage, read> mask: array<u32>;
// MPNet's relative position bias (HAS_BIAS; placeholders are bound otherwise): table [buckets,
// heads], and the bucket of each distance j - i at buckets[j - i + T - 1]; added to the scaled score.
@group(0) @binding(4) var<storage, read> relTable: array<f32>;
@group(0) @binding(5) var<storage, read> relBuckets: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<T>;

const MAX_D4 = 32u; // head dims up to 128 (BERT-base 64, MiniLM 32)
const BK = 16u;     // keys per block: 2 * BK * 128 floats = 16 KiB of workgroup memory
override WG: u32 = 64u;
override HD: u32 = 32u;
override HAS_BIAS: bool = false;

fn rel_bias(h: u32, i: u32, j: u32) -> f32 {
  if (!HAS_BIAS) { return 0.0; }
  return relTable[relBuckets[j + p.T - 1u - i] * p.heads + h];
}

// Key j is within query i's window (always, for a global layer).
fn near(i: u32, j: u32) -> bool { return max(i, j) - min(i, j) <= p.win; }

var<workgroup> Ks: array<vec4<f32>, 512>; // [BK][MAX_D4]
var<workgroup> Vs: array<vec4<f32>, 512>;
var<workgroup> live: array<u32, BK>;

fn ld4(i: u32) -> vec4<f32> {
  return vec4<f32>(f32(qkv[i]), f32(qkv[i + 1u]), f32(qkv[i + 2u]), f32(qkv[i + 3u]));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let b = wg.z;
  let h = wg.y;
  let i = wg.x * WG + lid;
  let row3 = 3u * p.H;
  let hOff = h * HD;
  let D4 = HD / 4u;
  var q: array<vec4<f32>, MAX_D4>;
  var acc: array<vec4<f32>, MAX_D4>;
  for (var d = 0u; d < D4; d++) {
    acc[d] = vec4<f32>(0.0);
    q[d] = vec4<f32>(0.0);
    if (i < p.T) { q[d] = ld4((b * p.T + i) * row3 + hOff + 4u * d) * p.scale; }
  }
  var m = -3.402823e38;
  var l = 0.0;
  for (var j0 = 0u; j0 < p.T; j0 += BK) {
    // Stage BK keys and values, 4 elements per load; neighbouring threads, neighbouring addresses.
    for (var e = lid; e < BK * D4; e += WG) {
      let jj = e / D4;
      let d = e % D4;
      let j = j0 + jj;
      var kv = vec4<f32>(0.0);
      var vv = vec4<f32>(0.0);
      if (j < p.T) {
        let base = (b * p.T + j) * row3 + hOff + 4u * d;
        kv = ld4(base + p.H);
        vv = ld4(base + 2u * p.H);
      }
      Ks[jj * MAX_D4 + d] = kv;
      Vs[jj * MAX_D4 + d] = vv;
    }
    if (lid < BK) {
      let j = j0 + lid;
      live[lid] = select(0u, mask[b * p.T + j], j < p.T);
    }
    workgroupBarrier();
    var s: array<f32, BK>;
    var bmax = -3.402823e38;
    for (var jj = 0u; jj < BK; jj++) {
      var v = -3.402823e38;
      if (live[jj] != 0u && near(i, j0 + jj)) {
        var dv = vec4<f32>(0.0);
        for (var d = 0u; d < D4; d++) { dv += q[d] * Ks[jj * MAX_D4 + d]; }
        v = dv.x + dv.y + dv.z + dv.w + rel_bias(h, min(i, p.T - 1u), j0 + jj);
        bmax = max(bmax, v);
      }
      s[jj] = v;
    }
    if (bmax > -3.0e38) {
      let mNew = max(m, bmax);
      let corr = exp(m - mNew);
      l *= corr;
      for (var d = 0u; d < D4; d++) { acc[d] *= corr; }
      for (var jj = 0u; jj < BK; jj++) {
        if (s[jj] > -3.0e38) {
          let w = exp(s[jj] - mNew);
          l += w;
          for (var d = 0u; d < D4; d++) { acc[d] += w * Vs[jj * MAX_D4 + d]; }
        }
      }
      m = mNew;
    }
    workgroupBarrier();
  }
  if (i < p.T) {
    let inv = select(0.0, 1.0 / l, l > 0.0);
    for (var d = 0u; d < D4; d++) {
      let o = acc[d] * inv;
      let at = (b * p.T + i) * p.H + hOff + 4u * d;
      out[at] = T(o.x);
      out[at + 1u] = T(o.y);
      out[at + 2u] = T(o.z);
      out[at + 3u] = T(o.w);
    }
  }
}

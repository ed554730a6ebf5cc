// Fused multi-head attention for encoders (flash style): for batch b, head h and query i,
//   out[b, i, h] = sum_j softmax_j(q_i . k_j * scale + mask_j) v_j
// reading Q, K and V straight out of the fused QKV projection [B*T, 3H] (Q | K | V along the row)
// and writing the heads side by side into [B*T, H]. Scores never reach memory: each thread owns
// one query, keys and values stream through workgroup memory in blocks of BK, and the softmax is
// online (running max m, running sum l, accumulator rescaled once per block).
// mask[b, j] = 0 marks padding: those keys are skipped, so padding never changes a real token.

struct Params { T: u32, H: u32, heads: u32, D: u32, scale: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<T>;
@group(0) @binding(2) var<storage, read> mask: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<T>;

const MAX_D = 128u; // head dims up to 128 (BERT-base 64, MiniLM 32)
const BK = 16u;     // keys per block: BK * MAX_D * 2 floats = 16 KiB of workgroup memory
override WG: u32 = 64u;

var<workgroup> Ks: array<f32, 2048>; // [BK][MAX_D]
var<workgroup> Vs: array<f32, 2048>;
var<workgroup> live: array<u32, BK>; // mask of the staged keys

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let b = wg.z;
  let h = wg.y;
  let i = wg.x * WG + lid;
  let row3 = 3u * p.H;
  let hOff = h * p.D;
  var q: array<f32, MAX_D>;
  var acc: array<f32, MAX_D>;
  for (var d = 0u; d < MAX_D; d++) {
    acc[d] = 0.0;
    q[d] = 0.0;
  }
  if (i < p.T) {
    for (var d = 0u; d < p.D; d++) { q[d] = f32(qkv[(b * p.T + i) * row3 + hOff + d]) * p.scale; }
  }
  var m = -3.402823e38;
  var l = 0.0;
  for (var j0 = 0u; j0 < p.T; j0 += BK) {
    // Stage BK keys and values; consecutive threads read consecutive elements of a row.
    for (var e = lid; e < BK * p.D; e += WG) {
      let jj = e / p.D;
      let d = e % p.D;
      let j = j0 + jj;
      var kv = 0.0;
      var vv = 0.0;
      if (j < p.T) {
        let base = (b * p.T + j) * row3 + hOff + d;
        kv = f32(qkv[base + p.H]);
        vv = f32(qkv[base + 2u * p.H]);
      }
      Ks[jj * MAX_D + d] = kv;
      Vs[jj * MAX_D + d] = vv;
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
      if (live[jj] != 0u) {
        v = 0.0;
        for (var d = 0u; d < p.D; d++) { v += q[d] * Ks[jj * MAX_D + d]; }
        bmax = max(bmax, v);
      }
      s[jj] = v;
    }
    if (bmax > -3.0e38) {
      let mNew = max(m, bmax);
      let corr = exp(m - mNew);
      l *= corr;
      for (var d = 0u; d < p.D; d++) { acc[d] *= corr; }
      for (var jj = 0u; jj < BK; jj++) {
        if (live[jj] != 0u) {
          let w = exp(s[jj] - mNew);
          l += w;
          for (var d = 0u; d < p.D; d++) { acc[d] += w * Vs[jj * MAX_D + d]; }
        }
      }
      m = mNew;
    }
    workgroupBarrier();
  }
  if (i < p.T) {
    let inv = select(0.0, 1.0 / l, l > 0.0);
    for (var d = 0u; d < p.D; d++) { out[(b * p.T + i) * p.H + hOff + d] = T(acc[d] * inv); }
  }
}

// Merges the splits of attn_dec_lib.wgsl: for query row t and head h, with per-split running max
// m_s, sum l_s and unnormalised accumulator a_s,
//   out = sum_s exp(m_s - M) a_s / sum_s exp(m_s - M) l_s,   M = max_s m_s.
// An empty split has m = -inf-ish and l = 0, so it weighs nothing.

struct Params { nh: u32, D: u32, nsplit: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> part: array<f32>;     // [T, nh, nsplit, 2 + D]
@group(0) @binding(2) var<storage, read_write> out: array<T>;  // [T, nh * D]

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let h = wg.x;
  let t = wg.y;
  let S = p.D + 2u;
  let base = (t * p.nh + h) * p.nsplit;
  var M = -3.402823e38;
  for (var s = 0u; s < p.nsplit; s++) { M = max(M, part[(base + s) * S]); }
  var L = 0.0;
  for (var s = 0u; s < p.nsplit; s++) { L += part[(base + s) * S + 1u] * exp(part[(base + s) * S] - M); }
  for (var d = lid; d < p.D; d += WG) {
    var o = 0.0;
    for (var s = 0u; s < p.nsplit; s++) { o += part[(base + s) * S + 2u + d] * exp(part[(base + s) * S] - M); }
    out[(t * p.nh + h) * p.D + d] = T(o / L);
  }
}

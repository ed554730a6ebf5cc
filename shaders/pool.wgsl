// Sentence pooling over a [B, T, H] hidden state: MEAN averages the unmasked tokens of each row
// (sentence-transformers' mean pooling), otherwise the first token ([CLS]) is taken. NORMALIZE
// scales each pooled vector to unit L2 norm. One workgroup per row; out is [B, H].

struct Params { T: u32, H: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read> mask: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<T>;

override WG: u32 = 64u;
override MEAN: bool = true;
override NORMALIZE: bool = false;
var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let b = wg.x;
  var count = 0.0;
  if (MEAN) {
    for (var t = 0u; t < p.T; t++) { count += f32(mask[b * p.T + t] != 0u); }
  }
  var sq = 0.0;
  for (var d = lid; d < p.H; d += WG) {
    var v = 0.0;
    if (MEAN) {
      for (var t = 0u; t < p.T; t++) {
        if (mask[b * p.T + t] != 0u) { v += f32(x[(b * p.T + t) * p.H + d]); }
      }
      v /= max(count, 1.0);
    } else {
      v = f32(x[b * p.T * p.H + d]);
    }
    sq += v * v;
    out[b * p.H + d] = T(v);
  }
  if (NORMALIZE) {
    red[lid] = sq;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
      if (lid < s) { red[lid] += red[lid + s]; }
      workgroupBarrier();
    }
    // Each thread rescales only the elements it wrote, so no barrier is needed before reading them.
    let inv = 1.0 / max(sqrt(red[0]), 1e-12);
    for (var d = lid; d < p.H; d += WG) { out[b * p.H + d] = T(f32(out[b * p.H + d]) * inv); }
  }
}

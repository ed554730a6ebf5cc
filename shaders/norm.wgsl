// LayerNorm and RMSNorm over the last dimension: one workgroup per row, a tree reduction in
// workgroup memory. LayerNorm takes two passes (mean, then squared deviations) instead of
// E[x^2] - E[x]^2, which loses precision when the mean is large against the spread.

//! import norm_lib

override WG: u32 = 64u;
var<workgroup> red: array<f32, WG>;

fn row_sum(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier(); // everyone has read red[0] before the next reduction reuses it
  return total;
}

fn row_of(wg: vec3u, nwg: vec3u) -> u32 { return wg.x + wg.y * nwg.x; }

@compute @workgroup_size(WG)
fn layernorm(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = row_of(wg, nwg);
  if (row >= p.rows) { return; } // uniform per workgroup, so barriers stay in uniform control flow
  let base = row * p.cols;
  var s = 0.0;
  for (var i = lid; i < p.cols; i += WG) { s += f32(x[base + i]); }
  let mean = row_sum(s, lid) / f32(p.cols);
  var d = 0.0;
  for (var i = lid; i < p.cols; i += WG) { let v = f32(x[base + i]) - mean; d += v * v; }
  let inv = inverseSqrt(row_sum(d, lid) / f32(p.cols) + p.eps);
  for (var i = lid; i < p.cols; i += WG) {
    out[base + i] = T((f32(x[base + i]) - mean) * inv * f32(gamma[i]) + f32(beta[i]));
  }
}

@compute @workgroup_size(WG)
fn rmsnorm(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let row = row_of(wg, nwg);
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  var d = 0.0;
  for (var i = lid; i < p.cols; i += WG) { let v = f32(x[base + i]); d += v * v; }
  let inv = inverseSqrt(row_sum(d, lid) / f32(p.cols) + p.eps);
  for (var i = lid; i < p.cols; i += WG) {
    out[base + i] = T(f32(x[base + i]) * inv * f32(gamma[i]));
  }
}

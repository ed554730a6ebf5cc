// norm.wgsl for CPU-emulated adapters: same contract and entry points, one subgroup per row and
// subgroupAdd instead of a tree in workgroup memory (on lavapipe each of the tree's barriers
// switches between the subgroups of a workgroup). A workgroup of 64 holds 64 / SG subgroups; CPU
// backends build subgroups from consecutive invocations, so subgroup r is invocations
// r SG .. r SG + SG - 1 and lane sl is invocation r SG + sl.

//! import norm_lib

override SG: u32 = 8u; // the subgroup size
const WG = 64u;

fn row_of(wg: vec3u, nwg: vec3u, lid: u32) -> u32 { return (wg.x + wg.y * nwg.x) * (WG / SG) + lid / SG; }

@compute @workgroup_size(WG)
fn layernorm(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_invocation_id) sl: u32) {
  // A subgroup past the last row computes on the last row and stores nothing: returning early
  // would make the subgroupAdd below non-uniform by WGSL's rules.
  let row = row_of(wg, nwg, lid);
  let live = row < p.rows;
  let base = min(row, p.rows - 1u) * p.cols;
  var s = 0.0;
  for (var i = sl; i < p.cols; i += SG) { s += f32(x[base + i]); }
  let mean = subgroupAdd(s) / f32(p.cols);
  var d = 0.0;
  for (var i = sl; i < p.cols; i += SG) { let v = f32(x[base + i]) - mean; d += v * v; }
  let inv = inverseSqrt(subgroupAdd(d) / f32(p.cols) + p.eps);
  if (!live) { return; }
  for (var i = sl; i < p.cols; i += SG) {
    out[base + i] = T((f32(x[base + i]) - mean) * inv * f32(gamma[i]) + f32(beta[i]));
  }
}

@compute @workgroup_size(WG)
fn rmsnorm(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_invocation_id) sl: u32) {
  let row = row_of(wg, nwg, lid);
  let live = row < p.rows;
  let base = min(row, p.rows - 1u) * p.cols;
  var d = 0.0;
  for (var i = sl; i < p.cols; i += SG) { let v = f32(x[base + i]); d += v * v; }
  let inv = inverseSqrt(subgroupAdd(d) / f32(p.cols) + p.eps);
  if (!live) { return; }
  for (var i = sl; i < p.cols; i += SG) {
    out[base + i] = T(f32(x[base + i]) * inv * f32(gamma[i]));
  }
}

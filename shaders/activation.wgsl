// Unary activations, out = f(x) (the functions live in epilogue.wgsl, shared with fused epilogues).

struct Params { n: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read_write> out: array<T>;

override WG: u32 = 256u;

fn linear(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * WG; }

//! import epilogue

@compute @workgroup_size(WG)
fn gelu(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear(gid, nwg);
  if (i >= p.n) { return; }
  out[i] = T(gelu_f32(f32(x[i])));
}

@compute @workgroup_size(WG)
fn silu(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear(gid, nwg);
  if (i >= p.n) { return; }
  out[i] = T(silu_f32(f32(x[i])));
}

// Elementwise binary ops: out = a (op) b, with b repeated along a (b's length divides a's), which
// covers same-shape operands and a bias/scale row broadcast over rows. Math runs in f32 so the
// f16 path rounds once, on the store.

struct Params { n: u32, nb: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<T>;
@group(0) @binding(2) var<storage, read> b: array<T>;
@group(0) @binding(3) var<storage, read_write> out: array<T>;

override WG: u32 = 256u;

// Dispatches above 65535 workgroups fold into y; rebuild the linear index.
fn linear(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * WG; }

@compute @workgroup_size(WG)
fn add(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear(gid, nwg);
  if (i >= p.n) { return; }
  out[i] = T(f32(a[i]) + f32(b[i % p.nb]));
}

@compute @workgroup_size(WG)
fn mul(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear(gid, nwg);
  if (i >= p.n) { return; }
  out[i] = T(f32(a[i]) * f32(b[i % p.nb]));
}

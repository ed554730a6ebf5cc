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

// SwiGLU for a fused gate|up projection: x [rows, 2 * cols] holds gate then up along each row;
// out [rows, cols] = silu(gate) * up, n = rows * cols.
struct GluParams { n: u32, cols: u32 }
@group(0) @binding(3) var<uniform> g: GluParams;

@compute @workgroup_size(WG)
fn swiglu(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear(gid, nwg);
  if (i >= g.n) { return; }
  let r = i / g.cols;
  let c = i % g.cols;
  let at = r * 2u * g.cols + c;
  out[i] = T(silu_f32(f32(x[at])) * f32(x[at + g.cols]));
}

// GeGLU (Gemma): as swiglu, with GELU's tanh approximation for silu.
@compute @workgroup_size(WG)
fn geglu_tanh(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear(gid, nwg);
  if (i >= g.n) { return; }
  let r = i / g.cols;
  let c = i % g.cols;
  let at = r * 2u * g.cols + c;
  out[i] = T(gelu_tanh_f32(f32(x[at])) * f32(x[at + g.cols]));
}

// GeGLU for ModernBERT's fused Wi projection: x [rows, 2 * cols] holds input then gate along each
// row; out [rows, cols] = gelu(input) * gate (exact erf GELU), n = rows * cols.
@compute @workgroup_size(WG)
fn geglu(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear(gid, nwg);
  if (i >= g.n) { return; }
  let r = i / g.cols;
  let c = i % g.cols;
  let at = r * 2u * g.cols + c;
  out[i] = T(gelu_f32(f32(x[at])) * f32(x[at + g.cols]));
}

// Soft-capping of logits (Gemma's final_logit_softcapping): out = cap tanh(x / cap), n values.
struct CapParams { n: u32, cap: f32 }
@group(0) @binding(4) var<uniform> c: CapParams;

@compute @workgroup_size(WG)
fn softcap(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear(gid, nwg);
  if (i >= c.n) { return; }
  out[i] = T(softcap_f32(f32(x[i]), c.cap));
}

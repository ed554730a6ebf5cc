// Float matrix-vector product for decode: out[m, nOff + n] = epilogue(sum_k x[m, k] W[n, k]),
// W stored [N, K] (a Linear weight). The tiled matmul wastes 63 of 64 tile rows when M is 1;
// here TPR threads share an output row and read it in interleaved runs of 4 (neighbouring threads,
// neighbouring addresses), WG / TPR rows per workgroup, partials summed after one barrier.
// The cpu family's (and any K % 4 != 0); the gpu family runs gemv4_lib.wgsl when K % 4 == 0.

//! import epilogue

struct Params { M: u32, N: u32, K: u32, ldc: u32, nOff: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read> w: array<T>;
@group(0) @binding(3) var<storage, read> bias: array<T>;
@group(0) @binding(4) var<storage, read> res: array<T>;
@group(0) @binding(5) var<storage, read_write> out: array<T>;

override TPR: u32 = 8u;
override WG: u32 = 64u;
override HAS_BIAS: bool = false;
override HAS_RES: bool = false;
override ACT: u32 = 0u;

var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let n = wg.x * (WG / TPR) + lid / TPR;
  let m = wg.y;
  var acc = 0.0;
  if (n < p.N) {
    let xb = m * p.K;
    let wb = n * p.K;
    let k4 = p.K & ~3u; // whole runs of 4; the tail below
    for (var k = (lid % TPR) * 4u; k < k4; k += TPR * 4u) {
      let xv = vec4<f32>(f32(x[xb + k]), f32(x[xb + k + 1u]), f32(x[xb + k + 2u]), f32(x[xb + k + 3u]));
      let wv = vec4<f32>(f32(w[wb + k]), f32(w[wb + k + 1u]), f32(w[wb + k + 2u]), f32(w[wb + k + 3u]));
      acc += dot(xv, wv);
    }
    if (lid % TPR == 0u) {
      for (var k = k4; k < p.K; k++) { acc += f32(x[xb + k]) * f32(w[wb + k]); }
    }
  }
  red[lid] = acc;
  workgroupBarrier();
  if (lid % TPR == 0u && n < p.N) {
    var t = 0.0;
    for (var i = 0u; i < TPR; i++) { t += red[lid + i]; }
    if (HAS_BIAS) { t += f32(bias[p.nOff + n]); }
    t = apply_act(t, ACT);
    let at = m * p.ldc + p.nOff + n;
    if (HAS_RES) { t += f32(res[at]); }
    out[at] = T(t);
  }
}

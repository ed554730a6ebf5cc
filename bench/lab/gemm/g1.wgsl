// Float matrix-vector product for decode: out[m, nOff + n] = epilogue(sum_k x[m, k] W[n, k]),
// W stored [N, K] (a Linear weight). The tiled matmul wastes 63 of 64 tile rows when M is 1;
// here TPR threads share an output row and read it in interleaved runs of 4 (neighbouring threads,
// neighbouring addresses), WG / TPR rows per workgroup, partials summed after one barrier.
// main4 (K % 4 == 0, every Linear) reads those runs as one vec4 of x and one of W: one 16-byte
// load (f32; 8 bytes f16) per operand instead of four scalar ones.

//! import epilogue

struct Params { M: u32, N: u32, K: u32, ldc: u32, nOff: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read> w: array<T>;
@group(0) @binding(3) var<storage, read> bias: array<T>;
@group(0) @binding(4) var<storage, read> res: array<T>;
@group(0) @binding(5) var<storage, read_write> out: array<T>;
// x and w again, viewed as vec4s (bound by main4 only).
@group(0) @binding(6) var<storage, read> x4: array<vec4<T>>;
@group(0) @binding(7) var<storage, read> w4: array<vec4<T>>;

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
  finish_row(lid, n, m, acc);
}

// Sums the TPR partials of row n and writes it with the epilogue; every thread calls it (it holds a barrier).
fn finish_row(lid: u32, n: u32, m: u32, acc: f32) {
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

@compute @workgroup_size(WG)
fn main4(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let n = wg.x * (WG / TPR) + lid / TPR;
  let m = wg.y;
  var acc = 0.0;
  if (n < p.N) {
    let K4 = p.K / 4u;
    let xb = m * K4;
    let wb = n * K4;
    for (var k = lid % TPR; k < K4; k += TPR) {
      acc += dot(vec4<f32>(x4[xb + k]), vec4<f32>(w4[wb + k]));
    }
  }
  finish_row(lid, n, m, acc);
}

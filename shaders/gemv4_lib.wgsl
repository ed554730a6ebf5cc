// Float decode GEMV of the gpu kernel family (gemv4.wgsl / gemv4_sg.wgsl import it with their
// row_sum): out[m, nOff + n] = epilogue(sum_k x[m, k] W[n, k]), W stored [N, K], K % 4 == 0.
// TPR threads split an output row's K: thread t reads vec4s t, t + TPR, ... of the row of W and
// of x, so the TPR threads of a row read TPR * 16 (f32) consecutive bytes per step (with TPR 32:
// 512 bytes, whole cache lines); each vec4 of x feeds the thread's NR rows (n, n + WG / TPR, ...):
// NR (WG / TPR) rows per workgroup; row_sum adds the TPR partials.
// Rows past N compute a clamped row and store nothing: every thread reaches row_sum.
// (shaders/gemv.wgsl, scalar loads in runs of 4 and a serial sum, stays the cpu family's.)

//! import epilogue

struct Params { M: u32, N: u32, K: u32, ldc: u32, nOff: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<T>>;
@group(0) @binding(2) var<storage, read> w: array<vec4<T>>;
@group(0) @binding(3) var<storage, read> bias: array<T>;
@group(0) @binding(4) var<storage, read> res: array<T>;
@group(0) @binding(5) var<storage, read_write> out: array<T>;

override TPR: u32 = 32u;
override WG: u32 = 128u;
override NR: u32 = 1u; // rows per thread (1..4): each vec4 of x read once feeds NR rows
override HAS_BIAS: bool = false;
override HAS_RES: bool = false;
override ACT: u32 = 0u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let rows = WG / TPR; // row groups per workgroup; thread rows n0 + rows * r, r < NR
  let n0 = wg.x * rows * NR + lid / TPR;
  let m = wg.y;
  let K4 = p.K / 4u;
  let xb = m * K4;
  var wb: array<u32, 4>;
  for (var r = 0u; r < NR; r++) { wb[r] = min(n0 + rows * r, p.N - 1u) * K4; }
  var acc: array<vec4<f32>, 4>;
  for (var r = 0u; r < 4u; r++) { acc[r] = vec4<f32>(0.0); }
  for (var k = lid % TPR; k < K4; k += TPR) {
    let xv = vec4<f32>(x[xb + k]);
    for (var r = 0u; r < NR; r++) { acc[r] += xv * vec4<f32>(w[wb[r] + k]); }
  }
  for (var r = 0u; r < NR; r++) {
    let n = n0 + rows * r;
    var t = row_sum(lid, acc[r].x + acc[r].y + acc[r].z + acc[r].w);
    if (lid % TPR == 0u && n < p.N) {
      if (HAS_BIAS) { t += f32(bias[p.nOff + n]); }
      t = apply_act(t, ACT);
      let at = m * p.ldc + p.nOff + n;
      if (HAS_RES) { t += f32(res[at]); }
      out[at] = T(t);
    }
  }
}

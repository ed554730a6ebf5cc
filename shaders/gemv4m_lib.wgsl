// Float decode GEMV for MR = 2..8 activation rows at once (gemv4m.wgsl / gemv4m_sg.wgsl import it
// with their row_sum): out[m, nOff + n] = epilogue(sum_k x[m, k] W[n, k]) for m < MR, W stored
// [N, K], K % 4 == 0. The layout of gemv4_lib.wgsl (TPR threads split a row's K in vec4 steps, NR
// rows per thread), but one workgroup serves all MR rows of x: each vec4 of W is loaded once into
// a register and multiplied into the MR rows' accumulators, instead of once per row (gemv4_lib
// runs a workgroup per row of x, so MR rows read W MR times). x (MR rows of K) stays in storage:
// its vec4s are read by every thread row and hit the cache, each once per step for the thread's NR
// rows. NR * MR vec4 accumulators per thread (NR * MR <= 16, src/ops/gemv-multi.ts). Each (n, m) sums exactly as
// gemv4_lib.wgsl sums it (xv * w per vec4 in k order, the lanes added x + y + z + w, then
// row_sum), so a row of a batch rounds as it does alone.

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
override NR: u32 = 1u; // rows of W per thread (1..4); NR * MR <= 16
override MR: u32 = 2u; // rows of x (the M of the product), 2..8
override HAS_BIAS: bool = false;
override HAS_RES: bool = false;
override ACT: u32 = 0u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let rows = WG / TPR; // row groups per workgroup; thread rows n0 + rows * r, r < NR
  let n0 = wg.x * rows * NR + lid / TPR;
  let K4 = p.K / 4u;
  var wb: array<u32, 4>;
  for (var r = 0u; r < NR; r++) { wb[r] = min(n0 + rows * r, p.N - 1u) * K4; }
  var acc: array<vec4<f32>, 16>; // acc[r * MR + m]
  for (var i = 0u; i < 16u; i++) { acc[i] = vec4<f32>(0.0); }
  for (var k = lid % TPR; k < K4; k += TPR) {
    var wv: array<vec4<f32>, 4>;
    for (var r = 0u; r < NR; r++) { wv[r] = vec4<f32>(w[wb[r] + k]); }
    for (var m = 0u; m < MR; m++) {
      let xv = vec4<f32>(x[m * K4 + k]);
      for (var r = 0u; r < NR; r++) { acc[r * MR + m] += xv * wv[r]; }
    }
  }
  for (var r = 0u; r < NR; r++) {
    let n = n0 + rows * r;
    for (var m = 0u; m < MR; m++) {
      let a = acc[r * MR + m];
      var t = row_sum(lid, a.x + a.y + a.z + a.w);
      if (lid % TPR == 0u && n < p.N) {
        if (HAS_BIAS) { t += f32(bias[p.nOff + n]); }
        t = apply_act(t, ACT);
        let at = m * p.ldc + p.nOff + n;
        if (HAS_RES) { t += f32(res[at]); }
        out[at] = T(t);
      }
    }
  }
}

// mm5: a workgroup owns TM = 16 rows and 256 columns; every thread uses the same 16 rows, so the
// A loads have workgroup-uniform addresses (one load broadcast to all lanes: a scalar load on
// lavapipe, a broadcast on GPUs), and each thread owns 4 columns (n0 + lid + 64c) whose B rows it
// reads as vec4 along K straight from global memory. 64 outputs per thread. Needs K % 4 == 0.

//! import matmul_lib

@group(0) @binding(6) var<storage, read> b4: array<vec4<T>>;
@group(0) @binding(7) var<storage, read> a4: array<vec4<T>>;

const TM = 16u;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let m0 = wg.y * TM;
  let n0 = wg.x * 256u;
  let K4 = p.K / 4u;
  let aBase = wg.z * p.strideA / 4u;
  let bBase = wg.z * p.strideB / 4u;
  let cBase = wg.z * p.strideC;
  var acc: array<vec4<f32>, TM>; // acc[i][c] = C[m0 + i, n0 + li + 64c]
  for (var i = 0u; i < TM; i++) { acc[i] = vec4<f32>(0.0); }
  var brow: array<u32, 4>;
  for (var c4 = 0u; c4 < 4u; c4++) { brow[c4] = bBase + min(n0 + li + 64u * c4, p.N - 1u) * K4; }
  var arow: array<u32, TM>;
  for (var i = 0u; i < TM; i++) { arow[i] = aBase + min(m0 + i, p.M - 1u) * K4; }
  for (var k4 = 0u; k4 < K4; k4++) {
    let b0 = vec4<f32>(b4[brow[0] + k4]);
    let b1 = vec4<f32>(b4[brow[1] + k4]);
    let b2 = vec4<f32>(b4[brow[2] + k4]);
    let b3 = vec4<f32>(b4[brow[3] + k4]);
    for (var i = 0u; i < TM; i++) {
      let av = vec4<f32>(a4[arow[i] + k4]);
      acc[i] += vec4<f32>(dot(av, b0), dot(av, b1), dot(av, b2), dot(av, b3));
    }
  }
  for (var c4 = 0u; c4 < 4u; c4++) {
    let n = n0 + li + 64u * c4;
    if (n >= p.N) { continue; }
    var bv = 0.0;
    if (HAS_BIAS) { bv = f32(bias[p.nOff + n]); }
    for (var i = 0u; i < TM; i++) {
      let m = m0 + i;
      if (m >= p.M) { break; }
      let at = cBase + m * p.ldc + p.nOff + n;
      var v = apply_act(acc[i][c4] + bv, ACT);
      if (HAS_RES) { v += f32(res[at]); }
      c[at] = T(v);
    }
  }
}

// mm4: mm5's layout (16 workgroup-uniform rows of A read straight from global memory, 4 columns
// per thread) with B staged through workgroup memory: the 256 x 16 B tile is loaded with
// coalesced vec4s (4 neighbouring threads read one row's 64 bytes), each thread then reads its
// own columns from the tile. Rows padded to 5 vec4 against bank conflicts. Needs K % 4 == 0.

//! import matmul_lib

@group(0) @binding(6) var<storage, read> b4: array<vec4<T>>;
@group(0) @binding(7) var<storage, read> a4: array<vec4<T>>;

const TM = 16u;
const BK4 = 4u; // vec4s of K per step (16 values)
const PAD = 5u;

var<workgroup> Bs: array<vec4<f32>, 1280>; // [256 columns][PAD]

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
  var arow: array<u32, TM>;
  for (var i = 0u; i < TM; i++) { arow[i] = aBase + min(m0 + i, p.M - 1u) * K4; }
  let j = li % BK4;
  let r0 = li / BK4; // staging rows r0 + 16t
  for (var kq0 = 0u; kq0 < K4; kq0 += BK4) {
    for (var t = 0u; t < 16u; t++) {
      let r = r0 + 16u * t;
      var v = vec4<f32>(0.0);
      if (n0 + r < p.N && kq0 + j < K4) { v = vec4<f32>(b4[bBase + (n0 + r) * K4 + kq0 + j]); }
      Bs[r * PAD + j] = v;
    }
    workgroupBarrier();
    for (var kq = 0u; kq < BK4; kq++) {
      let b0 = Bs[li * PAD + kq];
      let b1 = Bs[(li + 64u) * PAD + kq];
      let b2 = Bs[(li + 128u) * PAD + kq];
      let b3 = Bs[(li + 192u) * PAD + kq];
      let k4 = min(kq0 + kq, K4 - 1u); // past K the B tile holds zeros
      for (var i = 0u; i < TM; i++) {
        let av = vec4<f32>(a4[arow[i] + k4]);
        acc[i] += vec4<f32>(dot(av, b0), dot(av, b1), dot(av, b2), dot(av, b3));
      }
    }
    workgroupBarrier();
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

// mm6: mm2 with BK 32. mm2: mm1 with the tiles staged by vec4 loads along K (B stored [N, K], K % 4 == 0): a thread
// loads 4 vec4 of A and 4 of B per K step of 16 and scatters their components into the k-major tiles.

//! import matmul_lib

@group(0) @binding(6) var<storage, read> b4: array<vec4<T>>;
@group(0) @binding(7) var<storage, read> a4: array<vec4<T>>;

const BK = 32u;

var<workgroup> As: array<vec4<f32>, 512>; // [BK][16 row quads]
var<workgroup> Bs: array<vec4<f32>, 512>; // [BK][16 col quads]

@compute @workgroup_size(8, 8)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let m0 = wg.y * 64u;
  let n0 = wg.x * 64u;
  let K4 = p.K / 4u;
  let aBase = wg.z * p.strideA / 4u;
  let bBase = wg.z * p.strideB / 4u;
  let cBase = wg.z * p.strideC;
  var acc: array<vec4<f32>, 16>;
  for (var i = 0u; i < 16u; i++) { acc[i] = vec4<f32>(0.0); }
  let j = li % 8u;  // k quad within the step
  let r0 = li / 8u; // rows r0 + 8t
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    let kq = k0 / 4u + j;
    for (var t = 0u; t < 8u; t++) {
      let r = r0 + 8u * t;
      var av = vec4<f32>(0.0);
      var bv = vec4<f32>(0.0);
      if (kq < K4) {
        if (m0 + r < p.M) { av = vec4<f32>(a4[aBase + (m0 + r) * K4 + kq]); }
        if (n0 + r < p.N) { bv = vec4<f32>(b4[bBase + (n0 + r) * K4 + kq]); }
      }
      for (var c4 = 0u; c4 < 4u; c4++) {
        As[(4u * j + c4) * 16u + r / 4u][r % 4u] = av[c4];
        Bs[(4u * j + c4) * 16u + r / 4u][r % 4u] = bv[c4];
      }
    }
    workgroupBarrier();
    for (var k = 0u; k < BK; k++) {
      let a0 = As[k * 16u + lid.y];
      let a1 = As[k * 16u + 8u + lid.y];
      let b0 = Bs[k * 16u + lid.x];
      let b1 = Bs[k * 16u + 8u + lid.x];
      for (var i = 0u; i < 4u; i++) {
        acc[2u * i] += a0[i] * b0;
        acc[2u * i + 1u] += a0[i] * b1;
        acc[2u * i + 8u] += a1[i] * b0;
        acc[2u * i + 9u] += a1[i] * b1;
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 8u; i++) {
    let m = m0 + 32u * (i / 4u) + lid.y * 4u + i % 4u;
    if (m >= p.M) { continue; }
    for (var h = 0u; h < 2u; h++) {
      for (var jj = 0u; jj < 4u; jj++) {
        let n = n0 + 32u * h + lid.x * 4u + jj;
        if (n >= p.N) { continue; }
        var v = acc[2u * i + h][jj];
        if (HAS_BIAS) { v += f32(bias[p.nOff + n]); }
        v = apply_act(v, ACT);
        let at = cBase + m * p.ldc + p.nOff + n;
        if (HAS_RES) { v += f32(res[at]); }
        c[at] = T(v);
      }
    }
  }
}

// mm1: 8x8 threads, each 8x8 outputs: rows 4ty..4ty+3 and 32+4ty.., columns 4tx.. and 32+4tx..,
// so per k a thread reads two vec4 of A and two of B from workgroup memory (16 values) for 64
// FMAs (mm0: 8 values for 16). Staging as mm0 (scalar loads, k-major tiles).

//! import matmul_lib

const BK = 16u;

var<workgroup> As: array<vec4<f32>, 256>; // [BK][16 row quads]
var<workgroup> Bs: array<vec4<f32>, 256>; // [BK][16 col quads]

fn load_a(base: u32, m: u32, k: u32) -> f32 {
  if (m < p.M && k < p.K) { return f32(a[base + m * p.K + k]); }
  return 0.0;
}

fn load_b(base: u32, n: u32, k: u32) -> f32 {
  if (n >= p.N || k >= p.K) { return 0.0; }
  if (TRANS_B) { return f32(b[base + n * p.K + k]); }
  return f32(b[base + k * p.N + n]);
}

@compute @workgroup_size(8, 8)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let m0 = wg.y * 64u;
  let n0 = wg.x * 64u;
  let aBase = wg.z * p.strideA;
  let bBase = wg.z * p.strideB;
  let cBase = wg.z * p.strideC;
  var acc: array<vec4<f32>, 16>; // acc[2i + h][j] = C[row i, column quad h, j]
  for (var i = 0u; i < 16u; i++) { acc[i] = vec4<f32>(0.0); }
  let kk = li % BK;
  let q0 = li / BK; // 0..3: this thread stages row quads q0, q0 + 4, q0 + 8, q0 + 12
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    for (var t = 0u; t < 4u; t++) {
      let q = q0 + 4u * t;
      As[kk * 16u + q] = vec4(load_a(aBase, m0 + 4u * q, k0 + kk), load_a(aBase, m0 + 4u * q + 1u, k0 + kk),
                              load_a(aBase, m0 + 4u * q + 2u, k0 + kk), load_a(aBase, m0 + 4u * q + 3u, k0 + kk));
      Bs[kk * 16u + q] = vec4(load_b(bBase, n0 + 4u * q, k0 + kk), load_b(bBase, n0 + 4u * q + 1u, k0 + kk),
                              load_b(bBase, n0 + 4u * q + 2u, k0 + kk), load_b(bBase, n0 + 4u * q + 3u, k0 + kk));
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
      for (var j = 0u; j < 4u; j++) {
        let n = n0 + 32u * h + lid.x * 4u + j;
        if (n >= p.N) { continue; }
        var v = acc[2u * i + h][j];
        if (HAS_BIAS) { v += f32(bias[p.nOff + n]); }
        v = apply_act(v, ACT);
        let at = cBase + m * p.ldc + p.nOff + n;
        if (HAS_RES) { v += f32(res[at]); }
        c[at] = T(v);
      }
    }
  }
}

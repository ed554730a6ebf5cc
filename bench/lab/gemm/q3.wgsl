// q3 (wonly8): q2 with BK 16, as matmul.wgsl main4: thread li stages row quad q = li / 4 at
// elements 4j..4j+3 (j = li % 4) of the step: one vec4 of x and 4 int4 codes per row (the low or
// high nibbles of one u32, which two threads share), 4 k-major vec4 stores per operand.
// Workgroup memory: 2 x 4 KiB.

//! import qlinear

// x again, viewed as vec4s (read when VEC4, i.e. K % 4 == 0).
@group(0) @binding(11) var<storage, read> x4: array<vec4<T>>;

override VEC4: bool = true;

const BK = 16u;
var<workgroup> As: array<vec4<f32>, 256>; // [16 k][16 row quads]
var<workgroup> Bs: array<vec4<f32>, 256>; // [16 k][16 col quads]

// Elements k..k+3 of row m of x (zero past M or K).
fn xload(m: u32, k: u32) -> vec4<f32> {
  if (m >= p.M) { return vec4<f32>(0.0); }
  if (VEC4) {
    if (k >= p.K) { return vec4<f32>(0.0); }
    return vec4<f32>(x4[(m * p.K + k) / 4u]);
  }
  var v = vec4<f32>(0.0);
  for (var e = 0u; e < 4u; e++) {
    if (k + e < p.K) { v[e] = f32(x[m * p.K + k + e]); }
  }
  return v;
}

@compute @workgroup_size(8, 8)
fn wonly8(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let m0 = wg.y * 64u;
  let n0 = wg.x * 64u;
  var acc: array<vec4<f32>, 16>;
  for (var i = 0u; i < 16u; i++) { acc[i] = vec4<f32>(0.0); }
  let q = li / 4u;
  let j = li % 4u;
  for (var k0 = 0u; k0 < p.Kp; k0 += BK) {
    let k = k0 + 4u * j;
    let g = k0 / G;
    var a0: array<vec4<f32>, 4>;
    var w0: array<vec4<f32>, 4>;
    for (var r = 0u; r < 4u; r++) {
      a0[r] = xload(m0 + 4u * q + r, k);
      let n = n0 + 4u * q + r;
      w0[r] = vec4<f32>(0.0);
      if (n < p.N) {
        let s = f32(scales[n * p.groups + g]);
        let z = zero_of(n, g);
        if (BITS == 4u) {
          // word k/8 holds elements 8w..8w+3 in its low nibbles, 8w+4..8w+7 in its high ones
          let wi = n * (p.Kp / 8u) + k / 8u;
          let wd = vec4<u32>(w[wi / 4u][wi % 4u]);
          let sh = vec4<u32>(0u, 8u, 16u, 24u) + 4u * (j % 2u);
          w0[r] = (vec4<f32>((wd >> sh) & vec4<u32>(15u)) - z) * s;
        } else {
          let wi = n * (p.Kp / 4u) + k / 4u;
          let c0 = bitcast<vec4<i32>>(vec4<u32>(w[wi / 4u][wi % 4u]) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u);
          w0[r] = (vec4<f32>(c0) - z) * s;
        }
      }
    }
    for (var e = 0u; e < 4u; e++) {
      As[(4u * j + e) * 16u + q] = vec4<f32>(a0[0][e], a0[1][e], a0[2][e], a0[3][e]);
      Bs[(4u * j + e) * 16u + q] = vec4<f32>(w0[0][e], w0[1][e], w0[2][e], w0[3][e]);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      let av0 = As[kk * 16u + lid.y];
      let av1 = As[kk * 16u + 8u + lid.y];
      let bv0 = Bs[kk * 16u + lid.x];
      let bv1 = Bs[kk * 16u + 8u + lid.x];
      for (var i = 0u; i < 4u; i++) {
        acc[2u * i] += av0[i] * bv0;
        acc[2u * i + 1u] += av0[i] * bv1;
        acc[2u * i + 8u] += av1[i] * bv0;
        acc[2u * i + 9u] += av1[i] * bv1;
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 8u; i++) {
    let m = m0 + 32u * (i / 4u) + 4u * lid.y + i % 4u;
    if (m >= p.M) { continue; }
    for (var h = 0u; h < 2u; h++) {
      for (var jj = 0u; jj < 4u; jj++) {
        let n = n0 + 32u * h + 4u * lid.x + jj;
        if (n >= p.N) { continue; }
        finish(m, n, acc[2u * i + h][jj]);
      }
    }
  }
}

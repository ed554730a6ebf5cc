// q8: q2 with the workgroup tiles stored as T (f16 halves: 2 x 4 KiB), converted to f32 when read.
// q2 (wonly8): weight-only int4/int8 GEMM for the gpu family, no activation quantization pass.
// 8x8 threads, each 8 rows x 8 columns of a 64 x 64 tile (the register blocking of matmul.wgsl
// main4), BK 32 = one quantization block per step, so each staged weight row needs one scale (and
// zero point). Thread li stages row quad q = li / 4 at elements 8j..8j+7 (j = li % 4) of the
// block: per row it loads one u32 of int4 codes (4 neighbouring threads: 16 consecutive bytes of
// the row) and two vec4s of x, dequantizes once into f32 and writes 8 k-major vec4s per operand
// (the 4 rows of the quad transposed in registers). Workgroup memory: 2 x 8 KiB.

//! import qlinear

// x again, viewed as vec4s (read when VEC4, i.e. K % 4 == 0).
@group(0) @binding(11) var<storage, read> x4: array<vec4<T>>;

override VEC4: bool = true;

const BK = 32u;
var<workgroup> As: array<vec4<T>, 512>; // [32 k][16 row quads]
var<workgroup> Bs: array<vec4<T>, 512>; // [32 k][16 col quads]

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
  let blocks = p.Kp / 32u;
  for (var b = 0u; b < blocks; b++) {
    let k = b * 32u + 8u * j;
    let g = b * 32u / G;
    var a0: array<vec4<f32>, 4>; // elements k..k+3 of the quad's 4 rows
    var a1: array<vec4<f32>, 4>; // k+4..k+7
    var w0: array<vec4<f32>, 4>;
    var w1: array<vec4<f32>, 4>;
    for (var r = 0u; r < 4u; r++) {
      a0[r] = xload(m0 + 4u * q + r, k);
      a1[r] = xload(m0 + 4u * q + r, k + 4u);
      let n = n0 + 4u * q + r;
      w0[r] = vec4<f32>(0.0);
      w1[r] = vec4<f32>(0.0);
      if (n < p.N) {
        let s = f32(scales[n * p.groups + g]);
        let z = zero_of(n, g);
        if (BITS == 4u) {
          // word j of the block: low nibbles are elements 8j..8j+3, high nibbles 8j+4..8j+7
          let wd = vec4<u32>(w[n * (p.Kp / 32u) + b][j]);
          w0[r] = (vec4<f32>((wd >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(15u)) - z) * s;
          w1[r] = (vec4<f32>((wd >> vec4<u32>(4u, 12u, 20u, 28u)) & vec4<u32>(15u)) - z) * s;
        } else {
          let v = w[n * (p.Kp / 16u) + 2u * b + j / 2u];
          let c0 = bitcast<vec4<i32>>(vec4<u32>(v[2u * (j % 2u)]) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u);
          let c1 = bitcast<vec4<i32>>(vec4<u32>(v[2u * (j % 2u) + 1u]) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u);
          w0[r] = (vec4<f32>(c0) - z) * s;
          w1[r] = (vec4<f32>(c1) - z) * s;
        }
      }
    }
    for (var e = 0u; e < 4u; e++) {
      As[(8u * j + e) * 16u + q] = vec4<T>(vec4<f32>(a0[0][e], a0[1][e], a0[2][e], a0[3][e]));
      As[(8u * j + 4u + e) * 16u + q] = vec4<T>(vec4<f32>(a1[0][e], a1[1][e], a1[2][e], a1[3][e]));
      Bs[(8u * j + e) * 16u + q] = vec4<T>(vec4<f32>(w0[0][e], w0[1][e], w0[2][e], w0[3][e]));
      Bs[(8u * j + 4u + e) * 16u + q] = vec4<T>(vec4<f32>(w1[0][e], w1[1][e], w1[2][e], w1[3][e]));
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      let av0 = vec4<f32>(As[kk * 16u + lid.y]);
      let av1 = vec4<f32>(As[kk * 16u + 8u + lid.y]);
      let bv0 = vec4<f32>(Bs[kk * 16u + lid.x]);
      let bv1 = vec4<f32>(Bs[kk * 16u + 8u + lid.x]);
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

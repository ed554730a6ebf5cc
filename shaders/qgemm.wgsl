// Quantized matrix-matrix products for prefill and batched encoders (M from 5 to thousands):
//   out[m, n0 + n] = epilogue( sum_k X[m, k] W[n, k] )   for the rows n of one weight chunk.
// Each workgroup computes a 64x64 tile of the output, walking K in blocks of 32. A block never
// crosses a quantization group (groups are 32, 64, 128 or the whole padded row), so each block has
// one weight scale per row.
//
// Two entry points (same layouts as qgemv.wgsl):
//   wonly: float X; weights dequantized to f32 while staged in workgroup memory, 8x8 threads of
//          8 x 8 outputs (below);
//   wint:  int8 X (per token or per block scales); int8 lanes staged as u32 words, idot4 into
//          int32 per block, then scaled once per block: s_w[n, g] * s_x[m, b] * (d - z * sum_x).
//          8x8 threads, each 8 rows x 8 columns: per word of 4 k a thread reads two activation
//          vec4s and two weight vec4s from workgroup memory for 64 idot4 (the earlier 16x16
//          threads with 4 x 8 each read three for 32: 1.35x slower on lavapipe, bench/lab/gemm.ts).

//! import qlinear

const BM = 64u;
const BN = 64u;

// k-major tiles with 4 rows (columns) per vec4, so the inner loop reads one vec4 per operand.
var<workgroup> Af: array<vec4<f32>, 512>; // [32 k][16 row quads]
var<workgroup> Bf: array<vec4<f32>, 512>; // [32 k][16 col quads]
var<workgroup> Ai: array<vec4<u32>, 128>; // [8 words][16 row quads]
var<workgroup> Bi: array<vec4<u32>, 128>; // [8 words][16 col quads]

// x again, viewed as vec4s: read by wonly where K % 4 == 0 (VEC4).
@group(0) @binding(11) var<storage, read> x4: array<vec4<T>>;
override VEC4: bool = false;

// Elements k..k+3 of row m of x (zero past M or K); one vec4 load where K % 4 == 0 (VEC4).
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

// Weight-only: 8x8 threads, each 8 rows x 8 columns of the 64 x 64 tile (the register blocking of
// matmul.wgsl main4), BK 32 = one quantization block per step, so each staged weight row needs one
// scale (and zero point). Thread li stages row quad q = li / 4 at elements 8j..8j+7 (j = li % 4)
// of the block: per row it loads one u32 of int4 codes (4 neighbouring threads: 16 consecutive
// bytes of the row; int8: two) and two vec4s of x, dequantizes once into f32 and writes 8 k-major
// vec4s per operand (the quad's 4 rows transposed in registers). 1.6-2.1x the earlier 16x16-thread
// version on lavapipe (bench/lab/gemm.ts, q2 against qw0), still 0.61x wint there.
@compute @workgroup_size(8, 8)
fn wonly(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let m0 = wg.y * BM;
  let n0 = wg.x * BN;
  var acc: array<vec4<f32>, 16>; // acc[2i + h][j] = out[row i, column quad h, j]
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
      Af[(8u * j + e) * 16u + q] = vec4<f32>(a0[0][e], a0[1][e], a0[2][e], a0[3][e]);
      Af[(8u * j + 4u + e) * 16u + q] = vec4<f32>(a1[0][e], a1[1][e], a1[2][e], a1[3][e]);
      Bf[(8u * j + e) * 16u + q] = vec4<f32>(w0[0][e], w0[1][e], w0[2][e], w0[3][e]);
      Bf[(8u * j + 4u + e) * 16u + q] = vec4<f32>(w1[0][e], w1[1][e], w1[2][e], w1[3][e]);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 32u; kk++) {
      let av0 = Af[kk * 16u + lid.y];
      let av1 = Af[kk * 16u + 8u + lid.y];
      let bv0 = Bf[kk * 16u + lid.x];
      let bv1 = Bf[kk * 16u + 8u + lid.x];
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

@compute @workgroup_size(8, 8)
fn wint(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let m0 = wg.y * 64u;
  let n0 = wg.x * 64u;
  let blocks = p.Kp / 32u;
  var acc: array<vec4<f32>, 16>; // acc[2i + h][j] = out[row i, column quad h, j]
  for (var q = 0u; q < 16u; q++) { acc[q] = vec4<f32>(0.0); }
  let ms = m0 + li; // the row and the column this thread stages
  let ns = n0 + li;
  for (var b = 0u; b < blocks; b++) {
    var x0 = vec4<u32>(0u);
    var x1 = vec4<u32>(0u);
    if (ms < p.M) {
      x0 = xq[ms * (p.Kp / 16u) + 2u * b];
      x1 = xq[ms * (p.Kp / 16u) + 2u * b + 1u];
    }
    for (var j = 0u; j < 4u; j++) {
      Ai[j * 16u + li / 4u][li % 4u] = x0[j];
      Ai[(j + 4u) * 16u + li / 4u][li % 4u] = x1[j];
    }
    if (BITS == 4u) {
      var wv = vec4<u32>(0x88888888u); // code 8 = weight 0 for columns past N
      if (ns < p.N) { wv = w[ns * (p.Kp / 32u) + b]; }
      let t = wv ^ vec4<u32>(0x88888888u);
      let lo = (t << vec4<u32>(4u)) & vec4<u32>(0xf0f0f0f0u);
      let hi = t & vec4<u32>(0xf0f0f0f0u);
      for (var j = 0u; j < 4u; j++) {
        Bi[2u * j * 16u + li / 4u][li % 4u] = lo[j];
        Bi[(2u * j + 1u) * 16u + li / 4u][li % 4u] = hi[j];
      }
    } else {
      var w0 = vec4<u32>(0u);
      var w1 = vec4<u32>(0u);
      if (ns < p.N) {
        w0 = w[ns * (p.Kp / 16u) + 2u * b];
        w1 = w[ns * (p.Kp / 16u) + 2u * b + 1u];
      }
      for (var j = 0u; j < 4u; j++) {
        Bi[j * 16u + li / 4u][li % 4u] = w0[j];
        Bi[(j + 4u) * 16u + li / 4u][li % 4u] = w1[j];
      }
    }
    workgroupBarrier();
    var d: array<vec4<i32>, 16>;
    for (var q = 0u; q < 16u; q++) { d[q] = vec4<i32>(0); }
    for (var j = 0u; j < 8u; j++) {
      let a0 = Ai[j * 16u + lid.y];
      let a1 = Ai[j * 16u + 8u + lid.y];
      let b0 = Bi[j * 16u + lid.x];
      let b1 = Bi[j * 16u + 8u + lid.x];
      for (var i = 0u; i < 4u; i++) {
        d[2u * i] += vec4<i32>(idot4(a0[i], b0.x), idot4(a0[i], b0.y), idot4(a0[i], b0.z), idot4(a0[i], b0.w));
        d[2u * i + 1u] += vec4<i32>(idot4(a0[i], b1.x), idot4(a0[i], b1.y), idot4(a0[i], b1.z), idot4(a0[i], b1.w));
        d[2u * i + 8u] += vec4<i32>(idot4(a1[i], b0.x), idot4(a1[i], b0.y), idot4(a1[i], b0.z), idot4(a1[i], b0.w));
        d[2u * i + 9u] += vec4<i32>(idot4(a1[i], b1.x), idot4(a1[i], b1.y), idot4(a1[i], b1.z), idot4(a1[i], b1.w));
      }
    }
    workgroupBarrier();
    let g = b * 32u / G;
    for (var h = 0u; h < 2u; h++) {
      var sw = vec4<f32>(0.0);
      var zw = vec4<f32>(0.0);
      for (var j = 0u; j < 4u; j++) {
        let n = min(n0 + 32u * h + lid.x * 4u + j, p.N - 1u);
        sw[j] = f32(scales[n * p.groups + g]);
        if (!SYM) { zw[j] = f32(zeros[n * p.groups + g]); }
      }
      zw -= select(0.0, 8.0, BITS == 4u);
      for (var i = 0u; i < 8u; i++) {
        let m = min(m0 + 32u * (i / 4u) + lid.y * 4u + i % 4u, p.M - 1u);
        var dv = vec4<f32>(d[2u * i + h]);
        if (BITS == 4u) { dv = vec4<f32>(d[2u * i + h] >> vec4<u32>(4u)); }
        if (!SYM) { dv -= zw * f32(xsum[m * blocks + b]); }
        acc[2u * i + h] += dv * sw * xs[m * p.xsRow + b * p.xsBlk];
      }
    }
  }
  for (var i = 0u; i < 8u; i++) {
    let m = m0 + 32u * (i / 4u) + lid.y * 4u + i % 4u;
    if (m >= p.M) { continue; }
    for (var h = 0u; h < 2u; h++) {
      for (var j = 0u; j < 4u; j++) {
        let n = n0 + 32u * h + lid.x * 4u + j;
        if (n >= p.N) { continue; }
        finish(m, n, acc[2u * i + h][j]);
      }
    }
  }
}

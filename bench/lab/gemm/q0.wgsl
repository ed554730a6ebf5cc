// Quantized matrix-matrix products for prefill and batched encoders (M from 5 to thousands):
//   out[m, n0 + n] = epilogue( sum_k X[m, k] W[n, k] )   for the rows n of one weight chunk.
// Each 16x16 workgroup computes a 64x64 (wonly) or 64x128 (wint) tile of the output, walking K in
// blocks of 32. A block never crosses a quantization group (groups are 32, 64, 128 or the whole
// padded row), so each block has one weight scale per row.
//
// Two entry points (same layouts as qgemv.wgsl):
//   wonly: float X; weights dequantized to f32 while staged in workgroup memory;
//   wint:  int8 X (per token or per block scales); int8 lanes staged as u32 words, idot4 into
//          int32 per block, then scaled once per block: s_w[n, g] * s_x[m, b] * (d - z * sum_x).

//! import qlinear

const BM = 64u;
const BN = 64u;

// k-major tiles with 4 rows (columns) per vec4, so the inner loop reads one vec4 per operand.
var<workgroup> Af: array<vec4<f32>, 512>; // [32 k][16 row quads]
var<workgroup> Bf: array<vec4<f32>, 512>; // [32 k][16 col quads]
var<workgroup> Ai: array<vec4<u32>, 128>; // [8 words][16 row quads]
var<workgroup> Bi: array<vec4<u32>, 256>; // [8 words][32 col quads]

fn wword(i: u32) -> u32 { return w[i / 4u][i % 4u]; }
fn xword(i: u32) -> u32 { return xq[i / 4u][i % 4u]; }

fn xat(m: u32, k: u32) -> f32 {
  if (m < p.M && k < p.K) { return f32(x[m * p.K + k]); }
  return 0.0;
}

// Weights n at elements k and k+1 (k even), dequantized.
fn deq2(n: u32, k: u32, g: u32) -> vec2<f32> {
  var q = vec2<f32>(0.0);
  if (BITS == 4u) {
    let word = wword(n * (p.Kp / 8u) + k / 8u);
    let e = k % 8u; // element e is in byte e%4: low nibble for e < 4, high nibble otherwise
    let sh = select(8u * e, 8u * (e - 4u) + 4u, e >= 4u);
    q = vec2<f32>(f32((word >> sh) & 15u), f32((word >> (sh + 8u)) & 15u));
  } else {
    let word = wword(n * (p.Kp / 4u) + k / 4u);
    let e = k % 4u;
    q = vec2<f32>(f32(i32(word << (24u - 8u * e)) >> 24u), f32(i32(word << (16u - 8u * e)) >> 24u));
  }
  return (q - zero_of(n, g)) * f32(scales[n * p.groups + g]);
}

fn store(m0: u32, n0: u32, lid: vec3u, acc: array<vec4<f32>, 4>) {
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + lid.y * 4u + i;
    if (m >= p.M) { break; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + lid.x * 4u + j;
      if (n >= p.N) { break; }
      finish(m, n, acc[i][j]);
    }
  }
}

@compute @workgroup_size(16, 16)
fn wonly(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let m0 = wg.y * BM;
  let n0 = wg.x * BN;
  var acc = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
  // Thread li stages elements k, k+1 (kp = li % 16) of rows 4q..4q+3 (q = li / 16): neighbouring
  // threads read neighbouring elements of a row.
  let kp = li % 16u;
  let q = li / 16u;
  for (var k0 = 0u; k0 < p.Kp; k0 += 32u) {
    let k = k0 + 2u * kp;
    let g = k0 / G;
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var b0 = vec4<f32>(0.0);
    var b1 = vec4<f32>(0.0);
    for (var i = 0u; i < 4u; i++) {
      a0[i] = xat(m0 + 4u * q + i, k);
      a1[i] = xat(m0 + 4u * q + i, k + 1u);
      let n = n0 + 4u * q + i;
      if (n < p.N) {
        let d = deq2(n, k, g);
        b0[i] = d.x;
        b1[i] = d.y;
      }
    }
    Af[2u * kp * 16u + q] = a0;
    Af[(2u * kp + 1u) * 16u + q] = a1;
    Bf[2u * kp * 16u + q] = b0;
    Bf[(2u * kp + 1u) * 16u + q] = b1;
    workgroupBarrier();
    for (var kk = 0u; kk < 32u; kk++) {
      let av = Af[kk * 16u + lid.y];
      let bv = Bf[kk * 16u + lid.x];
      acc[0] += av.x * bv;
      acc[1] += av.y * bv;
      acc[2] += av.z * bv;
      acc[3] += av.w * bv;
    }
    workgroupBarrier();
  }
  store(m0, n0, lid, acc);
}

@compute @workgroup_size(16, 16)
fn wint(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  // 64 x 128 output tile: each thread owns rows lid.y*4.. and two column quads, lid.x*4.. and
  // 64 + lid.x*4.. (4 x 8 values): one activation vec4 feeds 32 idot4 per word (measured 8-20%
  // faster than 4 x 4 on lavapipe, same results).
  let m0 = wg.y * BM;
  let n0 = wg.x * 2u * BN;
  let blocks = p.Kp / 32u;
  var acc: array<vec4<f32>, 8>;
  for (var q = 0u; q < 8u; q++) { acc[q] = vec4<f32>(0.0); }
  // Staging tasks per block: 128 activation vec4s (word j of rows 4q..4q+3), then the weights:
  // int8, 256 vec4s (word j of rows 4q..4q+3); int4, 128 tasks each making two int8 words.
  let tasks = 128u + select(256u, 128u, BITS == 4u);
  for (var b = 0u; b < blocks; b++) {
    for (var e = li; e < tasks; e += 256u) {
      if (e < 128u) {
        let q = e / 8u;
        let j = e % 8u;
        var v = vec4<u32>(0u);
        for (var i = 0u; i < 4u; i++) {
          let m = m0 + 4u * q + i;
          if (m < p.M) { v[i] = xword(m * (p.Kp / 4u) + 8u * b + j); }
        }
        Ai[j * 16u + q] = v;
      } else if (BITS == 8u) {
        let q = (e - 128u) / 8u;
        let j = (e - 128u) % 8u;
        var v = vec4<u32>(0u);
        for (var i = 0u; i < 4u; i++) {
          let n = n0 + 4u * q + i;
          if (n < p.N) { v[i] = wword(n * (p.Kp / 4u) + 8u * b + j); }
        }
        Bi[j * 32u + q] = v;
      } else {
        // int4 word j (of 4) of rows 4q..4q+3 becomes two int8 words: low nibbles pair with
        // activation word 2j, high nibbles with 2j+1. Nibble u becomes the lane 16 (u - 8).
        let q = (e - 128u) / 4u;
        let j = (e - 128u) % 4u;
        var lo = vec4<u32>(0u);
        var hi = vec4<u32>(0u);
        for (var i = 0u; i < 4u; i++) {
          let n = n0 + 4u * q + i;
          var word = 0x88888888u; // code 8 = weight 0 for rows past N
          if (n < p.N) { word = wword(n * (p.Kp / 8u) + 4u * b + j); }
          let t = word ^ 0x88888888u;
          lo[i] = (t << 4u) & 0xf0f0f0f0u;
          hi[i] = t & 0xf0f0f0f0u;
        }
        Bi[2u * j * 32u + q] = lo;
        Bi[(2u * j + 1u) * 32u + q] = hi;
      }
    }
    workgroupBarrier();
    var d: array<vec4<i32>, 8>;
    for (var q = 0u; q < 8u; q++) { d[q] = vec4<i32>(0); }
    for (var j = 0u; j < 8u; j++) {
      let av = Ai[j * 16u + lid.y];
      let b0 = Bi[j * 32u + lid.x];
      let b1 = Bi[j * 32u + 16u + lid.x];
      for (var i = 0u; i < 4u; i++) {
        d[i] += vec4<i32>(idot4(av[i], b0.x), idot4(av[i], b0.y), idot4(av[i], b0.z), idot4(av[i], b0.w));
        d[i + 4u] += vec4<i32>(idot4(av[i], b1.x), idot4(av[i], b1.y), idot4(av[i], b1.z), idot4(av[i], b1.w));
      }
    }
    workgroupBarrier();
    let g = b * 32u / G;
    for (var h = 0u; h < 2u; h++) {
      var sw = vec4<f32>(0.0);
      var zw = vec4<f32>(0.0);
      for (var j = 0u; j < 4u; j++) {
        let n = n0 + 64u * h + lid.x * 4u + j;
        if (n < p.N) {
          sw[j] = f32(scales[n * p.groups + g]);
          if (!SYM) { zw[j] = f32(zeros[n * p.groups + g]); }
        }
      }
      for (var i = 0u; i < 4u; i++) {
        let m = m0 + lid.y * 4u + i;
        if (m < p.M) {
          var dv = vec4<f32>(d[i + 4u * h]);
          if (BITS == 4u) { dv = vec4<f32>(d[i + 4u * h] >> vec4<u32>(4u)); }
          if (!SYM) { dv -= (zw - select(0.0, 8.0, BITS == 4u)) * f32(xsum[m * blocks + b]); }
          acc[i + 4u * h] += dv * sw * xs[m * p.xsRow + b * p.xsBlk];
        }
      }
    }
  }
  for (var h = 0u; h < 2u; h++) {
    for (var i = 0u; i < 4u; i++) {
      let m = m0 + lid.y * 4u + i;
      if (m >= p.M) { break; }
      for (var j = 0u; j < 4u; j++) {
        let n = n0 + 64u * h + lid.x * 4u + j;
        if (n >= p.N) { break; }
        finish(m, n, acc[i + 4u * h][j]);
      }
    }
  }
}

// q4 (wonly_wide): weight-only int4/int8 GEMM for the gpu family with the weights never staged:
// each of the 64 threads owns two output columns (n and n + 64 of a 128-column tile) and keeps
// their block of 32 dequantized weights in registers (one vec4<u32> of int4 codes per column and
// block, dequantized once), while the TM x 32 activation slice of the block is staged in
// workgroup memory (8 threads per row read its 128 bytes along K) and read back at addresses
// that are the same for every thread (a broadcast on GPUs, one load on SIMD CPU backends).
// Per block a thread does 2 TM dot products of vec4s per staged vec4 read. Tile TM x 128.

//! import qlinear

// x again, viewed as vec4s (read when VEC4, i.e. K % 4 == 0).
@group(0) @binding(11) var<storage, read> x4: array<vec4<T>>;

override VEC4: bool = true;
override TM: u32 = 16u;

var<workgroup> As: array<vec4<f32>, TM * 8u>; // [TM rows][8 vec4s of the block]

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

// The 32 weights of row n in block b, dequantized: element 4q + e is w[q][e].
fn wblock(n: u32, b: u32) -> array<vec4<f32>, 8> {
  var d: array<vec4<f32>, 8>;
  let g = b * 32u / G;
  let s = f32(scales[n * p.groups + g]);
  let z = zero_of(n, g);
  if (BITS == 4u) {
    let v = w[n * (p.Kp / 32u) + b];
    for (var j = 0u; j < 4u; j++) {
      // word j: elements 8j..8j+3 in its low nibbles, 8j+4..8j+7 in its high ones
      let wd = vec4<u32>(v[j]);
      d[2u * j] = (vec4<f32>((wd >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(15u)) - z) * s;
      d[2u * j + 1u] = (vec4<f32>((wd >> vec4<u32>(4u, 12u, 20u, 28u)) & vec4<u32>(15u)) - z) * s;
    }
  } else {
    for (var h = 0u; h < 2u; h++) {
      let v = w[n * (p.Kp / 16u) + 2u * b + h];
      for (var j = 0u; j < 4u; j++) {
        let c = bitcast<vec4<i32>>(vec4<u32>(v[j]) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u);
        d[4u * h + j] = (vec4<f32>(c) - z) * s;
      }
    }
  }
  return d;
}

@compute @workgroup_size(64)
fn wonly_wide(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let m0 = wg.y * TM;
  let n = wg.x * 128u + li;
  let nc0 = min(n, p.N - 1u);
  let nc1 = min(n + 64u, p.N - 1u);
  var acc0: array<f32, 32>;
  var acc1: array<f32, 32>;
  for (var i = 0u; i < TM; i++) { acc0[i] = 0.0; acc1[i] = 0.0; }
  let blocks = p.Kp / 32u;
  for (var b = 0u; b < blocks; b++) {
    for (var t = li; t < TM * 8u; t += 64u) {
      As[t] = xload(m0 + t / 8u, b * 32u + 4u * (t % 8u));
    }
    workgroupBarrier();
    let d0 = wblock(nc0, b);
    let d1 = wblock(nc1, b);
    for (var q = 0u; q < 8u; q++) {
      for (var i = 0u; i < TM; i++) {
        let a = As[i * 8u + q];
        acc0[i] += dot(a, d0[q]);
        acc1[i] += dot(a, d1[q]);
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < TM; i++) {
    let m = m0 + i;
    if (m >= p.M) { break; }
    if (n < p.N) { finish(m, n, acc0[i]); }
    if (n + 64u < p.N) { finish(m, n + 64u, acc1[i]); }
  }
}

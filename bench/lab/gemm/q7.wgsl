// q4 (wonly_wide): weight-only int4/int8 GEMM for the gpu family with the weights never staged:
// each of the 64 threads owns two output columns (n and n + 64 of a 128-column tile) and keeps
// their block of 32 dequantized weights in registers (one vec4<u32> of int4 codes per column and
// block, dequantized once), while the TM x 32 activation slice of the block is staged in
// workgroup memory (8 threads per row read its 128 bytes along K) and read back at addresses
// that are the same for every thread (a broadcast on GPUs, one load on SIMD CPU backends).
// Per block a thread does 2 TM dot products of vec4s per staged vec4 read. Tile TM x 128.
// q7: q6 with 128 threads of one column each (onnxruntime's Tile16x128 shape); q6: q4 with TM a const and the loops ordered as onnxruntime's MatMulNBitsWideTile orders
// them: per int4 word j, the two dequantized vec4s of each column live only in that iteration and
// the unrollable loop over the TM rows is innermost, so the accumulators stay in registers.

//! import qlinear

// x again, viewed as vec4s (read when VEC4, i.e. K % 4 == 0).
@group(0) @binding(11) var<storage, read> x4: array<vec4<T>>;

override VEC4: bool = true;
const TM = 16u;

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

// Word j of row n's block b (int4: 8 codes; int8: words 2j, 2j+1), dequantized: elements
// 8j..8j+3 and 8j+4..8j+7 of the block.
fn wpair(n: u32, b: u32, j: u32, s: f32, z: f32) -> array<vec4<f32>, 2> {
  if (BITS == 4u) {
    let wd = vec4<u32>(w[n * (p.Kp / 32u) + b][j]);
    return array<vec4<f32>, 2>((vec4<f32>((wd >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(15u)) - z) * s,
                               (vec4<f32>((wd >> vec4<u32>(4u, 12u, 20u, 28u)) & vec4<u32>(15u)) - z) * s);
  }
  let v = w[n * (p.Kp / 16u) + 2u * b + j / 2u];
  let c0 = bitcast<vec4<i32>>(vec4<u32>(v[2u * (j % 2u)]) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u);
  let c1 = bitcast<vec4<i32>>(vec4<u32>(v[2u * (j % 2u) + 1u]) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u);
  return array<vec4<f32>, 2>((vec4<f32>(c0) - z) * s, (vec4<f32>(c1) - z) * s);
}

@compute @workgroup_size(128)
fn wonly_wide(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let m0 = wg.y * TM;
  let n = wg.x * 128u + li;
  let nc = min(n, p.N - 1u);
  var acc: array<f32, TM>;
  for (var i = 0u; i < TM; i++) { acc[i] = 0.0; }
  let blocks = p.Kp / 32u;
  for (var b = 0u; b < blocks; b++) {
    As[li] = xload(m0 + li / 8u, b * 32u + 4u * (li % 8u));
    workgroupBarrier();
    let g = b * 32u / G;
    let s0 = f32(scales[nc * p.groups + g]);
    let z0 = zero_of(nc, g);
    for (var j = 0u; j < 4u; j++) {
      let d = wpair(nc, b, j, s0, z0);
      for (var i = 0u; i < TM; i++) {
        acc[i] += dot(As[i * 8u + 2u * j], d[0]) + dot(As[i * 8u + 2u * j + 1u], d[1]);
      }
    }
    workgroupBarrier();
  }
  if (n < p.N) {
    for (var i = 0u; i < TM; i++) {
      if (m0 + i >= p.M) { break; }
      finish(m0 + i, n, acc[i]);
    }
  }
}

// q10 (wonly_wide): q7 with the activation rows broadcast by subgroupShuffle, as onnxruntime's
// MatMulNBitsWideTile compiles on adapters with subgroups (its WGSL, dumped with onnxruntime-node's
// verbose log on this machine, shuffles the A values in groups of 8 lanes). Each of the 128 threads
// owns one column of a 16 x 128 tile; per block of 32 k the 16 x 32 activation slice is staged in
// workgroup memory as in q7, but a lane reads only its own two rows of it (rows tx and tx + 8 of
// its 8-lane group) and takes the other rows' values from its group's lanes by subgroupShuffle:
// 4 workgroup-memory reads per word of codes instead of q7's 32. On SIMD CPU backends a subgroup
// is one vector register and a shuffle with a uniform lane is one broadcast; on GPUs it is a
// register exchange, cheaper than the shared-memory read it replaces.
// SG8: the subgroup size is 8 (the group is the whole subgroup and the shuffle lane uniform).

//! import qlinear

// x again, viewed as vec4s (read when VEC4, i.e. K % 4 == 0).
@group(0) @binding(11) var<storage, read> x4: array<vec4<T>>;

override VEC4: bool = true;
override SG8: bool = false;
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
fn wonly_wide(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) sl: u32) {
  let m0 = wg.y * TM;
  let n = wg.x * 128u + li;
  let nc = min(n, p.N - 1u);
  let tx = sl % 8u;
  let g0 = select(sl - tx, 0u, SG8); // first lane of this lane's group of 8
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
      // This lane's rows tx and tx + 8, elements 8j..8j+7 of the block.
      let lo0 = As[tx * 8u + 2u * j];
      let lo1 = As[tx * 8u + 2u * j + 1u];
      let hi0 = As[(tx + 8u) * 8u + 2u * j];
      let hi1 = As[(tx + 8u) * 8u + 2u * j + 1u];
      for (var i = 0u; i < 8u; i++) {
        acc[i] += dot(subgroupShuffle(lo0, g0 + i), d[0]) + dot(subgroupShuffle(lo1, g0 + i), d[1]);
        acc[i + 8u] += dot(subgroupShuffle(hi0, g0 + i), d[0]) + dot(subgroupShuffle(hi1, g0 + i), d[1]);
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

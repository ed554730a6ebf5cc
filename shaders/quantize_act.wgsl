// Dynamic int8 quantization of activations, one workgroup per row (token) of X [M, K]:
//   per token (PER_BLOCK = false): s = max|x_row| / 127, one scale per row (W8A8 as SmoothQuant);
//   static (STATIC = true): s = xs[0], fixed by calibration (w8a8-static), nothing reduced;
//   per block (PER_BLOCK = true):  s = max|x_block| / 127 for each block of 32 along K (finer,
//     as llama.cpp's q8_1), used where weight-only formats run on integer dot products.
// q = clamp(round_half_away(x / s), -127, 127), four per u32 (byte b = element 4j + b), rows
// padded with zeros to Kp. Also writes the sum of q over each block of 32, which the matmuls
// need to subtract a weight zero point: sum_k (w_k - z) x_k = sum_k w_k x_k - z sum_k x_k.
//
//   xq   [M, Kp/4] u32     xs [M] or [M, Kp/32] f32     xsum [M, Kp/32] i32

//! import quantize_act_lib

override WG: u32 = 64u;
var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let m = wg.x + wg.y * nwg.x;
  if (m >= p.M) { return; }
  let base = m * p.K;
  let blocks = p.Kp / 32u;
  var rowScale = 0.0;
  if (STATIC) {
    rowScale = xs[0];
  } else if (!PER_BLOCK) {
    var amax = 0.0;
    for (var k = lid; k < p.K; k += WG) { amax = max(amax, abs(f32(x[base + k]))); }
    red[lid] = amax;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
      if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
      workgroupBarrier();
    }
    rowScale = red[0] / 127.0;
    if (lid == 0u) { xs[m] = rowScale; }
  }
  // Each thread owns whole blocks of 32: no further synchronization.
  for (var b = lid; b < blocks; b += WG) {
    let k0 = b * 32u;
    var scale = rowScale;
    if (PER_BLOCK) {
      var amax = 0.0;
      for (var i = 0u; i < 32u; i++) { amax = max(amax, abs(xat(base, k0 + i))); }
      scale = amax / 127.0;
      xs[m * blocks + b] = scale;
    }
    let inv = select(0.0, 1.0 / scale, scale > 0.0);
    var sum = 0;
    for (var j = 0u; j < 8u; j++) {
      let k = k0 + 4u * j;
      let q = vec4<i32>(q8(xat(base, k), inv), q8(xat(base, k + 1u), inv), q8(xat(base, k + 2u), inv), q8(xat(base, k + 3u), inv));
      sum += q.x + q.y + q.z + q.w;
      xq[m * (p.Kp / 4u) + b * 8u + j] = pack4(q.x, q.y, q.z, q.w);
    }
    xsum[m * blocks + b] = sum;
  }
}

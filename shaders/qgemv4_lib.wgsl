// Weight-only quantized decode GEMV of the gpu kernel family (qgemv4.wgsl / qgemv4_sg.wgsl import
// it with their row_sum): out[m, n0 + n] = epilogue(sum_k W[n, k] x[m, k]), float x with
// K % 4 == 0, int4 or int8 W in the layout of src/quant/layout.ts (bindings of qlinear.wgsl).
// TPR threads split an output row's blocks of 32: thread t takes blocks t, t + TPR, ..., one
// vec4<u32> load of 32 int4 codes (two for int8) per block and row, so the TPR threads of a row
// read TPR * 16 consecutive bytes of it per step; each block's codes are dequantized with its
// group's scale and zero point. The block's 8 vec4s of x are loaded once for the thread's NR
// rows (n, n + WG / TPR, ...): NR (WG / TPR) rows per workgroup; row_sum adds the TPR partials. No activation quantization pass (the cpu family's qgemv.wgsl wint quantizes
// x to int8 first). Rows past N compute a clamped row and store nothing.

//! import qlinear

// x again, viewed as vec4s.
@group(0) @binding(11) var<storage, read> x4: array<vec4<T>>;

override TPR: u32 = 32u;
override WG: u32 = 128u;
override NR: u32 = 1u; // rows per thread (1..4): each vec4 of x read once feeds NR rows

@compute @workgroup_size(WG)
fn wonly(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let rows = WG / TPR; // row groups per workgroup; thread rows n0 + rows * r, r < NR
  let n0 = wg.x * rows * NR + lid / TPR;
  let m = wg.y;
  let K4 = p.K / 4u;
  let xb = m * K4;
  let blocks = p.Kp / 32u;
  var acc = vec4<f32>(0.0); // row r in acc[r]
  for (var b = lid % TPR; b < blocks; b += TPR) {
    let g = b * 32u / G;
    var xv: array<vec4<f32>, 8>;
    for (var q = 0u; q < 8u; q++) {
      xv[q] = select(vec4<f32>(0.0), vec4<f32>(x4[xb + min(8u * b + q, K4 - 1u)]), 8u * b + q < K4);
    }
    for (var r = 0u; r < NR; r++) {
      let nc = min(n0 + rows * r, p.N - 1u);
      let z = zero_of(nc, g);
      var blk = vec4<f32>(0.0);
      if (BITS == 4u) {
        let wv = w[nc * (p.Kp / 32u) + b];
        for (var j = 0u; j < 4u; j++) {
          // word j: elements 8j..8j+3 in its low nibbles, 8j+4..8j+7 in its high ones
          let wd = vec4<u32>(wv[j]);
          blk += (vec4<f32>((wd >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(15u)) - z) * xv[2u * j];
          blk += (vec4<f32>((wd >> vec4<u32>(4u, 12u, 20u, 28u)) & vec4<u32>(15u)) - z) * xv[2u * j + 1u];
        }
      } else {
        for (var h = 0u; h < 2u; h++) {
          let wv = w[nc * (p.Kp / 16u) + 2u * b + h];
          for (var j = 0u; j < 4u; j++) {
            // sign-extend each byte: move it to the top, arithmetic-shift back
            let q = bitcast<vec4<i32>>(vec4<u32>(wv[j]) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u);
            blk += (vec4<f32>(q) - z) * xv[4u * h + j];
          }
        }
      }
      acc[r] += f32(scales[nc * p.groups + g]) * (blk.x + blk.y + blk.z + blk.w);
    }
  }
  for (var r = 0u; r < NR; r++) {
    let total = row_sum(lid, acc[r]);
    let n = n0 + rows * r;
    if (lid % TPR == 0u && n < p.N) { finish(m, n, total); }
  }
}

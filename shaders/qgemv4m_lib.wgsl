// Weight-only quantized decode GEMV for MR = 2..8 activation rows at once (qgemv4m.wgsl /
// qgemv4m_sg.wgsl import it with their row_sum): out[m, n0 + n] = epilogue(sum_k W[n, k] x[m, k])
// for m < MR, float x with K % 4 == 0, int4 or int8 W (bindings of qlinear.wgsl). The layout of
// qgemv4_lib.wgsl (TPR threads split a row's blocks of 32, NR rows per thread), but one workgroup
// serves all MR rows of x: each word of codes is loaded and unpacked once (shifts, masks, the
// conversion and the zero point: most of the arithmetic on a CPU adapter) and the unpacked vec4
// is multiplied into the MR rows' block sums; qgemv4_lib runs a workgroup per row of x, which
// loads and unpacks every code MR times. Each vec4 of x (in storage; it hits the cache) is loaded
// once per word for the thread's NR rows, as qgemv4_lib loads it once per block: a first version
// with one weight row per thread loaded x once per row and was 2-5x slower than a workgroup per
// row on lavapipe, where a load whose address differs across lanes is a gather. Per thread
// NR * MR vec4 block sums and row sums (NR * MR <= 16, src/ops/gemv-multi.ts). Each (n, m) sums exactly as qgemv4_lib.wgsl sums it (the same
// products added in the same order, the block's lanes x + y + z + w times its scale, row_sum), so
// a row of a batch rounds as it does alone.

//! import qlinear

// x again, viewed as vec4s.
@group(0) @binding(11) var<storage, read> x4: array<vec4<T>>;

override TPR: u32 = 32u;
override WG: u32 = 128u;
override NR: u32 = 1u; // rows of W per thread (1..4); NR * MR <= 16
override MR: u32 = 2u; // rows of x (the M of the product), 2..8

// Elements 4q..4q+3 of row m's block b of x (zero past K, as qgemv4_lib.wgsl reads them).
fn xblk(m: u32, b: u32, q: u32, K4: u32) -> vec4<f32> {
  return select(vec4<f32>(0.0), vec4<f32>(x4[m * K4 + min(8u * b + q, K4 - 1u)]), 8u * b + q < K4);
}

@compute @workgroup_size(WG)
fn wonly(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let rows = WG / TPR; // row groups per workgroup; thread rows n0 + rows * r, r < NR
  let n0 = wg.x * rows * NR + lid / TPR;
  let K4 = p.K / 4u;
  let blocks = p.Kp / 32u;
  var acc: array<f32, 16>; // acc[r * MR + m]
  for (var i = 0u; i < 16u; i++) { acc[i] = 0.0; }
  for (var b = lid % TPR; b < blocks; b += TPR) {
    let g = b * 32u / G;
    var nc: array<u32, 4>;
    var z: array<f32, 4>;
    for (var r = 0u; r < NR; r++) {
      nc[r] = min(n0 + rows * r, p.N - 1u);
      z[r] = zero_of(nc[r], g);
    }
    var blk: array<vec4<f32>, 16>; // blk[r * MR + m]
    for (var i = 0u; i < NR * MR; i++) { blk[i] = vec4<f32>(0.0); }
    if (BITS == 4u) {
      var wv: array<vec4<u32>, 4>;
      for (var r = 0u; r < NR; r++) { wv[r] = w[nc[r] * (p.Kp / 32u) + b]; }
      for (var j = 0u; j < 4u; j++) {
        // word j: elements 8j..8j+3 in its low nibbles, 8j+4..8j+7 in its high ones; unpacked
        // once per row, then used by every row of x
        var lo: array<vec4<f32>, 4>;
        var hi: array<vec4<f32>, 4>;
        for (var r = 0u; r < NR; r++) {
          let wd = vec4<u32>(wv[r][j]);
          lo[r] = vec4<f32>((wd >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(15u)) - z[r];
          hi[r] = vec4<f32>((wd >> vec4<u32>(4u, 12u, 20u, 28u)) & vec4<u32>(15u)) - z[r];
        }
        for (var m = 0u; m < MR; m++) {
          let x0 = xblk(m, b, 2u * j, K4);
          let x1 = xblk(m, b, 2u * j + 1u, K4);
          for (var r = 0u; r < NR; r++) {
            blk[r * MR + m] += lo[r] * x0;
            blk[r * MR + m] += hi[r] * x1;
          }
        }
      }
    } else {
      for (var h = 0u; h < 2u; h++) {
        var wv: array<vec4<u32>, 4>;
        for (var r = 0u; r < NR; r++) { wv[r] = w[nc[r] * (p.Kp / 16u) + 2u * b + h]; }
        for (var j = 0u; j < 4u; j++) {
          var c: array<vec4<f32>, 4>;
          for (var r = 0u; r < NR; r++) {
            // sign-extend each byte: move it to the top, arithmetic-shift back
            let q = bitcast<vec4<i32>>(vec4<u32>(wv[r][j]) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u);
            c[r] = vec4<f32>(q) - z[r];
          }
          for (var m = 0u; m < MR; m++) {
            let xv = xblk(m, b, 4u * h + j, K4);
            for (var r = 0u; r < NR; r++) { blk[r * MR + m] += c[r] * xv; }
          }
        }
      }
    }
    for (var r = 0u; r < NR; r++) {
      let s = f32(scales[nc[r] * p.groups + g]);
      for (var m = 0u; m < MR; m++) {
        let v = blk[r * MR + m];
        acc[r * MR + m] += s * (v.x + v.y + v.z + v.w);
      }
    }
  }
  for (var r = 0u; r < NR; r++) {
    let n = n0 + rows * r;
    for (var m = 0u; m < MR; m++) {
      let total = row_sum(lid, acc[r * MR + m]);
      if (lid % TPR == 0u && n < p.N) { finish(m, n, total); }
    }
  }
}

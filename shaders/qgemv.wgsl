// Quantized matrix-vector products for decode (one activation row per workgroup row y):
//   out[m, n0 + n] = epilogue( sum_k W[n, k] x[m, k] )   for the rows n of one weight chunk.
// W is int4 or int8 in the layout of src/quant/layout.ts: row n is Kp/8 (int4) or Kp/4 (int8)
// u32 words, grouped along K with one scale (and zero point if asymmetric) per group.
// TPR threads share an output row and walk its blocks of 32 elements (one vec4<u32> of int4
// words, two of int8) with stride TPR, so neighbouring threads read neighbouring 16-byte chunks;
// WG / TPR rows per workgroup; partial sums meet in workgroup memory after one barrier.
//
// Two entry points:
//   wonly: float activations x, weights unpacked to f32 (weight-only quantization, W4A16/W8A16);
//   wint:  int8 activations (xq, scales xs, block sums xsum from quantize_act.wgsl) times int
//          weights with idot4 (dot4I8Packed where available), int32 sums per block of 32.
// Weight-only decode with K % 4 == 0 runs qgemv4_lib.wgsl instead (both families); wint is the
// decode GEMV of int8 activations (q8/q4 with activations 'int8', w8a8, w4a8), as wint of the GEMMs
// is their prefill, so a token's product is the same in both.

//! import qlinear

override TPR: u32 = 8u;     // threads per output row
override WG: u32 = 64u;     // threads per workgroup: WG / TPR output rows

var<workgroup> red: array<f32, WG>;

fn xat(base: u32, k: u32) -> f32 {
  if (k < p.K) { return f32(x[base + k]); }
  return 0.0;
}

fn x4(base: u32, k: u32) -> vec4<f32> {
  return vec4<f32>(xat(base, k), xat(base, k + 1u), xat(base, k + 2u), xat(base, k + 3u));
}

// Sums the TPR partials of each row; every thread calls it (it holds a barrier).
fn row_total(lid: u32, partial: f32) -> f32 {
  red[lid] = partial;
  workgroupBarrier();
  var t = 0.0;
  if (lid % TPR == 0u) {
    for (var i = 0u; i < TPR; i++) { t += red[lid + i]; }
  }
  return t;
}

@compute @workgroup_size(WG)
fn wonly(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let n = wg.x * (WG / TPR) + lid / TPR;
  let m = wg.y;
  var acc = 0.0;
  if (n < p.N) {
    let xb = m * p.K;
    let rowv = n * (p.Kp * BITS / 128u); // vec4<u32> index where row n starts
    for (var b = lid % TPR; b < p.Kp / 32u; b += TPR) {
      let g = b * 32u / G;
      let z = zero_of(n, g);
      let k = b * 32u;
      var blk = 0.0;
      if (BITS == 4u) {
        let wv = w[rowv + b];
        for (var j = 0u; j < 4u; j++) {
          // word j holds elements 8j..8j+3 in its low nibbles, 8j+4..8j+7 in its high nibbles
          let lo = vec4<f32>((vec4<u32>(wv[j]) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(15u)) - z;
          let hi = vec4<f32>((vec4<u32>(wv[j]) >> vec4<u32>(4u, 12u, 20u, 28u)) & vec4<u32>(15u)) - z;
          blk += dot(lo, x4(xb, k + 8u * j)) + dot(hi, x4(xb, k + 8u * j + 4u));
        }
      } else {
        for (var h = 0u; h < 2u; h++) {
          let wv = w[rowv + 2u * b + h];
          for (var j = 0u; j < 4u; j++) {
            // sign-extend each byte: move it to the top, arithmetic-shift back
            let q = bitcast<vec4<i32>>(vec4<u32>(wv[j]) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u);
            blk += dot(vec4<f32>(q) - z, x4(xb, k + 16u * h + 4u * j));
          }
        }
      }
      acc += f32(scales[n * p.groups + g]) * blk;
    }
  }
  let total = row_total(lid, acc);
  if (lid % TPR == 0u && n < p.N) { finish(m, n, total); }
}

@compute @workgroup_size(WG)
fn wint(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let n = wg.x * (WG / TPR) + lid / TPR;
  let m = wg.y;
  var acc = 0.0;
  if (n < p.N) {
    let blocks = p.Kp / 32u;
    let rowv = n * (p.Kp * BITS / 128u);
    let xrow = m * (p.Kp / 16u);
    for (var b = lid % TPR; b < blocks; b += TPR) {
      let g = b * 32u / G;
      let xa = xq[xrow + 2u * b];      // activation words 0..3 of the block
      let xc = xq[xrow + 2u * b + 1u]; // words 4..7
      var d = 0;
      if (BITS == 4u) {
        // nibble u XOR 8 is u - 8 as a 4-bit two's complement number; moved to the top of its
        // byte it is 16 (u - 8) as an int8 lane: one idot4 per 4 weights and one exact >> 4.
        // Symmetric codes are c + 8, so this is c; asymmetric ones subtract z - 8 below.
        let t = w[rowv + b] ^ vec4<u32>(0x88888888u);
        let lo = (t << vec4<u32>(4u)) & vec4<u32>(0xf0f0f0f0u);
        let hi = t & vec4<u32>(0xf0f0f0f0u);
        d = (idot4(lo.x, xa.x) + idot4(hi.x, xa.y) + idot4(lo.y, xa.z) + idot4(hi.y, xa.w) +
             idot4(lo.z, xc.x) + idot4(hi.z, xc.y) + idot4(lo.w, xc.z) + idot4(hi.w, xc.w)) >> 4u;
      } else {
        let w0 = w[rowv + 2u * b];
        let w1 = w[rowv + 2u * b + 1u];
        d = idot4(w0.x, xa.x) + idot4(w0.y, xa.y) + idot4(w0.z, xa.z) + idot4(w0.w, xa.w) +
            idot4(w1.x, xc.x) + idot4(w1.y, xc.y) + idot4(w1.z, xc.z) + idot4(w1.w, xc.w);
      }
      // sum_k (q_k - z) x_k = sum_k q_k x_k - z * sum_k x_k (int4 codes are already offset by 8)
      if (!SYM) { d -= (i32(f32(zeros[n * p.groups + g])) - select(0, 8, BITS == 4u)) * xsum[m * blocks + b]; }
      acc += f32(scales[n * p.groups + g]) * xs[m * p.xsRow + b * p.xsBlk] * f32(d);
    }
  }
  let total = row_total(lid, acc);
  if (lid % TPR == 0u && n < p.N) { finish(m, n, total); }
}

// Quantized GEMM for CPU-emulated adapters: the contract, bindings and entry points of
// qgemm.wgsl, built the way matmul_sg.wgsl is (read its header for why): each lane owns output
// columns (weight rows: two in wint and wonly4, one in wonly) and TM rows of x; activations are
// loaded a few values per lane and passed around the subgroup with subgroupShuffle, so a lane
// issues a handful of loads per block instead of staging tiles in workgroup memory. (A workgroup
// tile read at compile-time-constant indices, which could have been one broadcast load per value,
// still compiles to a scalar load per lane on lavapipe: 0.1x.)
//
//   wint:   int8 x words (4 values each) meet int8 weight words in idot4 (int4 weights: two
//           columns per 32-bit multiply, see below); per block of 32 values the int32 sums are
//           scaled once: s_w[n, g] * s_x[m, b] * (d - z * sum_x). Lane l loads a block of rows
//           m0 + l and m0 + 8 + l as vec4s, as in wonly4.
//   wonly:  float x; the lane dequantizes its own weights (8 at a time) and multiplies in f32.
//   wonly4: wonly for K % 4 == 0, built like matmul_sg.wgsl's main4: lane l reads four values
//           of rows m0 + l and m0 + 8 + l as one vec4, and its weights a block (32 values) at a
//           time. 1.6-1.9x faster than wonly on lavapipe (BERT shapes, f32 activations, same
//           results bit for bit).
//
// Every lane runs every iteration (rows and columns past the edge are clamped and never stored),
// because a shuffle needs the whole subgroup. Lane l works on word (or value) l % 8 of each step,
// so any subgroup size >= 8 works.

//! import qlinear

// x again, viewed as vec4s (bound by wonly4 only).
@group(0) @binding(11) var<storage, read> x4: array<vec4<T>>;

const TM = 16u;
const WG = 64u;

fn wword(i: u32) -> u32 { return w[i / 4u][i % 4u]; }
// Byte e of v as a signed integer.
fn sbyte(v: u32, e: u32) -> i32 { return i32(v << (24u - 8u * e)) >> 24u; }

fn store_rows(m0: u32, n: u32, acc: array<f32, TM>) {
  if (n >= p.N) { return; }
  for (var i = 0u; i < TM; i++) {
    if (m0 + i >= p.M) { break; }
    finish(m0 + i, n, acc[i]);
  }
}

@compute @workgroup_size(WG)
fn wint(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(subgroup_invocation_id) sl: u32) {
  let m0 = wg.y * TM;
  // Two columns per lane, n and n + WG: each shuffled activation word feeds two weight words
  // (1.3-1.5x faster than one column for int8 on lavapipe, same results).
  let n = wg.x * 2u * WG + lid.x;
  let nc0 = min(n, p.N - 1u);
  let nc1 = min(n + WG, p.N - 1u);
  let blocks = p.Kp / 32u;
  let wl = sl % 8u;
  // Rows whose activations, scale and block sum this lane loads (then shuffles to the others).
  let r0 = min(m0 + wl, p.M - 1u);
  let r1 = min(m0 + 8u + wl, p.M - 1u);
  var acc0: array<f32, TM>;
  var acc1: array<f32, TM>;
  for (var b = 0u; b < blocks; b++) {
    // Words 0..7 of this block of rows r0 (xv[0], xv[1]) and r1 (xv[2], xv[3]): four vec4 loads
    // per lane instead of one word of each of the TM rows as xq[i / 4][i % 4], whose component
    // differs per lane and cost lavapipe a test and a branch per lane on top of its per-lane
    // scalar load: the int4 block loop compiles to 16% fewer instructions, 1.16-1.27x faster on
    // the BERT shapes, same results bit for bit.
    var xv: array<vec4<u32>, 4>;
    xv[0] = xq[r0 * (p.Kp / 16u) + 2u * b];
    xv[1] = xq[r0 * (p.Kp / 16u) + 2u * b + 1u];
    xv[2] = xq[r1 * (p.Kp / 16u) + 2u * b];
    xv[3] = xq[r1 * (p.Kp / 16u) + 2u * b + 1u];
    // Zeroed by hand each block: declared in the loop without an initializer, these sums kept
    // the previous block's values on lavapipe.
    var d0: array<i32, TM>;
    var d1: array<i32, TM>;
    for (var i = 0u; i < TM; i++) { d0[i] = 0; d1[i] = 0; }
    if (BITS == 8u) {
      for (var j = 0u; j < 8u; j++) {
        let bw0 = wword(nc0 * (p.Kp / 4u) + 8u * b + j);
        let bw1 = wword(nc1 * (p.Kp / 4u) + 8u * b + j);
        for (var i = 0u; i < TM; i++) {
          let a = subgroupShuffle(xv[2u * (i / 8u) + j / 4u][j % 4u], i % 8u); // word j of row m0 + i
          d0[i] += idot4(a, bw0);
          d1[i] += idot4(a, bw1);
        }
      }
    } else {
      // int4, two columns per multiply: each lane packs value k of its two columns as
      // q0 + 65536 q1 (unsigned codes 0..15), so one 32-bit product with the sign-extended
      // activation byte a adds a q0 + 65536 a q1. Over 16 values |sum a q| <= 16 * 127 * 15 =
      // 30480 < 2^15, so each half block's sum s splits exactly: its low 16 bits, sign-extended,
      // are column 0's sum and (s - that) / 65536 is column 1's.
      // Half the multiplies and adds of idot4 (which lavapipe lowers to a multiply and an add per
      // byte): 1.2-1.4x faster on lavapipe, same results bit for bit. Each lane sign-extends the
      // bytes of its own activation words before they are shuffled (a vec4 shuffle is four
      // permutes), not every lane every word after: another 1.07-1.2x. int4 word q holds values
      // 8q..8q+3 in its low nibbles and 8q+4..8q+7 in its high ones, which pair with activation
      // words 2q and 2q+1. The block's 4 words of each column come in one vec4 load.
      let c0 = w[(nc0 * (p.Kp / 8u) + 4u * b) / 4u];
      let c1 = w[(nc1 * (p.Kp / 8u) + 4u * b) / 4u];
      var ab: array<vec4<i32>, 16>; // word j of row r0 (ab[j]) and of row r1 (ab[8 + j]), sign-extended
      for (var j = 0u; j < 16u; j++) {
        let v = xv[j / 4u][j % 4u];
        ab[j] = vec4<i32>(sbyte(v, 0u), sbyte(v, 1u), sbyte(v, 2u), sbyte(v, 3u));
      }
      for (var h = 0u; h < 2u; h++) {
        var sp: array<i32, TM>;
        for (var i = 0u; i < TM; i++) { sp[i] = 0; }
        for (var qq = 0u; qq < 2u; qq++) {
          let q = 2u * h + qq;
          var wp: array<i32, 8>; // values 8q + e of both columns, paired
          for (var e = 0u; e < 4u; e++) {
            wp[e] = i32(((c0[q] >> (8u * e)) & 15u) | (((c1[q] >> (8u * e)) & 15u) << 16u));
            wp[e + 4u] = i32(((c0[q] >> (8u * e + 4u)) & 15u) | (((c1[q] >> (8u * e + 4u)) & 15u) << 16u));
          }
          for (var i = 0u; i < TM; i++) {
            let a = subgroupShuffle(ab[8u * (i / 8u) + 2u * q], i % 8u);      // values 8q..8q+3 of row m0 + i
            let c = subgroupShuffle(ab[8u * (i / 8u) + 2u * q + 1u], i % 8u); // values 8q+4..8q+7
            sp[i] += a.x * wp[0] + a.y * wp[1] + a.z * wp[2] + a.w * wp[3] + c.x * wp[4] + c.y * wp[5] + c.z * wp[6] + c.w * wp[7];
          }
        }
        for (var i = 0u; i < TM; i++) {
          let lo = (sp[i] << 16u) >> 16u;
          d0[i] += lo;
          d1[i] += (sp[i] - lo) >> 16u;
        }
      }
    }
    let g = b * 32u / G;
    let sw0 = f32(scales[nc0 * p.groups + g]);
    let sw1 = f32(scales[nc1 * p.groups + g]);
    // Zero points: int4 sums are of unsigned codes (z = 8 when symmetric), int8 ones of signed
    // codes (z = 0 when symmetric): sum_k (c_k - z) x_k = d - z sum_k x_k.
    let zsub = !SYM || BITS == 4u;
    var zc0 = 0.0;
    var zc1 = 0.0;
    if (zsub) {
      zc0 = zero_of(nc0, g);
      zc1 = zero_of(nc1, g);
    }
    let xs0 = xs[r0 * p.xsRow + b * p.xsBlk];
    let xs1 = xs[r1 * p.xsRow + b * p.xsBlk];
    var xsum0 = 0;
    var xsum1 = 0;
    if (zsub) {
      xsum0 = xsum[r0 * blocks + b];
      xsum1 = xsum[r1 * blocks + b];
    }
    for (var i = 0u; i < TM; i++) {
      var e0 = f32(d0[i]);
      var e1 = f32(d1[i]);
      if (zsub) {
        let xsm = f32(subgroupShuffle(select(xsum0, xsum1, i >= 8u), i % 8u));
        e0 -= zc0 * xsm;
        e1 -= zc1 * xsm;
      }
      let sx = subgroupShuffle(select(xs0, xs1, i >= 8u), i % 8u);
      acc0[i] += e0 * sw0 * sx;
      acc1[i] += e1 * sw1 * sx;
    }
  }
  store_rows(m0, n, acc0);
  store_rows(m0, n + WG, acc1);
}

@compute @workgroup_size(WG)
fn wonly(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(subgroup_invocation_id) sl: u32) {
  let m0 = wg.y * TM;
  let n = wg.x * WG + lid.x;
  let nc = min(n, p.N - 1u);
  let wl = sl % 8u;
  var acc: array<f32, TM>;
  for (var k0 = 0u; k0 < p.Kp; k0 += 8u) {
    let ka = k0 + wl;
    var av: array<f32, TM>;
    for (var i = 0u; i < TM; i++) {
      av[i] = select(0.0, f32(x[min(m0 + i, p.M - 1u) * p.K + min(ka, p.K - 1u)]), ka < p.K);
    }
    // This lane's 8 weight codes at k0..k0+7 (two int8 words or one int4 word), dequantized.
    let g = k0 / G;
    let s = f32(scales[nc * p.groups + g]);
    let z = zero_of(nc, g);
    var codes: array<f32, 8>;
    if (BITS == 8u) {
      let w0 = wword(nc * (p.Kp / 4u) + k0 / 4u);
      let w1 = wword(nc * (p.Kp / 4u) + k0 / 4u + 1u);
      for (var e = 0u; e < 4u; e++) {
        codes[e] = f32(i32(w0 << (24u - 8u * e)) >> 24u);
        codes[e + 4u] = f32(i32(w1 << (24u - 8u * e)) >> 24u);
      }
    } else {
      let wd = wword(nc * (p.Kp / 8u) + k0 / 8u);
      for (var e = 0u; e < 4u; e++) {
        codes[e] = f32((wd >> (8u * e)) & 15u);
        codes[e + 4u] = f32((wd >> (8u * e + 4u)) & 15u);
      }
    }
    for (var j = 0u; j < 8u; j++) {
      let wv = (codes[j] - z) * s;
      for (var i = 0u; i < TM; i++) { acc[i] = fma(subgroupShuffle(av[i], j), wv, acc[i]); }
    }
  }
  store_rows(m0, n, acc);
}

// Two columns per lane (n, n + WG), rows m0 + l and m0 + 8 + l read by lane l, as in main4.
@compute @workgroup_size(WG)
fn wonly4(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(subgroup_invocation_id) sl: u32) {
  let m0 = wg.y * TM;
  let n = wg.x * 2u * WG + lid.x;
  let nc0 = min(n, p.N - 1u);
  let nc1 = min(n + WG, p.N - 1u);
  let wl = sl % 8u;
  let K4 = p.K / 4u;
  let xa = min(m0 + wl, p.M - 1u) * K4;
  let xb = min(m0 + 8u + wl, p.M - 1u) * K4;
  let blocks = p.Kp / 32u;
  var acc0: array<f32, TM>;
  var acc1: array<f32, TM>;
  for (var b = 0u; b < blocks; b++) {
    let g = b * 32u / G;
    let s0 = f32(scales[nc0 * p.groups + g]);
    let s1 = f32(scales[nc1 * p.groups + g]);
    let z0 = zero_of(nc0, g);
    let z1 = zero_of(nc1, g);
    var c0a: vec4<u32>;
    var c0b: vec4<u32>;
    var c1a: vec4<u32>;
    var c1b: vec4<u32>;
    if (BITS == 8u) {
      c0a = w[nc0 * (p.Kp / 16u) + 2u * b];
      c0b = w[nc0 * (p.Kp / 16u) + 2u * b + 1u];
      c1a = w[nc1 * (p.Kp / 16u) + 2u * b];
      c1b = w[nc1 * (p.Kp / 16u) + 2u * b + 1u];
    } else {
      c0a = w[nc0 * (p.Kp / 32u) + b];
      c1a = w[nc1 * (p.Kp / 32u) + b];
    }
    for (var q = 0u; q < 8u; q++) {
      let k4 = b * 8u + q;
      if (k4 >= K4) { break; } // the padding of the last block (uniform: no lane diverges)
      let x0 = vec4<f32>(x4[xa + k4]);
      let x1 = vec4<f32>(x4[xb + k4]);
      var q0: vec4<f32>;
      var q1: vec4<f32>;
      if (BITS == 8u) {
        let w0 = select(c0a[q % 4u], c0b[q % 4u], q >= 4u);
        let w1 = select(c1a[q % 4u], c1b[q % 4u], q >= 4u);
        q0 = vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(w0) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
        q1 = vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(w1) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
      } else {
        // values 4q..4q+3 of the block: low nibbles of word q/2 for even q, high ones for odd q
        let sh = vec4<u32>(0u, 8u, 16u, 24u) + 4u * (q % 2u);
        q0 = vec4<f32>((vec4<u32>(c0a[q / 2u]) >> sh) & vec4<u32>(15u));
        q1 = vec4<f32>((vec4<u32>(c1a[q / 2u]) >> sh) & vec4<u32>(15u));
      }
      q0 = (q0 - z0) * s0;
      q1 = (q1 - z1) * s1;
      for (var j = 0u; j < 4u; j++) {
        for (var i = 0u; i < 8u; i++) {
          let u = subgroupShuffle(x0[j], i);
          acc0[i] = fma(u, q0[j], acc0[i]);
          acc1[i] = fma(u, q1[j], acc1[i]);
          let v = subgroupShuffle(x1[j], i);
          acc0[i + 8u] = fma(v, q0[j], acc0[i + 8u]);
          acc1[i + 8u] = fma(v, q1[j], acc1[i + 8u]);
        }
      }
    }
  }
  store_rows(m0, n, acc0);
  store_rows(m0, n + WG, acc1);
}

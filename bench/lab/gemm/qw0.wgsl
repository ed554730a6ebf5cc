// qw0: the weight-only GEMM qgemm.wgsl shipped as `wonly` until issue 20 (q2 replaced it): 16x16
// threads, 4x4 outputs each, weights dequantized to f32 while staged (two elements per thread and
// row), BK 32.

//! import qlinear

const BM = 64u;
const BN = 64u;

var<workgroup> Af: array<vec4<f32>, 512>; // [32 k][16 row quads]
var<workgroup> Bf: array<vec4<f32>, 512>; // [32 k][16 col quads]

fn wword(i: u32) -> u32 { return w[i / 4u][i % 4u]; }

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

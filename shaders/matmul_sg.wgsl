// Matmul for CPU-emulated adapters (lavapipe, SwiftShader-like), same contract as matmul.wgsl:
// for each batch z, C[M, N] = epilogue(A[M, K] x op(B)).
//
// Why a second kernel: on a CPU backend a subgroup is one SIMD register (8 lanes of AVX2), and a
// load whose address differs per lane is compiled to a scalar load per lane (with a bounds check
// and a branch each), about ten instructions per value; workgroup memory is barely cheaper. The
// tiled kernel spends most of its time in those loads. Here each lane owns two output columns
// (n and n + WG) and TM rows: per step of SG values of k it loads TM values of A (one per row,
// lane l takes k0 + l) and SG values of each of its B columns, then hands A around with
// subgroupShuffle, which compiles to a register permute. That is TM + 2 SG loads per 2 TM SG
// multiply-adds, against 2 loads per 16 in the tiled kernel. On lavapipe, 1024x1536x384: 3x the
// tiled kernel with one column per lane; the second column added another 10-15%.
//
// Every lane runs every iteration (out-of-range rows and columns are clamped and not stored),
// because a shuffle needs the whole subgroup. SG must equal the subgroup size.

//! import matmul_lib

// b again, viewed as vec4s (VEC4_B): one load brings four values of a B row.
@group(0) @binding(6) var<storage, read> b4: array<vec4<T>>;

override SG: u32 = 8u;
// B stored [N, K] with K and strideB multiples of 4: read B rows as vec4s (a lane's load costs
// about as much for four values as for one on lavapipe).
override VEC4_B: bool = false;

// Rows per workgroup: 32 (tried with one column per lane) spilled registers and ran slower.
const TM = 16u;
const WG = 64u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(subgroup_invocation_id) sl: u32) {
  let m0 = wg.y * TM;
  let n = wg.x * 2u * WG + lid.x; // this lane's columns: n and n + WG
  let nc0 = min(n, p.N - 1u);
  let nc1 = min(n + WG, p.N - 1u);
  let aBase = wg.z * p.strideA;
  let bBase = wg.z * p.strideB;
  let cBase = wg.z * p.strideC;
  var acc0: array<f32, TM>;
  var acc1: array<f32, TM>;
  for (var k0 = 0u; k0 < p.K; k0 += SG) {
    let ka = k0 + sl;
    var av: array<f32, TM>;
    for (var i = 0u; i < TM; i++) {
      let m = min(m0 + i, p.M - 1u);
      av[i] = select(0.0, f32(a[aBase + m * p.K + min(ka, p.K - 1u)]), ka < p.K);
    }
    for (var l4 = 0u; l4 < SG; l4 += 4u) {
      var q0 = vec4<f32>(0.0);
      var q1 = vec4<f32>(0.0);
      if (VEC4_B && k0 + l4 < p.K) {
        q0 = vec4<f32>(b4[(bBase + nc0 * p.K + k0 + l4) / 4u]);
        q1 = vec4<f32>(b4[(bBase + nc1 * p.K + k0 + l4) / 4u]);
      }
      for (var c4 = 0u; c4 < 4u; c4++) {
        let l = l4 + c4;
        let k = min(k0 + l, p.K - 1u);
        var b0 = q0[c4];
        var b1 = q1[c4];
        if (!VEC4_B) {
          if (TRANS_B) {
            b0 = f32(b[bBase + nc0 * p.K + k]);
            b1 = f32(b[bBase + nc1 * p.K + k]);
          } else {
            b0 = f32(b[bBase + k * p.N + nc0]);
            b1 = f32(b[bBase + k * p.N + nc1]);
          }
        }
        for (var i = 0u; i < TM; i++) {
          let x = subgroupShuffle(av[i], l);
          acc0[i] = fma(x, b0, acc0[i]);
          acc1[i] = fma(x, b1, acc1[i]);
        }
      }
    }
  }
  store_col(m0, n, cBase, acc0);
  store_col(m0, n + WG, cBase, acc1);
}

fn store_col(m0: u32, n: u32, cBase: u32, acc: array<f32, TM>) {
  if (n >= p.N) { return; }
  var bv = 0.0;
  if (HAS_BIAS) { bv = f32(bias[p.nOff + n]); }
  for (var i = 0u; i < TM; i++) {
    let m = m0 + i;
    if (m >= p.M) { break; }
    let at = cBase + m * p.ldc + p.nOff + n;
    var v = apply_act(acc[i] + bv, ACT);
    if (HAS_RES) { v += f32(res[at]); }
    c[at] = T(v);
  }
}

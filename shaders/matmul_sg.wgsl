// Matmul for CPU-emulated adapters (lavapipe, SwiftShader-like), same contract as matmul.wgsl:
// for each batch z, C[M, N] = epilogue(A[M, K] x op(B)).
//
// Why a second kernel: on a CPU backend a subgroup is one SIMD register (8 lanes of AVX2), and a
// load whose address differs per lane is compiled to a scalar load per lane and per 32-bit
// component (with a bounds check and a branch each), about ten instructions per value; workgroup
// memory is barely cheaper. The tiled kernel spends most of its time in those loads. Here each
// lane owns two output columns (n and n + WG) and TM rows, loads a few values and hands them to
// the other lanes with subgroupShuffle, which compiles to a register permute.
//
// Two entry points:
//   main4: B stored [N, K] and K % 4 == 0 (every Linear layer). Lane l reads four k values of rows
//          m0 + l and m0 + 8 + l, and of its two B rows, as vec4s: 4 loads per 4 k for 2 TM
//          outputs. A vec4 load shares the per-lane address and bounds work between its four
//          values: on lavapipe 1.13-1.56x faster than main's scheme with B read as vec4s (BERT
//          shapes, f32 and f16, same results bit for bit).
//   main:  any K, B stored either way. Lane l reads value k0 + l of each of the TM rows, and its
//          B columns one value at a time: TM + 16 loads per 8 k.
//
// Every lane runs every iteration (out-of-range rows and columns are clamped and not stored),
// because a shuffle needs the whole subgroup. Lane l works on row (or value) l % 8, so any
// subgroup size that is a multiple of 8 works.

//! import matmul_lib

// a and b again, viewed as vec4s (bound by main4 only).
@group(0) @binding(6) var<storage, read> b4: array<vec4<T>>;
@group(0) @binding(7) var<storage, read> a4: array<vec4<T>>;

// Rows per workgroup: 32 (tried with one column per lane, and with main4's layout) spilled
// registers and ran slower.
const TM = 16u;
const WG = 64u;

@compute @workgroup_size(WG)
fn main4(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(subgroup_invocation_id) sl: u32) {
  let m0 = wg.y * TM;
  let n = wg.x * 2u * WG + lid.x; // this lane's columns: n and n + WG
  let K4 = p.K / 4u;
  let wl = sl % 8u;
  // vec4 indices where this lane's two A rows and two B rows start
  let a0 = (wg.z * p.strideA) / 4u + min(m0 + wl, p.M - 1u) * K4;
  let a1 = (wg.z * p.strideA) / 4u + min(m0 + 8u + wl, p.M - 1u) * K4;
  let b0 = (wg.z * p.strideB) / 4u + min(n, p.N - 1u) * K4;
  let b1 = (wg.z * p.strideB) / 4u + min(n + WG, p.N - 1u) * K4;
  var acc0: array<f32, TM>;
  var acc1: array<f32, TM>;
  for (var k4 = 0u; k4 < K4; k4++) {
    let x0 = vec4<f32>(a4[a0 + k4]);
    let x1 = vec4<f32>(a4[a1 + k4]);
    let q0 = vec4<f32>(b4[b0 + k4]);
    let q1 = vec4<f32>(b4[b1 + k4]);
    for (var j = 0u; j < 4u; j++) {
      for (var i = 0u; i < 8u; i++) {
        let u = subgroupShuffle(x0[j], i); // A[m0 + i, 4 k4 + j]
        acc0[i] = fma(u, q0[j], acc0[i]);
        acc1[i] = fma(u, q1[j], acc1[i]);
        let v = subgroupShuffle(x1[j], i); // A[m0 + 8 + i, 4 k4 + j]
        acc0[i + 8u] = fma(v, q0[j], acc0[i + 8u]);
        acc1[i + 8u] = fma(v, q1[j], acc1[i + 8u]);
      }
    }
  }
  let cBase = wg.z * p.strideC;
  store_col(m0, n, cBase, acc0);
  store_col(m0, n + WG, cBase, acc1);
}

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
  for (var k0 = 0u; k0 < p.K; k0 += 8u) {
    let ka = k0 + sl % 8u;
    var av: array<f32, TM>;
    for (var i = 0u; i < TM; i++) {
      let m = min(m0 + i, p.M - 1u);
      av[i] = select(0.0, f32(a[aBase + m * p.K + min(ka, p.K - 1u)]), ka < p.K);
    }
    for (var l = 0u; l < 8u; l++) {
      let k = min(k0 + l, p.K - 1u);
      var b0: f32;
      var b1: f32;
      if (TRANS_B) {
        b0 = f32(b[bBase + nc0 * p.K + k]);
        b1 = f32(b[bBase + nc1 * p.K + k]);
      } else {
        b0 = f32(b[bBase + k * p.N + nc0]);
        b1 = f32(b[bBase + k * p.N + nc1]);
      }
      for (var i = 0u; i < TM; i++) {
        let x = subgroupShuffle(av[i], l);
        acc0[i] = fma(x, b0, acc0[i]);
        acc1[i] = fma(x, b1, acc1[i]);
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

// Matmul for CPU-emulated adapters (lavapipe, SwiftShader-like), same contract as matmul.wgsl:
// for each batch z, C[M, N] = epilogue(A[M, K] x op(B)).
//
// Why a second kernel: on a CPU backend a subgroup is one SIMD register (8 lanes of AVX2), and a
// load whose address differs per lane is compiled to a scalar load per lane (with a bounds check
// and a branch each), about ten instructions per value; workgroup memory is barely cheaper. The
// tiled kernel spends most of its time in those loads. Here each lane owns one output column and
// TM rows: per step of SG values of k it loads TM values of A (one per row, lane l takes k0 + l)
// and SG values of its own B column, then hands A around with subgroupShuffle, which compiles to
// a register permute. That is (TM + SG) loads per TM * SG multiply-adds, against 2 loads per 16
// in the tiled kernel: measured 3x faster on lavapipe for 1024x1536x384.
//
// Every lane runs every iteration (out-of-range rows and columns are clamped and not stored),
// because a shuffle needs the whole subgroup. SG must equal the subgroup size.

//! import epilogue

struct Params { M: u32, N: u32, K: u32, strideA: u32, strideB: u32, strideC: u32, ldc: u32, nOff: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<T>;
@group(0) @binding(2) var<storage, read> b: array<T>;
@group(0) @binding(3) var<storage, read> bias: array<T>;
@group(0) @binding(4) var<storage, read> res: array<T>;
@group(0) @binding(5) var<storage, read_write> c: array<T>;

override TRANS_B: bool = true;
override HAS_BIAS: bool = false;
override HAS_RES: bool = false;
override ACT: u32 = 0u;
override SG: u32 = 8u;

// Rows per workgroup. 16 keeps the accumulators in registers; 32 spilled and was slower.
const TM = 16u;
const WG = 64u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(subgroup_invocation_id) sl: u32) {
  let m0 = wg.y * TM;
  let n = wg.x * WG + lid.x;
  let nc = min(n, p.N - 1u);
  let aBase = wg.z * p.strideA;
  let bBase = wg.z * p.strideB;
  let cBase = wg.z * p.strideC;
  var acc: array<f32, TM>;
  for (var k0 = 0u; k0 < p.K; k0 += SG) {
    // Lane sl holds A[m0 + i, k0 + sl]; zero past K, so the clamped B reads below add nothing.
    let ka = k0 + sl;
    var av: array<f32, TM>;
    for (var i = 0u; i < TM; i++) {
      let m = min(m0 + i, p.M - 1u);
      av[i] = select(0.0, f32(a[aBase + m * p.K + min(ka, p.K - 1u)]), ka < p.K);
    }
    for (var l = 0u; l < SG; l++) {
      let k = min(k0 + l, p.K - 1u);
      var bv: f32;
      if (TRANS_B) { bv = f32(b[bBase + nc * p.K + k]); } else { bv = f32(b[bBase + k * p.N + nc]); }
      for (var i = 0u; i < TM; i++) { acc[i] = fma(subgroupShuffle(av[i], l), bv, acc[i]); }
    }
  }
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

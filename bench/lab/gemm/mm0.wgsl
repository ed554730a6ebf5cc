// Tiled matmul, batched: for each batch z, C[M, N] = epilogue(A[M, K] x op(B)), where op(B) is
// B^T for B stored [N, K] (TRANS_B: the layout of a Linear weight and of K in Q.K^T) or B for B
// stored [K, N]. Each 16x16 workgroup computes a 64x64 tile of C, 4x4 values per thread, staging
// 64x16 slices of A and B in workgroup memory so each global value is read once per tile.
// Tiles are staged and accumulated in f32 whatever T is: the f16 path rounds only on the store.
// The epilogue adds bias[n], applies ACT and adds residual[m, n]. C may be a column slice of a
// wider matrix (row stride ldc, first column nOff): a weight too big for one binding is split
// into row chunks, each writing its own columns.

//! import matmul_lib

const BM = 64u;
const BN = 64u;
const BK = 16u;
const THREADS = 256u;

// k-major so the inner loop reads 4 consecutive rows (columns) of a tile as one vec4.
var<workgroup> As: array<vec4<f32>, 256>; // [BK][BM / 4]
var<workgroup> Bs: array<vec4<f32>, 256>; // [BK][BN / 4]

fn load_a(base: u32, m: u32, k: u32) -> f32 {
  if (m < p.M && k < p.K) { return f32(a[base + m * p.K + k]); }
  return 0.0;
}

fn load_b(base: u32, n: u32, k: u32) -> f32 {
  if (n >= p.N || k >= p.K) { return 0.0; }
  if (TRANS_B) { return f32(b[base + n * p.K + k]); }
  return f32(b[base + k * p.N + n]);
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let m0 = wg.y * BM;
  let n0 = wg.x * BN;
  let aBase = wg.z * p.strideA;
  let bBase = wg.z * p.strideB;
  let cBase = wg.z * p.strideC;
  var acc = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0)); // acc[i][j] = C[m0 + ty*4 + i, n0 + tx*4 + j]
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    // 64 rows x 16 k per operand = 256 vec4 loads, one per thread: thread li stages rows 4r..4r+3
    // at k = kk. Along k neighbouring threads read neighbouring addresses of A (and of B^T).
    let kk = li % BK;
    let r = (li / BK) * 4u;
    As[kk * (BM / 4u) + r / 4u] = vec4(load_a(aBase, m0 + r, k0 + kk), load_a(aBase, m0 + r + 1u, k0 + kk),
                                       load_a(aBase, m0 + r + 2u, k0 + kk), load_a(aBase, m0 + r + 3u, k0 + kk));
    Bs[kk * (BN / 4u) + r / 4u] = vec4(load_b(bBase, n0 + r, k0 + kk), load_b(bBase, n0 + r + 1u, k0 + kk),
                                       load_b(bBase, n0 + r + 2u, k0 + kk), load_b(bBase, n0 + r + 3u, k0 + kk));
    workgroupBarrier();
    for (var k = 0u; k < BK; k++) {
      let av = As[k * (BM / 4u) + lid.y];
      let bv = Bs[k * (BN / 4u) + lid.x];
      acc[0] += av.x * bv;
      acc[1] += av.y * bv;
      acc[2] += av.z * bv;
      acc[3] += av.w * bv;
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + lid.y * 4u + i;
    if (m >= p.M) { break; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + lid.x * 4u + j;
      if (n >= p.N) { break; }
      var v = acc[i][j];
      if (HAS_BIAS) { v += f32(bias[p.nOff + n]); }
      v = apply_act(v, ACT);
      let at = cBase + m * p.ldc + p.nOff + n;
      if (HAS_RES) { v += f32(res[at]); }
      c[at] = T(v);
    }
  }
}

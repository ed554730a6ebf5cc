// mm8: mm7 without workgroup tiles: each lane reads its 8 B columns straight from global memory
// (one vec4 along K per column and k quad) and A comes by subgroupShuffle as in mm7, so the
// kernel has no barriers and no workgroup-memory traffic; the 8 groups of a workgroup read the
// same B columns (from cache on a GPU).
// SG8: the subgroup size is 8 (the group is the whole subgroup; the shuffle lane is then uniform).

//! import matmul_lib

@group(0) @binding(6) var<storage, read> b4: array<vec4<T>>;
@group(0) @binding(7) var<storage, read> a4: array<vec4<T>>;

override SG8: bool = false;
const BK = 32u;

var<workgroup> groups: atomic<u32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) sl: u32) {
  let m0 = wg.y * 64u;
  let n0 = wg.x * 64u;
  let K4 = p.K / 4u;
  let aBase = wg.z * p.strideA / 4u;
  let bBase = wg.z * p.strideB / 4u;
  let cBase = wg.z * p.strideC;
  let tx = sl % 8u;
  let g0 = select(sl - tx, 0u, SG8); // first lane of this lane's group
  var slot = 0u;
  if (tx == 0u) { slot = atomicAdd(&groups, 1u); }
  let ty = subgroupShuffle(slot, g0);
  // vec4 index where each of this lane's A rows starts (clamped: rows past M are not stored)
  var aRow: array<u32, 8>;
  for (var i = 0u; i < 8u; i++) {
    aRow[i] = aBase + min(m0 + 32u * (i / 4u) + 4u * ty + i % 4u, p.M - 1u) * K4;
  }
  var acc: array<vec4<f32>, 16>;
  for (var i = 0u; i < 16u; i++) { acc[i] = vec4<f32>(0.0); }
  // vec4 index where each of this lane's B rows (columns of C) starts, clamped
  var bRow: array<u32, 8>;
  for (var jj = 0u; jj < 8u; jj++) {
    bRow[jj] = bBase + min(n0 + 32u * (jj / 4u) + 4u * tx + jj % 4u, p.N - 1u) * K4;
  }
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    let ka = k0 / 4u + tx;
    var av: array<vec4<f32>, 8>;
    for (var i = 0u; i < 8u; i++) {
      av[i] = select(vec4<f32>(0.0), vec4<f32>(a4[aRow[i] + min(ka, K4 - 1u)]), ka < K4);
    }
    for (var q = 0u; q < 8u; q++) {
      let kb = min(k0 / 4u + q, K4 - 1u);
      var bq: array<vec4<f32>, 8>;
      for (var jj = 0u; jj < 8u; jj++) { bq[jj] = vec4<f32>(b4[bRow[jj] + kb]); }
      for (var e = 0u; e < 4u; e++) {
        let b0 = vec4<f32>(bq[0][e], bq[1][e], bq[2][e], bq[3][e]);
        let b1 = vec4<f32>(bq[4][e], bq[5][e], bq[6][e], bq[7][e]);
        for (var i = 0u; i < 4u; i++) {
          let x0 = subgroupShuffle(av[i][e], g0 + q);
          let x1 = subgroupShuffle(av[i + 4u][e], g0 + q);
          acc[2u * i] += x0 * b0;
          acc[2u * i + 1u] += x0 * b1;
          acc[2u * i + 8u] += x1 * b0;
          acc[2u * i + 9u] += x1 * b1;
        }
      }
    }
  }
  for (var i = 0u; i < 8u; i++) {
    let m = m0 + 32u * (i / 4u) + ty * 4u + i % 4u;
    if (m >= p.M) { continue; }
    for (var h = 0u; h < 2u; h++) {
      for (var jj = 0u; jj < 4u; jj++) {
        let n = n0 + 32u * h + tx * 4u + jj;
        if (n >= p.N) { continue; }
        var v = acc[2u * i + h][jj];
        if (HAS_BIAS) { v += f32(bias[p.nOff + n]); }
        v = apply_act(v, ACT);
        let at = cBase + m * p.ldc + p.nOff + n;
        if (HAS_RES) { v += f32(res[at]); }
        c[at] = T(v);
      }
    }
  }
}

// mm7: mm2 with the A operand held in registers and broadcast by subgroupShuffle instead of
// staged in workgroup memory (B stored [N, K], K % 4 == 0; needs subgroups of a fixed size that is
// a multiple of 8, at most 64). Threads work in aligned groups of 8 lanes of one subgroup: lane
// tx of a group owns columns 4tx.. and 32 + 4tx.. of the tile (as in mm2) and the group's 8 rows
// (4ty.., 32 + 4ty..); per K step of 32 lane tx loads k quad tx of those 8 rows as vec4s, and for
// each k the group's lanes read the 8 A values from lane (k / 4) by subgroupShuffle. B is staged
// k-major in workgroup memory as in mm2 (BK 32): per k a thread reads 2 vec4s from workgroup
// memory (mm2: 4) and shuffles 8 values. A group's row index ty is taken from a workgroup
// counter, so nothing assumes how invocations are laid out into subgroups.
// SG8: the subgroup size is 8 (the group is the whole subgroup; the shuffle lane is then uniform).

//! import matmul_lib

@group(0) @binding(6) var<storage, read> b4: array<vec4<T>>;
@group(0) @binding(7) var<storage, read> a4: array<vec4<T>>;

override SG8: bool = false;
const BK = 32u;

var<workgroup> Bs: array<vec4<f32>, 512>; // [BK][16 col quads]
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
  let j = li % 8u;  // staging: k quad j of B rows r0 + 8t
  let r0 = li / 8u;
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    let kq = k0 / 4u + j;
    for (var t = 0u; t < 8u; t++) {
      let r = r0 + 8u * t;
      var bv = vec4<f32>(0.0);
      if (kq < K4 && n0 + r < p.N) { bv = vec4<f32>(b4[bBase + (n0 + r) * K4 + kq]); }
      for (var e = 0u; e < 4u; e++) { Bs[(4u * j + e) * 16u + r / 4u][r % 4u] = bv[e]; }
    }
    let ka = k0 / 4u + tx;
    var av: array<vec4<f32>, 8>;
    for (var i = 0u; i < 8u; i++) {
      av[i] = select(vec4<f32>(0.0), vec4<f32>(a4[aRow[i] + min(ka, K4 - 1u)]), ka < K4);
    }
    workgroupBarrier();
    for (var q = 0u; q < 8u; q++) {
      for (var e = 0u; e < 4u; e++) {
        let k = 4u * q + e;
        let b0 = Bs[k * 16u + tx];
        let b1 = Bs[k * 16u + 8u + tx];
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
    workgroupBarrier();
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

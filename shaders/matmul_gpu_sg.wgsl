// Matmul for the `gpu` kernel family on devices with subgroups (one fixed subgroup size that is a
// power of two from 8 to 64), same contract as matmul.wgsl's main4: for each batch z,
// C[M, N] = epilogue(A[M, K] x B^T), B stored [N, K], K % 4 == 0 (every Linear layer).
//
// Each 64-thread workgroup computes a 64x64 tile of C with matmul.wgsl's 8x8 register blocks. B is
// staged as there: coalesced vec4 loads along K into a k-major workgroup tile (BK 32), two
// barriers per slice. A does not go through workgroup memory: threads work in aligned groups of
// 8 lanes of one subgroup; lane tx of group ty owns columns 4tx.. and 32 + 4tx.. and rows 4ty..
// and 32 + 4ty.. of the tile, loads k quad tx of the group's 8 A rows as vec4s per slice (8 lanes
// read 128 contiguous bytes of a row), and for each k the group's lanes take the 8 A values from
// lane k / 4 by subgroupShuffle (a register permute). Per k a thread reads 2 vec4s of workgroup
// memory (main4: 4) and shuffles 8 values: the operand every thread of a row group shares moves in
// registers, the one it does not stays coalesced and cached in the tile, as fast GPU GEMMs do. A
// group's ty comes from a workgroup counter, so nothing assumes how invocations are laid out into
// subgroups. SG8 (subgroup size 8: the group is the whole subgroup) makes the shuffle lane uniform.
// On lavapipe (subgroup size 8) 1.45-1.55x main4 on the BERT shapes, f32 and f16 (bench/lab/gemm.ts
// mm7; without SG8, as 16-64-lane subgroups run it, 1.16x). mm8, which reads B per lane from global
// memory with no tile at all, was faster still on lavapipe (1.8-2.3x) but gives up B's coalescing
// and tile reuse, which a GPU needs: not shipped.

//! import matmul_lib

// a and b again, viewed as vec4s.
@group(0) @binding(6) var<storage, read> b4: array<vec4<T>>;
@group(0) @binding(7) var<storage, read> a4: array<vec4<T>>;

override SG8: bool = false;
const BK = 32u;

var<workgroup> Bs: array<vec4<f32>, 512>; // [BK][16 col quads]
var<workgroup> groups: atomic<u32>;

@compute @workgroup_size(64)
fn main4(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) sl: u32) {
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

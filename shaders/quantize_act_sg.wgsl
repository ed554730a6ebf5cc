// quantize_act.wgsl for CPU-emulated adapters (same outputs, bit for bit): one subgroup per row
// (token), each lane taking one u32 word (4 values) per step. Maxima and block sums come from
// subgroupMax and shuffle-xor butterflies, so there is no workgroup memory and no barrier: on
// lavapipe a barrier switches between the subgroups of a workgroup, and the tree reduction of
// quantize_act.wgsl (6 barriers) plus its one-thread-per-block loop cost more than the matmul it
// feeds. A block of 32 values is 8 words, i.e. 8 neighbouring lanes: xor steps 1, 2 and 4 stay
// inside it for any subgroup size that is a multiple of 8.

//! import quantize_act_lib

// x again, viewed as vec4s, read when K % 4 == 0 (VEC4): one load per lane and step instead of
// four bounds-checked scalar ones. On lavapipe 1.1-1.3x faster at K = 384 and no different at
// K = 1536 (M = 4096, f16, same outputs bit for bit).
@group(0) @binding(5) var<storage, read> x4: array<vec4<T>>;
override VEC4: bool = false;

override SG: u32 = 8u; // the subgroup size
// 64 / SG rows per workgroup (as norm_sg.wgsl): CPU backends build subgroups from consecutive
// invocations, so subgroup r is invocations r SG .. r SG + SG - 1.
const WG = 64u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_invocation_id) sl: u32) {
  // A subgroup past the last row works on the last row and stores nothing: returning early would
  // make the subgroup operations below non-uniform by WGSL's rules.
  let row = (wg.x + wg.y * nwg.x) * (WG / SG) + lid / SG;
  let live = row < p.M;
  let m = min(row, p.M - 1u);
  let base = m * p.K;
  let words = p.Kp / 4u;
  let blocks = p.Kp / 32u;
  var rowScale = 0.0;
  if (STATIC) {
    rowScale = xs[0];
  } else if (!PER_BLOCK) {
    var amax = 0.0;
    for (var k = sl; k < p.K; k += SG) { amax = max(amax, abs(f32(x[base + k]))); }
    rowScale = subgroupMax(amax) / 127.0;
    if (live && sl == 0u) { xs[m] = rowScale; }
  }
  for (var j0 = 0u; j0 < words; j0 += SG) {
    let j = j0 + sl;
    let k = 4u * j;
    var v: vec4<f32>;
    if (VEC4) {
      // Lanes past the row's end (K < Kp, or the last step's spare lanes) load its last vec4,
      // always in bounds, and use zeros: a select, where a branch would diverge.
      v = select(vec4<f32>(0.0), vec4<f32>(x4[base / 4u + min(j, p.K / 4u - 1u)]), k < p.K);
    } else {
      v = vec4<f32>(xat(base, k), xat(base, k + 1u), xat(base, k + 2u), xat(base, k + 3u));
    }
    var scale = rowScale;
    if (PER_BLOCK) {
      var amax = max(max(abs(v.x), abs(v.y)), max(abs(v.z), abs(v.w)));
      amax = max(amax, subgroupShuffleXor(amax, 1u));
      amax = max(amax, subgroupShuffleXor(amax, 2u));
      amax = max(amax, subgroupShuffleXor(amax, 4u));
      scale = amax / 127.0;
    }
    let inv = select(0.0, 1.0 / scale, scale > 0.0);
    let q = vec4<i32>(q8(v.x, inv), q8(v.y, inv), q8(v.z, inv), q8(v.w, inv));
    var s = q.x + q.y + q.z + q.w;
    s += subgroupShuffleXor(s, 1u);
    s += subgroupShuffleXor(s, 2u);
    s += subgroupShuffleXor(s, 4u);
    if (live && j < words) {
      xq[m * words + j] = pack4(q.x, q.y, q.z, q.w);
      if (j % 8u == 0u) {
        xsum[m * blocks + j / 8u] = s;
        if (PER_BLOCK) { xs[m * blocks + j / 8u] = scale; }
      }
    }
  }
}

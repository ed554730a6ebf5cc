// attention.wgsl for CPU-emulated adapters: same contract (fused encoder attention over the QKV
// projection, padding mask, online softmax), same Params and bindings; each workgroup covers
// 2 WG queries.
//
// Each lane owns two queries, i and i + WG (a workgroup covers 2 WG queries). Keys and values do
// not go through workgroup memory, where every read of a staged value is a scalar load per lane
// on a CPU backend (see matmul_sg.wgsl): per block of KB keys, lane l loads key j0 + l and its
// value row itself, and the others get them with subgroupShuffle (a register permute). Per key
// and lane that is 2 HD / KB loads instead of 2 HD, and each shuffled key or value feeds both of
// the lane's queries: on lavapipe, which compiles a multiply-add to a multiply and an add, that
// took the attention 1.3-1.8x faster than one query per lane (same results bit for bit).
// Lane l works on key l % KB, so any subgroup size that is a multiple of KB works. Every lane
// runs every block (queries past T are clamped and not stored): shuffles need the whole subgroup.

struct Params { T: u32, H: u32, heads: u32, D: u32, scale: f32, win: u32 }

@group(0) @binding(0) var<uniform> p: Params;
// Viewed as vec4s: the head dim, H and 3H are multiples of 4 (src/ops/attention.ts checks), so
// every row and head starts on a vec4, and one load brings four values (on lavapipe a lane's load
// costs about the same for four values as for one).
@group(0) @binding(1) var<storage, read> qkv: array<vec4<T>>;
@group(0) @binding(2) var<storage, read> mask: array<u32>;
// MPNet's relative position bias (HAS_BIAS; placeholders are bound otherwise): table [buckets,
// heads], and the bucket of each distance j - i at buckets[j - i + T - 1]; added to the scaled score.
@group(0) @binding(4) var<storage, read> relTable: array<f32>;
@group(0) @binding(5) var<storage, read> relBuckets: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<T>>;

const MAX_D4 = 32u; // head dims up to 128
const KB = 8u;      // keys per block: one per lane of an 8-wide subgroup
override WG: u32 = 64u;
override HD: u32 = 32u;
override HAS_BIAS: bool = false;

fn rel_bias(h: u32, i: u32, j: u32) -> f32 {
  if (!HAS_BIAS) { return 0.0; }
  return relTable[relBuckets[j + p.T - 1u - i] * p.heads + h];
}

// Key j is within query i's window: |i - j| <= p.win (a local layer's; 0xffffffff for a global one).
fn near(i: u32, j: u32) -> bool { return max(i, j) - min(i, j) <= p.win; }

// Four values from element i (a multiple of 4).
fn ld4(i: u32) -> vec4<f32> { return vec4<f32>(qkv[i / 4u]); }

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_invocation_id) sl: u32) {
  let b = wg.z;
  let h = wg.y;
  let i = wg.x * 2u * WG + lid; // this lane's queries: i and i2
  let i2 = i + WG;
  let ic = min(i, p.T - 1u);
  let ic2 = min(i2, p.T - 1u);
  let row3 = 3u * p.H;
  let hOff = h * HD;
  let D4 = HD / 4u;
  let kl = sl % KB;
  var q: array<vec4<f32>, MAX_D4>;
  var q2: array<vec4<f32>, MAX_D4>;
  var acc: array<vec4<f32>, MAX_D4>;
  var acc2: array<vec4<f32>, MAX_D4>;
  for (var d = 0u; d < D4; d++) {
    acc[d] = vec4<f32>(0.0);
    acc2[d] = vec4<f32>(0.0);
    q[d] = ld4((b * p.T + ic) * row3 + hOff + 4u * d) * p.scale;
    q2[d] = ld4((b * p.T + ic2) * row3 + hOff + 4u * d) * p.scale;
  }
  var m = -3.402823e38;
  var l = 0.0;
  var m2 = -3.402823e38;
  var l2 = 0.0;
  for (var j0 = 0u; j0 < p.T; j0 += KB) {
    // This lane's key: row j0 + kl (clamped; dead past T or where the mask says padding).
    let j = j0 + kl;
    let jc = min(j, p.T - 1u);
    let mine = select(0u, mask[b * p.T + jc], j < p.T);
    let base = (b * p.T + jc) * row3 + hOff;
    var kv: array<vec4<f32>, MAX_D4>;
    for (var d = 0u; d < D4; d++) { kv[d] = ld4(base + p.H + 4u * d); }
    var s: array<f32, KB>;
    var s2: array<f32, KB>;
    var bmax = -3.402823e38;
    var bmax2 = -3.402823e38;
    for (var jj = 0u; jj < KB; jj++) {
      var dv = vec4<f32>(0.0);
      var dv2 = vec4<f32>(0.0);
      for (var d = 0u; d < D4; d++) { let k = subgroupShuffle(kv[d], jj); dv += q[d] * k; dv2 += q2[d] * k; }
      let live = subgroupShuffle(mine, jj) != 0u;
      let jk = min(j0 + jj, p.T - 1u); // clamped: a dead key's score is dropped anyway
      let ok = live && near(ic, jk);
      let ok2 = live && near(ic2, jk);
      s[jj] = select(-3.402823e38, dv.x + dv.y + dv.z + dv.w + rel_bias(h, ic, jk), ok);
      s2[jj] = select(-3.402823e38, dv2.x + dv2.y + dv2.z + dv2.w + rel_bias(h, ic2, jk), ok2);
      if (ok) { bmax = max(bmax, s[jj]); }
      if (ok2) { bmax2 = max(bmax2, s2[jj]); }
    }
    // The value rows reuse the key registers.
    for (var d = 0u; d < D4; d++) { kv[d] = ld4(base + 2u * p.H + 4u * d); }
    // A block with no live key changes nothing (bmax stays at the sentinel: every weight is 0).
    let mNew = max(m, bmax);
    let corr = exp(m - mNew);
    let mNew2 = max(m2, bmax2);
    let corr2 = exp(m2 - mNew2);
    l *= corr;
    l2 *= corr2;
    for (var d = 0u; d < D4; d++) { acc[d] *= corr; acc2[d] *= corr2; }
    for (var jj = 0u; jj < KB; jj++) {
      let w = select(0.0, exp(s[jj] - mNew), s[jj] > -3.0e38);
      let w2 = select(0.0, exp(s2[jj] - mNew2), s2[jj] > -3.0e38);
      l += w;
      l2 += w2;
      for (var d = 0u; d < D4; d++) { let v = subgroupShuffle(kv[d], jj); acc[d] += w * v; acc2[d] += w2 * v; }
    }
    m = mNew;
    m2 = mNew2;
  }
  if (i < p.T) {
    let inv = select(0.0, 1.0 / l, l > 0.0);
    for (var d = 0u; d < D4; d++) { out[((b * p.T + i) * p.H + hOff + 4u * d) / 4u] = vec4<T>(acc[d] * inv); }
  }
  if (i2 < p.T) {
    let inv2 = select(0.0, 1.0 / l2, l2 > 0.0);
    for (var d = 0u; d < D4; d++) { out[((b * p.T + i2) * p.H + hOff + 4u * d) / 4u] = vec4<T>(acc2[d] * inv2); }
  }
}

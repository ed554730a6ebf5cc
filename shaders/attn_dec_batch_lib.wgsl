// Batched decode attention: B sequences, one query row each, every sequence over its own region
// of one KV buffer and its own length. Imported by attn_dec_batch.wgsl (f16/f32 cache) and
// attn_dec_batch_q8.wgsl (int8 cache), which bind the cache and define
//   fn kload4(row: u32, d4: u32) -> vec4<f32>   // K[row, 4*d4 .. 4*d4+3], dequantized
//   fn vload(row: u32, d: u32) -> f32            // V[row, d], dequantized
// Cache rows: sequence b, KV head h, position t is row b * seqRows + h * cap + t (each sequence's
// region starts on a binding-aligned row, so its prefill binds it as a one-sequence cache).
//
// The same flash-decoding walk as attn_dec_lib.wgsl with T = 1 (see there for phases A-C), one
// workgroup per (split s, KV head and chunk of its query heads, sequence b): sequence b's row is at
// position pos[b] and sees keys [lo, pos[b]] (lo > 0 under a sliding window). The split length
// follows each sequence's own length, so uniforms and dispatch are the same at every step and
// splits past a short sequence find no keys. Kept apart from attn_dec_lib so that a one-sequence
// decode runs exactly the kernel it ran before.

struct Params { B: u32, nh: u32, nkv: u32, D: u32, cap: u32, seqRows: u32, GC: u32, hchunks: u32, nsplit: u32, window: u32, scale: f32, softcap: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<T>;          // [B, nh * D], roped
@group(0) @binding(2) var<storage, read> pos: array<u32>;      // pos[b] = position of sequence b's row
@group(0) @binding(3) var<storage, read_write> out: array<T>;  // [B, nh * D]
@group(0) @binding(4) var<storage, read_write> part: array<f32>; // [B, nh, nsplit, 2 + D]

const WG = 64u;
const BK = 64u;
const MAX_GD = 1024u;
const MAX_GC = 16u;
const PER = 16u;
const NEG = -3.402823e38;

var<workgroup> qs: array<f32, MAX_GD>;   // [heads][D], pre-scaled
var<workgroup> sc: array<f32, 1024>;     // [heads][BK] scores, then weights
var<workgroup> mrow: array<f32, MAX_GC>;
var<workgroup> lrow: array<f32, MAX_GC>;
var<workgroup> corr: array<f32, MAX_GC>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let s = wg.x;
  let kvh = wg.y / p.hchunks;
  let b = wg.z;
  let G = p.nh / p.nkv;
  let g0 = (wg.y % p.hchunks) * p.GC;
  let nr = min(p.GC, G - g0); // rows: query heads of this KV head's chunk
  let h0 = kvh * G + g0;
  let D = p.D;
  let D4 = D / 4u;
  let P = pos[b];
  var lo = 0u;
  if (p.window > 0u && P + 1u > p.window) { lo = P + 1u - p.window; }
  let kvLen = P + 1u;
  let splitLen = ((kvLen + p.nsplit - 1u) / p.nsplit + BK - 1u) / BK * BK;
  let s0 = max(lo, s * splitLen);
  let s1 = min(kvLen, (s + 1u) * splitLen);
  let qbase = (b * p.nh + h0) * D; // row r's q is at qbase + r * D
  for (var e = lid; e < nr * D; e += WG) { qs[e] = f32(q[qbase + e]) * p.scale; }
  if (lid < MAX_GC) {
    mrow[lid] = NEG;
    lrow[lid] = 0.0;
  }
  var acc: array<f32, PER>;
  for (var k = 0u; k < PER; k++) { acc[k] = 0.0; }
  workgroupBarrier();
  let row0 = b * p.seqRows + kvh * p.cap;
  for (var j0 = s0; j0 < s1; j0 += BK) {
    let j = j0 + lid;
    for (var r = 0u; r < nr; r++) {
      var v = NEG;
      if (j < s1) {
        var dv = vec4<f32>(0.0);
        for (var d4 = 0u; d4 < D4; d4++) {
          let qv = vec4<f32>(qs[r * D + 4u * d4], qs[r * D + 4u * d4 + 1u], qs[r * D + 4u * d4 + 2u], qs[r * D + 4u * d4 + 3u]);
          dv += qv * kload4(row0 + j, d4);
        }
        v = dv.x + dv.y + dv.z + dv.w;
        // Score soft-capping (Gemma 2's attn_logit_softcapping), as attn_dec_lib.wgsl on main does.
        if (p.softcap > 0.0) { v = p.softcap * tanh(clamp(v / p.softcap, -15.0, 15.0)); }
      }
      sc[r * BK + lid] = v;
    }
    workgroupBarrier();
    if (lid < nr) {
      var bm = NEG;
      for (var i = 0u; i < BK; i++) { bm = max(bm, sc[lid * BK + i]); }
      let mNew = max(mrow[lid], bm);
      let c = exp(mrow[lid] - mNew);
      var sum = 0.0;
      for (var i = 0u; i < BK; i++) {
        let v = sc[lid * BK + i];
        let w = select(0.0, exp(v - mNew), v > -3.0e38);
        sc[lid * BK + i] = w;
        sum += w;
      }
      lrow[lid] = lrow[lid] * c + sum;
      corr[lid] = c;
      mrow[lid] = mNew;
    }
    workgroupBarrier();
    let nb = min(BK, s1 - j0);
    for (var k = 0u; k < PER; k++) {
      let e = lid + k * WG;
      if (e < nr * D) {
        let r = e / D;
        let d = e % D;
        var a = acc[k] * corr[r];
        for (var i = 0u; i < nb; i++) { a += sc[r * BK + i] * vload(row0 + j0 + i, d); }
        acc[k] = a;
      }
    }
    workgroupBarrier();
  }
  for (var k = 0u; k < PER; k++) {
    let e = lid + k * WG;
    if (e < nr * D) {
      let r = e / D;
      let d = e % D;
      if (p.nsplit == 1u) {
        out[qbase + e] = T(acc[k] / lrow[r]);
      } else {
        // part[b, h, s, 2 + D], h = h0 + r: (b * nh + h) = (qbase + e) / D.
        let at = (((qbase + e) / D) * p.nsplit + s) * (D + 2u);
        part[at + 2u + d] = acc[k];
        if (d == 0u) {
          part[at] = mrow[r];
          part[at + 1u] = lrow[r];
        }
      }
    }
  }
}

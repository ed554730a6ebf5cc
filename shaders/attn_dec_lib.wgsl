// Decoder attention over a KV cache (prefill and decode), flash-decoding style. Imported by
// attn_dec.wgsl (f16/f32 cache) and attn_dec_q8.wgsl (int8 cache), which bind the cache and define
//   fn kload4(row: u32, d4: u32) -> vec4<f32>   // K[row, 4*d4 .. 4*d4+3], dequantized
//   fn vload(row: u32, d: u32) -> f32            // V[row, d], dequantized
// so the cache is dequantized in registers, never written back as floats.
//
// One workgroup per (split s, KV head and chunk of its query heads, tile of QT query rows). Its
// rows are the (query row, head) pairs of the tile: the query heads that share a KV head
// (grouped-query attention) and, in a prefill, several consecutive query rows share every key and
// value load (GQA without materialising repeated K/V; a prefill reads the cache once per tile, not
// once per token). The workgroup walks keys [s*splitLen, (s+1)*splitLen) clipped to what its rows
// may see, in blocks of BK = WG keys; each row masks the keys it may not see (causal: positions
// <= its own; a sliding window keeps the last `window`); with softcap > 0 a score s becomes
// softcap tanh(s / softcap) before the softmax (Gemma 2's attn_logit_softcapping):
//   A. thread i scores key j0 + i against each row (scores in workgroup memory);
//   B. one thread per row updates its running max m and sum l (online softmax) and turns the
//      block's scores into weights;
//   C. each thread owns up to 16 output values (row, d) and adds the block's weighted values:
//      neighbouring threads read neighbouring d, so V rows are read coalesced.
// With nsplit == 1 the result goes straight to out; otherwise each split writes (m, l, acc) to
// `part` and attn_combine.wgsl merges the splits, so a long context is spread over many workgroups
// instead of walked serially by one. A decode step always runs the same nsplit workgroups per head
// group; the split length follows the context (read from `pos`), so its uniforms and dispatch are
// the same at every position, and splits past a short context simply find no keys.

struct Params { T: u32, nh: u32, nkv: u32, D: u32, cap: u32, GC: u32, hchunks: u32, QT: u32, nsplit: u32, window: u32, scale: f32, softcap: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<T>;          // [T, nh * D], roped
@group(0) @binding(2) var<storage, read> pos: array<u32>;      // pos[0] = position of query row 0
@group(0) @binding(3) var<storage, read_write> out: array<T>;  // [T, nh * D]
@group(0) @binding(4) var<storage, read_write> part: array<f32>; // [T, nh, nsplit, 2 + D]

const WG = 64u;
const BK = 64u;        // keys per block: one per thread in phase A
const MAX_GD = 1024u;  // rows x head dim per workgroup (QT * GC * D)
const MAX_GC = 16u;    // rows per workgroup (QT * GC)
const PER = 16u;       // MAX_GD / WG outputs per thread
const NEG = -3.402823e38;

var<workgroup> qs: array<f32, MAX_GD>;          // [rows][D], pre-scaled by 1/sqrt(D)
var<workgroup> sc: array<f32, 1024>;            // [rows][BK] scores, then weights
var<workgroup> mrow: array<f32, MAX_GC>;
var<workgroup> lrow: array<f32, MAX_GC>;
var<workgroup> corr: array<f32, MAX_GC>;

// Row r of a workgroup: query row t0 + r / gn, head g0 + r % gn of its KV head's group.
struct Row { t: u32, qoff: u32, lo: u32, hi: u32 }

fn row_of(r: u32, t0: u32, gn: u32, h0: u32) -> Row {
  let t = t0 + r / gn;
  let P = pos[0] + t;
  var lo = 0u;
  if (p.window > 0u && P + 1u > p.window) { lo = P + 1u - p.window; }
  return Row(t, (t * p.nh + h0 + r % gn) * p.D, lo, P + 1u);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let s = wg.x;
  let kvh = wg.y / p.hchunks;
  let G = p.nh / p.nkv;
  let g0 = (wg.y % p.hchunks) * p.GC;
  let gn = min(p.GC, G - g0);
  let h0 = kvh * G + g0;
  let t0 = wg.z * p.QT;
  let nr = min(p.QT, p.T - t0) * gn; // rows in this workgroup
  let D = p.D;
  let D4 = D / 4u;
  // Split length: the whole context in BK-key blocks, shared out evenly over the splits.
  let kvLen = pos[0] + p.T;
  let splitLen = ((kvLen + p.nsplit - 1u) / p.nsplit + BK - 1u) / BK * BK;
  // Keys any row sees: from the first row's window start to the last row's position.
  let first = row_of(0u, t0, gn, h0);
  let last = row_of(nr - 1u, t0, gn, h0);
  let s0 = max(first.lo, s * splitLen);
  let s1 = min(last.hi, (s + 1u) * splitLen);
  for (var e = lid; e < nr * D; e += WG) { qs[e] = f32(q[row_of(e / D, t0, gn, h0).qoff + e % D]) * p.scale; }
  if (lid < MAX_GC) {
    mrow[lid] = NEG;
    lrow[lid] = 0.0;
  }
  var acc: array<f32, PER>;
  for (var k = 0u; k < PER; k++) { acc[k] = 0.0; }
  workgroupBarrier();
  let row0 = kvh * p.cap;
  for (var j0 = s0; j0 < s1; j0 += BK) {
    // A: scores of key j0 + lid, masked per row.
    let j = j0 + lid;
    for (var r = 0u; r < nr; r++) {
      let row = row_of(r, t0, gn, h0);
      var v = NEG;
      if (j < s1 && j >= row.lo && j < row.hi) {
        var dv = vec4<f32>(0.0);
        for (var d4 = 0u; d4 < D4; d4++) {
          let qv = vec4<f32>(qs[r * D + 4u * d4], qs[r * D + 4u * d4 + 1u], qs[r * D + 4u * d4 + 2u], qs[r * D + 4u * d4 + 3u]);
          dv += qv * kload4(row0 + j, d4);
        }
        v = dv.x + dv.y + dv.z + dv.w;
        if (p.softcap > 0.0) { v = p.softcap * tanh(clamp(v / p.softcap, -15.0, 15.0)); }
      }
      sc[r * BK + lid] = v;
    }
    workgroupBarrier();
    // B: online softmax, one thread per row. A row with no visible key in this block keeps its state.
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
    // C: weighted values.
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
      let row = row_of(r, t0, gn, h0);
      if (p.nsplit == 1u) {
        out[row.qoff + d] = T(acc[k] / lrow[r]);
      } else {
        // part[t, h, s, 2 + D]: the row's qoff / D is its (t, h) index.
        let at = ((row.qoff / D) * p.nsplit + s) * (D + 2u);
        part[at + 2u + d] = acc[k];
        if (d == 0u) {
          part[at] = mrow[r];
          part[at + 1u] = lrow[r];
        }
      }
    }
  }
}

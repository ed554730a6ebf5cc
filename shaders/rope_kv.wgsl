// Decoder attention inputs, one workgroup per (token t, head slot): takes the fused projection
// qkv [T, (nh + 2 nkv) * D] (Q heads | K heads | V heads along the row) and
//   - Q heads (slot < nh): optional RMSNorm (q_norm: per head as Qwen3's, or with NORM_ALL over all
//     of q as OLMo 2's), RoPE, written to q [T, nh*D];
//   - K/V heads (slot >= nh): K normed (k_norm) and roped, V as is, both written into the KV cache
//     at position pos0 + t, quantized to int8 per (token, head) for the int8 cache.
// RoPE is Hugging Face's rotate-half on the first `rot` dimensions of a head (rot = D unless the
// model rotates part of the head, Phi-4-mini's partial_rotary_factor; 0 for a NoPE layer,
// SmolLM3's): dimension i < rot/2 pairs with i + rot/2, angle = position * inv_freq[i], read from a
// cos | sin table [cap, D] (cos at i, sin at D/2 + i) computed once on the CPU (no transcendentals
// here, and the angles are exact where an f32 product of a large position would not be). Both are
// multiplied by `mscale` (longrope's attention factor; 1 otherwise), as transformers scales cos and sin.
// pos0 comes from a storage buffer the CPU writes before each submit, so a decode step's uniforms
// (and so its bind groups) are the same at every position.
// Cache layout, per layer: [nkv][cap][D] (a head's keys contiguous, in position order).

struct Params { T: u32, nh: u32, nkv: u32, D: u32, cap: u32, eps: f32, rot: u32, mscale: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<T>;
@group(0) @binding(2) var<storage, read> pos: array<u32>;     // pos[0] = position of row 0
@group(0) @binding(3) var<storage, read> rope: array<f32>;    // [cap, D]: cos | sin
@group(0) @binding(4) var<storage, read> qnorm: array<T>;     // [D], NORM_ALL [nh * D] (HAS_NORM)
@group(0) @binding(5) var<storage, read> knorm: array<T>;     // [D], NORM_ALL [nkv * D] (HAS_NORM)
@group(0) @binding(6) var<storage, read_write> q: array<T>;   // [T, nh * D]
@group(0) @binding(7) var<storage, read_write> kf: array<KV>; // float cache: [nkv, cap, D]
@group(0) @binding(8) var<storage, read_write> vf: array<KV>;
@group(0) @binding(9) var<storage, read_write> kq: array<u32>; // int8 cache: [nkv, cap, D/4] packed
@group(0) @binding(10) var<storage, read_write> vq: array<u32>;
@group(0) @binding(11) var<storage, read_write> ks: array<f32>; // [nkv, cap] scales
@group(0) @binding(12) var<storage, read_write> vs: array<f32>;

override WG: u32 = 64u;
override HAS_NORM: bool = false;
override NORM_ALL: bool = false; // the norm's mean over every head of q (of k), not over one head
// Batched decode (src/generate/batch.ts): > 0 makes row t sequence t, at position pos[t], its
// cache region starting at row t * SEQ_ROWS of the [B * SEQ_ROWS, D] cache buffers.
override SEQ_ROWS: u32 = 0u;
const MAX_D = 256u;

var<workgroup> xs: array<f32, MAX_D>; // the head being prepared
var<workgroup> red: array<f32, WG>;

fn wg_sum(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

fn wg_max(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

// Loads head `head` of the q or k section (starting at `sec`, `span` values) into xs, applies the
// optional RMSNorm, then RoPE at absolute position `at`.
fn prepare(sec: u32, span: u32, head: u32, at: u32, isQ: bool, lid: u32) {
  let D = p.D;
  let src = sec + head * D;
  var ss = 0.0;
  for (var d = lid; d < D; d += WG) {
    let v = f32(qkv[src + d]);
    xs[d] = v;
    ss += v * v;
  }
  workgroupBarrier();
  if (HAS_NORM) {
    // Uniform: HAS_NORM and NORM_ALL are overrides, so every thread takes the same branch and
    // barriers hold. NORM_ALL reads the whole section again: every head's workgroup needs its sum.
    var n = D;
    var woff = 0u;
    if (NORM_ALL) {
      ss = 0.0;
      for (var d = lid; d < span; d += WG) {
        let v = f32(qkv[sec + d]);
        ss += v * v;
      }
      n = span;
      woff = head * D;
    }
    let inv = inverseSqrt(wg_sum(ss, lid) / f32(n) + p.eps);
    for (var d = lid; d < D; d += WG) {
      let g = select(f32(knorm[woff + d]), f32(qnorm[woff + d]), isQ);
      // Round through T as transformers does (the norm's output is in the model's dtype).
      xs[d] = f32(T(xs[d] * inv * g));
    }
    workgroupBarrier();
  }
  let half = p.rot / 2u;
  var a: array<f32, 4>; // pairs this thread rotates: rot/2 / WG, at most 4 (D <= 256, WG >= 32)
  var b: array<f32, 4>;
  var n = 0u;
  for (var i = lid; i < half; i += WG) {
    let c = rope[at * D + i] * p.mscale;
    let s = rope[at * D + D / 2u + i] * p.mscale;
    let x0 = xs[i];
    let x1 = xs[i + half];
    a[n] = x0 * c - x1 * s;
    b[n] = x1 * c + x0 * s;
    n++;
  }
  workgroupBarrier();
  n = 0u;
  for (var i = lid; i < half; i += WG) {
    xs[i] = a[n];
    xs[i + half] = b[n];
    n++;
  }
  workgroupBarrier();
}

// int8 quantization of xs (one scale per token and head, max |x| / 127): the scale, with
// inv_scale() for the codes. Callers write the words themselves: core WGSL cannot pass a storage
// pointer to a function.
fn absmax(lid: u32) -> f32 {
  var m = 0.0;
  for (var d = lid; d < p.D; d += WG) { m = max(m, abs(xs[d])); }
  return wg_max(m, lid);
}

// Four codes of xs[4w .. 4w+3] packed into one word, lowest byte first.
fn quant_word(w: u32, inv: f32) -> u32 {
  var word = 0u;
  for (var k = 0u; k < 4u; k++) {
    let c = i32(clamp(round(xs[4u * w + k] * inv), -127.0, 127.0));
    word |= (u32(c) & 0xffu) << (8u * k);
  }
  return word;
}

// The part both caches share. Slot < nh: Q head `slot` of row t, normed, roped and written to q;
// returns false. Otherwise K head slot - nh, normed and roped, is left in xs for the caller to
// write into its cache; returns true. (Uniform: slot is the workgroup's, so every thread returns
// the same and the caller's barriers hold.)
fn q_or_k(slot: u32, t: u32, lid: u32) -> bool {
  let row = t * (p.nh + 2u * p.nkv) * p.D;
  let at = row_pos(t);
  if (slot < p.nh) {
    prepare(row, p.nh * p.D, slot, at, true, lid);
    for (var d = lid; d < p.D; d += WG) { q[(t * p.nh + slot) * p.D + d] = T(xs[d]); }
    return false;
  }
  prepare(row + p.nh * p.D, p.nkv * p.D, slot - p.nh, at, false, lid);
  return true;
}

// Where V head h of row t starts in qkv, and the cache row [h, pos0 + t] both go to.
fn v_src(t: u32, h: u32) -> u32 { return t * (p.nh + 2u * p.nkv) * p.D + (p.nh + p.nkv + h) * p.D; }
fn cache_row(t: u32, h: u32) -> u32 { return t * SEQ_ROWS + h * p.cap + row_pos(t); }
// Row t's position: pos0 + t, or a batched sequence's own pos[t].
fn row_pos(t: u32) -> u32 {
  if (SEQ_ROWS > 0u) { return pos[t]; }
  return pos[0] + t;
}

@compute @workgroup_size(WG)
fn float_cache(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  if (!q_or_k(wg.x, wg.y, lid)) { return; }
  let h = wg.x - p.nh;
  let dst = cache_row(wg.y, h) * p.D;
  for (var d = lid; d < p.D; d += WG) { kf[dst + d] = KV(xs[d]); }
  let vsrc = v_src(wg.y, h);
  for (var d = lid; d < p.D; d += WG) { vf[dst + d] = KV(f32(qkv[vsrc + d])); }
}

@compute @workgroup_size(WG)
fn int8_cache(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  if (!q_or_k(wg.x, wg.y, lid)) { return; }
  let h = wg.x - p.nh;
  let crow = cache_row(wg.y, h);
  let D4 = p.D / 4u;
  let km = absmax(lid);
  let kinv = select(0.0, 127.0 / km, km > 0.0);
  for (var w = lid; w < D4; w += WG) { kq[crow * D4 + w] = quant_word(w, kinv); }
  if (lid == 0u) { ks[crow] = km / 127.0; }
  workgroupBarrier();
  let vsrc = v_src(wg.y, h);
  for (var d = lid; d < p.D; d += WG) { xs[d] = f32(qkv[vsrc + d]); }
  workgroupBarrier();
  let vm = absmax(lid);
  let vinv = select(0.0, 127.0 / vm, vm > 0.0);
  for (var w = lid; w < D4; w += WG) { vq[crow * D4 + w] = quant_word(w, vinv); }
  if (lid == 0u) { vs[crow] = vm / 127.0; }
}

// Token sampling for generation in one workgroup, in Hugging Face transformers' order: logit bias
// and the constraint mask (a disallowed token's score is -inf), repetition penalty, then argmax (entry `argmax`) or temperature, top-k, top-p, min-p and a seeded draw
// (entry `sample`). Only the token id leaves: it goes to next[0] (the next decode step's input), to
// ids[step % ring], and into the seen bitset.
//
// Every filter keeps the tokens at or above a threshold z, so the kept set is always
// { i : key(z_i) >= lo } for one u32 `lo`, where key() maps f32 to u32 preserving order. Top-k and
// top-p find their thresholds by binary search over the bits of that key, most significant first:
// each probe is a parallel count (top-k) or mass sum (top-p) over the vocabulary reduced across the
// workgroup, and 32 probes give the exact threshold value (ties with it kept). Probes whose answer
// follows from the range of keys cost no pass. The sampler runs once per generated token, so one
// workgroup is enough; lanes stride the vocabulary so loads coalesce.

// The seed is not here but in step[1], written with the step: a call's own (often random) seed in
// the uniform would make a new uniform buffer and bind group for every call.
struct Params {
  vocab: u32,
  ring: u32,        // length of ids
  top_k: u32,       // 0 = off (also when >= vocab)
  inv_temp: f32,    // 1 / temperature (sample only)
  top_p: f32,       // 1 = off
  min_p: f32,       // 0 = off
  penalty: f32,     // 1 = off
  inv_penalty: f32, // 1 / penalty
  flags: u32,       // MASK | BIAS | LOGPROBS
  top_n: u32,       // top logprobs written per step (LOGPROBS), at most TOP_MAX
  lp_inv_temp: f32, // 1 / temperature for logprobs (1 when greedy)
  neg_inf: f32,     // -inf, the score of a masked token (a constant -inf does not compile)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<T>;       // [vocab]
@group(0) @binding(2) var<storage, read_write> seen: array<u32>; // [ceil(vocab / 32)] bitset
@group(0) @binding(3) var<storage, read> step: array<u32>;       // step[0]: this step's index, step[1]: the seed
@group(0) @binding(4) var<storage, read_write> next: array<u32>; // [1]
@group(0) @binding(5) var<storage, read_write> ids: array<u32>;  // [ring]
@group(0) @binding(6) var<storage, read> mask: array<u32>;       // [ceil(vocab / 32)] bit set = allowed (MASK)
@group(0) @binding(7) var<storage, read> bias: array<f32>;       // [vocab] added to the logits (BIAS)
// [ring * LPW] per step (LOGPROBS): chosen id, its logprob, then top_n (id, logprob) pairs; logprobs as f32 bits
@group(0) @binding(8) var<storage, read_write> lp: array<u32>;

override WG: u32 = 256u; // a power of two (tree reductions)
const NONE = 0xffffffffu;
const OP_SUM = 0u;
const OP_MAX = 1u;
const OP_MIN = 2u;
const MASK = 1u;
const BIAS = 2u;
const LOGPROBS = 4u;
const TOP_MAX = 20u;
const LPW = 2u + 2u * TOP_MAX;
var<workgroup> red_u: array<u32, WG>;
// The logits row sampled, and the offset of its RNG counter from step[0]: 0 for the one-row entries,
// the workgroup's row for `sample_rows` (speculative verification, one row per drafted position).
var<private> row: u32;
var<workgroup> red_f: array<f32, WG>;

// --- the RNG: exactly samplerUniform() in src/ops/sample.ts ---

// lowbias32 (Chris Wellons): a bijective 32-bit mix.
fn mix32(v: u32) -> u32 {
  var x = v;
  x ^= x >> 16u;
  x *= 0x7feb352du;
  x ^= x >> 15u;
  x *= 0x846ca68bu;
  x ^= x >> 16u;
  return x;
}

// A uniform in [0, 1) with 24 bits, exact in f32: distinct steps of one seed hash distinctly.
fn sampler_uniform(seed: u32, n: u32) -> f32 {
  return f32(mix32(mix32(seed ^ 0x9e3779b9u) + n) >> 8u) * (1.0 / 16777216.0);
}

// --- values per token ---

// The logit after the repetition penalty: a seen token's score is divided by the penalty when
// positive, multiplied when negative. Multiplying by the reciprocal keeps z bit-exact on every GPU:
// WGSL division may be off by 2.5 ulp, multiplication is correctly rounded.
// The bias is added first (a logits processor, like HF's SequenceBias), and a token the constraint
// disallows scores -inf, which no filter keeps and the draw never picks.
fn score(i: u32) -> f32 {
  if ((p.flags & MASK) != 0u && (mask[i >> 5u] & (1u << (i & 31u))) == 0u) {
    return p.neg_inf;
  }
  var s = f32(logits[row * p.vocab + i]);
  if ((p.flags & BIAS) != 0u) { s += bias[i]; }
  if (p.penalty != 1.0 && (seen[i >> 5u] & (1u << (i & 31u))) != 0u) {
    return select(s * p.inv_penalty, s * p.penalty, s < 0.0);
  }
  return s;
}

fn zval(i: u32) -> f32 {
  return score(i) * p.inv_temp;
}

// f32 -> u32 in the same order: negative floats flip every bit, the others flip the sign bit.
// -0 takes +0's key so that equal values have equal keys.
fn key(x: f32) -> u32 {
  let b = bitcast<u32>(x);
  if (b == 0x80000000u) { return b; }
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

fn unkey(k: u32) -> f32 {
  return bitcast<f32>(select(~k, k & 0x7fffffffu, (k & 0x80000000u) != 0u));
}

// --- workgroup reductions: every lane gets the result through workgroupUniformLoad, so callers
// may branch on it around later barriers ---

fn combine(op: u32, a: u32, b: u32) -> u32 {
  switch op {
    case OP_SUM: { return a + b; }
    case OP_MAX: { return max(a, b); }
    default: { return min(a, b); }
  }
}

fn reduce_u(op: u32, v: u32, lid: u32) -> u32 {
  red_u[lid] = v;
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (lid < s) { red_u[lid] = combine(op, red_u[lid], red_u[lid + s]); }
  }
  let r = workgroupUniformLoad(&red_u[0]);
  workgroupBarrier(); // everyone has read red_u[0] before the next reduction overwrites it
  return r;
}

fn sum_f(v: f32, lid: u32) -> f32 {
  red_f[lid] = v;
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (lid < s) { red_f[lid] += red_f[lid + s]; }
  }
  let r = workgroupUniformLoad(&red_f[0]);
  workgroupBarrier();
  return r;
}

// Inclusive prefix sum over lanes (Hillis-Steele). red_f keeps every lane's result for the caller.
fn prefix_sum(v: f32, lid: u32) -> f32 {
  red_f[lid] = v;
  for (var off = 1u; off < WG; off <<= 1u) {
    workgroupBarrier();
    var add = 0.0;
    if (lid >= off) { add = red_f[lid - off]; }
    workgroupBarrier();
    red_f[lid] += add;
  }
  workgroupBarrier();
  return red_f[lid];
}

// --- logprobs: log softmax of score * lp_inv_temp (after bias, mask and penalty; before top-k/p) ---

fn zlp(i: u32) -> f32 {
  return score(i) * p.lp_inv_temp;
}

// Writes the chosen token's logprob and the top_n (id, logprob) in order (highest first, lowest id
// on ties). Runs before emit() marks the chosen token seen, so its penalty is the one it was drawn with.
fn write_logprobs(chosen: u32, lid: u32) {
  var hi = 0u;
  for (var i = lid; i < p.vocab; i += WG) { hi = max(hi, key(zlp(i))); }
  let zmax = unkey(reduce_u(OP_MAX, hi, lid));
  var m = 0.0;
  for (var i = lid; i < p.vocab; i += WG) { m += exp(zlp(i) - zmax); }
  let lse = zmax + log(sum_f(m, lid));
  let base = (step[0] % p.ring) * LPW;
  if (lid == 0u) {
    lp[base] = chosen;
    lp[base + 1u] = bitcast<u32>(zlp(chosen) - lse);
  }
  // Selection by rounds: each takes the best (key, lowest index) strictly after the previous one.
  var prev_k = NONE;
  var prev_i = NONE;
  for (var n = 0u; n < min(p.top_n, TOP_MAX); n++) {
    var best = 0u;
    for (var i = lid; i < p.vocab; i += WG) {
      let k = key(zlp(i));
      if (k < prev_k || (k == prev_k && i > prev_i && prev_i != NONE)) { best = max(best, k); }
    }
    let bk = reduce_u(OP_MAX, best, lid);
    var first = NONE;
    for (var i = lid; i < p.vocab; i += WG) {
      let k = key(zlp(i));
      if (k == bk && (k < prev_k || (i > prev_i && prev_i != NONE))) { first = i; break; }
    }
    let bi = reduce_u(OP_MIN, first, lid);
    if (lid == 0u) {
      lp[base + 2u + 2u * n] = bi;
      lp[base + 3u + 2u * n] = bitcast<u32>(unkey(bk) - lse);
    }
    prev_k = bk;
    prev_i = bi;
  }
}

// --- the sampled id goes out ---

fn emit(id: u32, lid: u32) {
  if ((p.flags & LOGPROBS) != 0u) { write_logprobs(id, lid); }
  // Every lane has finished reading seen: emit follows a reduction, whose barriers order it.
  if (lid == 0u) {
    next[0] = id;
    ids[step[0] % p.ring] = id;
    seen[id >> 5u] |= 1u << (id & 31u);
  }
}

@compute @workgroup_size(WG)
fn argmax(@builtin(local_invocation_index) lid: u32) {
  var best = 0u;
  for (var i = lid; i < p.vocab; i += WG) { best = max(best, key(score(i))); }
  let top = reduce_u(OP_MAX, best, lid);
  var first = NONE;
  for (var i = lid; i < p.vocab; i += WG) {
    if (key(score(i)) == top) { first = i; break; }
  }
  emit(reduce_u(OP_MIN, first, lid), lid);
}

// --- sampling: filters ---

// The k-th largest z: the largest key t with count(key >= t) >= top_k.
fn top_k_threshold(bottom: u32, top: u32, lid: u32) -> u32 {
  var t = 0u;
  for (var bit = 0x80000000u; bit != 0u; bit >>= 1u) {
    let c = t | bit;
    if (c <= bottom) { t = c; continue; } // every token is at or above c
    if (c > top) { continue; }             // none is
    var n = 0u;
    for (var i = lid; i < p.vocab; i += WG) { n += select(0u, 1u, key(zval(i)) >= c); }
    if (reduce_u(OP_SUM, n, lid) >= p.top_k) { t = c; }
  }
  return t;
}

// Unnormalized probability mass of the tokens with key >= c.
fn mass_from(c: u32, zmax: f32, lid: u32) -> f32 {
  var m = 0.0;
  for (var i = lid; i < p.vocab; i += WG) {
    let z = zval(i);
    if (key(z) >= c) { m += exp(z - zmax); }
  }
  return sum_f(m, lid);
}

// Top-p over the kept tokens (key >= lo): the largest key t whose tokens at or above it hold at
// least top_p of the kept mass. That is the smallest set of highest tokens reaching top_p.
fn top_p_threshold(lo: u32, top: u32, zmax: f32, lid: u32) -> u32 {
  let want = p.top_p * mass_from(lo, zmax, lid);
  var t = 0u;
  for (var bit = 0x80000000u; bit != 0u; bit >>= 1u) {
    let c = t | bit;
    if (c <= lo) { t = c; continue; } // all the kept mass
    if (c > top) { continue; }        // none of it
    if (mass_from(c, zmax, lid) >= want) { t = c; }
  }
  return t;
}

// Min-p keeps prob >= min_p * (max prob), that is exp(z - zmax) >= min_p (the normalization
// cancels): the new threshold is the lowest kept key that passes.
fn min_p_threshold(lo: u32, zmax: f32, lid: u32) -> u32 {
  var m = NONE;
  for (var i = lid; i < p.vocab; i += WG) {
    let z = zval(i);
    let k = key(z);
    if (k >= lo && exp(z - zmax) >= p.min_p) { m = min(m, k); }
  }
  return max(lo, reduce_u(OP_MIN, m, lid));
}

// --- sampling: the draw ---

// Walk the kept tokens in index order accumulating exp(z - zmax); the first whose running mass
// exceeds u * total is drawn. Each lane owns a contiguous chunk: a prefix sum over chunk masses
// finds the chunk the draw lands in, and that lane walks it.
fn draw(lo: u32, zmax: f32, lid: u32) -> u32 {
  let chunk = (p.vocab + WG - 1u) / WG;
  let begin = min(lid * chunk, p.vocab);
  let end = min(begin + chunk, p.vocab);
  var mass = 0.0;
  var last = NONE; // the chunk's last kept token with mass (a -inf logit is never drawn)
  for (var i = begin; i < end; i++) {
    let z = zval(i);
    if (key(z) >= lo) {
      let w = exp(z - zmax);
      mass += w;
      if (w > 0.0) { last = i; }
    }
  }
  let incl = prefix_sum(mass, lid);
  var excl = 0.0;
  if (lid > 0u) { excl = red_f[lid - 1u]; } // exactly the previous lane's incl: chunks tile [0, total)
  let total = workgroupUniformLoad(&red_f[WG - 1u]);
  let aim = sampler_uniform(step[1], step[0] + row) * total;
  var pick = NONE;
  if (excl <= aim && aim < incl) {
    let r = aim - excl;
    var acc = 0.0;
    pick = last; // rounding guard
    for (var i = begin; i < end; i++) {
      let z = zval(i);
      if (key(z) >= lo) {
        acc += exp(z - zmax);
        if (acc > r) { pick = i; break; }
      }
    }
  }
  let drawn = reduce_u(OP_MIN, pick, lid);
  // u * total rounded up to total, so no chunk owns it: the last kept token with mass.
  let fallback = reduce_u(OP_MAX, select(last + 1u, 0u, last == NONE), lid) - 1u;
  return select(drawn, fallback, drawn == NONE);
}

// The token drawn from the row's logits after every filter (the kept tokens are key(z) >= kept).
fn sampled(lid: u32) -> u32 {
  // The range of keys: the top anchors exp(z - zmax), and both ends settle probes without a pass.
  var hi = 0u;
  var low = NONE;
  for (var i = lid; i < p.vocab; i += WG) {
    let k = key(zval(i));
    hi = max(hi, k);
    low = min(low, k);
  }
  let top = reduce_u(OP_MAX, hi, lid);
  var kept = reduce_u(OP_MIN, low, lid);
  let zmax = unkey(top);
  if (p.top_k != 0u) { kept = top_k_threshold(kept, top, lid); }
  if (p.top_p < 1.0) { kept = top_p_threshold(kept, top, zmax, lid); }
  if (p.min_p > 0.0) { kept = min_p_threshold(kept, zmax, lid); }
  return draw(kept, zmax, lid);
}

@compute @workgroup_size(WG)
fn sample(@builtin(local_invocation_index) lid: u32) {
  emit(sampled(lid), lid);
}

// Speculative verification with sampling (src/ops/verify.ts): one workgroup per row of logits
// [rows, vocab], row r drawn exactly as `sample` draws token step[0] + r, written to ids[1 + r]
// (ids[0] is left for the accepted count). Nothing else is written: the kept tokens are known only
// after verify.wgsl's `accept` compares the drafts with these draws.
@compute @workgroup_size(WG)
fn sample_rows(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  row = wg.x;
  let id = sampled(lid);
  if (lid == 0u) { ids[1u + row] = id; }
}

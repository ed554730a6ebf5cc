// Greedy verification of drafted tokens (speculative decoding), on the GPU: the target ran
// [last, d_1 .. d_k] in one forward, giving logits for k + 1 positions. Entry `argmax_rows` (one
// workgroup per row) writes each row's argmax to out[1 + row], lowest index on ties and with the
// same f32 ordering as sample.wgsl's argmax, so a verified token is the token greedy decoding picks.
// Entry `accept` (one invocation, after it) writes the accepted count to out[0]: the longest prefix
// of the drafts equal to the target's argmax. The tokens kept are d_1 .. d_n then out[1 + n].

struct Params {
  vocab: u32,
  rows: u32, // k + 1
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<T>;      // [rows, vocab]
@group(0) @binding(2) var<storage, read> draft: array<u32>;     // [>= rows - 1] d_1 .. d_k
@group(0) @binding(3) var<storage, read_write> out: array<u32>; // [1 + rows]

override WG: u32 = 256u; // a power of two (tree reduction)

var<workgroup> red: array<u32, WG>;

// f32 to u32 preserving order (as sample.wgsl's key).
fn key(x: f32) -> u32 {
  let b = bitcast<u32>(x);
  if (b == 0x80000000u) { return b; }
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

fn reduce(is_max: bool, v: u32, lid: u32) -> u32 {
  red[lid] = v;
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (lid < s) { red[lid] = select(min(red[lid], red[lid + s]), max(red[lid], red[lid + s]), is_max); }
  }
  let r = workgroupUniformLoad(&red[0]);
  workgroupBarrier();
  return r;
}

@compute @workgroup_size(WG)
fn argmax_rows(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let base = wg.x * p.vocab;
  var best = 0u;
  for (var i = lid; i < p.vocab; i += WG) { best = max(best, key(f32(logits[base + i]))); }
  let top = reduce(true, best, lid);
  var first = 0xffffffffu;
  for (var i = lid; i < p.vocab; i += WG) {
    if (key(f32(logits[base + i])) == top) { first = i; break; }
  }
  let id = reduce(false, first, lid);
  if (lid == 0u) { out[1u + wg.x] = id; }
}

@compute @workgroup_size(1)
fn accept() {
  var n = 0u;
  while (n + 1u < p.rows && draft[n] == out[1u + n]) { n++; }
  out[0] = n;
}

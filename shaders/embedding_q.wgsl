// Embedding gather from a quantized table (layout: src/quant/layout.ts): out[t, k] = the
// dequantized value of row ids[t], column k. A tied LM head's table stays quantized once, for the
// gather and for the head's matmul, instead of beside a float copy. Row chunks work as in
// embedding.wgsl: each chunk's dispatch writes the tokens whose id falls in [vOff, vOff + vocab).

struct Params { tokens: u32, dim: u32, Kp: u32, groups: u32, vocab: u32, vOff: u32, vTotal: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> w: array<u32>;      // codes [vocab, Kp * BITS / 32]
@group(0) @binding(3) var<storage, read> scales: array<T>;   // [vocab, groups]
@group(0) @binding(4) var<storage, read> zeros: array<T>;    // [vocab, groups] (asymmetric)
@group(0) @binding(5) var<storage, read_write> out: array<T>;

override WG: u32 = 256u;
override BITS: u32 = 8u;
override SYM: bool = true;
override G: u32 = 32u; // group size along k

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.tokens * p.dim) { return; }
  let t = i / p.dim;
  let k = i - t * p.dim;
  let id = ids[t];
  if (id >= p.vTotal) {
    if (p.vOff == 0u) { out[i] = T(0.0); } // the first chunk owns the zero rows
    return;
  }
  if (id < p.vOff || id - p.vOff >= p.vocab) { return; }
  let n = id - p.vOff;
  var q: f32;
  var zero: f32;
  if (BITS == 8u) {
    let word = w[n * (p.Kp / 4u) + k / 4u];
    q = f32(i32(word << (24u - 8u * (k % 4u))) >> 24u); // sign-extended byte k % 4
    zero = 0.0;
  } else {
    // int4: word j holds k = 8j..8j+7; byte b has element 8j+b low, 8j+4+b high.
    let word = w[n * (p.Kp / 8u) + k / 8u];
    let e = k % 8u;
    let shift = 8u * (e % 4u) + 4u * (e / 4u);
    q = f32((word >> shift) & 0xfu);
    zero = 8.0;
  }
  let g = n * p.groups + k / G;
  if (!SYM) { zero = f32(zeros[g]); }
  out[i] = T((q - zero) * f32(scales[g]));
}

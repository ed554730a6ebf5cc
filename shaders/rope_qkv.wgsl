// RoPE on an encoder's fused QKV projection, in place (ModernBERT): qkv [rows, 3H] holds Q heads |
// K heads | V heads along each row (rows = B*T, token t = row % T). Q and K heads are rotated
// Hugging Face's rotate-half way: dimension k < D/2 pairs with k + D/2,
//   x1' = x1 cos - x2 sin,  x2' = x2 cos + x1 sin,  angle = t * inv_freq[k];
// V is left alone. cos and sin come from a table [T, D] (cos at k, sin at D/2 + k) the CPU fills
// once per batch and RoPE base, in float32 as transformers does. One invocation per pair:
// n = rows * 2 heads * D/2 = rows * H. A separate pass rather than part of the attention kernel:
// both attention kernels stay the same for every encoder, and the pass costs one read and write of
// Q and K, small beside the attention itself.

struct Params { n: u32, T: u32, H: u32, D: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> qkv: array<T>;
@group(0) @binding(2) var<storage, read> rope: array<f32>; // [T, D]: cos | sin

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  let half = p.D / 2u;
  let r = i / p.H;
  let rem = i % p.H;
  let slot = rem / half; // Q heads 0..heads-1, then K heads: slot * D is the head's column
  let k = rem % half;
  let t = r % p.T;
  let at = r * 3u * p.H + slot * p.D + k;
  let x1 = f32(qkv[at]);
  let x2 = f32(qkv[at + half]);
  let c = rope[t * p.D + k];
  let s = rope[t * p.D + half + k];
  qkv[at] = T(x1 * c - x2 * s);
  qkv[at + half] = T(x2 * c + x1 * s);
}

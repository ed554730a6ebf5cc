// Batched decode attention over an int8 KV cache (codes packed four to a word, one f32 scale per
// row): see attn_dec_batch_lib.wgsl and attn_dec_q8.wgsl.

//! import attn_dec_batch_lib

@group(0) @binding(5) var<storage, read> kq: array<u32>; // [B * seqRows, D/4]
@group(0) @binding(6) var<storage, read> vq: array<u32>;
@group(0) @binding(7) var<storage, read> ks: array<f32>; // [B * seqRows]
@group(0) @binding(8) var<storage, read> vs: array<f32>;

fn kload4(row: u32, d4: u32) -> vec4<f32> {
  let w = kq[row * (p.D / 4u) + d4];
  let c = vec4<i32>(i32(w << 24u), i32(w << 16u), i32(w << 8u), i32(w)) >> vec4<u32>(24u);
  return vec4<f32>(c) * ks[row];
}

fn vload(row: u32, d: u32) -> f32 {
  let w = vq[row * (p.D / 4u) + d / 4u];
  let c = i32(w << (24u - 8u * (d % 4u))) >> 24u;
  return f32(c) * vs[row];
}

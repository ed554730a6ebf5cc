// Batched decode attention over an f16 or f32 KV cache (alias KV): see attn_dec_batch_lib.wgsl.

//! import attn_dec_batch_lib

@group(0) @binding(5) var<storage, read> kf: array<vec4<KV>>; // [B * seqRows, D/4]
@group(0) @binding(6) var<storage, read> vf: array<KV>;       // [B * seqRows, D]

fn kload4(row: u32, d4: u32) -> vec4<f32> { return vec4<f32>(kf[row * (p.D / 4u) + d4]); }

fn vload(row: u32, d: u32) -> f32 { return f32(vf[row * p.D + d]); }

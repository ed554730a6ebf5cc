// Embedding gather from a float table: out[t, :] = table[ids[t], :] (see embedding_lib.wgsl).
// Values pass through f32, which holds every f16 exactly.

struct Params { tokens: u32, dim: u32, vocab: u32, vOff: u32, vTotal: u32 }

@group(0) @binding(3) var<storage, read> table: array<T>; // [vocab, dim]

//! import embedding_lib

fn table_value(n: u32, k: u32) -> f32 { return f32(table[n * p.dim + k]); }

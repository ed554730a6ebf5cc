// Transformer input embeddings with a float word table (see embed_sum_lib.wgsl).

struct Params { rows: u32, T: u32, H: u32, typeVocab: u32, posRows: u32, vocab: u32, vOff: u32, vTotal: u32 }

@group(0) @binding(6) var<storage, read> word: array<T>; // [vocab, H]

//! import embed_sum_lib

fn table_value(n: u32, k: u32) -> f32 { return f32(word[n * p.H + k]); }

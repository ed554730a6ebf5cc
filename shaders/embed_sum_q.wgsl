// Transformer input embeddings with a quantized word table (layout: src/quant/layout.ts; int8 or
// int4, any group, symmetric or not), dequantized in place by qtable_lib.wgsl, with no float copy
// of the table (see embed_sum_lib.wgsl).

struct Params { rows: u32, T: u32, H: u32, typeVocab: u32, posRows: u32, Kp: u32, groups: u32, vocab: u32, vOff: u32, vTotal: u32 }

@group(0) @binding(6) var<storage, read> w: array<u32>;      // codes [vocab, Kp * BITS / 32]
@group(0) @binding(7) var<storage, read> scales: array<T>;   // [vocab, groups]
@group(0) @binding(8) var<storage, read> zeros: array<T>;    // [vocab, groups] (asymmetric)

//! import embed_sum_lib
//! import qtable_lib

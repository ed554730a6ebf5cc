// One value of a quantized table (layout: src/quant/layout.ts), dequantized: row n, column k.
// Shared by the gathers that read a packed embedding table (embedding_q.wgsl, embed_sum_q.wgsl:
// the table_value their entry points read); the importer declares `w`, `scales`, `zeros` and a
// Params `p` with Kp and groups.

override BITS: u32 = 8u;
override SYM: bool = true;
override G: u32 = 32u; // group size along k

fn table_value(n: u32, k: u32) -> f32 {
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
    q = f32((word >> (8u * (e % 4u) + 4u * (e / 4u))) & 0xfu);
    zero = 8.0;
  }
  let g = n * p.groups + k / G;
  if (!SYM) { zero = f32(zeros[g]); }
  return (q - zero) * f32(scales[g]);
}

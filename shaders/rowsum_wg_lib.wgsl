// row_sum for the decode GEMVs without subgroups (imported with `//! import rowsum_wg_lib`): the
// TPR partials of each output row (threads lid - lid % TPR .. + TPR - 1) summed by a tree in
// workgroup memory, log2(TPR) barriers. TPR must be a power of two dividing WG. Every thread of
// the workgroup must call it (barriers); each gets its row's total.

var<workgroup> red: array<f32, WG>;

fn row_sum(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = TPR / 2u; s > 0u; s >>= 1u) {
    if (lid % TPR < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  return red[lid - lid % TPR];
}

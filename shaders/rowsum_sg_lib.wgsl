// row_sum for the decode GEMVs on devices with the subgroups feature and one fixed subgroup
// size (imported with `//! import rowsum_sg_lib`): TPR is that size, so the threads of an output row
// are one subgroup (consecutive local_invocation_index values, as every implementation lays out
// a 1-D workgroup) and subgroupAdd sums them without workgroup memory or barriers. Every thread
// must call it (subgroup operations need the whole subgroup); each gets its row's total.

fn row_sum(lid: u32, v: f32) -> f32 {
  return subgroupAdd(v);
}

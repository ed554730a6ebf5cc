// Float decode GEMV (both kernel families), rows summed by subgroupAdd (see gemv4_lib.wgsl).

//! import gemv4_lib
//! import rowsum_sg_lib

// Weight-only quantized decode GEMV (both kernel families), rows summed by subgroupAdd (see
// qgemv4_lib.wgsl).

//! import qgemv4_lib
//! import rowsum_sg_lib

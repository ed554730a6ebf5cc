// Weight-only quantized decode GEMV of the gpu family, rows summed by subgroupAdd (see
// qgemv4_lib.wgsl).

//! import qgemv4_lib
//! import rowsum_sg_lib

// Weight-only quantized decode GEMV of the gpu family, rows summed in workgroup memory (see
// qgemv4_lib.wgsl).

//! import qgemv4_lib
//! import rowsum_wg_lib

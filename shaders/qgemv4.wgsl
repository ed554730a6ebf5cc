// Weight-only quantized decode GEMV (both kernel families), rows summed in workgroup memory (see
// qgemv4_lib.wgsl).

//! import qgemv4_lib
//! import rowsum_wg_lib

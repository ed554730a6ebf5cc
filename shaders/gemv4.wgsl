// Float decode GEMV (both kernel families), rows summed in workgroup memory (see gemv4_lib.wgsl).

//! import gemv4_lib
//! import rowsum_wg_lib

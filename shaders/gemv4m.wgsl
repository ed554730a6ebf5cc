// Float decode GEMV for 2..8 rows at once (both kernel families), rows summed in workgroup memory
// (see gemv4m_lib.wgsl).

//! import gemv4m_lib
//! import rowsum_wg_lib

// Float decode GEMV for 2..8 rows at once (both kernel families), rows summed by subgroupAdd (see
// gemv4m_lib.wgsl).

//! import gemv4m_lib
//! import rowsum_sg_lib

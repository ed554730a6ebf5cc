// Weight-only quantized decode GEMV for 2..8 rows at once (both kernel families), rows summed by
// subgroupAdd (see qgemv4m_lib.wgsl).

//! import qgemv4m_lib
//! import rowsum_sg_lib

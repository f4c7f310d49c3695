//! Helpers shared by the CPU kernels: dtype dispatch and contiguous slices.

use candle_core::{CpuStorage, Layout, Result, WithDType};
use num_traits::Float;

/// The floating-point element types the kernels support.
pub trait Elem: WithDType + Float + std::ops::AddAssign + Send + Sync {}
impl Elem for f32 {}
impl Elem for f64 {}

/// The contiguous slice a layout describes, or an error naming the op.
pub fn contiguous_slice<'a, T: WithDType>(
    op: &str,
    data: &'a [T],
    layout: &Layout,
) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: input must be contiguous"),
    }
}

/// Applies a kernel written once, generic over the element type, to f32 or f64 storage.
macro_rules! dispatch_float {
    ($op:expr, $storage:expr, |$s:ident| $body:expr) => {
        match $storage {
            candle_core::CpuStorage::F32($s) => $body,
            candle_core::CpuStorage::F64($s) => $body,
            other => candle_core::bail!(
                "{}: unsupported dtype {:?}",
                $op,
                candle_core::backend::BackendStorage::dtype(other)
            ),
        }
    };
}
pub(crate) use dispatch_float;

/// Wraps a computed vector back into storage of the same dtype.
pub fn to_storage<T: WithDType>(v: Vec<T>) -> CpuStorage {
    T::to_cpu_storage_owned(v)
}

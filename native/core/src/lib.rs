//! The revops-hygiene rules engine in Rust, with output identical to the
//! Python engine in processor/core (the reference until parity is proven).

pub mod alerts;
pub mod bindings;
pub mod checks;
pub mod clock;
pub mod engine;
pub mod gate;
pub mod junk;
pub mod names;
pub mod pyvalue;
pub mod rules;
pub mod shell;
pub mod state;
pub mod stored;
pub mod timeline;

use pyo3::prelude::*;

/// Each change allocates and frees many small maps and strings; glibc's
/// allocator was a sixth of the per-change time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[pymodule]
fn hygiene_core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<bindings::Core>()?;
    Ok(())
}

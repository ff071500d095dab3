//! Native decoders for the streaming CRM formats, held to byte-for-byte
//! parity with `processor.sources` (the Python reference): same changes, same
//! ignored counts, same reject reasons and, where the words are ours, the same
//! error texts. Only the per-message hot path lives here; configuration comes
//! from Python (`processor.sources.export.native_mappings`).

mod bindings;
mod bulk;
mod change;
mod coerce;
pub mod detect;
mod digits;
mod envelope;
mod error;
mod generic;
mod hubspot;
mod isotime;
mod json;
pub mod kafka_batch;
pub mod mapping;
pub mod packed;
pub mod pyrepr;
pub mod route;
mod salesforce;

/// Proleptic Gregorian day arithmetic, shared with the native core.
pub mod civil {
    pub use crate::isotime::{civil_from_days, days_from_civil};
}

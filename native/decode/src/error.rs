//! Why an event could not become a change.

/// Mirrors the two ways the Python decoders fail: an `InputError` (a reason
/// code the dead-letter record carries) or any other exception, which
/// `detect` turns into a `processing_error` named after the exception type.
#[derive(Debug)]
pub enum Failure {
    Input {
        reason: &'static str,
        message: String,
    },
    /// A value that cannot be read as its canonical type; the source wraps
    /// it with the key path before it becomes a schema violation.
    Coercion(String),
    Exception {
        kind: &'static str,
        message: String,
    },
}

impl Failure {
    pub fn violation(place: &str, problem: &str) -> Self {
        Failure::Input {
            reason: "schema_violation",
            message: format!("{place}: {problem}"),
        }
    }

    pub fn unsupported(message: String) -> Self {
        Failure::Input {
            reason: "unsupported_entity",
            message,
        }
    }

    /// `OverflowError` from `datetime.astimezone` when an offset pushes a
    /// time past year 1 or 9999: Python lets it escape as a processing error.
    pub fn date_overflow() -> Self {
        Failure::Exception {
            kind: "OverflowError",
            message: "date value out of range".to_owned(),
        }
    }
}

pub type Outcome<T> = Result<T, Failure>;

//! The Python face: `Decoder(mappings_json)` with `decode` and `decode_many`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::detect::{self, Decoded};
use crate::mapping::Mappings;

#[pyclass(frozen, module = "hygiene_decode")]
struct Decoder {
    mappings: Mappings,
    max_bytes: usize,
}

fn to_python<'py>(py: Python<'py>, decoded: Decoded) -> PyResult<Bound<'py, PyTuple>> {
    let changes = PyList::new(py, decoded.changes.iter().map(|c| PyBytes::new(py, c)))?;
    let rejects = PyList::new(py, decoded.rejects)?;
    (changes, decoded.ignored, rejects).into_pyobject(py)
}

#[pymethods]
impl Decoder {
    #[new]
    #[pyo3(signature = (mappings_json, max_bytes = detect::MAX_BYTES))]
    fn new(mappings_json: &[u8], max_bytes: usize) -> PyResult<Self> {
        let mappings = Mappings::from_json(mappings_json)
            .map_err(|e| PyValueError::new_err(format!("mappings_json: {e}")))?;
        Ok(Decoder {
            mappings,
            max_bytes,
        })
    }

    /// (changes as OpportunityChange JSON, ignored count, [(reason, error)]).
    fn decode<'py>(&self, py: Python<'py>, raw: &[u8]) -> PyResult<Bound<'py, PyTuple>> {
        to_python(py, detect::decode(raw, &self.mappings, self.max_bytes))
    }

    /// One `decode` result per message, to pay the call overhead once per batch.
    fn decode_many<'py>(
        &self,
        py: Python<'py>,
        raws: Vec<Bound<'py, PyBytes>>,
    ) -> PyResult<Bound<'py, PyList>> {
        // Bytes objects, not Vec<u8>: extracting a Vec walks the bytes one
        // Python int at a time, which cost more than decoding them.
        let results = raws
            .iter()
            .map(|raw| {
                to_python(
                    py,
                    detect::decode(raw.as_bytes(), &self.mappings, self.max_bytes),
                )
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, results)
    }
}

#[pymodule]
fn hygiene_decode(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Decoder>()?;
    // Exported so that a test can hold it equal to detect.MAX_BYTES.
    module.add("MAX_BYTES", detect::MAX_BYTES)?;
    Ok(())
}

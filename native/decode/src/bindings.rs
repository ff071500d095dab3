//! The Python face: `Decoder(mappings_json)` with `decode` and `decode_many`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use pyo3::pybacked::PyBackedBytes;

use crate::detect::{self, Decoded};
use crate::kafka_batch;
use crate::mapping::Mappings;
use crate::packed;
use crate::route;

/// `route_many`'s (messages, ignored, rejects).
type Routed = (
    Vec<(u32, Py<PyBytes>)>,
    usize,
    Vec<(usize, &'static str, String)>,
);

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

    /// Decodes a fetched batch and routes its changes as ingest sends them:
    /// (internal messages as (partition, bytes), ignored events, rejects as
    /// (message index, reason, error)). Messages are the changes of one
    /// partition joined under `limit` bytes, in arrival order; partitions
    /// by Kafka's default partitioner on the opportunity id.
    #[pyo3(signature = (raws, partitions, limit, pack = false))]
    fn route_many(
        &self,
        py: Python<'_>,
        raws: Vec<Bound<'_, PyBytes>>,
        partitions: u32,
        limit: usize,
        pack: bool,
    ) -> PyResult<Routed> {
        if partitions == 0 {
            return Err(PyValueError::new_err("partitions must be at least 1"));
        }
        // Bytes are immutable and `raws` keeps them alive: their slices are
        // decoded without the GIL, so ingest can run in an executor thread
        // while the worker's event loop goes on.
        let slices: Vec<&[u8]> = raws.iter().map(|raw| raw.as_bytes()).collect();
        let (joined, ignored, rejects) = py.allow_threads(|| {
            let mut router = route::Router::new(partitions, limit);
            let mut ignored = 0;
            let mut rejects = Vec::new();
            for (index, raw) in slices.iter().enumerate() {
                let decoded = detect::decode_each(raw, &self.mappings, self.max_bytes, &mut |c| {
                    router.add(&c.opportunity_id, c.to_json())
                });
                ignored += decoded.ignored;
                rejects.extend(
                    decoded
                        .rejects
                        .into_iter()
                        .map(|(reason, error)| (index, reason, error)),
                );
            }
            let mut joined = router.finish();
            if pack {
                for (_, message) in joined.iter_mut() {
                    *message = packed::pack(message);
                }
            }
            (joined, ignored, rejects)
        });
        let messages = joined
            .into_iter()
            .map(|(partition, message)| (partition, PyBytes::new(py, &message).unbind()))
            .collect();
        Ok((messages, ignored, rejects))
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

/// Kafka's default partitioner: the partition of `key` among `partitions`.
#[pyfunction]
fn partition_of(key: &[u8], partitions: u32) -> PyResult<u32> {
    if partitions == 0 {
        return Err(PyValueError::new_err("partitions must be at least 1"));
    }
    Ok(route::partition_of(key, partitions))
}

/// A `hygiene.changes` message's JSON: inflated when packed (see
/// `packed.rs`), else the bytes as given.
#[pyfunction]
fn unpack<'py>(py: Python<'py>, raw: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let json = packed::unpack(raw).map_err(PyValueError::new_err)?;
    Ok(PyBytes::new(py, &json))
}

/// `json` packed as ingest packs what it routes.
#[pyfunction]
fn pack<'py>(py: Python<'py>, json: &[u8]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &packed::pack(json))
}

/// `records` ((key, value), either None) as Kafka record batches of at
/// most `max_bytes` of records each, LZ4-compressed if `lz4`: a list of
/// (batch, record count). Built with the GIL released (`kafka_batch.rs`).
#[pyfunction]
fn record_batches<'py>(
    py: Python<'py>,
    records: Vec<(Option<PyBackedBytes>, Option<PyBackedBytes>)>,
    timestamp_ms: i64,
    max_bytes: usize,
    lz4: bool,
) -> PyResult<Vec<(Bound<'py, PyBytes>, usize)>> {
    let built = py.allow_threads(|| {
        let slices: Vec<kafka_batch::Record<'_>> = records
            .iter()
            .map(|(key, value)| (key.as_deref(), value.as_deref()))
            .collect();
        kafka_batch::build_many(&slices, timestamp_ms, max_bytes, lz4)
    });
    Ok(built
        .into_iter()
        .map(|(batch, count)| (PyBytes::new(py, &batch), count))
        .collect())
}

/// A batch from `record_batches` stamped with an idempotent producer's id,
/// epoch and first sequence number.
#[pyfunction]
fn with_producer_state<'py>(
    py: Python<'py>,
    batch: &[u8],
    producer_id: i64,
    epoch: i16,
    sequence: i32,
) -> PyResult<Bound<'py, PyBytes>> {
    if batch.len() < kafka_batch::HEADER {
        return Err(PyValueError::new_err(
            "not a record batch: shorter than its header",
        ));
    }
    Ok(PyBytes::new(
        py,
        &kafka_batch::with_producer_state(batch, producer_id, epoch, sequence),
    ))
}

#[pymodule]
fn hygiene_decode(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Decoder>()?;
    // Exported so that a test can hold it equal to detect.MAX_BYTES.
    module.add("MAX_BYTES", detect::MAX_BYTES)?;
    module.add_function(wrap_pyfunction!(partition_of, module)?)?;
    module.add_function(wrap_pyfunction!(unpack, module)?)?;
    module.add_function(wrap_pyfunction!(pack, module)?)?;
    module.add_function(wrap_pyfunction!(record_batches, module)?)?;
    module.add_function(wrap_pyfunction!(with_producer_state, module)?)?;
    module.add("PACKED_MARKER", PyBytes::new(module.py(), packed::MARKER))?;
    Ok(())
}

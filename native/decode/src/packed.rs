//! Packed `hygiene.changes` messages: a change batch's JSON compressed with
//! LZ4 (block format, size prepended) behind a 4-byte marker.
//!
//! Ingest re-publishes every input as internal messages, so without this
//! the broker stores, and the worker writes and reads back, the whole input
//! a second time (about 110 MB for the benchmark's 200,000 messages; CRM
//! change JSON packs 5x). Packing runs in ingest's decoding call and
//! unpacking in the core's apply, both off the event loop, which is where
//! the worker's CPU is short. Kafka's own batch compression would do the
//! same work on the event loop (aiokafka compresses in Python's thread).
//!
//! A message without the marker is read as it is: sweep ticks, batches
//! written by Python (`processor.stream.messages`) and by workers that do
//! not pack.

use std::borrow::Cow;

/// Never the start of JSON (which a change batch otherwise is).
pub const MARKER: &[u8; 4] = b"\x00hz4";

/// A packed message inflates to at most this: a corrupt size prefix must
/// not make the reader allocate gigabytes. Internal messages are cut at
/// 768 KiB (one change over it goes alone, and a change is at most
/// `detect::MAX_BYTES`), so this leaves a wide margin.
pub const MAX_UNPACKED: usize = 64 * 1024 * 1024;

pub fn pack(json: &[u8]) -> Vec<u8> {
    [MARKER.as_slice(), &lz4_flex::compress_prepend_size(json)].concat()
}

/// The message's JSON: inflated when packed, else the bytes themselves.
pub fn unpack(raw: &[u8]) -> Result<Cow<'_, [u8]>, String> {
    let Some(body) = raw.strip_prefix(MARKER.as_slice()) else {
        return Ok(Cow::Borrowed(raw));
    };
    let size = body
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or("a packed message shorter than its size prefix")?;
    if size > MAX_UNPACKED {
        return Err(format!(
            "a packed message claims {size} bytes unpacked, over the {MAX_UNPACKED} allowed"
        ));
    }
    lz4_flex::decompress_size_prepended(body)
        .map(Cow::Owned)
        .map_err(|e| format!("a packed message does not unpack: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_json_unpacks_to_itself_and_plain_json_passes_through() {
        let json = br#"{"kind":"changes","changes":[{"opportunity_id":"006A"}]}"#.repeat(50);
        let packed = pack(&json);
        assert!(packed.starts_with(MARKER));
        assert!(packed.len() < json.len() / 3);
        assert_eq!(unpack(&packed).unwrap().as_ref(), json.as_slice());
        assert!(matches!(unpack(&json).unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn corrupt_packed_messages_are_refused_not_allocated() {
        let mut huge = MARKER.to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(b"xxxx");
        assert!(unpack(&huge).unwrap_err().contains("claims"));
        assert!(unpack(MARKER).unwrap_err().contains("shorter"));
        let mut packed = pack(&b"{}".repeat(1000));
        packed.truncate(packed.len() - 3);
        assert!(unpack(&packed).unwrap_err().contains("does not unpack"));
    }
}

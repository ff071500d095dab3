//! Kafka record batches (message format v2), built whole for the worker's
//! producer: the records, optionally LZ4-compressed, and the CRC-32C.
//!
//! aiokafka builds a batch record by record in its event-loop thread and
//! compresses it there. The worker sends about 100 MB of stored states and
//! outputs per 200,000 input messages; built here, with the GIL released,
//! that work leaves the event loop, and compressed, the bytes the loop
//! writes to its socket and the broker stores shrink about 4x.
//!
//! Layout (https://kafka.apache.org/documentation/#recordbatch): a 61-byte
//! header, then the records, each `length attributes timestampDelta
//! offsetDelta key value headers` with zig-zag varints. With compression,
//! everything after the header's record count is one LZ4 frame (independent
//! 64 KB blocks, no checksums: what Kafka's own LZ4 stream writes).

use std::io::Write;

/// Bytes before the records.
pub const HEADER: usize = 61;
const ATTRIBUTES_AT: usize = 21;
const CRC_AT: usize = 17;
const PRODUCER_AT: usize = 43;
/// The attributes' codec bits for LZ4.
const LZ4: i16 = 3;

/// (key, value); None is Kafka's null (a value of None is a tombstone).
pub type Record<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

fn varint(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(value: i64) -> usize {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn bytes_len(field: Option<&[u8]>) -> usize {
    field.map_or(varint_len(-1), |b| varint_len(b.len() as i64) + b.len())
}

fn put_bytes(out: &mut Vec<u8>, field: Option<&[u8]>) {
    match field {
        None => varint(out, -1),
        Some(b) => {
            varint(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

/// One record as it sits in a batch (its length prefix included).
fn put_record(out: &mut Vec<u8>, offset_delta: i64, (key, value): Record<'_>) {
    // attributes (1 byte), timestampDelta 0 (1 byte), no headers (1 byte)
    let body = 3 + varint_len(offset_delta) + bytes_len(key) + bytes_len(value);
    varint(out, body as i64);
    out.push(0);
    varint(out, 0);
    varint(out, offset_delta);
    put_bytes(out, key);
    put_bytes(out, value);
    varint(out, 0);
}

/// Size of `record` in a batch, for cutting batches at a size.
pub fn record_size((key, value): Record<'_>) -> usize {
    // Offset deltas of batches this size take at most 3 bytes.
    let body = 3 + 3 + bytes_len(key) + bytes_len(value);
    varint_len(body as i64) + body
}

/// One batch of `records` (at least one) stamped `timestamp_ms`.
pub fn build(records: &[Record<'_>], timestamp_ms: i64, lz4: bool) -> Vec<u8> {
    assert!(
        !records.is_empty(),
        "a record batch holds at least one record"
    );
    let mut plain = Vec::with_capacity(records.iter().map(|r| record_size(*r)).sum());
    for (delta, record) in records.iter().enumerate() {
        put_record(&mut plain, delta as i64, *record);
    }
    let mut out = Vec::with_capacity(HEADER + if lz4 { plain.len() / 3 } else { plain.len() });
    out.extend_from_slice(&0i64.to_be_bytes()); // base offset: the broker assigns it
    out.extend_from_slice(&0i32.to_be_bytes()); // batch length, set below
    out.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    out.push(2); // magic
    out.extend_from_slice(&0u32.to_be_bytes()); // CRC, set below
    out.extend_from_slice(&(if lz4 { LZ4 } else { 0 }).to_be_bytes()); // create time
    out.extend_from_slice(&(records.len() as i32 - 1).to_be_bytes()); // last offset delta
    out.extend_from_slice(&timestamp_ms.to_be_bytes()); // base timestamp
    out.extend_from_slice(&timestamp_ms.to_be_bytes()); // max timestamp
    out.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    out.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    out.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    out.extend_from_slice(&(records.len() as i32).to_be_bytes());
    debug_assert_eq!(out.len(), HEADER);
    if lz4 {
        let info = lz4_flex::frame::FrameInfo::new()
            .block_size(lz4_flex::frame::BlockSize::Max64KB)
            .block_mode(lz4_flex::frame::BlockMode::Independent);
        let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, out);
        encoder
            .write_all(&plain)
            .expect("writing to memory cannot fail");
        out = encoder.finish().expect("writing to memory cannot fail");
    } else {
        out.extend_from_slice(&plain);
    }
    seal(&mut out);
    out
}

/// Sets the batch length and the CRC over everything after the CRC field.
fn seal(batch: &mut [u8]) {
    let length = (batch.len() - 12) as i32;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    let crc = crc32c(&batch[ATTRIBUTES_AT..]);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// `records` cut into batches of at most `max_bytes` of records each (a
/// record larger than that goes alone): (batch, how many records).
pub fn build_many(
    records: &[Record<'_>],
    timestamp_ms: i64,
    max_bytes: usize,
    lz4: bool,
) -> Vec<(Vec<u8>, usize)> {
    let mut batches = Vec::new();
    let mut start = 0;
    let mut size = 0;
    for (i, record) in records.iter().enumerate() {
        let grown = size + record_size(*record);
        if i > start && grown > max_bytes {
            batches.push((build(&records[start..i], timestamp_ms, lz4), i - start));
            start = i;
            size = record_size(*record);
        } else {
            size = grown;
        }
    }
    if start < records.len() {
        batches.push((
            build(&records[start..], timestamp_ms, lz4),
            records.len() - start,
        ));
    }
    batches
}

/// The batch stamped for an idempotent or transactional producer (what
/// aiokafka's sender asks of a batch before its first send).
pub fn with_producer_state(batch: &[u8], producer_id: i64, epoch: i16, sequence: i32) -> Vec<u8> {
    let mut out = batch.to_vec();
    out[PRODUCER_AT..PRODUCER_AT + 8].copy_from_slice(&producer_id.to_be_bytes());
    out[PRODUCER_AT + 8..PRODUCER_AT + 10].copy_from_slice(&epoch.to_be_bytes());
    out[PRODUCER_AT + 10..PRODUCER_AT + 14].copy_from_slice(&sequence.to_be_bytes());
    seal(&mut out);
    out
}

// ---- CRC-32C (Castagnoli), the checksum of record batches -----------------------

const POLY: u32 = 0x82F6_3B78;

const fn tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut k = 0;
        while k < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            k += 1;
        }
        t[0][i] = crc;
        i += 1;
    }
    let mut i = 0;
    while i < 256 {
        let mut s = 1;
        while s < 8 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
            s += 1;
        }
        i += 1;
    }
    t
}

static TABLES: [[u32; 256]; 8] = tables();

/// Slicing-by-8 in software (the SSE 4.2 instruction where the CPU has it).
pub fn crc32c(data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("sse4.2") {
            // SAFETY: the CPU supports SSE 4.2, checked just above.
            return unsafe { crc32c_sse42(data) };
        }
    }
    crc32c_soft(data)
}

fn crc32c_soft(data: &[u8]) -> u32 {
    let t = &TABLES;
    let mut crc = !0u32;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let lo = crc ^ u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        crc = t[7][(lo & 0xFF) as usize]
            ^ t[6][((lo >> 8) & 0xFF) as usize]
            ^ t[5][((lo >> 16) & 0xFF) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][c[4] as usize]
            ^ t[2][c[5] as usize]
            ^ t[1][c[6] as usize]
            ^ t[0][c[7] as usize];
    }
    for &b in chunks.remainder() {
        crc = (crc >> 8) ^ t[0][((crc ^ b as u32) & 0xFF) as usize];
    }
    !crc
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
unsafe fn crc32c_sse42(data: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u64, _mm_crc32_u8};
    let mut crc = !0u64;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let word = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        crc = _mm_crc32_u64(crc, word);
    }
    let mut crc = crc as u32;
    for &b in chunks.remainder() {
        crc = _mm_crc32_u8(crc, b);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value_both_ways() {
        assert_eq!(crc32c_soft(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        let long: Vec<u8> = (0..10_007u32).map(|i| (i * 31 % 251) as u8).collect();
        assert_eq!(crc32c(&long), crc32c_soft(&long));
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn varints_are_zigzag() {
        for (value, bytes) in [
            (0i64, vec![0u8]),
            (-1, vec![1]),
            (1, vec![2]),
            (63, vec![126]),
            (64, vec![0x80, 1]),
            (300, vec![0xD8, 0x04]),
        ] {
            let mut out = Vec::new();
            varint(&mut out, value);
            assert_eq!(out, bytes, "{value}");
            assert_eq!(varint_len(value), bytes.len());
        }
    }

    #[test]
    fn a_batch_has_its_header_length_and_crc() {
        let records: Vec<Record<'_>> = vec![
            (Some(b"k1"), Some(b"v1")),
            (None, Some(b"v2")),
            (Some(b"k3"), None),
        ];
        for lz4 in [false, true] {
            let batch = build(&records, 1_700_000_000_000, lz4);
            let length = i32::from_be_bytes(batch[8..12].try_into().unwrap());
            assert_eq!(length as usize, batch.len() - 12);
            assert_eq!(batch[16], 2);
            let crc = u32::from_be_bytes(batch[17..21].try_into().unwrap());
            assert_eq!(crc, crc32c(&batch[21..]));
            assert_eq!(
                i16::from_be_bytes(batch[21..23].try_into().unwrap()),
                if lz4 { 3 } else { 0 }
            );
            assert_eq!(i32::from_be_bytes(batch[57..61].try_into().unwrap()), 3);
        }
    }

    #[test]
    fn batches_are_cut_at_the_size_and_a_large_record_goes_alone() {
        let small = vec![b'x'; 100];
        let large = vec![b'y'; 5000];
        let mut records: Vec<Record<'_>> = vec![(Some(b"k"), Some(&small)); 30];
        records.insert(10, (Some(b"big"), Some(&large)));
        let batches = build_many(&records, 0, 1000, false);
        let counts: Vec<usize> = batches.iter().map(|(_, n)| *n).collect();
        assert_eq!(counts.iter().sum::<usize>(), records.len());
        assert!(counts.contains(&1));
        for (batch, n) in &batches {
            if *n > 1 {
                assert!(batch.len() - HEADER <= 1000);
            }
        }
    }

    #[test]
    fn producer_state_is_stamped_and_resealed() {
        let batch = build(&[(Some(b"k"), Some(b"v"))], 5, true);
        let stamped = with_producer_state(&batch, 42, 3, 7);
        assert_eq!(i64::from_be_bytes(stamped[43..51].try_into().unwrap()), 42);
        assert_eq!(i16::from_be_bytes(stamped[51..53].try_into().unwrap()), 3);
        assert_eq!(i32::from_be_bytes(stamped[53..57].try_into().unwrap()), 7);
        let crc = u32::from_be_bytes(stamped[17..21].try_into().unwrap());
        assert_eq!(crc, crc32c(&stamped[21..]));
    }
}

//! Routing decoded changes to the internal topic's partitions, as ingest
//! sends them: Kafka's default partitioner on the opportunity id, and each
//! partition's changes joined into as few `{"kind":"changes",...}` messages
//! as fit under a size limit (`processor/stream/ingest.py` `chunked`).

/// Kafka's `Utils.murmur2` (the Java client's default partitioner), on the
/// key's bytes.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: i32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len();
    let mut h: i32 = (SEED ^ length as u32) as i32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = i32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= ((k as u32) >> R) as i32;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= i32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= i32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= i32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= ((h as u32) >> 13) as i32;
    h = h.wrapping_mul(M);
    h ^= ((h as u32) >> 15) as i32;
    h
}

/// The partition Kafka's default partitioner gives `key` among `partitions`.
pub fn partition_of(key: &[u8], partitions: u32) -> u32 {
    (murmur2(key) & 0x7fff_ffff) as u32 % partitions
}

const HEAD: &[u8] = b"{\"kind\":\"changes\",\"changes\":[";
const TAIL: &[u8] = b"]}";

/// Changes (each one's JSON) per partition, joined into internal messages.
pub struct Router {
    partitions: u32,
    limit: usize,
    /// Per partition, its changes in arrival order.
    pending: Vec<Vec<Vec<u8>>>,
    /// Partitions in the order their first change arrived.
    order: Vec<u32>,
}

impl Router {
    pub fn new(partitions: u32, limit: usize) -> Self {
        Router {
            partitions,
            limit,
            pending: vec![Vec::new(); partitions as usize],
            order: Vec::new(),
        }
    }

    pub fn add(&mut self, opportunity_id: &str, change: Vec<u8>) {
        let partition = partition_of(opportunity_id.as_bytes(), self.partitions);
        let slot = &mut self.pending[partition as usize];
        if slot.is_empty() {
            self.order.push(partition);
        }
        slot.push(change);
    }

    /// (partition, message) in the order partitions were first seen; a
    /// partition's messages in order. A change bigger than the limit still
    /// goes, alone.
    pub fn finish(mut self) -> Vec<(u32, Vec<u8>)> {
        let frame = HEAD.len() + TAIL.len();
        let mut out = Vec::new();
        for partition in std::mem::take(&mut self.order) {
            let changes = std::mem::take(&mut self.pending[partition as usize]);
            let mut message: Vec<u8> = Vec::new();
            let mut size = 0;
            let mut count = 0;
            for change in changes {
                if count > 0 && size + change.len() + 1 > self.limit.saturating_sub(frame) {
                    message.extend_from_slice(TAIL);
                    out.push((partition, std::mem::take(&mut message)));
                    size = 0;
                    count = 0;
                }
                if count == 0 {
                    message.extend_from_slice(HEAD);
                } else {
                    message.push(b',');
                }
                size += change.len() + 1;
                message.extend_from_slice(&change);
                count += 1;
            }
            message.extend_from_slice(TAIL);
            out.push((partition, message));
        }
        out
    }
}

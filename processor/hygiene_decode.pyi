"""Native decoders for the streaming CRM formats (see native/decode/STATUS.md)."""

MAX_BYTES: int
PACKED_MARKER: bytes

class Decoder:
    def __init__(self, mappings_json: bytes, max_bytes: int = 1_048_576) -> None:
        """``mappings_json``: ``processor.sources.export.native_mappings(...)``."""

    def decode(self, raw: bytes) -> tuple[list[bytes], int, list[tuple[str, str]]]:
        """(changes as OpportunityChange JSON, ignored events, [(reason, error)])."""

    def decode_many(
        self, raws: list[bytes]
    ) -> list[tuple[list[bytes], int, list[tuple[str, str]]]]: ...

    def route_many(
        self, raws: list[bytes], partitions: int, limit: int, pack: bool = False
    ) -> tuple[list[tuple[int, bytes]], int, list[tuple[int, str, str]]]:
        """(internal messages as (partition, bytes), ignored events,
        [(message index, reason, error)]); ``pack``: each message packed."""

def partition_of(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2) on ``key``."""

def unpack(raw: bytes) -> bytes:
    """A ``hygiene.changes`` message's JSON: inflated when packed, else
    ``raw``; ``ValueError`` when a packed message does not inflate."""

def pack(json: bytes) -> bytes:
    """``json`` packed as ingest packs the messages it routes."""

def record_batches(
    records: list[tuple[bytes | None, bytes | None]], timestamp_ms: int, max_bytes: int, lz4: bool
) -> list[tuple[bytes, int]]:
    """``records`` ((key, value)) as Kafka record batches (format v2) of at
    most ``max_bytes`` of records each (a larger record alone), LZ4 frames
    when ``lz4``: (batch, record count) each. Built with the GIL released."""

def with_producer_state(batch: bytes, producer_id: int, epoch: int, sequence: int) -> bytes:
    """``batch`` stamped for an idempotent producer, its CRC recomputed."""

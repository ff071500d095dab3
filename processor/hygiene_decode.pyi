"""Native decoders for the streaming CRM formats (see native/decode/STATUS.md)."""

MAX_BYTES: int

class Decoder:
    def __init__(self, mappings_json: bytes, max_bytes: int = 1_048_576) -> None:
        """``mappings_json``: ``processor.sources.export.native_mappings(...)``."""

    def decode(self, raw: bytes) -> tuple[list[bytes], int, list[tuple[str, str]]]:
        """(changes as OpportunityChange JSON, ignored events, [(reason, error)])."""

    def decode_many(
        self, raws: list[bytes]
    ) -> list[tuple[list[bytes], int, list[tuple[str, str]]]]: ...

    def route_many(
        self, raws: list[bytes], partitions: int, limit: int
    ) -> tuple[list[tuple[int, bytes]], int, list[tuple[int, str, str]]]:
        """(internal messages as (partition, bytes), ignored events,
        [(message index, reason, error)])."""

def partition_of(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2) on ``key``."""

"""Which partitions this worker actively owns, for the timers that ask a
partition's owner to do periodic work (sweeps, digests, rollup flushes).

Standby partitions are never included, and the answer is empty while the
worker rebalances or recovers: a timer then asks nothing, and whoever owns
the partition afterwards asks on its next tick. One definition, so no timer
can ask a partition another worker is about to own.
"""

from __future__ import annotations

from typing import Any


def settled(app: Any) -> bool:
    """Neither rebalancing nor recovering: owned partitions can be served."""
    return not (app.rebalancing or app.in_recovery)


def active_partitions(app: Any, topic: str) -> list[int]:
    """This worker's active partitions of ``topic``, ascending; none while
    it is not ``settled``."""
    if not settled(app):
        return []
    return sorted(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic)


def still_owns(app: Any, topic: str, partition: int) -> bool:
    """Whether ``partition`` of ``topic`` is still assigned to this worker: a
    message being retried stops being ours once it moved elsewhere."""
    from faust.types import TP

    return TP(topic, partition) in app.consumer.assignment()

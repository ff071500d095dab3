"""What the notifier reads: alert-topic and digest-topic messages, decoded.

The alert policy marks each alert ``delivery: "realtime" | "digest"`` (with a
``delivery_reason``). The notice carries that verdict beside the alert, which
stays the condition itself; a missing or null ``delivery`` (a producer
without the policy) means real time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson
from pydantic import ValidationError

from processor.sources.base import Reject, describe
from schemas import Alert, Digest, Resolution

Delivery = Literal["realtime", "digest"]
_POLICY_FIELDS = ("delivery", "delivery_reason")


@dataclass(frozen=True)
class AlertNotice:
    alert: Alert
    delivery: Delivery = "realtime"
    delivery_reason: str | None = None


@dataclass(frozen=True)
class ResolutionNotice:
    resolution: Resolution


@dataclass(frozen=True)
class DigestNotice:
    digest: Digest


Notice = AlertNotice | ResolutionNotice | DigestNotice


def decode_notice(raw: bytes | None, *, digest_topic: bool) -> Notice | Reject:
    """One message of ``hygiene.alerts`` or ``hygiene.digests``, or the reason
    it cannot be delivered (sent to the dead letters, never dropped)."""
    data = raw or b""
    try:
        obj: Any = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return Reject("malformed_json", f"not JSON: {exc}", data)
    if not isinstance(obj, dict):
        return Reject("schema_violation", f"expected a JSON object, got {type(obj).__name__}",
                      data)
    try:
        if digest_topic:
            return DigestNotice(Digest.model_validate(obj))
        kind = obj.get("kind")
        if kind == "resolution":
            return ResolutionNotice(Resolution.model_validate(obj))
        if kind != "alert":
            return Reject("schema_violation", f"kind: expected 'alert' or 'resolution', "
                          f"got {kind!r}", data)
        return _alert(obj, data)
    except ValidationError as exc:
        return Reject("schema_violation", describe(exc), data)


def _alert(obj: dict[str, Any], raw: bytes) -> AlertNotice | Reject:
    delivery = obj.get("delivery", "realtime")
    if delivery is None:
        delivery = "realtime"
    if delivery not in ("realtime", "digest"):
        return Reject("schema_violation",
                      f"delivery: expected 'realtime' or 'digest', got {delivery!r}",
                      raw)
    reason = obj.get("delivery_reason")
    # The policy's verdict travels on the notice; the alert itself is the
    # condition, the same whichever way it was delivered.
    fields = {k: v for k, v in obj.items() if k not in _POLICY_FIELDS}
    return AlertNotice(Alert.model_validate(fields), delivery,
                       reason if isinstance(reason, str) else None)

"""Records that cross a boundary, and their published JSON Schemas."""

from ._base import Record, UtcDatetime, datetime_to_ms, ms_to_datetime
from .alerts import (
    SEVERITY_RANK,
    Alert,
    AlertAction,
    AlertRecord,
    AlertStatus,
    Delivery,
    DeliveryReason,
    Resolution,
    Severity,
)
from .change import ChangeOp, OpportunityChange
from .commands import CloseOutCommand
from .deadletter import DeadLetter, DeadLetterReason
from .digest import Digest, QueueIssue, QueueItem
from .history import StageHistoryRecord, TransitionType
from .state import Observation, OpportunityState

__all__ = [
    "SEVERITY_RANK",
    "Alert",
    "AlertAction",
    "AlertRecord",
    "AlertStatus",
    "ChangeOp",
    "CloseOutCommand",
    "DeadLetter",
    "DeadLetterReason",
    "Delivery",
    "DeliveryReason",
    "Digest",
    "Observation",
    "OpportunityChange",
    "OpportunityState",
    "QueueIssue",
    "QueueItem",
    "Record",
    "Resolution",
    "Severity",
    "StageHistoryRecord",
    "TransitionType",
    "UtcDatetime",
    "datetime_to_ms",
    "ms_to_datetime",
]

"""Canonical opportunity fields: the product's own names for CRM data.

Sources map vendor fields onto these names; rules and records speak only
these. Values are normalized by type so that rules never parse strings.
"""

from __future__ import annotations

from typing import Final

NAME: Final = "name"
ACCOUNT_NAME: Final = "account_name"
STAGE: Final = "stage"
AMOUNT: Final = "amount"
CURRENCY: Final = "currency"
CLOSE_DATE: Final = "close_date"
OWNER_ID: Final = "owner_id"
MANAGER_ID: Final = "manager_id"
PIPELINE: Final = "pipeline"
FORECAST_CATEGORY: Final = "forecast_category"
NEXT_STEP: Final = "next_step"
NEXT_STEP_DATE: Final = "next_step_date"
NEXT_MEETING_DATE: Final = "next_meeting_date"
LAST_ACTIVITY_DATE: Final = "last_activity_date"
CONTACT_COUNT: Final = "contact_count"
PROBABILITY: Final = "probability"
CRM_URL: Final = "crm_url"

MEDDICC: Final = (
    "metrics",
    "economic_buyer",
    "decision_criteria",
    "decision_process",
    "paper_process",
    "identify_pain",
    "champion",
    "competition",
)

DATE_FIELDS: Final = frozenset({CLOSE_DATE, NEXT_STEP_DATE, NEXT_MEETING_DATE, LAST_ACTIVITY_DATE})
"""Held as ISO ``YYYY-MM-DD`` strings."""

NUMBER_FIELDS: Final = frozenset({AMOUNT, PROBABILITY})
"""Held as floats."""

INT_FIELDS: Final = frozenset({CONTACT_COUNT})

TRACKED: Final = (STAGE, AMOUNT, CURRENCY, CLOSE_DATE, FORECAST_CATEGORY, OWNER_ID, PIPELINE)
"""Fields whose history the state keeps, because stage-history records report
their values as of each transition and close-date slips are counted from it."""

DELETED: Final = "_deleted"
"""Pseudo-field in the timeline: True after a delete or merge, False after a restore."""

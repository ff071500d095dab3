"""The field-mapping configuration the native decoder (``hygiene_decode``)
needs, as JSON.

The Python decoders read ``FieldMappings`` and a few module constants; the
native one gets the same values from here rather than from a copy in Rust,
so that a rules file's ``field_mapping`` or a new system field reaches both
decoders alike.
"""

from __future__ import annotations

import orjson

from processor.core import fields as f
from processor.sources.mapping import (
    BULK_CONTROL_COLUMNS,
    HUBSPOT_SYSTEM_PROPERTIES,
    SALESFORCE_SYSTEM_FIELDS,
    FieldMappings,
)


def native_mappings(mappings: FieldMappings) -> bytes:
    """Sets are sorted so that the same configuration always exports the same bytes."""
    return orjson.dumps(
        {
            "salesforce": mappings.salesforce,
            "hubspot": mappings.hubspot,
            "generic": mappings.generic,
            "bulk_columns": mappings.bulk_columns,
            "salesforce_system_fields": sorted(SALESFORCE_SYSTEM_FIELDS),
            "hubspot_system_properties": sorted(HUBSPOT_SYSTEM_PROPERTIES),
            "bulk_control_columns": sorted(BULK_CONTROL_COLUMNS),
            "date_fields": sorted(f.DATE_FIELDS),
            "number_fields": sorted(f.NUMBER_FIELDS),
            "int_fields": sorted(f.INT_FIELDS),
        }
    )

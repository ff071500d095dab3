"""CRM sources: normalizers from vendor formats to ``OpportunityChange``."""

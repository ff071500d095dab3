"""Hygiene rules: the validated rules file and the checks it drives."""

from .config import (
    DEFAULT_RULES_PATH,
    FORECAST_CATEGORIES,
    RULE_IDS,
    Pipeline,
    RulesError,
    RuleSet,
    Stage,
    default_rules,
    load_rules,
    parse_rules,
)

__all__ = [
    "DEFAULT_RULES_PATH",
    "FORECAST_CATEGORIES",
    "RULE_IDS",
    "Pipeline",
    "RuleSet",
    "RulesError",
    "Stage",
    "default_rules",
    "load_rules",
    "parse_rules",
]

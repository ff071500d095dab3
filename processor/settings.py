"""Runtime configuration from the environment (prefix ``HYGIENE_``).

Secrets (SASL passwords, Redis passwords, tokens) are only ever read from the
environment, never from files in the repository.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from processor.rules.config import DEFAULT_RULES_PATH


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HYGIENE_", extra="ignore")

    rules_file: Path = Field(default=DEFAULT_RULES_PATH, description="The rules YAML file.")
    max_message_bytes: int = Field(
        default=1_048_576, gt=0, description="Larger inputs go to the dead-letter topic."
    )

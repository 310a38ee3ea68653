"""Settings, built once in the entry point from flags and AUDITWATCH_* environment variables."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ingest.webhook import DEFAULT_MAX_BODY_BYTES

DEFAULT_DB_URL = "sqlite:///auditwatch.db"


class Settings(BaseSettings):
    """Flags win over environment variables, which win over these defaults."""

    model_config = SettingsConfigDict(env_prefix="AUDITWATCH_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = 8080
    db_url: str = DEFAULT_DB_URL
    rules: Annotated[list[str], NoDecode] = ["builtin"]
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    api_token: SecretStr | None = None
    insecure: bool = False

    @field_validator("rules", mode="before")
    @classmethod
    def _split_rules(cls, value: Any) -> Any:
        # AUDITWATCH_RULES=builtin,/etc/auditwatch/rules
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("max_body_bytes")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1024:
            raise ValueError("max_body_bytes must be at least 1024")
        return value


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings) -> str | None:
    """Why this configuration must not start (unauthenticated non-loopback listener), or None."""
    if is_loopback(settings.host) or settings.api_token is not None or settings.insecure:
        return None
    return (
        f"refusing to listen on {settings.host} without authentication: set AUDITWATCH_API_TOKEN "
        "(or --token-file), or pass --insecure if something in front of auditwatch authenticates clients"
    )

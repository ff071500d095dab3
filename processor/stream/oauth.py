"""OAuth 2 tokens for SASL/OAUTHBEARER: the client-credentials grant that
Confluent Cloud, Strimzi with Keycloak, Aiven and most identity providers
offer a service account.

One provider per Kafka client: aiokafka asks it for a token on every
connection and re-authentication, so it keeps the token until shortly before
it expires and never asks the identity provider twice at once.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote_plus

import aiohttp
from aiokafka.abc import AbstractTokenProvider  # type: ignore[import-untyped, unused-ignore]

from processor.settings import Settings

REFRESH_BEFORE_SECONDS = 60.0
"""A token is renewed this long before it expires, so that a connection made
just before expiry does not present a token the broker then rejects."""

DEFAULT_LIFETIME_SECONDS = 300.0
"""Assumed when the identity provider does not say (``expires_in`` is
optional in RFC 6749): short, so a token is never kept past its life."""


class TokenError(RuntimeError):
    """The identity provider did not issue a token; the message says why."""


class ClientCredentialsTokens(AbstractTokenProvider):  # type: ignore[misc]
    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        scope: str | None = None,
        timeout_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        # client_secret_basic: both parts form-encoded, then base64 (RFC 6749 2.3.1).
        pair = f"{quote_plus(client_id)}:{quote_plus(client_secret)}"
        self._basic = "Basic " + base64.b64encode(pair.encode()).decode()
        self.scope = scope
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._clock = clock
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock: asyncio.Lock | None = None
        self.fetches = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> ClientCredentialsTokens:
        url, client_id, secret = (settings.kafka_sasl_oauth_endpoint_url,
                                  settings.kafka_sasl_oauth_client_id,
                                  settings.kafka_sasl_oauth_client_secret)
        assert url and client_id and secret  # Settings refuses OAUTHBEARER without them
        return cls(url, client_id, secret.get_secret_value(),
                   scope=settings.kafka_sasl_oauth_scope)

    async def token(self) -> str:
        # Made here, not in __init__: the lock belongs to the running loop.
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._token is None or self._clock() >= self._renew_at:
                self._token, lifetime = await self._fetch()
                self._renew_at = self._clock() + max(0.0, lifetime - REFRESH_BEFORE_SECONDS)
            return self._token

    async def _fetch(self) -> tuple[str, float]:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        self.fetches += 1
        try:
            async with aiohttp.ClientSession(timeout=self._timeout) as session, \
                    session.post(self.token_url, data=form,
                                 headers={"Authorization": self._basic}) as response:
                body = await response.text()
                if response.status != 200:
                    raise TokenError(f"token endpoint {self.token_url} answered "
                                     f"{response.status}: {body[:300]}")
                answer: Any = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TokenError(f"token endpoint {self.token_url} unreachable: {exc!r}") from exc
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise TokenError(f"token endpoint {self.token_url} answered without an "
                             "access_token")
        lifetime = answer.get("expires_in", DEFAULT_LIFETIME_SECONDS)
        if not isinstance(lifetime, int | float) or lifetime <= 0:
            lifetime = DEFAULT_LIFETIME_SECONDS
        return token, float(lifetime)

"""The OAUTHBEARER token provider against a stand-in identity provider."""

from __future__ import annotations

import asyncio

import pytest

from processor.settings import Settings
from processor.stream.oauth import REFRESH_BEFORE_SECONDS, ClientCredentialsTokens, TokenError

from .token_server import CLIENT_ID, CLIENT_SECRET, token_server


def test_a_token_is_kept_until_shortly_before_it_expires() -> None:
    now = [1000.0]
    with token_server(lifetime_seconds=600) as server:
        tokens = ClientCredentialsTokens(server.url, CLIENT_ID, CLIENT_SECRET, scope="kafka",
                                         clock=lambda: now[0])

        async def run() -> list[str]:
            # Several connections at once ask the identity provider once.
            first = await asyncio.gather(*(tokens.token() for _ in range(5)))
            now[0] += 600 - REFRESH_BEFORE_SECONDS - 1
            still = await tokens.token()
            now[0] += 2
            renewed = await tokens.token()
            return [*first, still, renewed]

        got = asyncio.run(run())
    assert got[:6] == [server.issued[0]] * 6
    assert got[6] == server.issued[1]
    assert len(server.requests) == tokens.fetches == 2
    assert server.requests[0] == {"grant_type": ["client_credentials"], "scope": ["kafka"]}


def test_a_refused_client_gets_the_reason_not_a_token() -> None:
    with token_server() as server:
        tokens = ClientCredentialsTokens(server.url, CLIENT_ID, "wrong")
        with pytest.raises(TokenError, match=r"answered 401: .*invalid_client"):
            asyncio.run(tokens.token())


def test_an_unreachable_identity_provider_is_named() -> None:
    with token_server() as server:
        url = server.url
    tokens = ClientCredentialsTokens(url, CLIENT_ID, CLIENT_SECRET, timeout_seconds=2)
    with pytest.raises(TokenError, match="unreachable"):
        asyncio.run(tokens.token())


def test_oauthbearer_settings_name_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYGIENE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("HYGIENE_KAFKA_SASL_MECHANISM", "OAUTHBEARER")
    monkeypatch.setenv("HYGIENE_KAFKA_SASL_OAUTH_ENDPOINT_URL", "https://idp.example/token")
    with pytest.raises(ValueError, match="needs HYGIENE_KAFKA_SASL_OAUTH_CLIENT_ID, "
                                         "HYGIENE_KAFKA_SASL_OAUTH_CLIENT_SECRET"):
        Settings()
    monkeypatch.setenv("HYGIENE_KAFKA_SASL_OAUTH_CLIENT_ID", "svc")
    monkeypatch.setenv("HYGIENE_KAFKA_SASL_OAUTH_CLIENT_SECRET", "s3cret")
    assert "s3cret" not in repr(Settings())

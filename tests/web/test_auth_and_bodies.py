"""Bearer checks, body limits and JSON errors: the guard on a real aiohttp
server (in-process), and the pure pieces it is made of."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from processor.web.auth import require_bearer
from processor.web.errors import ApiError
from processor.web.middleware import guard, parse_model, read_body
from processor.web.models import StageGateRequest

TOKEN = SecretStr("tok-123")


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic tok-123",
                                    "Bearer tok-1234", "Bearer tok-12", "tok-123"])
def test_anything_but_the_exact_bearer_token_is_401(header: str | None) -> None:
    with pytest.raises(ApiError) as caught:
        require_bearer(header, TOKEN)
    assert caught.value.status == 401
    assert caught.value.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer tok-123", "bearer tok-123", "  Bearer  tok-123 "])
def test_the_token_is_accepted(header: str) -> None:
    require_bearer(header, TOKEN)


@pytest.mark.parametrize("token", [None, SecretStr("")])
def test_no_configured_token_refuses_everyone(token: SecretStr | None) -> None:
    with pytest.raises(ApiError) as caught:
        require_bearer("Bearer ", token)
    assert (caught.value.status, caught.value.error) == (503, "api_disabled")


def test_bad_json_and_invalid_bodies_are_400_with_what_is_wrong() -> None:
    with pytest.raises(ApiError) as caught:
        parse_model(b"{nope", StageGateRequest)
    assert (caught.value.status, caught.value.error) == (400, "bad_json")
    with pytest.raises(ApiError) as caught:
        parse_model(b'{"stage": "", "fields": {"a": [1]}, "color": "red"}', StageGateRequest)
    assert (caught.value.status, caught.value.error) == (400, "invalid_request")
    for part in ("opportunity_id", "stage", "fields.a", "color"):
        assert part in caught.value.message
    too_many = {"opportunity_id": "x", "stage": "Discovery",
                "fields": {f"f{i}": "v" for i in range(501)}}
    with pytest.raises(ApiError) as caught:
        parse_model(orjson.dumps(too_many), StageGateRequest)
    assert "fields" in caught.value.message


# ---- the guard on a real aiohttp server -------------------------------------------------

LIMIT = 1024


async def echo(request: web.Request) -> web.Response:
    body = await read_body(request, LIMIT)
    return web.json_response({"size": len(body)})


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def boom(request: web.Request) -> web.Response:
    raise RuntimeError("bug")


def serve(test: Callable[[TestClient[Any, Any]], Awaitable[None]],
          token: SecretStr | None = TOKEN) -> None:
    async def main() -> None:
        app = web.Application(middlewares=[guard(token, LIMIT)])
        app.router.add_post("/v1/echo", echo)
        app.router.add_get("/v1/boom", boom)
        app.router.add_get("/healthz", health)
        async with TestClient(TestServer(app)) as client:
            await test(client)

    asyncio.run(main())


AUTH = {"Authorization": "Bearer tok-123"}


def test_guard_lets_public_paths_through_and_protects_the_rest() -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        assert (await client.get("/healthz")).status == 200
        refused = await client.post("/v1/echo", data=b"{}")
        assert refused.status == 401
        assert await refused.json() == {"error": "unauthorized",
                                        "message": "Send Authorization: Bearer <token>."}
        missing = await client.get("/v1/unknown")
        assert missing.status == 401  # no route list for strangers
        assert (await client.get("/v1/unknown", headers=AUTH)).status == 404
        wrong = await client.get("/v1/echo", headers=AUTH)
        assert (wrong.status, (await wrong.json())["error"]) == (405, "method_not_allowed")
        crash = await client.get("/v1/boom", headers=AUTH)
        assert (crash.status, (await crash.json())["error"]) == (500, "internal_error")

    serve(check)


def test_guard_refuses_bodies_over_the_limit_announced_or_streamed() -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        ok = await client.post("/v1/echo", data=b"x" * LIMIT, headers=AUTH)
        assert await ok.json() == {"size": LIMIT}
        big = await client.post("/v1/echo", data=b"x" * (LIMIT + 1), headers=AUTH)
        assert (big.status, (await big.json())["error"]) == (413, "payload_too_large")

        async def chunks() -> Any:
            for _ in range(5):
                yield b"y" * 300

        streamed = await client.post("/v1/echo", data=chunks(), headers=AUTH)
        assert streamed.status == 413

    serve(check)


def test_guard_fails_closed_without_a_token() -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        assert (await client.get("/healthz")).status == 200
        refused = await client.post("/v1/echo", data=b"{}", headers=AUTH)
        assert (refused.status, (await refused.json())["error"]) == (503, "api_disabled")

    serve(check, token=None)


# ---- alert action bodies ----------------------------------------------------------------


def test_a_snooze_needs_who_why_and_exactly_one_expiry() -> None:
    from datetime import UTC, datetime, timedelta

    from processor.web.models import AckRequest, SnoozeRequest

    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    by_hours = parse_model(b'{"by": "005REP", "reason": "on leave", "hours": 48}',
                           SnoozeRequest)
    assert by_hours.by == "005REP"
    assert by_hours.expiry(now) == now + timedelta(hours=48)
    by_moment = parse_model(
        b'{"by": "a@b.c", "reason": "waiting on legal", "until": "2026-03-10T09:00:00+01:00"}',
        SnoozeRequest)
    assert by_moment.expiry(now) == datetime(2026, 3, 10, 8, tzinfo=UTC)
    for bad in (b'{"by": "x", "reason": "r"}',
                b'{"by": "x", "reason": "r", "hours": 1, "until": "2026-03-10T09:00:00Z"}',
                b'{"by": "  ", "reason": "r", "hours": 1}',
                b'{"by": "x", "reason": "", "hours": 1}',
                b'{"by": "x", "reason": "r", "hours": 0}',
                b'{"by": "x", "reason": "r", "hours": 100000}',
                b'{"by": "x", "reason": "r", "hours": null}',
                b'{"by": "x", "reason": "r", "until": null, "hours": 1}',
                b'{"by": "x", "reason": " \\t", "hours": 1}'):
        with pytest.raises(ApiError) as caught:
            parse_model(bad, SnoozeRequest)
        assert caught.value.status == 400, bad
    assert parse_model(b'{"by": "005REP"}', AckRequest).by == "005REP"
    with pytest.raises(ApiError):
        parse_model(b'{}', AckRequest)

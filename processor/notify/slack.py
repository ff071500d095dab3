"""The two ways to reach Slack, behind one small interface.

Incoming webhooks (one URL per route) can only post. The Web API (a bot
token) posts to a route's channel and returns the message's ``ts``, which is
what lets a resolution edit the alert or reply in its thread. Both go
through slack-sdk with its own retry handlers switched off: retrying is the
delivery loop's job, so that waits, metrics and dead-lettering follow one
policy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from pydantic import SecretStr
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from processor.notify.blocks import Message
from processor.notify.retry import SlackFailure, is_transient_status, parse_retry_after

# Web API errors that answer 200 with ok=false but are Slack's trouble, not ours.
_TRANSIENT_API_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


@dataclass(frozen=True)
class Posted:
    """Where a message landed; ``ts`` only with the Web API."""

    channel: str | None = None
    ts: str | None = None


class Transport(Protocol):
    can_edit: bool

    async def post(self, route: str, message: Message, *, channel: str | None = None,
                   thread_ts: str | None = None) -> Posted: ...

    async def update(self, channel: str, ts: str, message: Message) -> None: ...

    async def close(self) -> None: ...


class WebhookTransport:
    can_edit = False

    def __init__(self, urls: Mapping[str, SecretStr], timeout: float) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))
        self._clients = {
            route: AsyncWebhookClient(url.get_secret_value(), timeout=int(max(1, timeout)),
                                      session=self._session, retry_handlers=[])
            for route, url in urls.items()
        }

    async def post(self, route: str, message: Message, *, channel: str | None = None,
                   thread_ts: str | None = None) -> Posted:
        client = self._clients.get(route)
        if client is None:
            raise SlackFailure(f"no webhook URL for route {route!r}", transient=False)
        try:
            response = await client.send_dict(message.payload())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SlackFailure(f"webhook: {type(exc).__name__}: {exc}", transient=True) from exc
        if response.status_code == 200:
            return Posted()
        raise SlackFailure(
            f"webhook answered {response.status_code} {str(response.body)[:200]}",
            status=response.status_code,
            retry_after=parse_retry_after(_header(response.headers, "Retry-After")),
            transient=is_transient_status(response.status_code),
        )

    async def update(self, channel: str, ts: str, message: Message) -> None:
        raise SlackFailure("incoming webhooks cannot edit a message", transient=False)

    async def close(self) -> None:
        await self._session.close()


class WebApiTransport:
    can_edit = True

    def __init__(self, token: SecretStr, base_url: str, channels: Mapping[str, str | None],
                 timeout: float) -> None:
        self._client = AsyncWebClient(token=token.get_secret_value(), base_url=base_url,
                                      timeout=int(max(1, timeout)), retry_handlers=[])
        self._channels = dict(channels)

    async def post(self, route: str, message: Message, *, channel: str | None = None,
                   thread_ts: str | None = None) -> Posted:
        target = channel or self._channels.get(route)
        if not target:
            raise SlackFailure(f"no channel for route {route!r}", transient=False)
        response = await self._call(self._client.chat_postMessage(
            channel=target, text=message.text, blocks=message.blocks, thread_ts=thread_ts,
            metadata=message.metadata, unfurl_links=False,
        ))
        return Posted(str(response.get("channel") or target), str(response["ts"]))

    async def update(self, channel: str, ts: str, message: Message) -> None:
        await self._call(self._client.chat_update(
            channel=channel, ts=ts, text=message.text, blocks=message.blocks,
            metadata=message.metadata,
        ))

    async def _call(self, request: Any) -> Any:
        try:
            return await request
        except SlackApiError as exc:
            raise _api_failure(exc) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SlackFailure(f"web api: {type(exc).__name__}: {exc}", transient=True) from exc

    async def close(self) -> None:
        session = getattr(self._client, "session", None)
        if session is not None:
            await session.close()


def _api_failure(exc: SlackApiError) -> SlackFailure:
    response = exc.response
    # slack-sdk hands over its own response, or aiohttp's when the body was
    # not JSON; both carry the status and headers.
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    headers = getattr(response, "headers", None) or {}
    data = getattr(response, "data", None)
    error = data.get("error") if isinstance(data, dict) else None
    transient = (is_transient_status(status) if isinstance(status, int) and status != 200
                 else error in _TRANSIENT_API_ERRORS)
    return SlackFailure(
        f"web api answered {status}: {error or str(exc)[:200]}",
        status=status if isinstance(status, int) else None,
        retry_after=parse_retry_after(_header(headers, "Retry-After")),
        transient=transient,
    )


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
    if isinstance(value, list):
        value = value[0] if value else None
    return str(value) if value is not None else None


async def close_quietly(transport: Transport) -> None:
    with contextlib.suppress(aiohttp.ClientError, RuntimeError):
        await transport.close()

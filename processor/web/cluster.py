"""Which worker owns an opportunity, and handing a request to it.

Ownership is Faust's: the worker actively assigned the opportunity's
partition of the changes topic holds its state (the table is co-partitioned
with it, by the same murmur2 as ``processor.stream.routing``), and the group
metadata every member shares maps each table partition to its owner's
advertised URL. Faust's own ``table_route`` forwards only GETs without their
body, has no timeout, and two workers that disagree mid-rebalance would
bounce a request between them forever; here a forwarded request carries a
header and is always answered where it lands.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from aiohttp import web
from yarl import URL

from processor.settings import Settings
from processor.stream.routing import Partitioner
from processor.web.errors import ApiError
from processor.web.metrics import FORWARDED

log = logging.getLogger(__name__)

FORWARDED_HEADER = "X-Hygiene-Forwarded-By"
_PASSED_HEADERS = ("Authorization", "Content-Type", "Accept")
_RELAYED_HEADERS = ("WWW-Authenticate", "Retry-After")


def advertised_url(settings: Settings) -> str:
    if settings.web_advertised_url:
        return settings.web_advertised_url.rstrip("/")
    host = settings.web_host
    if host in ("", "0.0.0.0", "::"):
        host = socket.gethostname()
    return f"http://{host}:{settings.web_port}"


def _ident(url: str | URL) -> tuple[str, int]:
    parsed = URL(str(url))
    return (parsed.host or "", parsed.port or 80)


class OwnerUnreachable(ApiError):
    def __init__(self, owner: str) -> None:
        super().__init__(503, "owner_unreachable",
                         f"The worker that owns this key ({owner}) did not answer.",
                         {"Retry-After": "1"})


@dataclass(frozen=True)
class Route:
    where: Literal["here", "owner", "unavailable"]
    url: str = ""
    reason: str = ""


@dataclass(frozen=True)
class Placement:
    """Where keyed state lives: the agent's input topic (whose active
    partitions a worker owns) and the table co-partitioned with it."""

    topic: str
    table: str


class Cluster:
    def __init__(self, app: Any, partitions: int, own_url: str, timeout_seconds: float) -> None:
        self.app = app
        self.partition_of = Partitioner(partitions)
        self.own_url = own_url
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    def route(self, key: str, placement: Placement, forwarded: bool) -> Route:
        app = self.app
        partition = self.partition_of(key)
        owned = any(tp.topic == placement.topic and tp.partition == partition
                    for tp in app.assignor.assigned_actives())
        if owned:
            if app.rebalancing or app.in_recovery:
                return Route("unavailable", reason="this worker is recovering the "
                             "partition that holds it")
            return Route("here")
        if forwarded:
            return Route("unavailable", reason="partitions are moving between workers")
        owner = self.owner_url(placement.table, partition)
        if owner is None or _ident(owner) == _ident(self.own_url):
            return Route("unavailable", reason="no worker owns its partition right now "
                         "(rebalancing)")
        return Route("owner", url=owner)

    def owner_url(self, table: str, partition: int) -> str | None:
        metadata = self.app.router.table_metadata(table)
        for url, topics in metadata.items():
            for partitions in topics.values():
                if partition in partitions:
                    return str(url)
        return None

    async def forward(self, request: web.Request, owner: str, body: bytes | None) -> web.Response:
        headers = {name: request.headers[name] for name in _PASSED_HEADERS
                   if name in request.headers}
        headers[FORWARDED_HEADER] = self.own_url
        target = owner.rstrip("/") + request.raw_path
        session = self._client()
        try:
            async with session.request(request.method, target, headers=headers,
                                       data=body) as response:
                payload = await response.read()
                relayed = {name: response.headers[name] for name in _RELAYED_HEADERS
                           if name in response.headers}
                FORWARDED.labels(outcome="answered").inc()
                return web.Response(body=payload, status=response.status,
                                    content_type=response.content_type, headers=relayed)
        except (TimeoutError, aiohttp.ClientError) as exc:
            FORWARDED.labels(outcome="unreachable").inc()
            log.warning("forwarding %s %s to %s failed: %r", request.method, request.path,
                        owner, exc)
            raise OwnerUnreachable(owner) from None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

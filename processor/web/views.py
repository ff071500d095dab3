"""The worker's HTTP routes, registered on its Faust app (aiohttp under
Faust's web driver). Views only move bytes: decisions live in
``stagegate``, ``opportunity`` and ``auth``, ownership in ``cluster``."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import faust
import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from processor.forecast.overrides import OverrideRefused
from processor.sources.mapping import CoercionError
from processor.stream.owner_queues import QueueUnavailable
from processor.stream.state import load_state
from processor.stream.topics import OWNER_QUEUE_TABLE, TABLE_NAME
from processor.web.alerts import AlertRoutes
from processor.web.cluster import (
    FORWARDED_HEADER,
    Cluster,
    OwnerUnreachable,
    Placement,
    advertised_url,
)
from processor.web.errors import ApiError
from processor.web.metrics import STAGE_GATE_CHECKS
from processor.web.middleware import guard, parse_model, read_body
from processor.web.models import StageGateRequest
from processor.web.openapi import document
from processor.web.opportunity import opportunity_view
from processor.web.stagegate import StoredState, check_move
from schemas import OpportunityState

if TYPE_CHECKING:
    from processor.stream.app import Worker

log = logging.getLogger(__name__)


def _json(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(body=model.model_dump_json().encode(), status=status,
                        content_type="application/json")


def _unavailable(reason: str) -> ApiError:
    return ApiError(503, "unavailable", f"Cannot answer now: {reason}.", {"Retry-After": "1"})


class Api:
    """What the views share: the worker's rules, table and cluster view."""

    def __init__(self, worker: Worker) -> None:
        settings = worker.settings
        self.worker = worker
        self.max_body = settings.api_max_body_bytes
        self.cluster = Cluster(worker.app, settings.partitions, advertised_url(settings),
                               settings.api_forward_timeout_seconds)
        self.opportunities = Placement(settings.topics.changes, TABLE_NAME)
        self.owner_queues = Placement(worker.owner_queues.topic_name, OWNER_QUEUE_TABLE)
        self.alerts = AlertRoutes(worker.actions, self.max_body)
        self.openapi = orjson.dumps(document())

    def stored(self, opportunity_id: str) -> OpportunityState | None:
        raw = self.worker.table.get(opportunity_id.encode())
        return load_state(cast(bytes | None, raw))

    async def stage_gate(self, request: web.Request) -> web.Response:
        forwarded = FORWARDED_HEADER in request.headers
        body = await read_body(request, self.max_body)
        check = parse_model(body, StageGateRequest)
        route = self.cluster.route(check.opportunity_id, self.opportunities, forwarded)
        if route.where == "owner":
            try:
                return await self.cluster.forward(request, route.url, body)
            except OwnerUnreachable:
                # A CRM hook waits on this answer: judge the fields it sent
                # rather than fail the save because a worker is gone.
                pass
        stored: OpportunityState | None = None
        status: StoredState = "unavailable"
        if route.where == "here":
            stored = self.stored(check.opportunity_id)
            status = "merged" if stored is not None else "none"
        worker = self.worker
        try:
            result = check_move(worker.rules, worker.mappings, check, stored, status)
        except CoercionError as exc:
            raise ApiError(400, "invalid_field", str(exc)) from None
        STAGE_GATE_CHECKS.labels(verdict="passed" if result.passed else "refused",
                                 stored_state=status).inc()
        return _json(result, 200 if result.passed else 422)

    async def at_owner(
        self, request: web.Request, key: str, placement: Placement
    ) -> web.Response | None:
        """The owner's answer when another worker owns ``key``; None when
        this worker does and should answer; 503 when nobody can now."""
        route = self.cluster.route(key, placement, FORWARDED_HEADER in request.headers)
        if route.where == "owner":
            return await self.cluster.forward(request, route.url, None)
        if route.where == "unavailable":
            raise _unavailable(route.reason)
        return None

    async def opportunity(self, request: web.Request, opportunity_id: str) -> web.Response:
        forwarded = await self.at_owner(request, opportunity_id, self.opportunities)
        if forwarded is not None:
            return forwarded
        state = self.stored(opportunity_id)
        if state is None:
            raise ApiError(404, "not_found", f"No opportunity {opportunity_id!r} is known.")
        view = opportunity_view(state, self.worker.rules, int(time.time() * 1000),
                                self.cluster.own_url)
        return _json(view)

    async def queue(self, request: web.Request, owner_id: str) -> web.Response:
        forwarded = await self.at_owner(request, owner_id, self.owner_queues)
        if forwarded is not None:
            return forwarded
        try:
            return _json(await self.worker.owner_queues.current(owner_id,
                                                                int(time.time() * 1000)))
        except QueueUnavailable as exc:
            raise _unavailable(exc.reason) from None


    async def override(self, request: web.Request) -> web.Response:
        """A manager's override, put on ``forecast.overrides`` like one sent
        to the topic directly; whether its manager and period are known is
        decided in order on the manager's partition, so the answer is 202
        (the outcome is an override-log record or a dead letter)."""
        body = await read_body(request, self.max_body)
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ApiError(400, "malformed_json", f"The body is not JSON: {exc}.") from None
        if isinstance(data, dict):
            data.setdefault("submitted_at", datetime.now(UTC).isoformat())
        try:
            accepted = await self.worker.rollups.submit_override(data)
        except OverrideRefused as exc:
            status = 400 if exc.code == "malformed_json" else 422
            raise ApiError(status, exc.code, exc.message) from None
        return _json(accepted, 202)


def register(worker: Worker) -> Api:
    """Adds the guard and every route to the worker's Faust app."""
    app, settings = worker.app, worker.settings
    api = Api(worker)
    aiohttp_app = cast(web.Application, cast(Any, app.web).web_app)
    aiohttp_app.middlewares.append(guard(settings.api_token, settings.api_max_body_bytes))

    async def close_client(_: web.Application) -> None:
        await api.cluster.close()
        await api.alerts.close()

    aiohttp_app.on_cleanup.append(close_client)
    if settings.api_token is None or not settings.api_token.get_secret_value():
        log.error("HYGIENE_API_TOKEN is not set: the HTTP API refuses every route but "
                  "/healthz, /readyz and /metrics (503 api_disabled)")

    @app.page("/healthz")
    async def healthz(view: Any, request: Any) -> Any:
        return view.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(view: Any, request: Any) -> Any:
        # Before the first assignment nothing is rebalancing or recovering
        # either: ready only once a recovery has completed (Faust never
        # clears that event; later rebalances show in the two flags).
        recovered = app.tables.recovery.completed.is_set()  # type: ignore[attr-defined]
        ready = (recovered and not app.rebalancing and not app.in_recovery
                 and app.consumer is not None)
        return view.json({"ready": ready}, status=200 if ready else 503)

    @app.page("/metrics")
    async def metrics_view(view: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type; Prometheus reads it as UTF-8.
        content_type = CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4"
        return view.bytes(generate_latest(), content_type=content_type)

    @app.page("/openapi.json")
    async def openapi(view: Any, request: Any) -> Any:
        return web.Response(body=api.openapi, content_type="application/json")

    @app.page("/v1/stage-gate/check")
    class StageGateCheck(faust.web.View):
        async def post(self, request: Any) -> Any:
            return await api.stage_gate(request)

    @app.page("/v1/opportunities/{opportunity_id}")
    class Opportunity(faust.web.View):
        async def get(self, request: Any, opportunity_id: str) -> Any:
            return await api.opportunity(request, opportunity_id)

    @app.page("/v1/queues/{owner_id}")
    class OwnerQueue(faust.web.View):
        async def get(self, request: Any, owner_id: str) -> Any:
            return await api.queue(request, owner_id)

    @app.page("/v1/alerts/{alert_id}")
    class AlertStatusView(faust.web.View):
        async def get(self, request: Any, alert_id: str) -> Any:
            return _json(await api.alerts.status(alert_id))

    @app.page("/v1/alerts/{alert_id}/snooze")
    class Snooze(faust.web.View):
        async def post(self, request: Any, alert_id: str) -> Any:
            return _json(await api.alerts.snooze(request, alert_id))

    @app.page("/v1/forecast/overrides")
    class Override(faust.web.View):
        async def post(self, request: Any) -> Any:
            return await api.override(request)

    @app.page("/v1/alerts/{alert_id}/ack")
    class Ack(faust.web.View):
        async def post(self, request: Any, alert_id: str) -> Any:
            return _json(await api.alerts.ack(request, alert_id))

    return api

"""Snooze and acknowledge: the HTTP side of the Redis alert policy
(``processor.alerts.actions``). Alert state is shared in Redis, so any worker
answers for any alert: no routing to an owner."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime

from aiohttp import web
from redis.exceptions import RedisError

from processor.alerts.actions import AlertActions, InvalidAction, UnknownAlert
from processor.web.errors import ApiError
from processor.web.middleware import read_model
from processor.web.models import AckRequest, SnoozeRequest
from schemas import AlertStatus

POLICY_OFF = ApiError(
    503, "alert_policy_off",
    "The alert policy is off (HYGIENE_ALERT_POLICY): snoozes and acknowledgements are "
    "recorded by it.",
)


class AlertRoutes:
    def __init__(self, actions: AlertActions | None, max_body: int) -> None:
        self.actions = actions
        self.max_body = max_body

    def _actions(self) -> AlertActions:
        if self.actions is None:
            raise POLICY_OFF
        return self.actions

    async def snooze(self, request: web.Request, alert_id: str) -> AlertStatus:
        actions = self._actions()
        body = await read_model(request, self.max_body, SnoozeRequest)
        until = body.expiry(datetime.now(UTC))
        return await _recorded(actions.snooze(alert_id, body.by, body.reason, until), alert_id)

    async def ack(self, request: web.Request, alert_id: str) -> AlertStatus:
        actions = self._actions()
        body = await read_model(request, self.max_body, AckRequest)
        return await _recorded(actions.ack(alert_id, body.by), alert_id)

    async def status(self, alert_id: str) -> AlertStatus:
        try:
            status = await self._actions().status(alert_id)
        except (RedisError, OSError) as exc:
            raise _redis_down(exc) from None
        if status is None:
            raise _unknown(alert_id)
        return status

    async def close(self) -> None:
        if self.actions is not None:
            await self.actions.client.aclose()


async def _recorded(call: Awaitable[AlertStatus], alert_id: str) -> AlertStatus:
    try:
        return await call
    except UnknownAlert:
        raise _unknown(alert_id) from None
    except InvalidAction as exc:
        raise ApiError(422, "invalid_action", str(exc)) from None
    except (RedisError, OSError) as exc:
        raise _redis_down(exc) from None


def _unknown(alert_id: str) -> ApiError:
    return ApiError(404, "not_found", f"The alert policy holds no alert {alert_id!r}.")


def _redis_down(exc: BaseException) -> ApiError:
    return ApiError(503, "redis_unavailable", f"Redis did not answer: {type(exc).__name__}.",
                    {"Retry-After": "5"})

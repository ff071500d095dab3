"""The guard in front of every route (aiohttp middleware): bearer token on
everything but health and metrics, the body-size limit, and JSON errors for
whatever a view or aiohttp itself refuses (no route, wrong method, a crash).

It sits on the aiohttp application rather than on each view so that a route
added later, ours or Faust's, is protected without anyone remembering to.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware
from pydantic import BaseModel, SecretStr, ValidationError

from processor.web.auth import require_bearer
from processor.web.errors import ERROR_CODES, ApiError, error_response
from processor.web.metrics import REQUESTS

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"Request bodies are limited to {limit} bytes.")


def guard(token: SecretStr | None, max_body_bytes: int) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await _guarded(request, handler)
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        REQUESTS.labels(route=route, status=str(response.status)).inc()
        return response

    async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if request.path not in PUBLIC_PATHS:
                require_bearer(request.headers.get("Authorization"), token)
                length = request.content_length
                if length is not None and length > max_body_bytes:
                    raise too_large(max_body_bytes)
            return await handler(request)
        except ApiError as exc:
            return exc.response()
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
            return error_response(exc.status, ERROR_CODES.get(exc.status, "error"),
                                  exc.reason, headers)
        except Exception:
            log.exception("HTTP %s %s failed", request.method, request.path)
            return error_response(500, "internal_error", "The worker failed to answer; "
                                  "see its log.")

    return middleware


async def read_body(request: web.Request, limit: int) -> bytes:
    """The body, refused past ``limit`` even when no Content-Length announced
    it (chunked uploads): read in pieces, never more than limit + 1 bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(min(65_536, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)


def parse_model(body: bytes, model: type[M]) -> M:
    """A JSON body as ``model``: 400 ``bad_json`` when it is not JSON, 400
    ``invalid_request`` (naming the fields) when it does not fit."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "bad_json", f"The body is not valid JSON: {exc}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}"
            for e in exc.errors()[:10]
        )
        raise ApiError(400, "invalid_request", problems) from None


async def read_model(request: web.Request, limit: int, model: type[M]) -> M:
    return parse_model(await read_body(request, limit), model)

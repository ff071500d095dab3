"""API errors: one JSON shape, ``{"error": code, "message": text}``, for
every refusal, so a CRM hook or a script can branch on ``error`` and show
``message`` to a person."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from aiohttp import web


class ApiError(Exception):
    """Raised anywhere under a view; the middleware turns it into a response."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        return error_response(self.status, self.error, self.message, self.headers)


def error_response(
    status: int, error: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps({"error": error, "message": message}),
        status=status,
        content_type="application/json",
        headers=headers,
    )


ERROR_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    503: "unavailable",
}
"""Codes for refusals that aiohttp itself raises (no route, wrong method)."""

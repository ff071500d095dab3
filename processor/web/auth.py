"""Bearer-token checks. Fails closed: with no token configured nothing
protected is served, because an API that silently turns open when a secret
is missing from the environment is worse than one that refuses."""

from __future__ import annotations

import hmac

from pydantic import SecretStr

from processor.web.errors import ApiError

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="revops-hygiene"'}


def require_bearer(header: str | None, token: SecretStr | None) -> None:
    """Raises ApiError unless ``header`` is ``Bearer <token>``; compared in
    constant time so response timing does not leak the token."""
    if token is None or not token.get_secret_value():
        raise ApiError(
            503, "api_disabled",
            "No API token is configured (HYGIENE_API_TOKEN), so this worker serves no "
            "protected route.",
        )
    scheme, _, given = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise ApiError(401, "unauthorized", "Send Authorization: Bearer <token>.", _CHALLENGE)
    expected = token.get_secret_value().encode()
    if not hmac.compare_digest(given.strip().encode(), expected):
        raise ApiError(401, "unauthorized", "The bearer token is not valid.", _CHALLENGE)

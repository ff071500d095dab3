"""A stand-in OAuth 2 identity provider on loopback: the client-credentials
grant with HTTP basic client authentication, issuing unsigned JWTs that the
local broker's unsecured OAUTHBEARER validator accepts."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import orjson

CLIENT_ID = "hygiene-worker"
CLIENT_SECRET = "oauth-test-secret"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenServer:
    url: str
    lifetime_seconds: int
    requests: list[dict[str, list[str]]] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)

    def token_for(self, subject: str) -> str:
        now = int(time.time())
        claims = {"sub": subject, "iat": now, "exp": now + self.lifetime_seconds}
        token = f"{_b64(orjson.dumps({'alg': 'none'}))}.{_b64(orjson.dumps(claims))}."
        self.issued.append(token)
        return token


@contextmanager
def token_server(lifetime_seconds: int = 3600) -> Iterator[TokenServer]:
    expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    state: list[TokenServer] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            server = state[0]
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            form = parse_qs(body.decode())
            server.requests.append(form)
            if self.headers.get("Authorization") != expected:
                self._answer(401, {"error": "invalid_client"})
            elif form.get("grant_type") != ["client_credentials"]:
                self._answer(400, {"error": "unsupported_grant_type"})
            else:
                self._answer(200, {"access_token": server.token_for(CLIENT_ID),
                                   "token_type": "Bearer",
                                   "expires_in": server.lifetime_seconds})

        def _answer(self, status: int, body: dict[str, object]) -> None:
            data = orjson.dumps(body)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.append(TokenServer(f"http://127.0.0.1:{httpd.server_port}/oauth2/token",
                             lifetime_seconds))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state[0]
    finally:
        httpd.shutdown()
        httpd.server_close()

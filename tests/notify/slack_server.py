"""A local stand-in for Slack's incoming webhooks and Web API that records
every request and answers 429 or 5xx on cue.

It is an HTTP server on loopback, not a mock of our code: the notifier
reaches it through slack-sdk over real sockets, exactly as it reaches Slack.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    """time.monotonic() when it arrived."""
    status: int
    """What the server answered."""
    answer: bytes = b""

    @property
    def answer_json(self) -> Any:
        return orjson.loads(self.answer)

    @property
    def meta(self) -> dict[str, Any]:
        """The message's metadata: which record it is about."""
        body = self.json
        metadata = body.get("metadata") if isinstance(body, dict) else None
        return metadata or {}

    @property
    def event(self) -> tuple[str | None, str | None]:
        """(event type, alert id or owner id) of the message."""
        payload = self.meta.get("event_payload", {})
        return self.meta.get("event_type"), payload.get("alert_id") or payload.get("owner_id")

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class Cue:
    match: Callable[[str, bytes], bool]
    answers: list[Answer]


class SlackServer:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._cues: list[Cue] = []
        self._lock = threading.Lock()
        self._ts = itertools.count(1)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                answer = server._answer(self.path, body)
                with server._lock:
                    server.requests.append(Request(
                        self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                        time.monotonic(), answer.status, answer.body))
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> SlackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def cue(self, event_type: str, record: str, *answers: Answer,
            path: str | None = None) -> None:
        """The next requests about ``record`` (see ``Request.event``; and to
        ``path``, if given) get these answers, in order; later ones are normal."""
        def match(p: str, body: bytes) -> bool:
            probe = Request(p, {}, body, 0.0, 0)
            return probe.event == (event_type, record) and (path is None or p == path)

        with self._lock:
            self._cues.append(Cue(match, list(answers)))

    def clear_cues(self) -> None:
        with self._lock:
            self._cues.clear()

    def _answer(self, path: str, body: bytes) -> Answer:
        with self._lock:
            for cue in self._cues:
                if cue.answers and cue.match(path, body):
                    return cue.answers.pop(0)
        if path.startswith("/api/"):
            return self._web_api(path, body)
        return Answer(200, {"Content-Type": "text/html"}, b"ok")

    def _web_api(self, path: str, body: bytes) -> Answer:
        request = orjson.loads(body) if body else {}
        ok = {"Content-Type": "application/json; charset=utf-8"}
        if path == "/api/chat.postMessage":
            ts = f"1763300000.{next(self._ts):06d}"
            return Answer(200, ok, orjson.dumps(
                {"ok": True, "channel": request.get("channel"), "ts": ts}))
        if path == "/api/chat.update":
            return Answer(200, ok, orjson.dumps(
                {"ok": True, "channel": request.get("channel"), "ts": request.get("ts")}))
        return Answer(404, ok, orjson.dumps({"ok": False, "error": "unknown_method"}))

    # ---- reading what arrived ------------------------------------------------
    def received(self, path: str | None = None, contains: str | None = None) -> list[Request]:
        with self._lock:
            found = list(self.requests)
        return [r for r in found if (path is None or r.path == path)
                and (contains is None or contains.encode() in r.body)]

    def delivered(self, path: str | None = None, contains: str | None = None) -> list[Request]:
        return [r for r in self.received(path, contains) if r.ok]

    def about(self, event_type: str, record: str, path: str | None = None) -> list[Request]:
        """Every request (answered any way) whose message is about ``record``."""
        return [r for r in self.received(path) if r.event == (event_type, record)]


def rate_limited(seconds: int) -> Answer:
    return Answer(429, {"Retry-After": str(seconds), "Content-Type": "text/plain"},
                  b"rate_limited")


def server_error() -> Answer:
    return Answer(500, {"Content-Type": "application/json"},
                  orjson.dumps({"ok": False, "error": "internal_error"}))


@contextlib.contextmanager
def slack_server() -> Iterator[SlackServer]:
    with SlackServer() as server:
        yield server

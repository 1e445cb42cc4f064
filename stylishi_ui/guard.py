"""One ASGI middleware in front of every route: the request limits the public app needs and Gradio does not give.

- `X-Content-Type-Options: nosniff` on every response;
- an unknown `/gradio_api/call/<name>` answers 404 (Gradio answers 500);
- a per-client rate limit on requests that do work (POST): 429 with a sentence and Retry-After;
- bodies over their limit refused with 413 before anything parses them (the upload route: the file limit plus the
  form's overhead, and the same for the REST form at /api/v1/search, read here in full and replayed; every other
  route: the base64 of a picture at the file limit, plus the JSON around it);
- one file per upload request (Gradio would take 1,000);
- `/gradio_api/file=<one of the app's /media URLs>` (how gradio_client downloads a gallery picture) is answered
  from that /media route;
- a file input (any `"path"` in a JSON body's `data`, the event's inputs) must name an upload this server received,
  or one of the app's own pictures: anything else is refused with one message that says nothing about whether the
  path exists.

Pure ASGI (no Gradio import), so the same rules hold for the page's queue, the API, /run, MCP and anything added
later. Client addresses are the TCP peer: behind a proxy, every visitor shares the proxy's address (set the limit at
the proxy, or raise STYLISHI_RATE_LIMIT).
"""
from __future__ import annotations

import json
import logging
import math
import re
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable

log = logging.getLogger(__name__)

NOT_HERE = ("That picture was not uploaded to this app. Upload the file first (a program POSTs it to "
            "/gradio_api/upload) and send the path that upload returns.")
TOO_LARGE = "The request is too large: a picture may be at most {mb} MB."
ONE_FILE = "Send one file per upload request."
NOT_FOUND = "There is no API endpoint named {name!r}. Endpoints: {names}."
RATE = ("Too many requests from your address: at most {n} a minute. Please wait {wait} seconds and try again.")
# gradio_client downloads a gallery picture at /gradio_api/file=<the picture's URL>: for the app's own /media URLs
# that is answered from /media (by name; nothing is fetched).
_MEDIA_VIA_FILE = re.compile(r"^(?P<prefix>.*)/gradio_api/file=https?://[^/]+(?:/[^/]+)*?(?P<media>/media/(?:thumbs|examples)/[^/]+)$")
_CALL = re.compile(r"^(?P<prefix>.*)/gradio_api/call/(?:v2/)?(?P<name>[^/]+)(?:/[^/]*)?/?$")
JSON_OVERHEAD = 64 * 1024
FORM_OVERHEAD = 64 * 1024

Scope = dict
Message = dict
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class FileGate:
    """Which file paths a request may name: files under the app's own folders (uploads, thumbnails, examples)."""

    def __init__(self, roots: Iterable[str | Path]):
        self.roots = [Path(r).resolve() for r in roots]

    def allows(self, path: Any) -> bool:
        if not isinstance(path, str) or not path or "\x00" in path or "://" in path or len(path) > 4096:
            return False
        try:
            target = Path(path).resolve()
        except (OSError, RuntimeError, ValueError):
            return False
        return any(target != root and target.is_relative_to(root) for root in self.roots)


class RateLimit:
    """A token bucket per client address: `per_minute` requests a minute, in bursts of up to `burst`."""

    def __init__(self, per_minute: int, burst: int | None = None, clock: Callable[[], float] = time.monotonic,
                 max_clients: int = 10_000):
        self.per_minute = int(per_minute)
        self.burst = float(burst if burst is not None else max(1, self.per_minute // 5))
        self.rate = self.per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, when)
        self._max_clients = max_clients

    def take(self, client: str) -> float:
        """0 when the request may go ahead; else the seconds until it could."""
        if self.per_minute <= 0:
            return 0.0
        now = self._clock()
        tokens, when = self._buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - when) * self.rate)
        if tokens >= 1:
            self._remember(client, (tokens - 1, now))
            return 0.0
        self._remember(client, (tokens, now))
        return (1 - tokens) / self.rate

    def _remember(self, client: str, state: tuple[float, float]) -> None:
        if client not in self._buckets and len(self._buckets) >= self._max_clients:
            now = self._clock()  # forget clients whose bucket has refilled: they lose nothing
            full = [c for c, (t, w) in self._buckets.items() if t + (now - w) * self.rate >= self.burst]
            for c in full or list(self._buckets)[: self._max_clients // 10]:
                del self._buckets[c]
        self._buckets[client] = state


class RequestGuard:
    def __init__(self, app, *, max_bytes: int, api_names: Iterable[str], gate: FileGate, rate: RateLimit,
                 upload_path: str = "/gradio_api/upload", form_paths: Iterable[str] = (),
                 on_upload: Callable[[str], None] | None = None):
        self.app = app
        self.on_upload = on_upload  # told each path an upload hands out (stylishi.privacy.UploadJanitor.uploaded)
        self.max_bytes = int(max_bytes)
        self.upload_limit = self.max_bytes + FORM_OVERHEAD
        self.body_limit = 4 * math.ceil(self.max_bytes / 3) + len("data:image/webp;base64,") + JSON_OVERHEAD
        self.api_names = set(api_names)
        self.gate = gate
        self.rate = rate
        self.upload_path = upload_path
        self.form_paths = tuple(form_paths)  # routes taking one picture as a raw form part (stylishi_ui.rest)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _nosniff(send)
        path = scope.get("path", "")
        media = _MEDIA_VIA_FILE.match(path) if scope["method"] in ("GET", "HEAD") else None
        if media:
            path = media.group("prefix") + media.group("media")
            scope = {**scope, "path": path, "raw_path": path.encode()}
        call = _CALL.match(path)
        if call and call.group("name") not in self.api_names:
            names = ", ".join(sorted(self.api_names))
            await _answer(send, 404, NOT_FOUND.format(name=call.group("name")[:40], names=names))
            return
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("?", 0))[0]
        wait = self.rate.take(client)
        if wait:
            seconds = max(1, math.ceil(wait))
            await _answer(send, 429, RATE.format(n=self.rate.per_minute, wait=seconds),
                          [(b"retry-after", str(seconds).encode())])
            return
        upload = path.endswith(self.upload_path)
        form = bool(self.form_paths) and path.rstrip("/").endswith(self.form_paths)
        limit = self.upload_limit if upload or form else self.body_limit
        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _answer(send, 413, TOO_LARGE.format(mb=round(self.max_bytes / 1e6)))
            return
        if upload:
            await self._upload(scope, receive, send, limit)
            return
        body, complete = await _read(receive, limit)
        if not complete:
            await _answer(send, 413, TOO_LARGE.format(mb=round(self.max_bytes / 1e6)))
            return
        if body and b'"path"' in body and b"json" in (_header(scope, b"content-type") or "").encode():
            try:
                payload = json.loads(body)
            except ValueError:
                payload = None  # Gradio refuses it on its own
            # The event's inputs only: `event_data` (a clicked gallery item's URL) is never opened as a file.
            inputs = payload.get("data") if isinstance(payload, dict) else None
            if any(not self.gate.allows(p) for p in _paths(inputs)):
                await _answer(send, 400, NOT_HERE)
                return
        await self.app(scope, _replay(body, receive), send)

    def _told(self, body: bytes) -> None:
        for path in _upload_paths(body):
            try:
                self.on_upload(path)
            except Exception as exc:  # noqa: BLE001 - bookkeeping must never fail an upload
                log.warning("an upload's path could not be noted (%s)", type(exc).__name__)

    async def _upload(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Stream the form to Gradio, counting its bytes and its part delimiters. At the second delimiter (the close
        of a one-file form, or the start of a second file) Gradio gets the form closed right there, and the rest of
        the body is read here: any further delimiter, or bytes over the limit, and the request is refused (Gradio's
        answer is dropped; the one file it kept is taken by its purge)."""
        boundary = _boundary(_header(scope, b"content-type") or "")
        delimiter = b"--" + boundary if boundary else b""
        keep = max(0, len(delimiter) - 1)  # held back: a delimiter may straddle two chunks
        state = {"total": 0, "count": 0, "pending": b"", "done": False, "refused": None}

        async def drain() -> None:
            tail = b""
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return
                chunk = message.get("body", b"")
                state["total"] += len(chunk)
                if state["total"] > limit:
                    state["refused"] = 413
                    return
                window = tail + chunk
                if delimiter in window:
                    state["refused"] = 400
                    return
                tail = window[-keep:] if keep else b""
                if not message.get("more_body", False):
                    return

        async def guarded() -> Message:
            if state["done"]:
                return await receive()  # after the body: only a real disconnect comes
            message = await receive()
            if message["type"] != "http.request":
                return message
            chunk = message.get("body", b"")
            state["total"] += len(chunk)
            more = message.get("more_body", False)
            if state["total"] > limit:
                state["refused"], state["done"] = 413, True
                return {"type": "http.request", "body": b"", "more_body": False}
            window = state["pending"] + chunk
            if not delimiter:
                state["done"] = not more
                return message
            start = 0
            while True:
                at = window.find(delimiter, start)
                if at < 0:
                    break
                state["count"] += 1
                if state["count"] == 2:
                    state["done"] = True
                    rest = window[at + len(delimiter):]
                    if (len(rest) >= 2 and rest[:2] != b"--") or delimiter in rest:
                        state["refused"] = 400  # a second part, not the close
                    elif more:
                        await drain()
                    return {"type": "http.request", "body": window[:at] + delimiter + b"--\r\n", "more_body": False}
                start = at + len(delimiter)
            if not more:
                state["done"] = True
                return {"type": "http.request", "body": window, "more_body": False}
            state["pending"] = window[-keep:] if keep and len(window) > keep else (window if keep else b"")
            body = window[: len(window) - len(state["pending"])]
            return {"type": "http.request", "body": body, "more_body": True}

        started = {"sent": False, "status": 0, "body": b""}

        async def guarded_send(message: Message) -> None:
            if state["refused"]:
                return
            started["sent"] = True
            if message["type"] == "http.response.start":
                started["status"] = message.get("status", 0)
            elif message["type"] == "http.response.body" and started["status"] == 200 and self.on_upload:
                started["body"] += message.get("body", b"")
                if not message.get("more_body", False):
                    self._told(started["body"])
            await send(message)

        try:
            await self.app(scope, guarded, guarded_send)
        except Exception:
            if not state["refused"]:
                raise
        if state["refused"] and not started["sent"]:
            message = TOO_LARGE.format(mb=round(self.max_bytes / 1e6)) if state["refused"] == 413 else ONE_FILE
            await _answer(send, state["refused"], message)


def _upload_paths(body: bytes) -> list[str]:
    """The paths an upload's answer hands out: a JSON list of strings (Gradio's), else none."""
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return []
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _paths(value: Any, depth: int = 0):
    """Every `"path"` string in a JSON value (file inputs), at any depth."""
    if depth > 32:
        yield None  # absurd nesting: refused
        return
    if isinstance(value, dict):
        if "path" in value and value["path"] is not None:
            yield value["path"]
        for v in value.values():
            if isinstance(v, (dict, list)):
                yield from _paths(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            if isinstance(v, (dict, list)):
                yield from _paths(v, depth + 1)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


def _boundary(content_type: str) -> bytes | None:
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    return match.group(1).encode("latin-1") if match else None


async def _read(receive: Receive, limit: int) -> tuple[bytes, bool]:
    chunks, total = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), True
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            return b"", False
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body read already, then the connection's own messages (a real disconnect, when it comes)."""
    sent = {"done": False}

    async def replayed() -> Message:
        if sent["done"]:
            return await receive()
        sent["done"] = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


def _nosniff(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            if not any(k.lower() == b"x-content-type-options" for k, _ in headers):
                headers.append((b"x-content-type-options", b"nosniff"))
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


async def _answer(send: Send, status: int, message: str, headers: list | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store"), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})

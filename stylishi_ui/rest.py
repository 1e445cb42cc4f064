"""POST /api/v1/search: one HTTP request per search, for programs (curl, a shop's backend) that need neither
Gradio's upload step, its queue nor its event stream.

    curl -F image=@shirt.jpg -F k=5 -F 'filters={"gender": "Women"}' http://127.0.0.1:7860/api/v1/search
    curl -F text="red floral summer dress" http://127.0.0.1:7860/api/v1/search

A multipart form (or a urlencoded one, for text) with `image` (a file) or `text`, and optional `k` and `filters`
(JSON text). It answers the same JSON list of matches as the Gradio endpoints (`cards.results_json`), or
`{"error": "<a sentence>"}` with a 4xx status. It calls the same `SearchService` methods, so the same validation,
query log line and /stats counting apply; the request guard (stylishi_ui.guard) sits in front of it as in front of
every route: body limit (413), per-client rate limit (429), nosniff.

Privacy: the form is parsed in memory (the guard has already bounded it to the file limit plus a little), so the
picture's bytes never touch the disk; they are dropped when the request ends.

Concurrency: at most `running` searches at once (the cores), up to `waiting` more wait at most `wait_s` seconds for
a turn; beyond that the answer is 503 with Retry-After. A short queue, not an immediate 503, because 8 clients on 2
cores must all be served (each waits ~100 ms), while a flood still cannot pile up unbounded work or memory.
"""
from __future__ import annotations

import asyncio
import inspect
import json
import logging
import math
import threading
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qsl

from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from stylishi import StyliShiError
from stylishi.filters import parse_filters

from . import cards, gradio_compat as compat
from .api import DEFAULT_K
from .guard import FORM_OVERHEAD, TOO_LARGE

log = logging.getLogger("stylishi.app")

PATH = "/api/v1/search"
FIELDS = ("image", "text", "k", "filters")
# Optional fields passed through to the core when its search method takes them (region, "like this, but", dedup).
OPTIONAL_FIELDS = ("box", "text_weight", "dedup")
NEITHER = "Send an `image` (a JPEG, PNG or WebP file) or a `text` (a few words) to search for."
ONE_IMAGE = "Send one image per search."
NOT_A_FILE = "`image` must be a file (curl -F image=@photo.jpg), not a text field."
TEXT_FIELD = "`{name}` must be a text field, not a file."
BOTH = "Send either an `image` or a `text`, not both."
FORM = ("Send the search as a multipart form (curl -F image=@photo.jpg or -F text=...), or a urlencoded one for a "
        "text; got {kind!r}.")
BAD_FORM = "The form could not be read. Send it as multipart/form-data (curl -F image=@photo.jpg)."
UNKNOWN = "Unknown form field {name!r}. Fields: {fields}."
BUSY = "The search service is busy. Please try again in {wait} second{s}."
SORRY = "Something went wrong on our side. Please try again in a moment."


class Busy(Exception):
    """No turn for this request: every slot is taken and the waiting line is full or too slow."""


@dataclass
class Admission:
    """At most `running` searches at once; up to `waiting` more wait at most `wait_s` seconds, the rest are turned
    away (Busy). Counts what it did, for /stats."""

    running: int = 2
    waiting: int = 16
    wait_s: float = 10.0
    counts: dict[str, int] = field(default_factory=lambda: {"served": 0, "turned_away": 0})
    _sem: asyncio.Semaphore | None = None
    _queued: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._sem = asyncio.Semaphore(self.running)  # bound to the server's loop on first use

    async def __aenter__(self) -> "Admission":
        with self._lock:
            if self._sem.locked() and self._queued >= self.waiting:
                self.counts["turned_away"] += 1
                raise Busy
            self._queued += 1
        try:
            await asyncio.wait_for(self._sem.acquire(), timeout=self.wait_s)
        except asyncio.TimeoutError:
            with self._lock:
                self.counts["turned_away"] += 1
            raise Busy from None
        finally:
            with self._lock:
                self._queued -= 1
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self._sem.release()
        with self._lock:
            self.counts["served"] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"running_max": self.running, "waiting_max": self.waiting, "waiting_now": self._queued,
                    **self.counts}


class FormError(Exception):
    """The request is not a form this route reads; the message is for the caller."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class Form:
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, list[bytes]] = field(default_factory=dict)


def parse_form(body: bytes, content_type: str) -> Form:
    """A multipart or urlencoded body, parsed in memory (nothing is spooled to disk, unlike Starlette's forms)."""
    kind = content_type.split(";", 1)[0].strip().lower()
    form = Form()
    if kind == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=16)
        except (UnicodeDecodeError, ValueError):
            raise FormError(BAD_FORM) from None
        for name, value in pairs:
            form.fields[name] = value
        return form
    if kind != "multipart/form-data":
        raise FormError(FORM.format(kind=kind[:60] or "no content type"), 415)
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise FormError(BAD_FORM)
    part: dict[str, Any] = {}
    header: dict[str, bytes] = {"field": b"", "value": b""}
    parts = 0

    def on_part_begin() -> None:
        nonlocal parts
        parts += 1
        if parts > 16:
            raise FormError("The form has too many fields.")
        part.clear()
        part.update(headers={}, data=[])

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header["value"] += data[start:end]

    def on_header_end() -> None:
        part["headers"][header["field"].lower()] = header["value"]
        header["field"], header["value"] = b"", b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        part["data"].append(data[start:end])

    def on_part_end() -> None:
        _, options = parse_options_header(part["headers"].get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        data = b"".join(part["data"])
        if b"filename" in options:
            form.files.setdefault(name, []).append(data)
        else:
            form.fields[name] = data.decode("utf-8", "replace")

    callbacks = dict(on_part_begin=on_part_begin, on_part_data=on_part_data, on_part_end=on_part_end,
                     on_header_field=on_header_field, on_header_value=on_header_value, on_header_end=on_header_end)
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except FormError:
        raise
    except Exception:  # python-multipart raises several kinds on a malformed body
        raise FormError(BAD_FORM) from None
    return form


@dataclass
class Query:
    """One search, read from the form: what to call on the service and with which arguments."""

    kind: str  # "image" or "text"
    query: Any  # the picture's bytes, or the text
    k: Any
    filters: Any
    options: dict[str, Any]


def read_query(form: Form, accepted: Callable[[str], bool]) -> Query:
    """The form's search, or a FormError naming what is wrong. `accepted(name)`: whether the core's search method
    takes that optional field."""
    for name in [*form.fields, *form.files]:
        if name not in FIELDS and name not in OPTIONAL_FIELDS:
            raise FormError(UNKNOWN.format(name=name[:40], fields=", ".join(FIELDS)))
    for name in form.files:
        if name != "image":
            raise FormError(TEXT_FIELD.format(name=name))
    images = form.files.get("image", [])
    if len(images) > 1:
        raise FormError(ONE_IMAGE)
    if "image" in form.fields:
        raise FormError(NOT_A_FILE)
    text = form.fields.get("text")
    if images and text is not None and text.strip() and not accepted("text"):
        raise FormError(BOTH)
    k = form.fields.get("k")
    k = DEFAULT_K if k is None or not k.strip() else k.strip()
    k = int(k) if isinstance(k, str) and k.isdigit() and len(k) < 6 else k  # else the core explains it
    filters = parse_filters(form.fields.get("filters"))  # QueryError for bad JSON: a 400 with the core's sentence
    options = {}
    for name in OPTIONAL_FIELDS:
        if name in form.fields and form.fields[name].strip():
            if not accepted(name):
                raise FormError(UNKNOWN.format(name=name, fields=", ".join(FIELDS)))
            options[name] = _option(name, form.fields[name])
    if images:
        if text is not None and text.strip():
            options["text"] = text
        return Query("image", images[0], k, filters, options)
    if text is not None:
        return Query("text", text, k, filters, options)
    raise FormError(NEITHER)


def _option(name: str, raw: str) -> Any:
    """An optional field's value: JSON (a box as [x0, y0, x1, y1], a number, true/false), else the text as sent."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


class SearchAPI:
    """The route and what it needs: the service, where thumbnails are served, and its admission control."""

    def __init__(self, service, media, *, running: int = 2, waiting: int = 16, wait_s: float = 10.0):
        self.service = service
        self.media = media
        self.admission = Admission(running=running, waiting=waiting, wait_s=wait_s)
        self.max_body = service.limits.max_bytes + FORM_OVERHEAD
        self._params = {kind: set(inspect.signature(getattr(service, f"search_{kind}")).parameters)
                        for kind in ("image", "text")}

    def route(self) -> APIRoute:
        return APIRoute(PATH, self.handle, methods=["POST"], name="stylishi_rest_search", include_in_schema=False)

    async def handle(self, request: Request) -> JSONResponse:
        try:
            body = await request.body()  # the guard stopped anything over its limit before this
            if len(body) > self.max_body:
                return _error(413, TOO_LARGE.format(mb=round(self.service.limits.max_bytes / 1e6)))
            form = parse_form(body, request.headers.get("content-type", ""))
            del body
            query = read_query(form, lambda name: name in self._params["image"] or name in self._params["text"])
            del form
            async with self.admission:
                response = await run_in_threadpool(self._search, query)
        except FormError as exc:
            return _error(exc.status, str(exc))
        except StyliShiError as exc:  # the core's sentence: bad k, filters, picture, text (already logged, counted)
            return _error(400, str(exc))
        except Busy:
            wait = max(1, math.ceil(self.admission.wait_s / 10))
            return _error(503, BUSY.format(wait=wait, s="" if wait == 1 else "s"), {"Retry-After": str(wait)})
        except Exception:
            log.exception("REST search failed")  # the traceback, never the picture or the text
            return _error(500, SORRY)
        url_of = self.media.url_maker(compat.root_url_of(request))
        timings = ", ".join(f"{stage};dur={ms:.1f}" for stage, ms in response.timings_ms.items())
        return JSONResponse(cards.results_json(response, url_of),
                            headers={"Cache-Control": "no-store", "Server-Timing": timings})

    def _search(self, query: Query):
        params = self._params[query.kind]
        options = {name: value for name, value in query.options.items() if name in params}
        if query.kind == "image":
            return self.service.search_image(query.query, query.k, query.filters, **options)
        return self.service.search_text(query.query, query.k, query.filters, **options)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers={"Cache-Control": "no-store", **(headers or {})})

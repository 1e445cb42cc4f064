#!/usr/bin/env python
"""StyliShi: the public web page. A thin gr.Blocks UI wired to the `stylishi` core; no search logic lives here.

    python build_index.py --demo --out demo_index     # offline demo catalog (once, ~10 s)
    python app.py --index demo_index                  # serve it on http://127.0.0.1:7860

Host and port come from Gradio's own env vars (GRADIO_SERVER_NAME, GRADIO_SERVER_PORT); the index, model and device
from --index/--model/--device or STYLISHI_INDEX/STYLISHI_MODEL/STYLISHI_DEVICE; the MCP server from --mcp or
STYLISHI_MCP=1 (needs `pip install "gradio[mcp]"`).
"""
from __future__ import annotations

import os

# Read once, at import, by gradio and huggingface_hub: a public demo phones nobody home.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import argparse  # noqa: E402
import base64  # noqa: E402
import binascii  # noqa: E402
import html  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import gradio as gr  # noqa: E402

from stylishi import SearchResponse, SearchService, StyliShiError  # noqa: E402
from stylishi.config import Settings, set_threads  # noqa: E402
from stylishi.privacy import UploadJanitor  # noqa: E402

log = logging.getLogger("stylishi.app")

HERE = Path(__file__).resolve().parent
EXAMPLES_DIR = HERE / "data" / "examples"
MAX_FILE_SIZE = "10mb"
DELETE_CACHE = (60, 120)  # backstop: every minute, purge uploads older than 2 min (even ones never queried)
FORGET_UPLOAD_AFTER_S = 5  # a query's own upload is deleted this long after the query (stylishi.privacy)
# Gradio keeps a ~90 KB session (a copy of the page's config, and the last results) per browser tab and per API
# call. An API call's session is dropped 5 s after the call; browser tabs are capped here (oldest go first) instead
# of Gradio's 10,000 (~900 MB).
SESSION_CAPACITY = 2000
LIVE_EVERY_S = 0.5
LIVE_TIME_LIMIT_S = 60
LIVE_CONCURRENCY = 2
SEARCH_CONCURRENCY = 2
DEFAULT_K = 10
FILTER_LABELS = {"gender": "Gender", "category": "Category", "subcategory": "Subcategory", "article_type": "Type",
                 "colour": "Colour", "season": "Season", "usage": "Usage"}
# Rear camera on phones (pointing at a garment); not mirrored, so the query is the garment as it is.
WEBCAM = gr.WebcamOptions(mirror=False, constraints={"video": {"facingMode": {"ideal": "environment"},
                                                              "width": {"ideal": 640}, "height": {"ideal": 480}}})
HINT = "Upload a photo, take one with your camera, pick an example or describe what you are looking for."

CSS = """
.gradio-container { max-width: 1280px !important; margin: 0 auto !important; }
#brand h1 { margin: 0; font-size: 2rem; letter-spacing: -0.02em; }
#brand p { margin: 0.15rem 0 0; opacity: 0.75; }
#notice { border-left: 4px solid var(--color-accent); background: var(--color-accent-soft); padding: 0.5rem 0.9rem;
          border-radius: var(--radius-md); }
#notice p { margin: 0; }
#timings { font-size: 0.85rem; opacity: 0.8; min-height: 1.4em; }
#timings p { margin: 0; }
/* Result cards: the whole picture, then rank · % match, name, category · colour underneath. */
#results .grid-wrap { max-height: none !important; height: auto !important; min-height: 0 !important;
                      overflow: visible !important; }
#results .grid-container { grid-auto-rows: auto !important; }
#results .gallery-item, #results .thumbnail-item { height: auto !important; }
#results .thumbnail-item { aspect-ratio: auto !important; display: flex !important; flex-direction: column; }
#results .thumbnail-item img { width: 100% !important; height: auto !important; aspect-ratio: 1 / 1; }
#results .caption-label { position: static !important; width: auto !important; max-width: none !important;
                          white-space: pre-line; text-align: left; line-height: 1.3; font-size: 0.8rem;
                          padding: 4px 8px 6px !important; border-radius: 0 !important;
                          background: transparent !important;
                          overflow-wrap: anywhere; }
#results .caption-label::first-line { font-weight: 700; color: var(--color-accent); }
#selected p { margin: 0; }
@media (max-width: 640px) {
  #brand h1 { font-size: 1.5rem; }
  #results .grid-container { grid-template-columns: repeat(2, minmax(0, 1fr)) !important; }
  #examples .gallery { flex-wrap: nowrap !important; overflow-x: auto; padding-bottom: 4px;
                       width: 0; min-width: 100%; }  /* scrolls sideways instead of widening the page */
  #examples .gallery-item { flex: 0 0 76px; width: 76px; }
}
"""


# -- adapters between Gradio values and the core ------------------------------------------------------------------
def UserError(message: str) -> gr.Error:  # noqa: N802 - reads as the exception it returns
    """A message for the person on the page (or the API caller). Not printed with a traceback in the server log:
    it is no fault of ours, and the message may quote what they sent (an unknown id or filter value)."""
    return gr.Error(message, print_exception=False)


def query_image(**kwargs) -> gr.Image:
    """A gr.Image that hands the core the raw upload (a file path, or bytes for a data URL) instead of decoding it.

    The core's intake is then the single place pictures are opened: a damaged or non-image file gets its clear
    message rather than Pillow's traceback, and every picture is decoded once. (An instance attribute, not a
    subclass: Gradio writes a .pyi stub next to any module that subclasses a component.)
    """
    component = gr.Image(**kwargs)

    def preprocess(payload):
        if payload is None:
            return None
        if payload.url and payload.url.startswith("data:"):
            try:
                return base64.b64decode(payload.url.split(",", 1)[1], validate=False)
            except (IndexError, binascii.Error, ValueError):
                raise UserError("The picture could not be read. Please take or upload it again.") from None
        if payload.path is None:
            raise UserError("No picture arrived. Please upload it again.")
        return payload.path

    component.preprocess = preprocess  # type: ignore[method-assign]
    return component


FILTERS_SCHEMA = {
    "anyOf": [
        {"type": "object", "additionalProperties": {"anyOf": [{"type": "string"},
                                                             {"type": "array", "items": {"type": "string"}}]}},
        {"type": "string"},
        {"type": "null"},
    ],
    "description": 'e.g. {"gender": "Women", "colour": ["Red", "Blue"]}, or that object as JSON text',
}


def filters_input() -> gr.JSON:
    """The API's `filters` argument: a JSON object field → value(s), with a real JSON schema.

    gr.JSON describes its input as `{"type": {}}`, which MCP clients reject as an invalid schema; this instance
    describes the object it accepts instead.
    """
    component = gr.JSON(label="filters")
    component.api_info_as_input = lambda: dict(FILTERS_SCHEMA)  # type: ignore[method-assign]
    return component


def _as_filters(values: dict[str, Any] | None) -> dict[str, Any] | None:
    out = {col: v for col, v in (values or {}).items() if v not in (None, "", [], "All")}
    return out or None


def _parse_filters(filters: Any) -> dict[str, Any] | None:
    """The API's `filters` argument: a JSON object (or its text) mapping a field to a value or a list of values."""
    if filters in (None, "", {}, []):
        return None
    if isinstance(filters, str):
        try:
            filters = json.loads(filters)
        except json.JSONDecodeError:
            raise UserError('filters must be a JSON object such as {"gender": "Women", "colour": ["Red", "Blue"]}.'
                           ) from None
    if not isinstance(filters, dict):
        raise UserError('filters must be an object such as {"gender": "Women", "colour": ["Red", "Blue"]}.')
    return _as_filters(filters)


def _run(search: Callable[[], SearchResponse]) -> SearchResponse:
    """Call the core; its errors are written for people and go to the page (or API caller) as they are."""
    try:
        return search()
    except StyliShiError as exc:
        raise UserError(str(exc)) from None
    except gr.Error:
        raise
    except Exception:
        log.exception("search failed")  # the traceback, never the user's picture or text
        raise UserError("Something went wrong on our side. Please try again in a moment.") from None


def _percent(match: float) -> str:
    return "100%" if match >= 100 else f"{match:.1f}%"


def _kind(r) -> str:
    """What a card calls the product: its article type, else its subcategory, else its category ("" if none)."""
    return r.article_type or str(r.metadata.get("subcategory") or "") or r.category


def _match_label(r, calibrated: bool) -> str:
    """"87% match" (the index's calibrated chance of the query's kind of product), or, for an index without a
    calibration, the raw cosine labelled as what it is."""
    return f"{_percent(r.match)} match" if calibrated else f"similarity {r.score:.2f}"


def _caption(r, calibrated: bool = True) -> str:
    detail = " · ".join(v for v in (_kind(r), r.colour) if v)
    return f"#{r.rank} · {_match_label(r, calibrated)}\n{r.name}" + (f"\n{detail}" if detail else "")


def _gallery(response: SearchResponse) -> list[tuple[str, str]]:
    return [(r.thumbnail, _caption(r, response.calibrated)) for r in response.results]


def _file_url(path: str, request: gr.Request | None) -> str:
    """The public URL Gradio serves a catalog thumbnail at (its file name is the thumbnail's)."""
    suffix = f"/gradio_api/file={path}"
    raw = getattr(request, "request", None) if request is not None else None
    if raw is None:
        return suffix
    try:
        from gradio import route_utils

        root = route_utils.get_root_url(request=raw, route_path=route_utils.get_api_call_path(request=raw),
                                        root_path=raw.scope.get("root_path") or None)
        return root + suffix
    except Exception:  # an unusual proxy setup: the root-relative URL still works against the app's address
        return suffix


def _json(response: SearchResponse, request: gr.Request | None = None) -> list[dict[str, Any]]:
    """Small on purpose: what a program needs to show or fetch a result, not the whole catalog row."""
    return [{"rank": r.rank, "id": r.id, "score": r.score, "match": r.match, "name": r.name, "category": r.category,
             "article_type": r.article_type, "colour": r.colour, "thumbnail": _file_url(r.thumbnail, request)}
            for r in response.results]


def _status(response: SearchResponse, filters: dict | None, what: str | None = None) -> str:
    t = response.timings_ms
    kinds = {"image": "photo", "text": "text", "item": "“more like this”"}
    what = what or kinds.get(response.query, response.query)
    n = len(response.results)
    if n == 0:
        return (f"No product matches these filters ({_filters_text(filters)}) among the {response.catalog_size:,} "
                "in the catalog. Remove a filter to see more.")
    filtered = f" · filtered by {_filters_text(filters)}" if filters else ""
    ms = "\u00a0ms"  # a no-break space keeps "12 ms" on one line
    return (f"**{n}** results for the {what} search among **{response.catalog_size:,}** products{filtered} · "
            f"preprocess {t.get('preprocess', 0):.0f}{ms} · embed {t.get('embed', 0):.0f}{ms} · "
            f"search {t.get('search', 0):.1f}{ms} · total **{t.get('total', 0):.0f}{ms}**")


def _filters_text(filters: dict | None) -> str:
    if not filters:
        return "none"
    parts = []
    for col, v in filters.items():
        values = [v] if isinstance(v, str) else list(v)
        parts.append(f"{FILTER_LABELS.get(col, col).lower()} {' or '.join(map(str, values))}")
    return html.escape(", ".join(parts))


def catalog_examples(service: SearchService, n: int = 4) -> list[str]:
    """A few catalog pictures of the loaded index, of different kinds and colours, as example queries."""
    items = service.catalog.items
    col = next((c for c in ("article_type", "subcategory", "category") if c in items.columns), None)
    if col is None:
        rows = list(range(min(n, len(items))))
    else:
        groups = list(items.groupby(items[col].astype(str), sort=True).indices.values())
        step = max(1, len(groups) // n)
        # One item per kind, spread over the kinds; a different position in each kind, so colours vary too.
        rows = [int(g[(i * 7 + len(g) // 3) % len(g)]) for i, g in enumerate(groups[::step][:n])]
    return [str(service.catalog.thumbnail_path(r)) for r in rows]


def query_examples(examples_dir: Path | None = EXAMPLES_DIR) -> list[str]:
    if examples_dir is None or not Path(examples_dir).is_dir():
        return []
    pictures = (".jpg", ".jpeg", ".png", ".webp")
    return sorted(str(p) for p in Path(examples_dir).iterdir() if p.suffix.lower() in pictures)


def _k(k: Any) -> Any:
    """The API's k: omitted (null) means the default; anything else goes to the core, which explains a bad one."""
    return DEFAULT_K if k is None or k == "" else k


def stats_markdown(stats: dict[str, Any]) -> str:
    """The page's "Service stats" view of `SearchService.metrics.snapshot()`."""
    def ms(value) -> str:
        return "–" if value is None else f"{value:.0f}\u00a0ms"

    def sim(value) -> str:
        return "–" if value is None else f"{value:.3f}"

    lat = stats["latency_ms"]
    lines = [f"**{stats['queries']:,}** queries · **{stats['errors']:,}** errors · **{stats['qps']:.2f}** queries/s "
             f"since start ({stats['uptime_s']:.0f} s ago) · latency p50 **{ms(lat['p50'])}**, p95 {ms(lat['p95'])}, "
             f"p99 {ms(lat['p99'])} · average top similarity **{sim(stats['avg_top_similarity'])}** "
             f"(latency and similarity over the last {stats['window']:,} queries)"]
    if stats["by_kind"]:
        lines += ["", "| query | count | errors | p50 | p95 | p99 | avg top similarity |", "|---|---|---|---|---|---|---|"]
        for kind, k_stats in stats["by_kind"].items():
            k_lat = k_stats["latency_ms"]
            lines.append(f"| {html.escape(kind)} | {k_stats['queries']:,} | {k_stats['errors']:,} | {ms(k_lat['p50'])} "
                         f"| {ms(k_lat['p95'])} | {ms(k_lat['p99'])} | {sim(k_stats['avg_top_similarity'])} |")
    return "\n".join(lines)


def service_stats(service: SearchService) -> dict[str, Any]:
    """What GET /stats returns: the query statistics and what is served (no paths, nothing from users)."""
    return {**service.metrics.snapshot(), "catalog_items": len(service.catalog),
            "embed_mode": service.embedder.mode, "device": service.embedder.device}


class _SnapshotSet(set):
    """A set whose iteration walks a copy.

    Gradio's cache purge (delete_cache) iterates its sets of temporary files in a worker thread while uploads add to
    them and the upload janitor removes from them; a plain set would end the purge task for good with "Set changed
    size during iteration". `set.copy` is one C call, atomic under the GIL.
    """

    def __iter__(self):
        return iter(set.copy(self))


def _purge_safely(demo: gr.Blocks) -> None:
    swapped: dict[int, _SnapshotSet] = {}

    def snap(files: set) -> set:
        if isinstance(files, _SnapshotSet):
            return files
        if id(files) not in swapped:
            swapped[id(files)] = _SnapshotSet(files)
        return swapped[id(files)]

    demo.upload_file_set = snap(demo.upload_file_set)
    for block in demo.blocks.values():
        if isinstance(getattr(block, "temp_files", None), set):
            block.temp_files = snap(block.temp_files)
    demo.temp_file_sets = [snap(files) for files in demo.temp_file_sets]


def _drop_session(demo: gr.Blocks, session_hash: str) -> None:
    """Forget one API call's Gradio session: programs keep no state here, and a new one is made if they call again."""
    holder = getattr(demo, "state_holder", None)  # set at launch
    if holder is None:
        return
    with holder.lock:
        holder.session_data.pop(session_hash, None)
        getattr(holder, "time_last_used", {}).pop(session_hash, None)


def upload_janitor(demo: gr.Blocks, after_s: float, spare: list[Path]) -> UploadJanitor:
    """Deletes each query's upload `after_s` seconds after the query, and drops it from Gradio's purge list."""
    from gradio.utils import get_upload_folder

    def untrack(path: str) -> None:
        demo.upload_file_set.discard(path)
        demo.upload_file_set.discard(str(Path(path).resolve()))

    return UploadJanitor(get_upload_folder(), after_s=after_s, spare=spare, on_delete=untrack)


# -- the page -----------------------------------------------------------------------------------------------------
def build_app(service: SearchService, *, examples_dir: Path | None = EXAMPLES_DIR,
              live_time_limit: int = LIVE_TIME_LIMIT_S, concurrency: int = SEARCH_CONCURRENCY,
              delete_cache: tuple[int, int] | None = DELETE_CACHE,
              forget_after_s: float = FORGET_UPLOAD_AFTER_S) -> gr.Blocks:
    """The StyliShi page for a loaded search service. Launch it with `launch_options(service)`.

    Privacy: each query's upload (photo, webcam snapshot) is deleted `forget_after_s` seconds after its query
    (`demo.upload_janitor`), and `delete_cache` purges anything left over, e.g. files uploaded and never queried.
    """
    thumb_dir = Path(service.catalog.thumb_dir).resolve()
    static_dirs = [thumb_dir] + ([Path(examples_dir).resolve()] if examples_dir else [])
    # Catalog thumbnails and example pictures are served in place, never copied per query.
    gr.set_static_paths(static_dirs)
    filter_cols = list(service.filter_values)
    size = len(service.catalog)

    with gr.Blocks(title="StyliShi · fashion visual search", delete_cache=delete_cache, fill_width=False,
                   analytics_enabled=False) as demo:
        forget = demo.upload_janitor = upload_janitor(demo, forget_after_s, static_dirs)
        last_query = gr.State({"kind": None, "item": None})
        shown = gr.State([])  # the results on screen, for "more like this" by position
        picked = gr.State(None)  # the id of the result clicked last

        gr.Markdown(f"# StyliShi\nFind products that look like your photo: snap it, upload it or describe it. "
                    f"Searching **{size:,}** catalog items.", elem_id="brand")
        gr.Markdown(html.escape(service.notice or ""), elem_id="notice", visible=bool(service.notice))

        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                with gr.Tabs():
                    with gr.Tab("Photo", id="photo", elem_id="tab-photo"):
                        image = query_image(sources=["upload", "webcam", "clipboard"], type="filepath",
                                           label="Your photo", height=340, elem_id="query-image",
                                           webcam_options=WEBCAM, buttons=[])
                        examples = query_examples(examples_dir) + catalog_examples(service)
                        if examples:
                            gr.Examples(examples=[[p] for p in examples], inputs=[image], label="Try an example",
                                        examples_per_page=12, cache_examples=False, elem_id="examples")
                    with gr.Tab("Live camera", id="live", elem_id="tab-live"):
                        live = query_image(sources=["webcam"], streaming=True, type="filepath",
                                          label="Live camera", height=340, elem_id="live-cam",
                                          webcam_options=WEBCAM)
                        gr.Markdown(f"Point the camera at a garment: results refresh about every {LIVE_EVERY_S:g} s "
                                    f"while it streams (up to {live_time_limit} s at a time).")
                    with gr.Tab("Describe", id="text", elem_id="tab-text"):
                        text = gr.Textbox(label="Describe it", placeholder="red floral summer dress", max_lines=1,
                                          max_length=service.limits.max_text_chars, elem_id="text-query")
                        text_btn = gr.Button("Search", variant="primary", elem_id="text-search")
                with gr.Accordion("Filters and number of results", open=False, elem_id="filters"):
                    k = gr.Slider(1, service.limits.max_k, value=DEFAULT_K, step=1, label="Results",
                                  elem_id="k")
                    with gr.Row():
                        dropdowns = [gr.Dropdown(choices=service.filter_values[c], value=[], multiselect=True,
                                                 label=FILTER_LABELS.get(c, c.replace("_", " ").title()),
                                                 min_width=140, elem_id=f"filter-{c}")
                                     for c in filter_cols]
            with gr.Column(scale=3, min_width=320):
                status = gr.Markdown(HINT, elem_id="timings")
                with gr.Row(equal_height=True, elem_id="selection"):
                    selected = gr.Markdown("", elem_id="selected")
                    more_btn = gr.Button("More like this", visible=False, size="sm", scale=0, min_width=140,
                                         variant="primary", elem_id="more-like-this")
                gallery = gr.Gallery(label="Matches", show_label=False, columns=4, height="auto",
                                     object_fit="contain", allow_preview=False, buttons=[], elem_id="results")
        with gr.Accordion("Service stats", open=False, elem_id="stats") as stats_box:
            stats_view = gr.Markdown("Open to see how the service is doing.", elem_id="stats-view")
            stats_btn = gr.Button("Refresh", size="sm", elem_id="stats-refresh")

        # -- UI events (private: the API below is the documented surface) -----------------------------------------
        def filters_of(values) -> dict | None:
            return _as_filters(dict(zip(filter_cols, values)))

        def show(response: SearchResponse, filters, query: dict):
            results = [{"id": r.id, "name": r.name, "rank": r.rank, "match": r.match, "kind": _kind(r),
                        "label": _match_label(r, response.calibrated)} for r in response.results]
            what = {"live": "live camera", "image": "photo"}.get(query.get("kind"))
            return (_gallery(response), _status(response, filters, what), results, query, "",
                    gr.update(visible=False))

        outputs = [gallery, status, shown, last_query, selected, more_btn]

        def on_image(img, k_, *fvals):
            if img is None:
                return gr.skip()
            filters = filters_of(fvals)
            try:
                response = _run(lambda: service.search_image(img, k_, filters))
            finally:
                forget(img)  # the picture is not kept; its vector (below) re-ranks when k or a filter changes
            return show(response, filters, {"kind": "image", "item": None, "vector": response.vector})

        def on_text(q, k_, *fvals):
            filters = filters_of(fvals)
            return show(_run(lambda: service.search_text(q, k_, filters)), filters, {"kind": "text", "item": None})

        def on_live(frame, k_, *fvals):
            if frame is None:
                return gr.skip()
            filters = filters_of(fvals)
            try:
                response = service.search_image(frame, k_, filters)
            except StyliShiError:
                return gr.skip()  # one bad frame must not end the stream; the next one will do
            finally:
                forget(frame)
            return show(response, filters, {"kind": "live", "item": None})

        def on_select(results, evt: gr.SelectData):
            if not results or evt.index is None or not 0 <= int(evt.index) < len(results):
                return "", gr.update(visible=False), None
            r = results[int(evt.index)]
            line = (f"Selected **#{r['rank']} {html.escape(r['name'])}** ({html.escape(r['kind'] or 'item')}, "
                    f"{r.get('label') or _percent(r['match']) + ' match'})")
            return line, gr.update(visible=True), r["id"]

        def by_item(item, k_, *fvals):
            if not item:
                raise UserError("Click a result first, then “More like this”.")
            filters = filters_of(fvals)
            return show(_run(lambda: service.search_item(item, k_, filters)), filters, {"kind": "item", "item": item})

        def rerun(query, q, k_, *fvals):
            """k or a filter changed: run the query on screen again (a photo by its vector: the picture is gone)."""
            kind = (query or {}).get("kind")
            if kind == "image" and query.get("vector") is not None:
                filters = filters_of(fvals)
                return show(_run(lambda: service.search_vector(query["vector"], k_, filters)), filters, query)
            if kind == "text" and q:
                return on_text(q, k_, *fvals)
            if kind == "item":
                return by_item(query.get("item"), k_, *fvals)
            return gr.skip()

        private = dict(api_visibility="private", concurrency_limit=concurrency, concurrency_id="search",
                       scroll_to_output=True)
        image.change(on_image, [image, k, *dropdowns], outputs, **private)
        text.submit(on_text, [text, k, *dropdowns], outputs, **private)
        text_btn.click(on_text, [text, k, *dropdowns], outputs, **private)
        live.stream(on_live, [live, k, *dropdowns], outputs, stream_every=LIVE_EVERY_S, time_limit=live_time_limit,
                    concurrency_limit=LIVE_CONCURRENCY, api_visibility="private", show_progress="hidden")
        gallery.select(on_select, [shown], [selected, more_btn, picked], api_visibility="private",
                       queue=False, show_progress="hidden")
        more_btn.click(by_item, [picked, k, *dropdowns], outputs, **private)
        for control in (k, *dropdowns):
            trigger = control.release if control is k else control.change
            trigger(rerun, [last_query, text, k, *dropdowns], outputs, **private)

        def refresh_stats():
            return stats_markdown(service.metrics.snapshot())

        for trigger in (stats_btn.click, stats_box.expand):
            trigger(refresh_stats, None, stats_view, api_visibility="private", queue=False, show_progress="hidden")

        # -- the API for programs and agents (named, documented; MCP tools when --mcp) ---------------------------
        with gr.Column(visible=False):
            api_image = query_image(type="filepath", label="image", sources=["upload"])
            api_text = gr.Textbox(label="text", value=None)
            api_item = gr.Textbox(label="item_id", value=None)
            api_k = gr.Slider(1, service.limits.max_k, value=DEFAULT_K, step=1, label="k")
            api_k.preprocess = lambda value: value  # type: ignore[method-assign]  # the core explains a bad k
            api_filters = filters_input()
            api_results = gr.JSON(label="results")

        def api_call(search: Callable[[], SearchResponse], request: gr.Request | None, upload=None):
            """One API call; then its upload and its Gradio session are let go (a program keeps no state here)."""
            try:
                response = _run(search)
            finally:
                forget(upload)
                session = getattr(request, "session_hash", None)
                if session:
                    forget.later(lambda: _drop_session(demo, session))
            return _gallery(response), _json(response, request)

        def search_image(image, k=DEFAULT_K, filters=None, request: gr.Request = None):
            return api_call(lambda: service.search_image(image, _k(k), _parse_filters(filters)), request, image)

        def search_text(text, k=DEFAULT_K, filters=None, request: gr.Request = None):
            return api_call(lambda: service.search_text(text, _k(k), _parse_filters(filters)), request)

        def more_like_this(item_id, k=DEFAULT_K, filters=None, request: gr.Request = None):
            return api_call(lambda: service.search_item(item_id, _k(k), _parse_filters(filters)), request)

        fields = "; ".join(f"{c} ({', '.join(v[:8])}{', …' if len(v) > 8 else ''})"
                           for c, v in service.filter_values.items()) or "none"
        common = (f"    k: how many results to return, 1 to {service.limits.max_k} (default {DEFAULT_K}).\n"
                  f'    filters: optional JSON object narrowing the search, e.g. {{"gender": "Women", "colour": '
                  f'["Red", "Blue"]}}: values of one field are OR-ed, fields AND-ed. Fields: {fields}.\n\n'
                  "Returns:\n"
                  "    A gallery of the matches, and a JSON list of the matches best first, each "
                  "{rank, id, score (cosine similarity), match (percent), name, category (the catalog's category, "
                  "the values the category filter takes), article_type, colour (\"\" when the catalog has none), "
                  "thumbnail (URL)}.\n")
        search_image.__doc__ = (f"Find catalog products that look like a picture (a fashion visual search over "
                                f"{size:,} products).\n\nArgs:\n"
                                "    image: the query picture, a JPEG, PNG or WebP file of at most 10 MB.\n" + common)
        search_text.__doc__ = ("Find catalog products matching a description such as 'red floral summer dress'.\n\n"
                               "Args:\n    text: what to look for, in a few words.\n" + common)
        more_like_this.__doc__ = ("Find catalog products similar to a catalog item, by its id (the `id` of a "
                                  "result from search_image or search_text). The item itself is left out of "
                                  "the results.\n\n"
                                  "Args:\n    item_id: the id of a catalog item.\n" + common)

        api = dict(concurrency_limit=concurrency, concurrency_id="search")
        gr.on([], search_image, [api_image, api_k, api_filters], [gallery, api_results], api_name="search_image",
              **api)
        gr.on([], search_text, [api_text, api_k, api_filters], [gallery, api_results], api_name="search_text", **api)
        gr.on([], more_like_this, [api_item, api_k, api_filters], [gallery, api_results], api_name="more_like_this",
              **api)
    _purge_safely(demo)
    return demo


def mcp_available() -> bool:
    try:
        import mcp  # noqa: F401
    except ImportError:
        return False
    return True


def stats_route(service: SearchService):
    """GET /stats: the query statistics as JSON, for monitoring (see docs/hardening.md)."""
    from fastapi.responses import JSONResponse
    from fastapi.routing import APIRoute

    def stats() -> JSONResponse:
        return JSONResponse(service_stats(service), headers={"Cache-Control": "no-store"})

    return APIRoute("/stats", stats, methods=["GET"], name="stylishi_stats", include_in_schema=False)


def launch_options(service: SearchService, *, mcp: bool = False) -> dict[str, Any]:
    """The launch() settings of the public demo: private, bounded, offline-safe; plus GET /stats."""
    return dict(
        app_kwargs={"routes": [stats_route(service)]},
        allowed_paths=[str(Path(service.catalog.thumb_dir).resolve())],
        max_file_size=MAX_FILE_SIZE,
        state_session_capacity=SESSION_CAPACITY,
        enable_monitoring=False,
        run_history=False,
        show_error=False,  # unexpected exceptions stay in the log; gr.Error messages still reach people
        footer_links=["api", "gradio"],
        ssr_mode=False,
        mcp_server=mcp,
        theme=gr.themes.Default(primary_hue="rose", secondary_hue="slate", neutral_hue="slate"),
        css=CSS,
    )


def warm_up(service: SearchService) -> float:
    """One query through each tower so the first visitor does not pay for lazy initialisation."""
    from PIL import Image

    t0 = time.perf_counter()
    service.search_image(Image.new("RGB", (64, 64), (200, 200, 200)), k=1)
    service.search_text("a red dress", k=1)
    return (time.perf_counter() - t0) * 1000


# -- command line -------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags; each left out (None) falls back to its environment variable (stylishi.config.Settings.from_env)."""
    from stylishi.config import DEFAULT_INDEX_REPO, EMBED_MODES, FALLBACKS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--index", default=None,
                   help=f"catalog index: a local folder, a Hub dataset repo owner/name[@rev], or 'demo' for the "
                        f"offline demo (env STYLISHI_INDEX; default {DEFAULT_INDEX_REPO})")
    p.add_argument("--model", default=None,
                   help="CLIP model (env STYLISHI_MODEL; default: the one the index was built with)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N or mps (env STYLISHI_DEVICE; default auto)")
    p.add_argument("--embed-mode", default=None, metavar="MODE",
                   help=f"query embedding mode: {', '.join(EMBED_MODES)} (env STYLISHI_EMBED_MODE; default auto)")
    p.add_argument("--threads", default=None, help="torch threads (env STYLISHI_THREADS; default 0 = all cores)")
    p.add_argument("--mcp", action="store_true", default=None,
                   help='also serve the search endpoints as MCP tools (env STYLISHI_MCP=1; needs "gradio[mcp]")')
    p.add_argument("--fallback", default=None, metavar="|".join(FALLBACKS),
                   help="what to serve when the index cannot be loaded: none, a starter index (Hub indexes), or "
                        "the starter index then the offline demo (env STYLISHI_FALLBACK; default: demo for the "
                        "default index, none for an index named with --index or STYLISHI_INDEX)")
    p.add_argument("--no-fallback", action="store_true",
                   help="the same as --fallback none (env STYLISHI_NO_FALLBACK=1)")
    p.add_argument("--milvus-uri", default=None, metavar="URI",
                   help="for an index built with --milvus: the Milvus to search instead of the one its manifest "
                        "names, a Lite .db path or http(s)://host:19530 (env STYLISHI_MILVUS_URI; token MILVUS_TOKEN)")
    return p.parse_args(argv)


def load_service(settings: Settings) -> SearchService:
    """What the app serves: the index asked for, else what its fallback allows (stylishi.startup's policy).

    A folder or a Hub repo loads as is; with the Hub away a Hub index is served from the cache; the default index
    (or one with --fallback) falls back to a starter index or the offline demo, and `service.startup` says why.
    """
    from stylishi.startup import open_service

    return open_service(settings=settings)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # no per-request lines (they carry file names)
    t0 = time.perf_counter()
    try:  # every setting checked before anything loads: one line naming it, no traceback, no wasted work
        settings = Settings.from_env(index=args.index, model=args.model, device=args.device, threads=args.threads,
                                     embed_mode=args.embed_mode, fallback="none" if args.no_fallback else args.fallback)
    except StyliShiError as exc:
        log.error("cannot start: %s", exc)
        return 2
    set_threads(settings.threads, faiss_threads=1)
    if args.milvus_uri:  # read where the catalog opens its store (stylishi.catalog.load)
        os.environ["STYLISHI_MILVUS_URI"] = args.milvus_uri
    try:
        service = load_service(settings)
    except StyliShiError as exc:
        log.error("cannot start: %s", exc)
        return 2
    loaded_s = time.perf_counter() - t0
    warm_ms = warm_up(service)
    service.metrics.reset()  # the stats count visitors' queries, not the warm-up
    mcp = settings.mcp if args.mcp is None else args.mcp
    if mcp and not mcp_available():
        log.warning('MCP was asked for (--mcp / STYLISHI_MCP) but the "mcp" package is missing: serving without '
                    'MCP. Install it with: pip install "gradio[mcp]"')
        mcp = False
    demo = build_app(service)
    demo.launch(prevent_thread_lock=True, quiet=True, **launch_options(service, mcp=mcp))
    emb, manifest = service.embedder, service.catalog.manifest
    log.info("StyliShi ready in %.1f s: index %s (%d items, %d-d %s), model %s (%s, %s); load %.1f s, warm-up %.0f ms; "
             "MCP %s; serving %s%s", time.perf_counter() - t0, service.source, len(service.catalog),
             service.catalog.dim, manifest["index"]["type"], emb.model_id, emb.device, emb.mode, loaded_s, warm_ms,
             f"on at {demo.local_url.rstrip('/')}/gradio_api/mcp/" if mcp else "off", demo.local_url,
             " · with a notice on the page (see above)" if service.notice else "")
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

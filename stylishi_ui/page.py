"""The StyliShi page: layout and its events. Handlers are small and named (tests call them as Gradio does)."""
from __future__ import annotations

import html
import tempfile
from pathlib import Path

import gradio as gr

from stylishi import StyliShiError
from stylishi.feedback import MAX_IDS
from stylishi.filters import from_fields
from stylishi.modifiers import DEFAULT_WEIGHT
from stylishi.privacy import UploadJanitor
from stylishi.region import Box
from stylishi.serving import catalog_examples, replay

from . import cards, gradio_compat as compat
from .api import API_NAMES, DEFAULT_K, add_api
from .errors import UserError, run
from .guard import FileGate
from .intake import data_url_bytes, query_picture
from .media import Media

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES_DIR = ROOT / "data" / "examples"
DELETE_CACHE = (60, 120)  # backstop: every minute, purge uploads older than 2 min (even ones never queried)
FORGET_UPLOAD_AFTER_S = 5  # a query's own upload is deleted this long after the query (stylishi.privacy)
QUEUE_MAX = 64  # queries waiting beyond this are refused ("queue is full") instead of piling up
LIVE_EVERY_S = 0.5
LIVE_TIME_LIMIT_S = 60
LIVE_CONCURRENCY = 2
PICTURES = (".jpg", ".jpeg", ".png", ".webp")
# Rear camera on phones (pointing at a garment); not mirrored, so the query is the garment as it is.
WEBCAM = gr.WebcamOptions(mirror=False, constraints={"video": {"facingMode": {"ideal": "environment"},
                                                              "width": {"ideal": 640}, "height": {"ideal": 480}}})
CSS = (Path(__file__).with_name("page.css")).read_text()
JS = (Path(__file__).with_name("region.js")).read_text()  # drag a box on the photo: launch(js=JS)
HIDE_BOX = "(...args) => { document.querySelectorAll('#query-image .region-box').forEach(b => b.style.display = 'none'); return args; }"

def looks_k(k) -> int:
    """Matches per garment in the look's rows (the results show all k of the garment clicked)."""
    return min(int(k), 5) if isinstance(k, (int, float)) and not isinstance(k, bool) and k >= 1 else k


def query_examples(examples_dir: Path | None = EXAMPLES_DIR) -> list[Path]:
    if examples_dir is None or not Path(examples_dir).is_dir():
        return []
    return sorted(p for p in Path(examples_dir).iterdir() if p.suffix.lower() in PICTURES)

def upload_janitor(demo: gr.Blocks, after_s: float, spare: list[Path]) -> UploadJanitor:
    """Deletes each query's upload `after_s` seconds after the query, and drops it from Gradio's purge list."""
    return UploadJanitor(compat.upload_folder(), after_s=after_s, spare=spare,
                         on_delete=lambda path: compat.untrack_upload(demo, path))

def build_app(service, *, examples_dir: Path | None = EXAMPLES_DIR, live_time_limit: int = LIVE_TIME_LIMIT_S,
              concurrency: int | None = None, delete_cache: tuple[int, int] | None = DELETE_CACHE,
              forget_after_s: float = FORGET_UPLOAD_AFTER_S) -> gr.Blocks:
    """The StyliShi page for a loaded search service. Launch it with `server.launch_options(demo)`.

    Privacy: each query's upload is deleted `forget_after_s` seconds after its query (`demo.upload_janitor`), and
    `delete_cache` purges anything left over, e.g. files uploaded and never queried. `concurrency`: searches at once
    (default: the service's `limits.searches_at_once`, STYLISHI_SEARCHES_AT_ONCE).
    """
    concurrency = concurrency or service.limits.searches_at_once
    example_files = query_examples(examples_dir)
    example_items = catalog_examples(service)
    media = Media(service.catalog.thumb_dir, example_files)
    upload_root = compat.upload_folder()
    gate = FileGate([upload_root, *media.folders()])
    picture_input = query_picture(gate, service.limits)

    def image_input(**kwargs) -> gr.Image:
        return compat.override_preprocess(gr.Image(**kwargs), picture_input)

    filter_cols = list(service.filter_values)
    size = len(service.catalog)

    with gr.Blocks(title="StyliShi · fashion visual search", delete_cache=delete_cache, fill_width=False,
                   analytics_enabled=False) as demo:
        forget = demo.upload_janitor = upload_janitor(demo, forget_after_s, media.folders())
        demo.media, demo.file_gate = media, gate
        last_query = gr.State({"kind": None, "item": None})
        shown = gr.State([])  # the results on screen, for "more like this" by position
        picked = gr.State(None)  # the id of the result clicked last
        look_found = gr.State([])  # shop the look: each garment's search, for a click on it

        gr.Markdown(f"# StyliShi\nFind products that look like your photo: snap it, upload it or describe it. "
                    f"Searching **{size:,}** catalog items.", elem_id="brand")
        notice = cards.notice_html(service)
        gr.HTML(notice, elem_id="notice", visible=bool(notice))

        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                with gr.Tabs():
                    with gr.Tab("Photo", id="photo", elem_id="tab-photo"):
                        image = image_input(sources=["upload", "webcam", "clipboard"], type="filepath",
                                            label="Your photo", height=340, elem_id="query-image",
                                            webcam_options=WEBCAM, buttons=[])
                        with gr.Row(equal_height=True):
                            gr.Markdown("Drag a box on the photo to search only that part.", elem_id="region-hint")
                            whole_btn = gr.Button("Whole photo", size="sm", scale=0, min_width=120,
                                                  elem_id="region-clear")
                        words = gr.Textbox(label="Like this, but…", placeholder="in blue · with stripes · not black "
                                           "· for men", max_lines=1, max_length=service.limits.max_text_chars,
                                           elem_id="modifier")
                        weight = gr.Slider(0, 1, value=DEFAULT_WEIGHT, step=0.05, elem_id="text-weight",
                                           label="How much the other words count (0: the photo only)")
                        # What region.js fills in when a box is dragged (in the page, out of sight).
                        region_picture = gr.Textbox(visible="hidden", elem_id="region-picture")
                        region_box = gr.Textbox(visible="hidden", elem_id="region-box")
                        region_btn = gr.Button("Search this region", visible="hidden", elem_id="region-go")
                        examples = gr.Gallery(label="Try an example", columns=6, height="auto", allow_preview=False,
                                              buttons=[], object_fit="cover", elem_id="examples",
                                              visible=bool(example_files or example_items))
                    with gr.Tab("Shop the look", id="look", elem_id="tab-look"):
                        look_image = image_input(sources=["upload", "webcam", "clipboard"], type="filepath",
                                                 label="A photo of an outfit", height=300, elem_id="look-image",
                                                 webcam_options=WEBCAM, buttons=[])
                        look_boxes = gr.AnnotatedImage(label="Garments found: click one to see all its matches",
                                                       height=300, visible=False, elem_id="look-boxes")
                        look_rows = gr.HTML("", elem_id="look-rows")
                    with gr.Tab("Live camera", id="live", elem_id="tab-live"):
                        live = image_input(sources=["webcam"], streaming=True, type="filepath", label="Live camera",
                                           height=340, elem_id="live-cam", webcam_options=WEBCAM)
                        gr.Markdown(f"Point the camera at a garment: results refresh about every {LIVE_EVERY_S:g} s "
                                    f"while it streams (up to {live_time_limit} s at a time).")
                    with gr.Tab("Describe", id="text", elem_id="tab-text"):
                        text = gr.Textbox(label="Describe it", placeholder="red floral summer dress", max_lines=1,
                                          max_length=service.limits.max_text_chars, elem_id="text-query")
                        text_btn = gr.Button("Search", variant="primary", elem_id="text-search")
                with gr.Accordion("Filters and number of results", open=False, elem_id="filters"):
                    k = gr.Slider(1, service.limits.max_k, value=DEFAULT_K, step=1, label="Results", elem_id="k")
                    with gr.Row():
                        dropdowns = [gr.Dropdown(choices=service.filter_values[c], value=[], multiselect=True,
                                                 label=cards.FILTER_LABELS.get(c, c.replace("_", " ").title()),
                                                 min_width=140, elem_id=f"filter-{c}")
                                     for c in filter_cols]
            with gr.Column(scale=3, min_width=320):
                status = gr.Markdown(cards.HINT, elem_id="timings")
                with gr.Row(equal_height=True, elem_id="selection"):
                    selected = gr.Markdown("", elem_id="selected")
                    more_btn = gr.Button("More like this", visible=False, size="sm", scale=0, min_width=140,
                                         variant="primary", elem_id="more-like-this")
                    like_btn = gr.Button("👍 Like", visible=False, size="sm", scale=0, min_width=90, elem_id="like")
                    dislike_btn = gr.Button("👎 Dislike", visible=False, size="sm", scale=0, min_width=90,
                                            elem_id="dislike")
                with gr.Row(equal_height=True, visible=False, elem_id="feedback-row") as feedback_row:
                    feedback_md = gr.Markdown("", elem_id="feedback")
                    start_over_btn = gr.Button("Start over", size="sm", scale=0, min_width=110, elem_id="start-over")
                gallery = gr.Gallery(label="Matches", show_label=False, columns=4, height="auto",
                                     object_fit="contain", allow_preview=False, buttons=[], elem_id="results")
        with gr.Accordion("Service stats", open=False, elem_id="stats") as stats_box:
            stats_view = gr.Markdown("Open to see how the service is doing.", elem_id="stats-view")
            stats_btn = gr.Button("Refresh", size="sm", elem_id="stats-refresh")

        # -- page events (private: the API below is the documented surface) -------------------------------------
        def filters_of(values) -> dict | None:
            return from_fields(filter_cols, list(values))

        def show(response, filters, query: dict, request: gr.Request | None, what: str | None = None):
            what = what or {"live": "live camera", "image": "photo", "example": "photo"}.get(query.get("kind"))
            url_of = media.url_maker(compat.root_url(request))
            if query.get("kind") != "refine":  # a new query: its vector is where 👍 / 👎 start from
                query = {**query, "vector": response.vector}
            line = cards.feedback_line(query.get("liked", []), query.get("disliked", []))
            hidden = gr.update(visible=False)
            return (cards.gallery(response, url_of), cards.status(response, filters, what), cards.shown(response),
                    query, "", hidden, hidden, hidden, line, gr.update(visible=bool(line)))

        outputs = [gallery, status, shown, last_query, selected, more_btn, like_btn, dislike_btn, feedback_md,
                   feedback_row]

        def photo_query(response, whole=None) -> dict:
            """What re-runs a photo search without the photo: its (region's) own vector before any words, and the
            whole photo's. (`vector`, set by show(), is the query as searched: where 👍 / 👎 start from.)"""
            own = response.picture_vector
            return {"kind": "image", "item": None, "picture": own, "whole": own if whole is None else whole}

        def on_image(img, k_, words_, weight_, request: gr.Request | None, *fvals):
            if img is None:
                return gr.skip()
            filters = filters_of(fvals)
            try:
                response = run(lambda: service.search_image(img, k_, filters, text=words_, text_weight=weight_))
            finally:
                forget(img)  # the picture is not kept; its vector (below) re-ranks when k or a filter changes
            return show(response, filters, photo_query(response), request)

        def on_region(picture, box, query, k_, words_, weight_, request: gr.Request | None, *fvals):
            """A box dragged on the photo: the page's copy of the photo, searched by that region only."""
            if not picture or not box:
                return gr.skip()
            filters = filters_of(fvals)
            response = run(lambda: service.search_image(data_url_bytes(picture, service.limits), k_, filters,
                                                        box=box, text=words_, text_weight=weight_))
            return show(response, filters, photo_query(response, (query or {}).get("whole")), request)

        def on_whole(query, q, k_, words_, weight_, request: gr.Request | None, *fvals):
            """Back to the whole photo (its vector was kept when it was first searched)."""
            if (query or {}).get("kind") != "image" or query.get("whole") is None:
                return gr.skip()
            return rerun({**query, "picture": query["whole"]}, q, k_, words_, weight_, request, *fvals)

        def on_look(img, k_, request: gr.Request | None, *fvals):
            """Shop the look: the garments boxed on the photo, a row of matches each; the first one's matches (or
            the whole photo's, when none is found) in the results."""
            if img is None:
                return gr.skip()
            filters = filters_of(fvals)
            try:
                look = run(lambda: service.shop_the_look(img, looks_k(k_), filters))
                whole = None if look.garments else run(lambda: service.search_image(img, k_, filters))
            finally:
                forget(img)
            url_of = media.url_maker(compat.root_url(request))
            boxes = [(Box(*g.box).pixels(*look.size), cards.garment_name(g, n))
                     for n, g in enumerate(look.garments, start=1)]
            annotated = gr.update(value=(look_picture(look.picture), boxes) if boxes else None, visible=bool(boxes))
            found = [(g.label, g.response, g.filters) for g in look.garments]
            if found:
                shown_ = focus(found, 0, k_, request)
            else:
                shown_ = show(whole, filters, photo_query(whole), request, what="whole photo (no garment found)")
            return (annotated, cards.look_rows_html(look, url_of), found, *shown_)

        def focus(found, n: int, k_, request: gr.Request | None):
            """Garment n's matches in the results: all k of them, re-ranked from its own vector (the photo is gone)
            with the filters its search used (the shopper's and the garment's kind)."""
            label, response, filters = found[n]
            query = photo_query(response)
            response = run(lambda: replay(service, query, None, k_, filters)) or response
            return show(response, filters, query, request, what=f"{label} (garment {n + 1} of {len(found)})")

        def look_picture(picture) -> str:
            """The photo as the boxes are drawn on: a copy in the upload folder, deleted like an upload (a few
            seconds after it is shown), so that shop the look keeps no picture either."""
            folder = Path(tempfile.mkdtemp(prefix="look-", dir=upload_root))
            path = folder / "photo.jpg"
            picture.convert("RGB").save(path, quality=88)
            forget(str(path))
            return str(path)

        def on_garment(found, k_, evt: gr.SelectData, request: gr.Request | None):
            """A garment clicked on the boxed photo: all its matches in the results."""
            if not found or evt is None or evt.index is None or not 0 <= int(evt.index) < len(found):
                return gr.skip()
            return focus(found, int(evt.index), k_, request)

        def on_text(q, k_, request: gr.Request | None, *fvals):
            filters = filters_of(fvals)
            return show(run(lambda: service.search_text(q, k_, filters)), filters,
                        {"kind": "text", "item": None, "text": q}, request)

        def on_live(frame, k_, request: gr.Request | None, *fvals):
            if frame is None:
                return gr.skip()
            filters = filters_of(fvals)
            try:
                response = service.search_image(frame, k_, filters)
            except StyliShiError:
                return gr.skip()  # one bad frame must not end the stream; the next one will do
            finally:
                forget(frame)
            return show(response, filters, {"kind": "live", "item": None}, request)

        def example_picture(index: int) -> Path:
            if index < len(example_files):
                return example_files[index]
            return Path(service.catalog.thumbnail_path(service.catalog.row_of(example_items[index - len(example_files)])))

        def show_examples(request: gr.Request | None):
            root = compat.root_url(request)
            return ([(media.example_url(root, p), p.stem.replace("_", " ")) for p in example_files]
                    + [(media.thumb_url(root, example_picture(len(example_files) + i)), None)
                       for i in range(len(example_items))])

        def on_example(k_, words_, weight_, evt: gr.SelectData, request: gr.Request | None, *fvals):
            count = len(example_files) + len(example_items)
            if evt is None or evt.index is None or not 0 <= int(evt.index) < count:
                return gr.skip()
            picture = example_picture(int(evt.index))
            filters = filters_of(fvals)
            response = run(lambda: service.search_image(str(picture), k_, filters, text=words_, text_weight=weight_))
            return show(response, filters, photo_query(response), request)

        def on_select(results, evt: gr.SelectData):
            if not results or evt.index is None or not 0 <= int(evt.index) < len(results):
                return "", gr.update(visible=False), gr.update(visible=False), gr.update(visible=False), None
            r = results[int(evt.index)]
            shown_ = gr.update(visible=True)
            return cards.selected_line(r), shown_, shown_, shown_, r["id"]

        def on_feedback(verdict: str, query, item, k_, request: gr.Request | None, *fvals):
            """👍 / 👎 on the selected card: the query on screen moved toward the liked and away from the disliked
            (stylishi.feedback); a card can change sides. The state is this browser session's own (gr.State)."""
            if not item:
                raise UserError("Click a result first, then 👍 or 👎.")
            query = query or {}
            refining = query.get("kind") == "refine"
            base = query.get("base") if refining else query
            liked = [i for i in query.get("liked", []) if i != item]
            disliked = [i for i in query.get("disliked", []) if i != item]
            (liked if verdict == "like" else disliked).append(item)
            liked, disliked = liked[-MAX_IDS:], disliked[-MAX_IDS:]  # the latest count most
            vector = query.get("vector")
            filters = filters_of(fvals)
            response = run(lambda: service.refine(liked, disliked, k_, filters, query_vector=vector))
            return show(response, filters, {"kind": "refine", "liked": liked, "disliked": disliked, "vector": vector,
                                            "base": base}, request)

        def on_like(query, item, k_, request: gr.Request | None, *fvals):
            return on_feedback("like", query, item, k_, request, *fvals)

        def on_dislike(query, item, k_, request: gr.Request | None, *fvals):
            return on_feedback("dislike", query, item, k_, request, *fvals)

        def start_over(query, q, k_, request: gr.Request | None, *fvals):
            """Forget the 👍 / 👎 and show the query they refined again."""
            base = (query or {}).get("base") if (query or {}).get("kind") == "refine" else None
            if not base:
                return gr.skip()
            filters = filters_of(fvals)
            response = run(lambda: replay(service, base, base.get("text") or q, k_, filters)
                           or (service.search_vector(base["vector"], k_, filters) if base.get("vector") is not None
                               else None))
            if response is None:
                return gr.skip()
            return show(response, filters, base, request)

        def by_item(item, k_, request: gr.Request | None, *fvals):
            if not item:
                raise UserError("Click a result first, then “More like this”.")
            filters = filters_of(fvals)
            return show(run(lambda: service.search_item(item, k_, filters)), filters, {"kind": "item", "item": item},
                        request)

        def rerun(query, q, k_, words_, weight_, request: gr.Request | None, *fvals):
            """k, a filter or the words changed: run the query on screen again (a photo by its vector: the picture
            is gone)."""
            filters = filters_of(fvals)
            response = run(lambda: replay(service, query, q, k_, filters, words=words_, weight=weight_))
            if response is None:
                return gr.skip()
            return show(response, filters, query, request)

        private = dict(api_visibility="private", concurrency_limit=concurrency, concurrency_id="search",
                       scroll_to_output=True)
        image.change(on_image, [image, k, words, weight, *dropdowns], outputs, js=HIDE_BOX, **private)
        region_btn.click(on_region, [region_picture, region_box, last_query, k, words, weight, *dropdowns], outputs,
                         **private)
        whole_btn.click(on_whole, [last_query, text, k, words, weight, *dropdowns], outputs, js=HIDE_BOX, **private)
        look_image.change(on_look, [look_image, k, *dropdowns], [look_boxes, look_rows, look_found, *outputs],
                          **private)
        look_boxes.select(on_garment, [look_found, k], outputs, **private)
        text.submit(on_text, [text, k, *dropdowns], outputs, **private)
        text_btn.click(on_text, [text, k, *dropdowns], outputs, **private)
        live.stream(on_live, [live, k, *dropdowns], outputs, stream_every=LIVE_EVERY_S, time_limit=live_time_limit,
                    concurrency_limit=LIVE_CONCURRENCY, api_visibility="private", show_progress="hidden")
        demo.load(show_examples, None, examples, api_visibility="private", queue=False, show_progress="hidden")
        examples.select(on_example, [k, words, weight, *dropdowns], outputs, js=HIDE_BOX, **private)
        gallery.select(on_select, [shown], [selected, more_btn, like_btn, dislike_btn, picked],
                       api_visibility="private", queue=False, show_progress="hidden")
        more_btn.click(by_item, [picked, k, *dropdowns], outputs, **private)
        like_btn.click(on_like, [last_query, picked, k, *dropdowns], outputs, **private)
        dislike_btn.click(on_dislike, [last_query, picked, k, *dropdowns], outputs, **private)
        start_over_btn.click(start_over, [last_query, text, k, *dropdowns], outputs, **private)
        for control in (k, weight, *dropdowns):
            trigger = control.release if control in (k, weight) else control.change
            trigger(rerun, [last_query, text, k, words, weight, *dropdowns], outputs, **private)
        words.submit(rerun, [last_query, text, k, words, weight, *dropdowns], outputs, **private)

        def refresh_stats():
            return cards.stats_markdown(service.metrics.snapshot())

        for trigger in (stats_btn.click, stats_box.expand):
            trigger(refresh_stats, None, stats_view, api_visibility="private", queue=False, show_progress="hidden")

        # -- the API for programs and agents (named, documented; MCP tools when --mcp) -------------------------
        add_api(demo, service, image_input=image_input, gallery=gallery, media=media, forget=forget,
                concurrency=concurrency)
        compat.pad_api_inputs(demo, API_NAMES)  # raw HTTP may omit the optional arguments at the end, as before
    # Every event through the queue (its concurrency limits and this bound); no direct /run for queued events.
    demo.queue(api_open=False, max_size=QUEUE_MAX)
    compat.purge_safely(demo)
    return demo

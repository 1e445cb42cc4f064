"""`stylishi serve` / `python app.py`: load a search service, then serve the page and the API.

    python build_index.py --demo --out demo_index     # offline demo catalog (once, ~10 s)
    python app.py --index demo_index                  # serve it on http://127.0.0.1:7860

Host and port come from Gradio's own env vars (GRADIO_SERVER_NAME, GRADIO_SERVER_PORT); the index, model and device
from --index/--model/--device or STYLISHI_INDEX/STYLISHI_MODEL/STYLISHI_DEVICE; the MCP server from --mcp or
STYLISHI_MCP=1 (needs `pip install "gradio[mcp]"`). Uploads wait in the app's own folder (mode 0700, under
STYLISHI_CACHE, emptied at start and at stop).
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from typing import Any

from stylishi.config import Settings, set_threads

log = logging.getLogger("stylishi.app")

# Gradio keeps a ~90 KB session (a copy of the page's config, and the last results) per browser tab and per API
# call. An API call's session is dropped 5 s after the call; browser tabs are capped here (oldest go first) instead
# of Gradio's 10,000 (~900 MB).
SESSION_CAPACITY = 2000
_TEMP: str | None = None


def prepare_environment() -> str:
    """Before gradio is imported: no telemetry, and the app's own temporary folder (once per process)."""
    global _TEMP
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    if _TEMP is None:
        from stylishi.privacy import app_temp_dir

        _TEMP = str(app_temp_dir(os.environ.get("GRADIO_TEMP_DIR") or None))
        os.environ["GRADIO_TEMP_DIR"] = _TEMP
    return _TEMP


def mcp_available() -> bool:
    try:
        import mcp  # noqa: F401
    except ImportError:
        return False
    return True


def launch_options(demo, service, *, mcp: bool = False, requests_per_minute: int | None = None) -> dict[str, Any]:
    """The launch() settings of the public demo: private, bounded, offline-safe; its own routes and request guard.
    requests_per_minute: the per-client rate limit (default: the settings' STYLISHI_RATE_LIMIT; 0 = none)."""
    import gradio as gr
    from starlette.middleware import Middleware

    from stylishi.serving import service_stats

    from .api import API_NAMES
    from .guard import RateLimit, RequestGuard
    from .media import stats_route
    from .page import CSS, JS
    from .rest import PATH as REST_PATH, SearchAPI

    limits = service.limits
    guard = Middleware(RequestGuard, max_bytes=limits.max_bytes, api_names=API_NAMES, gate=demo.file_gate,
                       rate=RateLimit(limits.requests_per_minute if requests_per_minute is None
                                                 else requests_per_minute), form_paths=[REST_PATH],
                       on_upload=demo.upload_janitor.uploaded)
    rest = demo.rest_api = SearchAPI(service, demo.media, running=limits.searches_at_once)
    return dict(
        app_kwargs={"routes": [*demo.media.routes(), rest.route(),
                               stats_route(lambda: {**service_stats(service), "rest": rest.admission.snapshot()})],
                    "middleware": [guard]},
        max_file_size=limits.max_bytes,
        state_session_capacity=SESSION_CAPACITY,
        enable_monitoring=False,
        run_history=False,
        show_error=False,  # unexpected exceptions stay in the log; gr.Error messages still reach people
        footer_links=["api", "gradio"],
        ssr_mode=False,
        mcp_server=mcp,
        theme=gr.themes.Default(primary_hue="rose", secondary_hue="slate", neutral_hue="slate"),
        css=CSS,
        js=JS,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags; each left out (None) falls back to its environment variable (stylishi.config.Settings.from_env)."""
    from stylishi.config import DEFAULT_INDEX_REPO, EMBED_MODES, FALLBACKS

    p = argparse.ArgumentParser(prog="app.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--index", default=None,
                   help=f"catalog index: a local folder, a Hub dataset repo owner/name[@rev], or 'demo' for the "
                        f"offline demo (env STYLISHI_INDEX; default {DEFAULT_INDEX_REPO})")
    p.add_argument("--model", default=None,
                   help="CLIP model (env STYLISHI_MODEL; default: the one the index was built with)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N or mps (env STYLISHI_DEVICE; default auto)")
    p.add_argument("--embed-mode", default=None, metavar="MODE",
                   help=f"query embedding mode: {', '.join(EMBED_MODES)} (env STYLISHI_EMBED_MODE; default auto)")
    p.add_argument("--threads", default=None, help="torch threads (env STYLISHI_THREADS; default 0 = all cores)")
    p.add_argument("--detector", default=None, metavar="auto|off|OWNER/NAME[@REV]|DIR",
                   help="shop the look's garment detector (env STYLISHI_DETECTOR; default auto: the offline demo's "
                        "for the demo, else yainage90/fashion-object-detection); off turns shop the look off")
    p.add_argument("--focus", default=None, metavar="auto|on|off",
                   help="photo searches also look at their main garment, found by the detector (env STYLISHI_FOCUS; "
                        "default auto: on where the detector is cheap, i.e. the offline demo's)")
    p.add_argument("--mcp", action="store_true", default=None,
                   help='also serve the search endpoints as MCP tools (env STYLISHI_MCP=1; needs "gradio[mcp]")')
    p.add_argument("--fallback", default=None, metavar="|".join(FALLBACKS),
                   help="what to serve when the index cannot be loaded: none, a starter index (Hub indexes), or "
                        "the starter index then the offline demo (env STYLISHI_FALLBACK; default: demo for the "
                        "default index, none for an index named with --index or STYLISHI_INDEX)")
    p.add_argument("--no-fallback", action="store_true",
                   help="the same as --fallback none (env STYLISHI_NO_FALLBACK=1)")
    p.add_argument("--milvus-uri", default=None, metavar="URI",
                   help="for an index built into Milvus: the Milvus to search instead of the one its manifest "
                        "names, a Lite .db path or http(s)://host:19530 (env STYLISHI_MILVUS_URI; token MILVUS_TOKEN)")
    return p.parse_args(argv)


def load_service(settings: Settings):
    """What the app serves: the index asked for, else what its fallback allows (stylishi.startup's policy).

    A folder or a Hub repo loads as is; with the Hub away a Hub index is served from the cache; the default index
    (or one with --fallback) falls back to a starter index or the offline demo, and `service.startup` says why.
    """
    from stylishi.startup import open_service

    return open_service(settings=settings)


def _stop_on_sigterm() -> None:
    """SIGTERM ends the app like Ctrl-C does (pending deletions done, temp folder emptied), not mid-flight."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (an embedding program): its own handling applies
        pass


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # no per-request lines (they carry file names)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")  # read once, when huggingface_hub is imported
    from stylishi import StyliShiError
    from stylishi.privacy import empty_folder
    from stylishi.serving import cap_heap_arenas, warm_up

    t0 = time.perf_counter()
    try:  # every setting checked before anything loads: one line naming it, no traceback, no wasted work
        settings = Settings.from_env(index=args.index, model=args.model, device=args.device, threads=args.threads,
                                     embed_mode=args.embed_mode, detector=args.detector, focus=args.focus,
                                     fallback="none" if args.no_fallback else args.fallback)
    except StyliShiError as exc:
        log.error("cannot start: %s", exc)
        return 2
    set_threads(settings.threads, faiss_threads=1)
    cap_heap_arenas()
    if args.milvus_uri:  # read where the catalog opens its store (stylishi.catalog.load; docs/scale.md)
        os.environ["STYLISHI_MILVUS_URI"] = args.milvus_uri
    try:
        service = load_service(settings)
    except StyliShiError as exc:
        log.error("cannot start: %s", exc)
        return 2
    loaded_s = time.perf_counter() - t0
    temp = prepare_environment()  # before gradio is imported (the core never imports it)
    warm_ms = warm_up(service)
    mcp = settings.mcp if args.mcp is None else args.mcp
    if mcp and not mcp_available():
        log.warning('MCP was asked for (--mcp / STYLISHI_MCP) but the "mcp" package is missing: serving without '
                    'MCP. Install it with: pip install "gradio[mcp]"')
        mcp = False
    from .page import build_app

    demo = build_app(service)
    _stop_on_sigterm()
    demo.launch(prevent_thread_lock=True, quiet=True, **launch_options(demo, service, mcp=mcp))
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
    finally:
        pending = demo.upload_janitor.pending
        demo.upload_janitor.flush()
        demo.close()
        removed = empty_folder(temp)
        log.info("stopped: %d pending deletions done, %d leftover temporary files removed", pending, removed)
    return 0


if __name__ == "__main__":
    sys.exit(main())

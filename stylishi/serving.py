"""What serving a `SearchService` to the public needs besides searching: example queries, a warm-up, the
statistics a monitor reads, and re-running the query on screen when its k or filters change. No UI code here."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # annotations only: serving needs no more than a service's public methods
    from .results import SearchResponse
    from .service import SearchService


def catalog_examples(service: SearchService, n: int = 4) -> list[str]:
    """The ids of a few catalog items of different kinds (and colours), to offer as example queries."""
    items = service.catalog.items
    col = next((c for c in ("article_type", "subcategory", "category") if c in items.columns), None)
    if col is None:
        rows = list(range(min(n, len(items))))
    else:
        groups = list(items.groupby(items[col].astype(str), sort=True).indices.values())
        step = max(1, len(groups) // n)
        # One item per kind, spread over the kinds; a different position in each kind, so colours vary too.
        rows = [int(g[(i * 7 + len(g) // 3) % len(g)]) for i, g in enumerate(groups[::step][:n])]
    return [str(items["id"].iloc[r]) for r in rows]


HEAP_ARENAS = 2


def warm_up(service: SearchService) -> float:
    """One query through each tower so the first visitor does not pay for lazy initialisation; milliseconds taken.
    The service's statistics are reset afterwards: they count visitors' queries only."""
    from PIL import Image

    t0 = time.perf_counter()
    service.search_image(Image.new("RGB", (64, 64), (200, 200, 200)), k=1)
    service.search_text("a red dress", k=1)
    service.metrics.reset()
    from .embedder import release_memory

    release_memory()  # what loading and the first queries left free goes back to the OS before visitors come
    return (time.perf_counter() - t0) * 1000


def cap_heap_arenas(arenas: int = HEAP_ARENAS) -> bool:
    """At most `arenas` glibc heap arenas (M_ARENA_MAX), unless MALLOC_ARENA_MAX is set. glibc gives threads that
    allocate at once arenas of their own (up to 8 per core), and each keeps what its searches freed: after an
    8-client load the server held 1,087 MiB with the default, 1,049 with two (BENCHMARKS.md). Call before the
    search threads start. True if set."""
    import ctypes
    import os

    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return False
    return libc.mallopt(-8, int(arenas)) == 1  # -8: M_ARENA_MAX


def service_stats(service: SearchService) -> dict[str, Any]:
    """What GET /stats returns: the query statistics and what is served (no paths, nothing from users)."""
    manifest = service.catalog.manifest
    build = manifest.get("build") if isinstance(manifest.get("build"), dict) else {}
    return {**service.metrics.snapshot(), "catalog_items": len(service.catalog),
            "embed_mode": service.embedder.mode, "text_mode": service.embedder.text_mode,
            "device": service.embedder.device, "image_batching": service.embedder.batching(),
            # how the catalog's own vectors were made (fp32, or the fast path its build gate accepted)
            "catalog_embed_mode": str((manifest.get("model") or {}).get("mode", "fp32")),
            "catalog_build_gate": build.get("gate") or None,
            "shop_the_look": service.looker.status(), "focus": service.focus.status()}


def replay(service: SearchService, query: Mapping[str, Any] | None, text: str | None, k: Any,
           filters: Mapping[str, Any] | None, *, words: str | None = None, weight: Any = None
           ) -> SearchResponse | None:
    """The query on screen again with another k or filters: a photo by its stored vector (its picture is gone)
    and the "like this, but …" `words` at `weight`, a description by its text, "more like this" by its item, a
    👍 / 👎 refinement by its feedback. None when nothing is on screen to re-run."""
    kind = (query or {}).get("kind")
    if kind == "image" and (query.get("picture") is not None or query.get("vector") is not None):
        picture = query.get("picture")  # the photo's own vector (before any words); else the vector searched
        return service.search_vector(query["vector"] if picture is None else picture, k, filters, text=words,
                                     text_weight=weight)
    if kind == "text" and text:
        return service.search_text(text, k, filters)
    if kind == "item":
        return service.search_item(query.get("item"), k, filters)
    if kind == "refine":  # 👍 / 👎 on screen: the same feedback, from the same starting vector
        return service.refine(query.get("liked"), query.get("disliked"), k, filters, query_vector=query.get("vector"))
    return None

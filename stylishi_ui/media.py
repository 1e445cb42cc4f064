"""The app's own routes: the catalog's thumbnails and the example pictures at neutral URLs (no server folder in
any URL, result or page config), and GET /stats for monitoring."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable
from urllib.parse import quote

from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.routing import APIRoute

THUMBS = "/media/thumbs"
EXAMPLES = "/media/examples"
PICTURE_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}
_PLAIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,200}$")  # catalog names, and "_missing.jpg"


class Media:
    """Where the app's own pictures live on disk, and the URLs they are served at."""

    def __init__(self, thumb_dir: str | Path, examples: list[Path]):
        self.thumb_dir = Path(thumb_dir).resolve()
        self.examples = {p.name: Path(p).resolve() for p in examples}

    def thumb_url(self, root: str, path: str | Path) -> str:
        return f"{root}{THUMBS}/{quote(Path(path).name)}"

    def example_url(self, root: str, path: str | Path) -> str:
        return f"{root}{EXAMPLES}/{quote(Path(path).name)}"

    def url_maker(self, root: str) -> Callable[[str], str]:
        return lambda path: self.thumb_url(root, path)

    def folders(self) -> list[Path]:
        return [self.thumb_dir, *{p.parent for p in self.examples.values()}]

    def routes(self) -> list[APIRoute]:
        def thumb(name: str) -> Response:
            return _picture(self.thumb_dir / name if _PLAIN.match(name) else None)

        def example(name: str) -> Response:
            return _picture(self.examples.get(name))

        return [APIRoute(THUMBS + "/{name}", thumb, methods=["GET", "HEAD"], include_in_schema=False),
                APIRoute(EXAMPLES + "/{name}", example, methods=["GET", "HEAD"], include_in_schema=False)]


def _picture(path: Path | None) -> Response:
    kind = PICTURE_TYPES.get(path.suffix.lower()) if path is not None else None
    if kind is None or not path.is_file():
        return JSONResponse({"error": "No such picture."}, status_code=404)
    return FileResponse(path, media_type=kind, headers={"Cache-Control": "public, max-age=3600"})


def stats_route(stats: Callable[[], dict]) -> APIRoute:
    """GET /stats: the query statistics as JSON, for monitoring (see docs/hardening.md)."""
    def handler() -> JSONResponse:
        return JSONResponse(stats(), headers={"Cache-Control": "no-store"})

    return APIRoute("/stats", handler, methods=["GET"], name="stylishi_stats", include_in_schema=False)

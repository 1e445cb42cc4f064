"""StyliShi: fashion visual search. A tiny public surface over CLIP + FAISS.

    import stylishi
    service = stylishi.load("path/or/owner/index-repo")        # index + the model that built it
    response = service.search_image("photo.jpg", k=10)         # ranked products with timings
    response = stylishi.search(service, "red summer dress")    # a picture, a text or a vector
    vectors = stylishi.encode(service, [pil_image])            # raw unit vectors

The package never imports a UI toolkit; the app (stylishi_ui, app.py) does that. Modules inside the package never
import this file: it only re-exports them.
"""
from __future__ import annotations

from .errors import ArtifactError, ImageError, ModelError, ModelMismatchError, QueryError, StyliShiError
from .results import SearchResponse, SearchResult
from .service import SearchService, check_compatible, encode, load, search

__all__ = ["load", "encode", "search", "check_compatible", "SearchService", "SearchResponse", "SearchResult",
           "StyliShiError", "ImageError", "QueryError", "ArtifactError", "ModelError", "ModelMismatchError"]
__version__ = "0.1.0"

"""StyliShi: fashion visual search. A tiny public surface over CLIP + FAISS.

    import stylishi
    service = stylishi.load("path/or/owner/index-repo")        # index + the model that built it
    response = service.search_image("photo.jpg", k=10)         # ranked products with timings
    vectors = stylishi.encode(service, [pil_image])            # raw unit vectors

The package never imports a UI toolkit; app.py does that.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import ArtifactError, ImageError, ModelError, QueryError, StyliShiError
from .results import SearchResponse, SearchResult
from .service import SearchService

__all__ = ["load", "encode", "search", "SearchService", "SearchResponse", "SearchResult", "StyliShiError",
           "ImageError", "QueryError", "ArtifactError", "ModelError"]
__version__ = "0.1.0"


def load(index: str | Path, model: str | None = None, *, device: str = "auto", mode: str | None = None,
         local_files_only: bool = False) -> SearchService:
    """A ready search service for a catalog index (local folder, or Hub dataset repo `owner/name[@rev]`).

    The model defaults to the one the index was built with; naming another one is refused unless it is the same.
    local_files_only: take the index and model from the Hugging Face cache only, making no request (the Hub is away).
    """
    from . import catalog as catalog_mod
    from .embedder import Embedder
    from .config import Settings
    from .hub import resolve_index, resolve_model

    root = resolve_index(str(index), local_files_only=local_files_only)
    manifest = catalog_mod.read_manifest(root)
    built_with = manifest["model"]["id"]
    wanted = model or built_with
    model_dir, model_id, revision = resolve_model(wanted, index_root=root, local_files_only=local_files_only)
    if model and not _same_model(model, built_with, root):
        raise ArtifactError(f"The index {index} was built with the model {built_with}, but {model} was asked for. "
                            f"Drop --model to use {built_with}, or rebuild the index with {model}.")
    catalog = catalog_mod.load(root)
    mode = mode or Settings().embed_mode
    gap = catalog.neighbour_gap() if mode in ("auto", "int8") else None
    embedder = Embedder.load(model_dir, model_id=model_id, revision=revision, device=device, mode=mode,
                             neighbour_gap=gap)
    service = SearchService(embedder, catalog, source=str(index))
    service.check_model()  # the right-sized but wrong model is refused, never searched with
    return service


def _same_model(a: str, b: str, root: Path) -> bool:
    def norm(ref: str) -> str:
        if ref.startswith("./"):
            return str((root / ref).resolve())
        p = Path(ref)
        return str(p.resolve()) if p.exists() else ref.split("@")[0]
    return norm(a) == norm(b)


def encode(service: SearchService, images: Sequence) -> np.ndarray:
    """Unit vectors `[n, dim]` for pictures (paths, bytes, PIL or arrays), in the catalog's space."""
    from .images import load_image

    return service.embedder.embed_images([load_image(img, service.limits) for img in images])


def search(service: SearchService, query, k: int = 10, filters=None) -> SearchResponse:
    """Search by picture (path/bytes/PIL/array), by text (a str that is not an existing file) or by vector."""
    if isinstance(query, np.ndarray) and query.ndim == 1:
        return service.search_vector(query, k, filters)
    if isinstance(query, str) and not Path(query).exists():
        return service.search_text(query, k, filters)
    return service.search_image(query, k, filters)

"""The catalog index artifact: a folder anyone can inspect, checksum and share on the Hub.

    manifest.json        format version, model id/revision, dim, FAISS factory, item count, build date, sha256 of each file
    index.faiss          the FAISS index; row i is item i
    items.parquet        one row per item: id, name, category, ... whatever the source had, and its thumbnail's file name
    thumbnails.parquet   (file, jpeg) — the gallery thumbnails, packed so a 44k catalog is one file, not 44k

No pickle anywhere: loading an artifact from a stranger runs none of their code. Loading verifies every checksum and
count and refuses, naming the fix, on any mismatch.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import faiss
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import index as faiss_index
from .config import cache_dir
from .errors import ArtifactError
from .store import FaissStore, VectorStore

log = logging.getLogger(__name__)

FORMAT = "stylishi-catalog"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
INDEX_FILE = "index.faiss"
ITEMS_FILE = "items.parquet"
THUMBS_FILE = "thumbnails.parquet"
DATA_FILES = (INDEX_FILE, ITEMS_FILE, THUMBS_FILE)
REBUILD_HINT = "Rebuild it with build_index.py (or download it again)."

# Metadata columns a shopper can filter by, in the order the UI shows them.
FILTERABLE = ("gender", "category", "subcategory", "article_type", "colour", "season", "usage")


@dataclass
class Catalog:
    """A verified, loaded catalog: the index, the items' metadata and their thumbnails."""

    root: Path
    manifest: dict[str, Any]
    index: faiss.Index | None  # the in-process FAISS index; None when the vectors are served from Milvus
    items: pd.DataFrame
    thumbnails: pa.Table
    thumb_dir: Path
    _row_of: dict[str, int] = field(default_factory=dict, repr=False)
    store: VectorStore | None = None  # where searches go: FaissStore(index) unless the manifest names Milvus

    def __post_init__(self) -> None:
        if self.store is None:
            self.store = FaissStore(self.index)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def dim(self) -> int:
        return int(self.manifest["embedding"]["dim"])

    @property
    def model_id(self) -> str:
        return str(self.manifest["model"]["id"])

    def row_of(self, item_id: str) -> int | None:
        if not self._row_of:
            self._row_of = {str(v): i for i, v in enumerate(self.items["id"])}
        return self._row_of.get(str(item_id))

    def neighbour_gap(self, sample: int = 128) -> float:
        """How far (1 - cosine) an item typically sits from its nearest other item: the 10th percentile over a
        sample, ignoring exact duplicates. Noise well below this cannot reorder results."""
        n = len(self)
        if n < 2:
            return 1.0
        rows = np.unique(np.linspace(0, n - 1, min(sample, n)).astype(np.int64))
        scores, ids = self.store.search(self.store.vectors(rows), 2)
        gaps = 1 - np.where(ids[:, 0] == rows, scores[:, 1], scores[:, 0])
        gaps = gaps[gaps > 1e-6]
        return float(np.percentile(gaps, 10)) if len(gaps) else 1.0

    def filter_values(self) -> dict[str, list[str]]:
        """The filterable columns this catalog has, with their values (sorted, non-empty)."""
        out: dict[str, list[str]] = {}
        for col in FILTERABLE:
            if col in self.items.columns:
                values = sorted({str(v) for v in self.items[col].dropna() if str(v).strip()})
                if values:
                    out[col] = values
        return out

    def thumbnail_path(self, row: int) -> Path:
        """The thumbnail of row `row` as a file (unpacked on first use), or a placeholder if it is missing."""
        name = self.items.at[row, "thumbnail"] if "thumbnail" in self.items.columns else None
        if not isinstance(name, str) or not name:
            return self.placeholder()
        path = self.thumb_dir / Path(name).name
        if not path.exists():
            data = self.thumbnails.column("jpeg")[row].as_py()
            if not data:
                return self.placeholder()
            _write_once(path, data)
        return path

    def placeholder(self) -> Path:
        """A grey "no picture" card, served for an item whose thumbnail the index does not have."""
        path = self.thumb_dir / "_missing.jpg"
        if not path.exists():
            import io

            from PIL import Image, ImageDraw

            img = Image.new("RGB", (128, 128), (236, 236, 236))
            ImageDraw.Draw(img).text((22, 58), "no picture", fill=(120, 120, 120))
            buf = io.BytesIO()
            img.save(buf, format="JPEG")
            _write_once(path, buf.getvalue())
        return path


def _write_once(path: Path, data: bytes) -> None:
    """Write a file atomically, safe against concurrent writers of the same file and a wiped cache folder."""
    path.parent.mkdir(parents=True, exist_ok=True)  # the thumbnail cache may have been cleaned while serving
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# -- writing ---------------------------------------------------------------------------------------------------
def safe_file_name(item_id: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", str(item_id)).strip("._")[:80] or "item"
    return f"{stem}.jpg"


def write(out_dir: str | Path, *, vectors: np.ndarray, items: pd.DataFrame, thumbnails: list[bytes | None],
          model: dict[str, Any], factory: str = faiss_index.DEFAULT_FACTORY, source: dict[str, Any] | None = None,
          extra: dict[str, Any] | None = None, milvus: dict[str, str] | None = None) -> dict[str, Any]:
    """Write a complete artifact; returns its manifest. Files are written first, the manifest last.

    milvus: {"uri": ..., "collection": ...} also writes the vectors and filterable columns into that Milvus
    collection, and the manifest's `store` section names it, so the app searches there (docs/scale.md).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n = len(items)
    if vectors.shape[0] != n or len(thumbnails) != n:
        raise ValueError(f"vectors ({vectors.shape[0]}), items ({n}) and thumbnails ({len(thumbnails)}) differ in length")
    if "id" not in items.columns:
        raise ValueError("items need an 'id' column")
    items = items.reset_index(drop=True).copy()
    items["id"] = items["id"].astype(str)
    if items["id"].duplicated().any():
        dup = items["id"][items["id"].duplicated()].iloc[0]
        raise ValueError(f"item ids must be unique; {dup!r} appears more than once")
    names = _unique_file_names(items["id"])
    items["thumbnail"] = [name if data else None for name, data in zip(names, thumbnails)]

    built = faiss_index.build_tuned(vectors, factory)
    faiss_index.save(built.index, out / INDEX_FILE)
    pq.write_table(pa.Table.from_pandas(items, preserve_index=False), out / ITEMS_FILE)
    thumbs = pa.table({"file": pa.array(names, pa.string()), "jpeg": pa.array(thumbnails, pa.binary())})
    pq.write_table(thumbs, out / THUMBS_FILE, compression="none")  # JPEG does not compress; raw pages read zero-copy

    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": {"id": model["id"], "revision": model.get("revision"), "mode": model.get("mode", "fp32"),
                  "family": model.get("family", "clip")},  # stylishi.families: which kind of model made the vectors
        "embedding": {"dim": int(vectors.shape[1]), "normalization": "l2", "metric": "inner_product", "dtype": "float32"},
        "index": built.manifest_entry(),
        "count": n,
        "built_at": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "source": source or {},
        "columns": [c for c in items.columns],
        "files": {name: _file_entry(out / name) for name in DATA_FILES},
    }
    if milvus:
        manifest["store"] = _write_milvus(out, milvus, vectors, items, manifest["model"]["id"])
    if extra:
        manifest.update(extra)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest


def _write_milvus(out: Path, target: dict[str, str], vectors: np.ndarray, items: pd.DataFrame,
                  model_id: str) -> dict[str, Any]:
    """The vectors into a Milvus collection; returns the manifest's `store` entry (address without secrets)."""
    from . import milvus_store

    uri = str(target["uri"])
    store = milvus_store.MilvusStore.build(uri, target.get("collection") or milvus_store.DEFAULT_COLLECTION,
                                           vectors, items, model_id=model_id, filter_columns=FILTERABLE)
    entry = store.describe()
    store.close()
    if milvus_store.is_lite(uri):  # a Lite file inside the artifact folder is recorded relative to it: it moves along
        path = Path(uri).resolve()
        if path.is_relative_to(out.resolve()):
            entry["uri"] = "./" + path.relative_to(out.resolve()).as_posix()
        else:
            entry["uri"] = str(path)
    return entry


def _unique_file_names(ids: Iterable[str]) -> list[str]:
    seen: dict[str, int] = {}
    names = []
    for item_id in ids:
        name = safe_file_name(item_id)
        if name in seen:
            seen[name] += 1
            name = f"{name[:-4]}-{seen[name]}.jpg"
        seen.setdefault(name, 0)
        names.append(name)
    return names


def _file_entry(path: Path) -> dict[str, Any]:
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# -- reading ---------------------------------------------------------------------------------------------------
def read_manifest(root: str | Path) -> dict[str, Any]:
    root = Path(root)
    path = root / MANIFEST
    if not root.is_dir():
        raise ArtifactError(f"The catalog index folder {root} does not exist. Build one with "
                            "`python build_index.py --demo --out DIR` (offline) or point --index at a Hub repo.")
    if not path.is_file():
        raise ArtifactError(f"{root} has no {MANIFEST}, so it is not a StyliShi catalog index. {REBUILD_HINT}")
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path} is not valid JSON ({exc}). {REBUILD_HINT}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError(f"{path} is not a StyliShi catalog manifest. {REBUILD_HINT}")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ArtifactError(f"{root} uses catalog format version {version}; this StyliShi reads version "
                            f"{FORMAT_VERSION}. Rebuild the index with this version's build_index.py.")
    problem = _manifest_problem(manifest)
    if problem:
        raise ArtifactError(f"{path} is incomplete: {problem}. {REBUILD_HINT}")
    return manifest


def _manifest_problem(manifest: dict[str, Any]) -> str | None:
    """What a loader relies on, present and of the right type (else a line saying what is wrong)."""
    def field(*keys: str) -> Any:
        value: Any = manifest
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    if not isinstance(field("model", "id"), str) or not field("model", "id"):
        return "model.id (the model the index was built with) is missing"
    dim = field("embedding", "dim")
    if not isinstance(dim, int) or isinstance(dim, bool) or dim <= 0:
        return f"embedding.dim should be a positive whole number, not {dim!r}"
    count = field("count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        return f"count should be the number of items, not {count!r}"
    if not isinstance(field("index", "type"), str) or not isinstance(field("index", "params") or {}, dict):
        return "the index section is missing or malformed"
    if not isinstance(field("files"), dict):
        return "the files section (sizes and checksums) is missing"
    return None


def _check_unit_vectors(root: Path, idx: faiss.Index, tolerance: float = 0.02) -> None:
    """Every stored vector (a spread sample above 200k items) is finite and of length 1 (SQ8 stays within ~0.003):
    damage that a checksum cannot see, because the file was written that way, is refused instead of searched."""
    n = int(idx.ntotal)
    rows = np.arange(n, dtype=np.int64) if n <= 200_000 else np.unique(np.linspace(0, n - 1, 20_000).astype(np.int64))
    for start in range(0, len(rows), 8192):
        chunk = rows[start:start + 8192]
        with np.errstate(over="ignore", invalid="ignore"):
            norms = np.linalg.norm(faiss_index.reconstruct(idx, chunk), axis=1)
        bad = ~np.isfinite(norms) | (np.abs(norms - 1) > tolerance)
        if bad.any():
            i = int(np.argmax(bad))
            raise ArtifactError(f"{root / INDEX_FILE} is damaged: the vector of item row {int(chunk[i])} has length "
                                f"{float(norms[i]):.4g}, not 1. {REBUILD_HINT}")


# A thumbnail is a plain file name in the thumbnail folder: no folders, no hidden files, not the placeholder's name.
_THUMB_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,159}")


def _check_thumbnail_names(root: Path, items: pd.DataFrame) -> None:
    if "thumbnail" not in items.columns:
        return
    names = items["thumbnail"].dropna().astype(str)
    names = names[names != ""]
    bad = names[np.array([not _THUMB_NAME.fullmatch(n) or n == "_missing.jpg" for n in names], dtype=bool)]
    if len(bad):
        raise ArtifactError(f"The catalog index {root} names a thumbnail {bad.iloc[0][:60]!r}, which is not a plain "
                            f"file name. {REBUILD_HINT}")
    duplicated = names[names.duplicated()]
    if len(duplicated):
        raise ArtifactError(f"In the catalog index {root} several items share the thumbnail {duplicated.iloc[0]!r}, "
                            f"so some would show another item's picture. {REBUILD_HINT}")


def verify_files(root: Path, manifest: dict[str, Any]) -> None:
    """Every file the manifest lists is there, of the listed size and sha256."""
    files = manifest.get("files") or {}
    for name in DATA_FILES:
        if name not in files:
            raise ArtifactError(f"{root / MANIFEST} does not list {name}. {REBUILD_HINT}")
    for name, entry in files.items():
        path = root / name
        if not path.is_file():
            raise ArtifactError(f"{path} is missing from the catalog index. {REBUILD_HINT}")
        size = path.stat().st_size
        if size != entry.get("bytes"):
            raise ArtifactError(f"{path} is {size} bytes but the manifest says {entry.get('bytes')}: the file is "
                                f"truncated or was replaced. {REBUILD_HINT}")
        digest = sha256_file(path)
        if digest != entry.get("sha256"):
            raise ArtifactError(f"{path} is corrupted: its sha256 is {digest[:12]}… but the manifest says "
                                f"{str(entry.get('sha256'))[:12]}…. {REBUILD_HINT}")


def load(root: str | Path, *, milvus_uri: str | None = None) -> Catalog:
    """Load and verify an artifact folder. Refuses (ArtifactError) rather than ever serving wrong results.

    Whether a model fits it is decided elsewhere, once: `stylishi.service.check_compatible`. When the manifest names a
    Milvus store, its collection is opened and checked instead of loading index.faiss; `milvus_uri` (or the
    STYLISHI_MILVUS_URI environment variable) overrides the address the manifest recorded.
    """
    root = Path(root)
    manifest = read_manifest(root)
    verify_files(root, manifest)
    count = int(manifest.get("count", -1))
    dim = int(manifest["embedding"]["dim"])
    store_entry = manifest.get("store") if isinstance(manifest.get("store"), dict) else {}
    store: VectorStore | None = None
    idx = None
    if store_entry.get("kind") == "milvus":
        store = _open_milvus(root, manifest, store_entry, milvus_uri)
    else:
        try:
            idx = faiss_index.load(root / INDEX_FILE)
        except RuntimeError as exc:
            raise ArtifactError(f"{root / INDEX_FILE} could not be read by FAISS ({exc}). {REBUILD_HINT}") from None
    try:
        items = pq.read_table(root / ITEMS_FILE).to_pandas()
        thumbs = pq.read_table(root / THUMBS_FILE, memory_map=True)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ArtifactError(f"The metadata of {root} could not be read ({exc}). {REBUILD_HINT}") from None
    if idx is not None and idx.d != dim:
        raise ArtifactError(f"{root / INDEX_FILE} holds {idx.d}-d vectors but the manifest says {dim}. {REBUILD_HINT}")
    stored = idx.ntotal if idx is not None else len(store)
    counts = {"manifest": count, "index": stored, "items.parquet": len(items), "thumbnails.parquet": thumbs.num_rows}
    if len(set(counts.values())) != 1:
        detail = ", ".join(f"{k} {v}" for k, v in counts.items())
        raise ArtifactError(f"The catalog index {root} is inconsistent: item counts differ ({detail}). {REBUILD_HINT}")
    if idx is not None and manifest["embedding"].get("normalization", "l2") == "l2":
        _check_unit_vectors(root, idx)
    if "id" not in items.columns:
        raise ArtifactError(f"{root / ITEMS_FILE} has no 'id' column, so results could not be named. {REBUILD_HINT}")
    if "jpeg" not in thumbs.column_names:
        raise ArtifactError(f"{root / THUMBS_FILE} has no 'jpeg' column. {REBUILD_HINT}")
    _check_thumbnail_names(root, items)
    thumb_dir = cache_dir() / "thumbs" / manifest["files"][THUMBS_FILE]["sha256"][:16]
    thumb_dir.mkdir(parents=True, exist_ok=True)
    if idx is not None:
        faiss_index.apply_params(idx, manifest["index"].get("params") or {})
    where = manifest["index"]["type"] if idx is not None else f"Milvus {store_entry.get('index_type')}"
    log.info("catalog %s: %d items, %d-d, %s, model %s", root, count, dim, where, manifest["model"]["id"])
    return Catalog(root=root, manifest=manifest, index=idx, items=items, thumbnails=thumbs, thumb_dir=thumb_dir,
                   store=store)


def _open_milvus(root: Path, manifest: dict[str, Any], entry: dict[str, Any], uri: str | None) -> VectorStore:
    """The manifest's Milvus collection, checked against it (collection, dim, count, model); the address from
    `uri`, else STYLISHI_MILVUS_URI, else the manifest (a relative Lite file is inside the artifact folder)."""
    from . import milvus_store

    address = uri or os.environ.get(milvus_store.URI_ENV) or entry.get("uri")
    if not address:
        raise ArtifactError(f"{root / MANIFEST} names a Milvus store without an address. Give one with --milvus-uri "
                            f"or {milvus_store.URI_ENV}, or rebuild the index with build_index.py --milvus URI.")
    address = milvus_store.resolve_uri(str(address), root)
    return milvus_store.MilvusStore.open(
        address, str(entry.get("collection") or milvus_store.DEFAULT_COLLECTION), model_id=manifest["model"]["id"],
        dim=int(manifest["embedding"]["dim"]), count=int(manifest.get("count", -1)),
        search_params=entry.get("search_params"), index=entry)

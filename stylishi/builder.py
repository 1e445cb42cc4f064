"""Build a catalog index from a Hub dataset or a local image folder, and prove it works before calling it done.

Both sources are read with `datasets` (streaming from the Hub; `imagefolder` for a folder with an optional
metadata.csv). Images are decoded by our own intake, so an unreadable picture is skipped and counted, never fatal.
"""
from __future__ import annotations

import logging
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import catalog as catalog_mod
from .embedder import Embedder
from .errors import ImageError, StyliShiError
from .images import load_image, thumbnail_jpeg

log = logging.getLogger(__name__)

# Column names of the Fashion Product Images dataset (and its "small" copy) → ours.
COLUMN_MAP = {
    "productDisplayName": "name", "masterCategory": "category", "subCategory": "subcategory",
    "articleType": "article_type", "baseColour": "colour", "baseColor": "colour", "color": "colour",
    "title": "name", "product_name": "name",
}
IMAGE_COLUMNS = ("image", "img", "picture", "photo")
VALIDATION_SAMPLE = 32


@dataclass
class Record:
    id: str
    image: Any  # bytes, a path, or a PIL image
    metadata: dict[str, Any]


@dataclass
class BuildReport:
    out: Path
    items: int
    skipped: dict[str, int]
    dim: int
    index_type: str
    bytes_on_disk: int
    seconds: float
    validated: int
    validation_passed: int
    failures: list[str] = field(default_factory=list)

    @property
    def images_per_s(self) -> float:
        return self.items / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        skipped = sum(self.skipped.values())
        reasons = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items())) or "none"
        return "\n".join([
            f"catalog index: {self.out}",
            f"  items        {self.items}",
            f"  skipped      {skipped} ({reasons})",
            f"  dim          {self.dim}",
            f"  index        {self.index_type}",
            f"  size on disk {self.bytes_on_disk / 1e6:.2f} MB",
            f"  build time   {self.seconds:.1f} s",
            f"  throughput   {self.images_per_s:.1f} images/s",
            f"  validation   {self.validation_passed}/{self.validated} sampled items found themselves at rank 1",
        ])


# -- sources ---------------------------------------------------------------------------------------------------
def dataset_records(dataset_id: str, *, split: str = "train", revision: str | None = None,
                    streaming: bool = True) -> Iterator[Record]:
    """Records from a Hub dataset with an image column (read lazily: the first N items cost N downloads)."""
    from datasets import Image as ImageFeature
    from datasets import load_dataset

    ds = load_dataset(dataset_id, split=split, streaming=streaming, revision=revision)
    image_col = next((c for c in IMAGE_COLUMNS if c in (ds.column_names or [])), None)
    if image_col is None:
        raise StyliShiError(f"The dataset {dataset_id} has no image column (looked for {', '.join(IMAGE_COLUMNS)}); "
                            f"its columns are {ds.column_names}.")
    ds = ds.cast_column(image_col, ImageFeature(decode=False))
    yield from _rows(ds, image_col, fallback_id=lambda n, row: str(n))


def folder_records(folder: str | Path) -> Iterator[Record]:
    """Records from a folder of images (any depth), with optional metadata.csv whose `file_name` column names them."""
    from datasets import Image as ImageFeature
    from datasets import load_dataset

    folder = Path(folder)
    if not folder.is_dir():
        raise StyliShiError(f"The image folder {folder} does not exist.")
    ds = load_dataset("imagefolder", data_dir=str(folder), split="train")
    ds = ds.cast_column("image", ImageFeature(decode=False))

    def file_id(n: int, row: dict) -> str:
        path = (row.get("image") or {}).get("path") or str(n)
        try:
            return str(Path(path).resolve().relative_to(folder.resolve()).with_suffix(""))
        except ValueError:
            return Path(path).stem

    yield from _rows(ds, "image", fallback_id=file_id)


def _rows(ds, image_col: str, fallback_id) -> Iterator[Record]:
    for n, row in enumerate(ds):
        image = row.get(image_col) or {}
        picture = image.get("bytes") or image.get("path") if isinstance(image, dict) else image
        metadata = {}
        for key, value in row.items():
            if key == image_col or isinstance(value, (dict, list, bytes)):
                continue
            metadata[COLUMN_MAP.get(key, key)] = value
        item_id = metadata.pop("id", None)
        item_id = str(item_id) if item_id not in (None, "") else fallback_id(n, row)
        metadata.pop("file_name", None)
        yield Record(id=item_id, image=picture, metadata=metadata)


# -- the build -------------------------------------------------------------------------------------------------
def build(records: Iterable[Record], embedder: Embedder, out: str | Path, *, limit: int | None = None,
          batch_size: int = 32, factory: str = "auto", source: dict[str, Any] | None = None,
          progress: bool = True, seed: int = 0) -> BuildReport:
    """Embed every readable record, write the artifact to `out`, then validate it by searching a sample."""
    out = Path(out)
    t0 = time.perf_counter()
    vectors: list[np.ndarray] = []
    rows: list[dict[str, Any]] = []
    thumbs: list[bytes] = []
    skipped: dict[str, int] = {}
    seen: set[str] = set()
    sample: list[tuple[str, Any]] = []
    rng = random.Random(seed)
    bar = tqdm(total=limit, unit="img", desc="embedding", disable=not progress, dynamic_ncols=True)
    batch: list[tuple[Record, Any]] = []

    def flush() -> None:
        if not batch:
            return
        vectors.append(embedder.embed_images([img for _, img in batch]))
        for rec, img in batch:
            rows.append({"id": rec.id, **rec.metadata})
            thumbs.append(thumbnail_jpeg(img))
            # Reservoir sample of items to validate the finished index with.
            n = len(rows)
            if len(sample) < VALIDATION_SAMPLE:
                sample.append((rec.id, img))
            elif (j := rng.randrange(n)) < VALIDATION_SAMPLE:
                sample[j] = (rec.id, img)
        bar.update(len(batch))
        batch.clear()

    for rec in records:
        if limit is not None and len(rows) + len(batch) >= limit:
            break
        if rec.id in seen:
            skipped["duplicate id"] = skipped.get("duplicate id", 0) + 1
            continue
        try:
            img = load_image(rec.image)
        except ImageError as exc:
            reason = "unreadable image"
            skipped[reason] = skipped.get(reason, 0) + 1
            log.warning("skipped %s: %s", rec.id, exc)
            continue
        seen.add(rec.id)
        batch.append((rec, img))
        if len(batch) >= batch_size:
            flush()
    flush()
    bar.close()
    if not rows:
        raise StyliShiError("No readable images were found, so there is nothing to index. "
                            f"Skipped: {skipped or 'nothing (the source was empty)'}.")

    items = pd.DataFrame(rows)
    for col in items.columns:
        if items[col].dtype == object:
            items[col] = items[col].map(lambda v: None if v is None else str(v))
    if out.exists():
        for name in (*catalog_mod.DATA_FILES, catalog_mod.MANIFEST):
            (out / name).unlink(missing_ok=True)
    model_ref = _model_ref(embedder, out)
    catalog_mod.write(out, vectors=np.concatenate(vectors), items=items, thumbnails=thumbs, factory=factory,
                      model={"id": model_ref, "revision": embedder.revision, "mode": embedder.mode},
                      source=source or {})
    seconds = time.perf_counter() - t0
    passed, failures = validate(out, embedder, sample)
    manifest = catalog_mod.read_manifest(out)
    size = sum(e["bytes"] for e in manifest["files"].values()) + (out / catalog_mod.MANIFEST).stat().st_size
    return BuildReport(out=out, items=len(rows), skipped=skipped, dim=int(manifest["embedding"]["dim"]),
                       index_type=f"{manifest['index']['type']} ({manifest['index']['factory']})",
                       bytes_on_disk=size, seconds=seconds, validated=len(sample), validation_passed=passed,
                       failures=failures)


def validate(out: Path, embedder: Embedder, sample: list[tuple[str, Any]]) -> tuple[int, list[str]]:
    """Load the artifact the way the app will and check each sampled picture finds its own item first."""
    from .service import SearchService

    service = SearchService(embedder, catalog_mod.load(out, expected_dim=embedder.dim))
    passed, failures = 0, []
    for item_id, img in sample:
        results = service.search_image(img, k=2).results
        # An exact duplicate picture elsewhere in the catalog ties at the same score; that counts as found.
        ok = bool(results) and (results[0].id == item_id or
                                any(r.id == item_id and abs(r.score - results[0].score) < 1e-5 for r in results))
        passed += ok
        if not ok:
            failures.append(item_id)
    return passed, failures


def _model_ref(embedder: Embedder, out: Path) -> str:
    """The model as the manifest records it: a Hub id, or a path relative to the index when it lives inside it."""
    path = Path(embedder.model_id)
    if path.exists():
        try:
            return "./" + path.resolve().relative_to(out.resolve()).as_posix()
        except ValueError:
            return str(path.resolve())
    return embedder.model_id


def build_demo(out: str | Path, *, limit: int | None = None, progress: bool = True) -> BuildReport:
    """The offline demo: write garment pictures and a tiny CLIP under `out`, then build like any folder."""
    from .demo import demo_items, save_tiny_clip

    out = Path(out)
    images_dir = out / "catalog_images"
    if images_dir.exists():
        shutil.rmtree(images_dir)
    images_dir.mkdir(parents=True)
    rows = []
    for item in demo_items(limit=limit):
        name = f"{item.id}.png"
        item.image.save(images_dir / name)
        rows.append({"file_name": name, "id": item.id, **item.metadata})
    pd.DataFrame(rows).to_csv(images_dir / "metadata.csv", index=False)
    model_dir = save_tiny_clip(out / "model")
    embedder = Embedder.load(model_dir, device="cpu", mode="fp32")
    return build(folder_records(images_dir), embedder, out, progress=progress,
                 source={"kind": "offline-demo", "note": "generated garment pictures; random tiny CLIP",
                         "licence": "generated, public domain"})

"""Build a catalog index from a Hub dataset or a local image folder, and prove it works before calling it done.

Both sources are read with `datasets` (streaming from the Hub; `imagefolder` for a folder with an optional
metadata.csv). Images are decoded by our own intake, so an unreadable picture is skipped and counted, never fatal.
"""
from __future__ import annotations

import logging
import random
import shutil
import threading
import time
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sized

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
    origin: str = ""  # where it came from, for a skip message: a file in the folder, or "row N" of a dataset


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
    notes: list[str] = field(default_factory=list)  # what the source said about itself, e.g. metadata mismatches
    embed_mode: str = "fp32"  # the image path that made the catalog's vectors
    gate: list = field(default_factory=list)  # build_gate.GateVerdict of each faster path judged (fast builds)
    fp32_engine: str = "torch"  # what computed fp32 vectors: torch, or OpenVINO at f32 (Embedder.use_exact_engine)
    stages_s: dict[str, float] = field(default_factory=dict)  # seconds per stage, summed over threads

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
            f"  embedding    {self.embed_mode}" + ("" if self.gate else " (the reference)")
            + ("" if self.fp32_engine == "torch" else f"; fp32 computed by {self.fp32_engine}"),
            *(f"  build gate   {verdict}" for verdict in self.gate),
            *(f"  note         {note}" for note in self.notes),
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


METADATA_FILES = ("metadata.csv", "metadata.jsonl", "metadata.parquet")


class FolderSource:
    """The pictures of a folder (any depth, listed by `datasets`' imagefolder) joined with its optional metadata file.

    Every picture is indexed: a picture the metadata does not list gets its id from its file name. Both kinds of
    mismatch (pictures without a row, rows without a picture) are kept for the build summary (`notes`).
    """

    def __init__(self, folder: str | Path):
        from datasets import Image as ImageFeature
        from datasets import load_dataset

        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise StyliShiError(f"The image folder {self.folder} does not exist.")
        with quiet_frameworks():
            ds = load_dataset("imagefolder", data_dir=str(self.folder), split="train", drop_metadata=True,
                              drop_labels=True)  # a subfolder's name is not a category: nothing is invented
        ds = ds.cast_column("image", ImageFeature(decode=False))
        root = self.folder.resolve()
        pictures = {}  # relative posix path -> absolute path, in path order
        for row in ds:
            path = Path(row["image"]["path"])
            try:
                pictures[path.resolve().relative_to(root).as_posix()] = str(path)
            except ValueError:
                pictures[path.name] = str(path)
        meta = next((self.folder / name for name in METADATA_FILES if (self.folder / name).is_file()), None)
        self.metadata_file = meta.name if meta else ""
        rows = _metadata_rows(meta) if meta else []
        listed = [r for r in rows if r["file_name"] in pictures]
        self.missing = [r["file_name"] for r in rows if r["file_name"] not in pictures]  # rows without a picture
        names = {r["file_name"] for r in rows}
        self.unlisted = [name for name in pictures if name not in names] if rows else []  # pictures without a row
        self._records = [Record(id=r.get("id") or _file_id(r["file_name"]), image=pictures[r["file_name"]],
                                metadata={k: v for k, v in r.items() if k not in ("id", "file_name")},
                                origin=r["file_name"])
                         for r in listed]
        self._records += [Record(id=_file_id(name), image=pictures[name], metadata={}, origin=name)
                          for name in pictures if name not in names]

    def __iter__(self) -> Iterator[Record]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)

    @property
    def notes(self) -> list[str]:
        """Summary lines on how the pictures and the metadata file matched (none when they match exactly)."""
        out = []
        if self.unlisted:
            out.append(f"{_count(self.unlisted, 'picture')} not in {self.metadata_file}: indexed with ids from "
                       f"their file names, unless skipped above ({_some(self.unlisted)})")
        if self.missing:
            out.append(f"{_count(self.missing, 'row')} of {self.metadata_file} with no picture in the folder: not "
                       f"indexed ({_some(self.missing)})")
        return out


def folder_records(folder: str | Path) -> FolderSource:
    """Records from a folder of images (any depth), with an optional metadata.csv whose `file_name` column names them
    (paths relative to the folder). Pictures it does not list are indexed too, with ids from their file names."""
    return FolderSource(folder)


def _metadata_rows(path: Path) -> list[dict[str, Any]]:
    """A folder's metadata file as rows of non-empty text values in our column names (`file_name` normalised)."""
    try:
        if path.suffix == ".csv":
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
        elif path.suffix == ".jsonl":
            table = pd.read_json(path, lines=True, dtype=False)
        else:
            table = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - pandas raises many kinds; the person needs the file and the cause
        raise StyliShiError(f"Could not read {path}: {exc}. Fix the file, or move it away to index the pictures "
                            "without metadata.") from None
    if "file_name" not in table.columns:
        raise StyliShiError(f"{path} has no file_name column (its columns are {', '.join(map(str, table.columns))}). "
                            "Add one naming each picture relative to the folder, e.g. shoes/black.png.")
    rows = []
    for raw in table.to_dict(orient="records"):
        row = {}
        for key, value in raw.items():
            value = _plain_text(value)
            if value is not None:
                row[COLUMN_MAP.get(str(key), str(key))] = value
        if "file_name" in row:
            row["file_name"] = Path(row["file_name"].replace("\\", "/")).as_posix().lstrip("/")
            rows.append(row)
    return rows


def _plain_text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def _file_id(relative: str) -> str:
    """An item id from a picture's path in the folder: the path without its extension, e.g. shoes/black."""
    return Path(relative).with_suffix("").as_posix()


def _count(things: list, noun: str) -> str:
    return f"{len(things)} {noun}{'' if len(things) == 1 else 's'}"


def _some(names: list[str], shown: int = 5) -> str:
    return ", ".join(names[:shown]) + (f", … {len(names) - shown} more" if len(names) > shown else "")


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
        yield Record(id=item_id, image=picture, metadata=metadata, origin=f"row {n}")


@contextmanager
def quiet_frameworks() -> Iterator[None]:
    """Within a build: no progress bars or warnings from `datasets` and `transformers` (our one tqdm bar and the
    summary say what happens); their settings are restored afterwards, so a server's own output is untouched."""
    import datasets
    import transformers

    bars = datasets.is_progress_bar_enabled()
    ds_level = datasets.logging.get_verbosity()
    tf_level = transformers.logging.get_verbosity()
    tf_bars = transformers.utils.logging.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            for module in ("datasets", "transformers", "torch", "huggingface_hub"):
                warnings.filterwarnings("ignore", module=module)
            yield
    finally:
        if bars:
            datasets.enable_progress_bars()
        datasets.logging.set_verbosity(ds_level)
        transformers.logging.set_verbosity(tf_level)
        if tf_bars:
            transformers.utils.logging.enable_progress_bar()


class _OtherThreadsOnly(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread != self.thread


@contextmanager
def unlogged_queries() -> Iterator[None]:
    """Searches this thread runs inside are not written to the per-query log (a build's own searches are not
    visitors' queries); queries other threads serve meanwhile still are."""
    query_log = logging.getLogger("stylishi.query")
    drop = _OtherThreadsOnly()
    query_log.addFilter(drop)
    try:
        yield
    finally:
        query_log.removeFilter(drop)


# -- the build -------------------------------------------------------------------------------------------------
def build(records: Iterable[Record], embedder: Embedder, out: str | Path, *, limit: int | None = None,
          batch_size: int = 32, factory: str = "auto", source: dict[str, Any] | None = None,
          progress: bool = True, seed: int = 0, calibrate: bool = True,
          milvus: dict[str, str] | None = None, ray: str | None = None, workers: int | None = None,
          fast: bool = False) -> BuildReport:
    """Embed every readable record, write the artifact to `out`, then validate it by searching a sample.

    workers: threads that decode, thumbnail and preprocess ahead of the embedding (default: one per core, at most
    4; 0 = all in one thread, the old serial build).
    fast: embed through the fastest image path that passes the build gate (stylishi.build_gate: a pre-check on the
    first pictures, then neighbourhoods across the whole catalog; `build_index.py`'s default), else fp32 (a path that
    fails the catalog gate is undone and the records embedded again in fp32, so they must be readable twice: a list,
    a FolderSource, not a one-shot iterator, which is embedded in fp32). Needs an fp32 embedder.

    milvus: {"uri", "collection"} also writes the vectors into that Milvus collection, which the app then searches.
    ray: decode and embed on a Ray cluster ("local" starts one here; else its address), see stylishi.ray_build.

    A source with `notes` (FolderSource) has them added to the report's summary.
    calibrate: fit the "% match" calibration (stylishi.calibration) and store it in the manifest.
    """
    with quiet_frameworks():
        return _build(records, embedder, Path(out), limit=limit, batch_size=batch_size, factory=factory,
                      source=source, progress=progress, seed=seed, calibrate=calibrate, milvus=milvus, ray=ray,
                      workers=default_workers() if workers is None else workers, fast=fast)


def default_workers() -> int:
    """Threads preparing pictures for the embedder: one per core, at most 4 (the embedder uses the cores too)."""
    import os

    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def _build(records: Iterable[Record], embedder: Embedder, out: Path, *, limit: int | None, batch_size: int,
           factory: str, source: dict[str, Any] | None, progress: bool, seed: int, calibrate: bool,
           milvus: dict[str, str] | None = None, ray: str | None = None, workers: int = 0,
           fast: bool = False) -> BuildReport:
    t0 = time.perf_counter()
    clock = _StageClock()
    if fast and isinstance(records, Iterator):
        log.info("build: the source can be read only once, so a fast path failing the catalog gate could not be "
                 "undone: embedding in fp32")
        fast = False
    if fast and not ray:  # fp32 passes (the gate's reference, a redo, calibration) through OpenVINO at f32 if exact
        with clock.stage("fast path set-up"):
            embedder.use_exact_engine()
    if ray:
        from .ray_build import embed_on_ray

        embedded = embed_on_ray(records, embedder, address=ray, limit=limit, batch_size=batch_size,
                                progress=progress, seed=seed)
    else:
        embedded = _embed_here(records, embedder, limit=limit, batch_size=batch_size, progress=progress, seed=seed,
                               workers=workers, fast=fast, clock=clock)
        if embedded.redo:  # the fast path failed the catalog gate: the catalog again, in fp32
            t_redo = time.perf_counter()
            again = _embed_here(records, embedder, limit=limit, batch_size=batch_size, progress=progress, seed=seed,
                                workers=workers, fast=False, clock=_StageClock())
            again.gate = embedded.gate
            embedded = again
            clock.seconds["fp32 pass after a failed gate (wall)"] = time.perf_counter() - t_redo
    clock.seconds["embedding pass (wall)"] = time.perf_counter() - t0
    return _finish_build(records, embedder, out, embedded, t0=t0, factory=factory, source=source, seed=seed,
                         calibrate=calibrate, milvus=milvus, clock=clock)


@dataclass
class Embedded:
    """What the embedding pass gives the rest of the build, wherever it ran: one entry per indexed item, in order."""

    vectors: np.ndarray
    rows: list[dict[str, Any]]  # id + metadata
    thumbs: list[bytes]
    skipped: dict[str, int]
    sample: list[tuple[str, Any]]  # (id, picture) to validate the finished index with
    embed_mode: str = "fp32"  # the image path that made the vectors
    gate: list = field(default_factory=list)  # build_gate.GateVerdict of each faster path judged
    redo: bool = False  # the fast path failed the catalog gate: these vectors must not be written


def reservoir_sample(n_items: int, seed: int, size: int = 0) -> list[int]:
    """The positions the build validates with: the same reservoir sample for the same item count and seed."""
    size = size or VALIDATION_SAMPLE
    rng, sample = random.Random(seed), []
    for n in range(1, n_items + 1):
        if len(sample) < size:
            sample.append(n - 1)
        elif (j := rng.randrange(n)) < size:
            sample[j] = n - 1
    return sample


@dataclass
class _Prepared:
    """One record made ready off the main thread: decoded, its thumbnail encoded, its pixels preprocessed."""

    image: Any
    thumb: bytes
    pixels: Any  # torch tensor [1, 3, h, w]


class _StageClock:
    """Seconds spent per build stage, summed over the threads that ran it (thread-safe)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            with self._lock:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t


def _prepare(record: Record, embedder: Embedder, clock: _StageClock) -> _Prepared | ImageError:
    with clock.stage("decode"):
        try:
            img = load_image(record.image)
        except ImageError as exc:
            return exc
    with clock.stage("thumbnails"):
        thumb = thumbnail_jpeg(img)
    with clock.stage("preprocess"):
        pixels = embedder.preprocess([img])
    return _Prepared(img, thumb, pixels)


class _Inline:
    """The executor of a build without workers: each record prepared when it is asked for (the old, serial build)."""

    def submit(self, fn, *args):
        from concurrent.futures import Future

        future: Future = Future()
        future.set_result(fn(*args))
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


def _embed_here(records: Iterable[Record], embedder: Embedder, *, limit: int | None, batch_size: int,
                progress: bool, seed: int, workers: int = 0, fast: bool = False,
                clock: _StageClock | None = None) -> Embedded:
    """Decode, thumbnail and preprocess on `workers` threads (0: in this thread), `2 * batch_size` records ahead,
    while this thread embeds batches in record order. fast: the first PRECHECK pictures are embedded in fp32 and on
    each faster path; the first path that passes that pre-check embeds the catalog, then the catalog gate judges it
    across the whole catalog (stylishi.build_gate); `redo` says it failed (the embedder is back in fp32)."""
    import torch

    from . import build_gate

    clock = clock or _StageClock()
    vectors: list[np.ndarray] = []
    rows: list[dict[str, Any]] = []
    thumbs: list[bytes] = []
    skipped: dict[str, int] = {}
    seen: set[str] = set()
    sample: list[tuple[str, Any]] = []
    rng = random.Random(seed)
    known = [n for n in (limit, len(records) if isinstance(records, Sized) else None) if n is not None]
    bar = tqdm(total=min(known, default=None), unit="img", desc="embedding", disable=not progress, dynamic_ncols=True)
    batch: list[tuple[Record, _Prepared]] = []
    held: list[tuple[Record, _Prepared]] = []  # the gate's sample, until it is judged
    gate = {"pending": fast, "verdicts": [], "mode": embedder.mode, "back": None}

    def embed(prepared: list[_Prepared]) -> np.ndarray:
        with clock.stage("embed"):
            return embedder.embed_pixels(torch.cat([p.pixels for p in prepared]))

    def keep(chunk: list[tuple[Record, _Prepared]], chunk_vectors: np.ndarray) -> None:
        vectors.append(chunk_vectors)
        for rec, prep in chunk:
            rows.append({"id": rec.id, **rec.metadata})
            thumbs.append(prep.thumb)
            # Reservoir sample of items to validate the finished index with.
            n = len(rows)
            if len(sample) < VALIDATION_SAMPLE:
                sample.append((rec.id, prep.image))
            elif (j := rng.randrange(n)) < VALIDATION_SAMPLE:
                sample[j] = (rec.id, prep.image)
            prep.image = prep.pixels = None
        bar.update(len(chunk))

    def judge_held() -> None:
        """fp32 vectors of the held sample, then each faster path's; the first faithful one stays on."""
        gate["pending"] = False
        chunks = [held[i:i + batch_size] for i in range(0, len(held), batch_size)]
        with clock.stage("gate (fp32 reference)"):
            reference = [embedder.embed_pixels(torch.cat([p.pixels for _, p in c])) for c in chunks]
        chosen = reference
        if len(held) >= build_gate.MIN_SAMPLE:
            for mode in _fast_paths(embedder):
                with clock.stage("fast path set-up"):
                    try:
                        back = embedder.use_image_path(mode)
                    except StyliShiError as exc:
                        log.info("build: %s path unavailable (%s)", mode, exc)
                        continue
                candidate = [embed([p for _, p in c]) for c in chunks]
                verdict = build_gate.precheck(mode, np.concatenate(reference), np.concatenate(candidate))
                gate["verdicts"].append(verdict)
                log.info("build gate: %s", verdict)
                if verdict.faithful:
                    chosen, gate["back"] = candidate, back
                    break
                back()
        gate["mode"] = embedder.mode
        for c, v in zip(chunks, chosen):
            keep(c, v)
        held.clear()

    def flush() -> None:
        if not batch:
            return
        if gate["pending"]:
            held.extend(batch)
            batch.clear()
            if len(held) >= build_gate.PRECHECK:
                judge_held()
            return
        keep(list(batch), embed([p for _, p in batch]))
        batch.clear()

    pool = ThreadPoolExecutor(workers, thread_name_prefix="stylishi-build") if workers > 0 else _Inline()
    pending: deque = deque()
    source = iter(records)
    exhausted = False
    try:
        while True:
            while not exhausted and len(pending) < (2 * batch_size if workers > 0 else 1):
                accepted = len(rows) + len(held) + len(batch)
                if limit is not None and accepted + len(pending) >= limit:
                    break
                try:
                    rec = next(source)
                except StopIteration:
                    exhausted = True
                    break
                pending.append((rec, pool.submit(_prepare, rec, embedder, clock)))
            if not pending:
                break
            rec, future = pending.popleft()
            result = future.result()
            if limit is not None and len(rows) + len(held) + len(batch) >= limit:
                break
            if rec.id in seen:
                skipped["duplicate id"] = skipped.get("duplicate id", 0) + 1
                log.warning("skipped %s: its id %r is already taken by an earlier item", rec.origin or rec.id, rec.id)
                bar.update(1)
                continue
            if isinstance(result, ImageError):
                skipped["unreadable image"] = skipped.get("unreadable image", 0) + 1
                log.warning("skipped %s: %s", rec.origin or rec.id, result.reason)
                bar.update(1)  # the bar counts what was read, so it ends full
                continue
            seen.add(rec.id)
            batch.append((rec, result))
            if len(batch) >= batch_size:
                flush()
        flush()
        if gate["pending"] or held:
            judge_held()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    if not rows:
        raise StyliShiError("No readable images were found, so there is nothing to index. "
                            f"Skipped: {skipped or 'nothing (the source was empty)'}.")
    embedded = Embedded(vectors=np.concatenate(vectors), rows=rows, thumbs=thumbs, skipped=skipped, sample=sample,
                        embed_mode=gate["mode"], gate=gate["verdicts"])
    if gate["back"] is not None:
        with clock.stage("gate (catalog)"):
            _catalog_gate(embedded, embedder, gate["back"], batch_size=batch_size, seed=seed)
    return embedded


def _catalog_gate(embedded: Embedded, embedder: Embedder, back: Callable[[], None], *, batch_size: int,
                  seed: int) -> None:
    """Judge the fast path that embedded the catalog on neighbourhoods across it (stylishi.build_gate), from the
    catalog's own thumbnails through both paths. Faithful: the fast path stays on (calibration and validation use
    the catalog's path). Not: the embedder goes back to fp32 and `embedded.redo` is set."""
    from . import build_gate

    mode = embedded.embed_mode
    anchors, rows = build_gate.neighbourhoods(embedded.vectors, seed=seed)
    pictures = [load_image(embedded.thumbs[r]) for r in rows.tolist()]

    def vectors() -> np.ndarray:
        return np.concatenate([embedder.embed_images(pictures[i:i + batch_size])
                               for i in range(0, len(pictures), batch_size)])

    candidate = vectors()
    back()
    reference = vectors()
    verdict = build_gate.judge(mode, reference, candidate, len(anchors), len(embedded.vectors))
    embedded.gate.append(verdict)
    log.info("build gate: %s", verdict)
    if verdict.faithful:
        embedder.use_image_path(mode)
    else:
        embedded.embed_mode, embedded.redo = "fp32", True


def _fast_paths(embedder: Embedder) -> tuple[str, ...]:
    """The faster image paths a build tries, fastest first (on a GPU fp32 is fast enough: none)."""
    return ("openvino", "bf16") if embedder.device == "cpu" else ()


def _finish_build(records, embedder: Embedder, out: Path, embedded: Embedded, *, t0: float, factory: str,
                  source: dict[str, Any] | None, seed: int, calibrate: bool,
                  milvus: dict[str, str] | None, clock: _StageClock | None = None) -> BuildReport:
    """Write the artifact (and the Milvus collection), calibrate, validate, report."""
    rows, thumbs, skipped, sample = embedded.rows, embedded.thumbs, embedded.skipped, embedded.sample
    items = pd.DataFrame(rows)
    for col in items.columns:
        if items[col].dtype == object:
            items[col] = items[col].map(lambda v: None if v is None else str(v))
    if out.exists():
        for name in (*catalog_mod.DATA_FILES, catalog_mod.MANIFEST):
            (out / name).unlink(missing_ok=True)
    clock = clock or _StageClock()
    model_ref = _model_ref(embedder, out)
    gate = [v.as_dict() for v in embedded.gate]
    with clock.stage("index (vectors, items, thumbnails written; FAISS built and tuned)"):
        catalog_mod.write(out, vectors=embedded.vectors, items=items, thumbnails=thumbs, factory=factory,
                          model={"id": model_ref, "revision": embedder.revision, "mode": embedder.mode,
                                 "family": embedder.family.name},
                          source=source or {}, milvus=milvus,
                          extra={"build": {"embed_mode": embedder.mode, "gate": gate, "fp32_engine": embedder.engine}}
                          if gate else None)
    if calibrate:
        from .calibration import calibrate_index

        with unlogged_queries(), clock.stage("calibration"):  # its searches are a build step, not visitors' queries
            calibrate_index(out, embedder, seed=seed)
    with clock.stage("validation"):
        passed, failures = validate(out, embedder, sample)
    seconds = time.perf_counter() - t0  # end to end: read, decode, embed, thumbnails, index, calibration, validation
    manifest = catalog_mod.read_manifest(out)
    size = sum(e["bytes"] for e in manifest["files"].values()) + (out / catalog_mod.MANIFEST).stat().st_size
    index_type = f"{manifest['index']['type']} ({manifest['index']['factory']})"
    if isinstance(manifest.get("store"), dict) and manifest["store"].get("kind") == "milvus":
        store = manifest["store"]
        index_type += f"; served from Milvus {store['index_type']}: {store['uri']} collection {store['collection']}"
    return BuildReport(out=out, items=len(rows), skipped=skipped, dim=int(manifest["embedding"]["dim"]),
                       index_type=index_type,
                       bytes_on_disk=size, seconds=seconds, validated=len(sample), validation_passed=passed,
                       failures=failures, notes=list(getattr(records, "notes", [])), embed_mode=embedder.mode,
                       fp32_engine=embedder.engine,
                       gate=list(embedded.gate), stages_s={k: round(v, 3) for k, v in clock.seconds.items()})


def build_from_dataset(dataset: str, embedder: Embedder, out: str | Path, *, split: str = "train",
                       revision: str | None = None, licence: str | None = None, limit: int | None = None,
                       batch_size: int = 32, factory: str = "auto", progress: bool = True,
                       on_record: Callable[[int], None] | None = None,
                       source: dict[str, Any] | None = None, milvus: dict[str, str] | None = None,
                       ray: str | None = None, fast: bool = False) -> BuildReport:
    """An index of a Hub dataset's first `limit` items, read at `revision` (a commit sha keeps it reproducible).

    What `build_index.py --dataset` and the app's starter index both do. The manifest's source records the dataset,
    split, revision, licence and limit (plus `source`'s own keys); `on_record(n)` hears each record read.
    """
    records = _Replayable(lambda: dataset_records(dataset, split=split, revision=revision), on_record)
    facts = {"kind": "hub-dataset", "id": dataset, "split": split, "revision": revision, "licence": licence,
             "limit": limit, **(source or {})}
    return build(records, embedder, out, limit=limit, batch_size=batch_size, factory=factory, source=facts,
                 progress=progress, milvus=milvus, ray=ray, fast=fast)


class _Replayable:
    """A dataset's records, read again from the start each time they are iterated (a second pass re-reads the
    stream): what lets a build undo a fast path that failed its catalog gate."""

    def __init__(self, read: Callable[[], Iterator[Record]], on_record: Callable[[int], None] | None = None):
        self._read, self._on_record = read, on_record

    def __iter__(self) -> Iterator[Record]:
        records = self._read()
        return _tapped(records, self._on_record) if self._on_record is not None else records


def _tapped(records: Iterable[Record], on_record: Callable[[int], None]) -> Iterator[Record]:
    for n, record in enumerate(records, start=1):
        on_record(n)
        yield record


def validate(out: Path, embedder: Embedder, sample: list[tuple[str, Any]]) -> tuple[int, list[str]]:
    """Load the artifact the way the app will (checksums, counts, dim) and check that each sampled picture finds its
    own item first. It searches the loaded index directly: the service's per-query log and stats are for served
    queries, not for a build's self-check."""
    from .service import check_compatible

    catalog = catalog_mod.load(out)
    check_compatible(catalog.manifest, embedder, root=out)
    if not sample:
        return 0, []
    ids = catalog.items["id"].astype(str).to_numpy()
    scores, rows = catalog.store.search(embedder.embed_images([img for _, img in sample]), 2)
    passed, failures = 0, []
    for (item_id, _), top_scores, top_rows in zip(sample, scores, rows):
        found = [(ids[r], s) for r, s in zip(top_rows, top_scores) if r >= 0]
        # An exact duplicate picture elsewhere in the catalog ties at the same score; that counts as found.
        ok = bool(found) and any(i == item_id and abs(s - found[0][1]) < 1e-5 for i, s in found)
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


def build_demo(out: str | Path, *, limit: int | None = None, progress: bool = True,
               milvus: dict[str, str] | None = None) -> BuildReport:
    """The offline demo: write the generated garment pictures and a copy of the shipped, trained tiny CLIP
    (data/demo_model, checksum-verified; never trained here) under `out`, then build like any folder."""
    from .demo import DEMO_VERSION, copy_demo_model, demo_items

    out = Path(out)
    images_dir = out / "catalog_images"
    if images_dir.exists():
        shutil.rmtree(images_dir)
    images_dir.mkdir(parents=True)
    rows = []
    for item in demo_items(limit=limit):
        name = f"{item.id}.png"
        item.image.save(images_dir / name, compress_level=1)  # fast: this folder is only the builder's input
        rows.append({"file_name": name, "id": item.id, **item.metadata})
    pd.DataFrame(rows).to_csv(images_dir / "metadata.csv", index=False)
    with quiet_frameworks():
        model_dir = copy_demo_model(out / "model")
        embedder = Embedder.load(model_dir, device="cpu", mode="fp32")
    return build(folder_records(images_dir), embedder, out, progress=progress,
                 source={"kind": "offline-demo", "demo_version": DEMO_VERSION,
                         "note": "generated garment pictures; tiny CLIP trained on other generated garments "
                                 "(data/demo_model, scripts/train_demo_model.py)",
                         "licence": "generated, public domain"}, milvus=milvus)

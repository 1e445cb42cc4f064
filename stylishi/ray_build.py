"""Decode and embed a catalog on a Ray cluster (Ray Data `map_batches` over an actor pool, one model per actor).

The driver reads the records (ids, metadata, the picture's bytes), drops duplicate ids and applies the limit as the
single-process build does (one difference: --limit counts pictures read, before the workers find some unreadable); the cluster decodes, checks, thumbnails and embeds; the driver puts the results
back in record order. So the artifact is the same: same ids in the same order, the same vectors up to float noise.
Optional (requirements-scale.txt); see docs/scale.md for a real cluster (GPUs, reading straight from storage).
"""
from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .errors import ImageError, StyliShiError

log = logging.getLogger(__name__)

INSTALL_HINT = "Install the scale extra: .venv/bin/pip install -r requirements-scale.txt"
LOCAL = "local"


def available() -> bool:
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        return False
    return True


class EmbedActor:
    """One per Ray worker: loads the model once, then decodes, thumbnails and embeds batches of pictures."""

    def __init__(self, model_dir: str, model_id: str, revision: str | None, mode: str, device: str):
        from .embedder import Embedder

        self.embedder = Embedder.load(model_dir, model_id=model_id, revision=revision, device=device, mode=mode)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        from .images import load_image, thumbnail_jpeg

        pictures, ok, errors, thumbs = [], [], [], []
        for data in batch["image"]:
            try:
                img = load_image(bytes(data))
            except ImageError as exc:
                errors.append(exc.reason)
                thumbs.append(b"")
                ok.append(False)
                continue
            pictures.append(img)
            thumbs.append(thumbnail_jpeg(img))
            errors.append("")
            ok.append(True)
        dim = self.embedder.dim
        vectors = np.zeros((len(ok), dim), dtype=np.float32)
        if pictures:
            vectors[np.flatnonzero(ok)] = self.embedder.embed_images(pictures)
        return {"pos": batch["pos"], "vec": vectors, "thumb": np.array(thumbs, dtype=object),
                "error": np.array(errors, dtype=object)}


def _image_bytes(image: Any) -> bytes:
    """A record's picture as bytes to ship to a worker (paths are read here; PIL pictures re-encoded as PNG)."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image)
    if isinstance(image, (str, Path)):
        return Path(image).read_bytes()
    if isinstance(image, dict) and image.get("bytes"):
        return bytes(image["bytes"])
    if isinstance(image, dict) and image.get("path"):
        return Path(image["path"]).read_bytes()
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def runtime_env() -> dict[str, Any]:
    """What Ray workers need to import this very stylishi (a local cluster; a remote one installs the package)."""
    root = str(Path(__file__).resolve().parents[1])
    return {"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p),
                         "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "0")}}


def _init_ray(address: str, workers: int | None):
    import ray

    if ray.is_initialized():  # a cluster the caller connected to already: theirs to shut down
        return False
    env = runtime_env()
    if address == LOCAL:
        ray.init(num_cpus=workers or os.cpu_count(), include_dashboard=False, log_to_driver=False,
                 runtime_env=env, configure_logging=False)
    else:
        ray.init(address=address, runtime_env=env, log_to_driver=False, configure_logging=False)
    return True


def embed_on_ray(records: Iterable, embedder, *, address: str = LOCAL, limit: int | None = None,
                 batch_size: int = 32, progress: bool = True, seed: int = 0, workers: int | None = None):
    """The embedding pass of `builder.build`, on Ray: returns the same `builder.Embedded` as the local pass."""
    if not available():
        raise StyliShiError(f"--ray needs Ray Data. {INSTALL_HINT}")
    kept, skipped, seen = [], {}, set()
    for rec in records:
        if limit is not None and len(kept) >= limit:
            break
        if rec.id in seen:
            skipped["duplicate id"] = skipped.get("duplicate id", 0) + 1
            log.warning("skipped %s: its id %r is already taken by an earlier item", rec.origin or rec.id, rec.id)
            continue
        try:
            data = _image_bytes(rec.image)
        except OSError as exc:
            skipped["unreadable image"] = skipped.get("unreadable image", 0) + 1
            log.warning("skipped %s: %s", rec.origin or rec.id, exc)
            continue
        seen.add(rec.id)
        kept.append((rec, data))
    if not kept:
        raise StyliShiError("No readable images were found, so there is nothing to index. "
                            f"Skipped: {skipped or 'nothing (the source was empty)'}.")
    import ray
    import ray.data

    started = _init_ray(address, workers)
    try:
        out = _run(ray, kept, embedder, batch_size=batch_size, progress=progress, workers=workers)
    finally:
        if started:
            ray.shutdown()
    return _collect(out, kept, skipped, seed)


def _run(ray, kept: list, embedder, *, batch_size: int, progress: bool, workers: int | None) -> list[dict]:
    """One Ray Data pipeline: the pictures' bytes → an actor pool (a model each; a GPU each where there are any)."""
    n_actors = max(1, int(workers or ray.cluster_resources().get("CPU", 1)))
    gpus = ray.cluster_resources().get("GPU", 0)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = progress
    ds = ray.data.from_items([{"pos": i, "image": data} for i, (_, data) in enumerate(kept)])
    ds = ds.map_batches(EmbedActor, batch_size=batch_size, batch_format="numpy",
                        fn_constructor_kwargs={"model_dir": _model_dir(embedder), "model_id": embedder.model_id,
                                               "revision": embedder.revision, "mode": embedder.mode,
                                               "device": "cuda" if gpus else "cpu"},
                        compute=ray.data.ActorPoolStrategy(size=n_actors),
                        num_gpus=1 if gpus else 0, num_cpus=0 if gpus else 1)
    return ds.take_all()


def _collect(out: list[dict], kept: list, skipped: dict[str, int], seed: int):
    """The workers' answers back in record order, as the local pass's `builder.Embedded`."""
    from . import builder

    out = sorted(out, key=lambda r: int(r["pos"]))
    vectors, rows, thumbs, pictures = [], [], [], []
    for r in out:
        rec, data = kept[int(r["pos"])]
        if r["error"]:
            skipped["unreadable image"] = skipped.get("unreadable image", 0) + 1
            log.warning("skipped %s: %s", rec.origin or rec.id, r["error"])
            continue
        vectors.append(np.asarray(r["vec"], dtype=np.float32))
        rows.append({"id": rec.id, **rec.metadata})
        thumbs.append(bytes(r["thumb"]))
        pictures.append(data)
    if not rows:
        raise StyliShiError(f"No readable images were found, so there is nothing to index. Skipped: {skipped}.")
    from .images import load_image

    sample = [(rows[i]["id"], load_image(pictures[i])) for i in builder.reservoir_sample(len(rows), seed)]
    return builder.Embedded(vectors=np.stack(vectors), rows=rows, thumbs=thumbs, skipped=skipped, sample=sample)


def _model_dir(embedder) -> str:
    """Where the workers load the model from: the folder (or Hub id) the driver's model was loaded from; on a real
    cluster that folder must be on shared storage, or the build names a Hub id."""
    return str(getattr(embedder.model, "name_or_path", "") or embedder.model_id)

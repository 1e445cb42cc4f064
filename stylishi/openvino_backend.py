"""The image and text towers (CLIP's or SigLIP's) compiled by OpenVINO: the fastest CPU path we measured, and the
smallest in memory once both towers run here (the torch model can then be released; see BENCHMARKS.md).

On CPUs with AMX/AVX-512 bf16, OpenVINO runs a tower in bf16 by itself (~4x faster than torch fp32 on 2 cores);
elsewhere in f32 (still faster than torch eager). The converted model (OpenVINO IR: XML + raw weights, no pickle) and
the compiled blob are cached, so only the first start pays for the conversion.

Memory: the CPU plugin repacks the fp16 weights it reads from the mapped IR (or blob) into its own buffers on the
first inference and does not read the mapped copy again, yet those clean file pages stay resident. `_drop_mapped_pages`
hands them back (madvise MADV_DONTNEED: a page read again is simply re-read from the file, so results are unchanged;
measured bit-identical): ~165 MB for a ViT-B/32 image tower.

An *exact* image tower (`exact=True`: fp32 weights, f32 arithmetic) gives torch fp32's vectors (cosine >= 0.9999999
measured) about twice as fast on 2 cores: builds use it wherever they embed in fp32 (Embedder.use_exact_engine).
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

log = logging.getLogger(__name__)


def available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def _features(out) -> torch.Tensor:
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class _ImageTower(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        return _features(self.model.get_image_features(pixel_values=pixel_values))


class _TextTower(torch.nn.Module):
    """get_text_features over the family's inputs, in its order (CLIP: ids and mask; SigLIP: ids only)."""

    def __init__(self, model, inputs: Sequence[str]):
        super().__init__()
        self.model = model
        self.inputs = tuple(inputs)

    def forward(self, *tensors):
        return _features(self.model.get_text_features(**dict(zip(self.inputs, tensors))))


class _CompiledTower:
    """One tower's IR converted once (cached), compiled for the CPU, warmed up, its mapped weight pages dropped.

    source: (model folder or Hub id, revision) of the weights behind `module`. With it, the conversion runs in a
    child process that loads those weights itself: converting leaves ~0.5 GB of heap behind in the process that did
    it (BENCHMARKS.md), and a first start (every start of a Space without persistent storage) would keep it."""

    def __init__(self, module: torch.nn.Module, example: tuple[torch.Tensor, ...], *, cache: Path, key: str,
                 name: str, threads: int = 0, source: tuple[str, str | None] | None = None,
                 inputs: Sequence[str] = (), exact: bool = False):
        import openvino as ov

        core = ov.Core()
        root = cache / "openvino"
        folder = root / hashlib.sha256(key.encode()).hexdigest()[:16]
        name = f"{name}_f32" if exact else name
        xml = folder / f"{name}.xml"
        if not xml.exists():
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f"{name}.{os.getpid()}.xml"
            if source is None or not convert_in_child(source, name, example, inputs, tmp, threads, fp16=not exact):
                with torch.inference_mode():
                    ov_model = ov.convert_model(module.eval(), example_input=example)
                # fp16 weights: bf16 compute anyway, half the memory; an exact tower keeps fp32's
                ov.save_model(ov_model, str(tmp), compress_to_fp16=not exact)
                del ov_model
            tmp.with_suffix(".bin").replace(xml.with_suffix(".bin"))
            tmp.replace(xml)
        # Always compile from the saved fp16 IR: the in-memory conversion holds fp32 weights twice over.
        ov_model = core.read_model(str(xml))
        config = {"PERFORMANCE_HINT": "LATENCY", "CACHE_DIR": str(root / "compiled")}
        if exact:
            config["INFERENCE_PRECISION_HINT"] = "f32"
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self._compiled = core.compile_model(ov_model, "CPU", config)
        del ov_model
        hint = self._compiled.get_property("INFERENCE_PRECISION_HINT")
        self.precision = hint.to_string() if hasattr(hint, "to_string") else str(hint)  # "bf16" or "f32"
        self._request = self._compiled.create_infer_request()
        self._lock = threading.Lock()  # one request, one caller at a time: the cores are shared anyway
        self(*(t.numpy() for t in example))  # the plugin repacks its weights on the first inference...
        _drop_mapped_pages(root)  # ...after which the mapped fp16 copy is dead weight

    def __call__(self, *arrays: np.ndarray) -> np.ndarray:
        with self._lock:
            result = self._request.infer({i: np.ascontiguousarray(a) for i, a in enumerate(arrays)})
            return np.array(result[0], dtype=np.float32, copy=True)


class OpenVINOImageTower(_CompiledTower):
    """Callable: float32 pixel batch [n, 3, h, w] → unnormalised image features [n, dim]. Queries that arrive while
    a pass runs are run together in the next one (stylishi.batching): up to MAX_BATCH pictures."""

    MAX_BATCH = 8

    def __init__(self, model, *, cache: Path, key: str, threads: int = 0,
                 source: tuple[str, str | None] | None = None, exact: bool = False):
        from .batching import MicroBatcher

        size = int(model.config.vision_config.image_size)
        self.batcher = MicroBatcher(super().__call__, max_rows=self.MAX_BATCH)
        super().__init__(_ImageTower(model), (torch.zeros(1, 3, size, size),), cache=cache, key=key,
                         name="image_tower", threads=threads, source=source, exact=exact)

    def __call__(self, pixel_values: np.ndarray) -> np.ndarray:  # type: ignore[override]
        return self.batcher(np.asarray(pixel_values, dtype=np.float32))


class OpenVINOTextTower(_CompiledTower):
    """Callable: the tokenizer's int64 arrays (the family's `text_inputs`, in order) → unnormalised text features."""

    def __init__(self, model, example: dict[str, torch.Tensor], inputs: Sequence[str], *, cache: Path, key: str,
                 threads: int = 0, source: tuple[str, str | None] | None = None):
        self.inputs = tuple(inputs)
        super().__init__(_TextTower(model, self.inputs), tuple(example[name] for name in self.inputs), cache=cache,
                         key=key, name="text_tower", threads=threads, source=source, inputs=self.inputs)

    def embed(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        return self(*(np.asarray(batch[name], dtype=np.int64) for name in self.inputs))


def _drop_mapped_pages(root: Path) -> int:
    """madvise(MADV_DONTNEED) every mapping of a file under `root` (the IR weights and compiled blobs): their clean
    pages leave this process's RSS and are re-read from the file if ever touched again. Linux only; bytes dropped."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        return 0
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return 0
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    prefix = str(root.resolve()) + os.sep
    dropped = 0
    for line in maps.read_text().splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and parts[5].startswith(prefix) and "w" not in parts[1]:
            lo, hi = (int(v, 16) for v in parts[0].split("-"))
            if libc.madvise(lo, hi - lo, 4) == 0:  # MADV_DONTNEED
                dropped += hi - lo
    return dropped


def convert_in_child(source: tuple[str, str | None], name: str, example: tuple[torch.Tensor, ...],
                     inputs: Sequence[str], xml: Path, threads: int = 0, fp16: bool = True) -> bool:
    """Convert a tower to an fp16 IR at `xml` in a child process (`python -m stylishi.openvino_backend`, the job as
    JSON on stdin: plain data, no pickle). False, with the reason logged, if that did not work: the caller then
    converts in process, as before."""
    job = {"model": source[0], "revision": source[1], "tower": name, "inputs": list(inputs), "xml": str(xml),
           "threads": int(threads), "fp16": bool(fp16),
           "example": [{"dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape), "data": t.flatten().tolist()}
                       for t in example]}
    try:
        done = subprocess.run([sys.executable, "-m", "stylishi.openvino_backend"], input=json.dumps(job), text=True,
                              capture_output=True, timeout=CHILD_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("converting the %s in a child process failed (%s); converting here", name, exc)
        return False
    if done.returncode != 0 or not xml.exists():
        log.warning("converting the %s in a child process failed (exit %s: %s); converting here", name,
                    done.returncode, (done.stderr.strip().splitlines() or ["no message"])[-1])
        return False
    return True


CHILD_TIMEOUT_S = 1800  # a ViT-B/16 converts in ~1 min on 2 cores; this only stops a child that hangs


def _convert_job(job: dict) -> None:
    """The child's side of convert_in_child: load the weights, wrap the tower, convert, save."""
    import openvino as ov
    from transformers import AutoModel

    from .embedder import quiet_framework

    if job["threads"]:
        torch.set_num_threads(job["threads"])
    with quiet_framework():
        model = AutoModel.from_pretrained(job["model"], revision=job["revision"], use_safetensors=True).eval()
        module = _ImageTower(model) if job["tower"].startswith("image_tower") else _TextTower(model, job["inputs"])
        example = tuple(torch.tensor(e["data"], dtype=getattr(torch, e["dtype"])).reshape(e["shape"])
                        for e in job["example"])
        with torch.inference_mode():
            ov_model = ov.convert_model(module, example_input=example)
    ov.save_model(ov_model, job["xml"], compress_to_fp16=job.get("fp16", True))


def version() -> str:
    """Part of the cache key: a new OpenVINO (or IR layout) converts again."""
    import openvino

    return f"openvino-{openvino.__version__}-fp16-ir"


if __name__ == "__main__":  # the child of convert_in_child
    _convert_job(json.loads(sys.stdin.read()))

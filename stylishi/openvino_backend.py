"""The image tower (CLIP's or SigLIP's) compiled by OpenVINO: the fastest CPU path we measured (see BENCHMARKS.md).

On CPUs with AMX/AVX-512 bf16, OpenVINO runs the tower in bf16 by itself (~4x faster than torch fp32 on 2 cores);
elsewhere in f32 (still faster than torch eager). The converted model (OpenVINO IR: XML + raw weights, no pickle) and
the compiled blob are cached, so only the first start pays for the conversion.
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)


def available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


class _ImageTower(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        out = self.model.get_image_features(pixel_values=pixel_values)
        return out if isinstance(out, torch.Tensor) else out.pooler_output


class OpenVINOImageTower:
    """Callable: float32 pixel batch [n, 3, h, w] → unnormalised image features [n, dim]."""

    def __init__(self, model, *, cache: Path, key: str, threads: int = 0):
        import openvino as ov

        core = ov.Core()
        folder = cache / "openvino" / hashlib.sha256(key.encode()).hexdigest()[:16]
        xml = folder / "image_tower.xml"
        if not xml.exists():
            size = int(model.config.vision_config.image_size)
            with torch.inference_mode():
                ov_model = ov.convert_model(_ImageTower(model).eval(), example_input=torch.zeros(1, 3, size, size))
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f"image_tower.{os.getpid()}.xml"
            ov.save_model(ov_model, str(tmp), compress_to_fp16=True)  # bf16 compute anyway; half the memory
            tmp.with_suffix(".bin").replace(xml.with_suffix(".bin"))
            tmp.replace(xml)
            del ov_model
        # Always compile from the saved fp16 IR: the in-memory conversion holds fp32 weights twice over.
        ov_model = core.read_model(str(xml))
        config = {"PERFORMANCE_HINT": "LATENCY", "CACHE_DIR": str(cache / "openvino" / "compiled")}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self._compiled = core.compile_model(ov_model, "CPU", config)
        hint = self._compiled.get_property("INFERENCE_PRECISION_HINT")
        self.precision = hint.to_string() if hasattr(hint, "to_string") else str(hint)  # "bf16" or "f32"
        self._request = self._compiled.create_infer_request()
        self._lock = threading.Lock()  # one request, one caller at a time: the cores are shared anyway

    def __call__(self, pixel_values: np.ndarray) -> np.ndarray:
        with self._lock:
            result = self._request.infer({0: np.ascontiguousarray(pixel_values, dtype=np.float32)})
            return np.array(result[0], dtype=np.float32, copy=True)


def version() -> str:
    """Part of the cache key: a new OpenVINO (or IR layout) converts again."""
    import openvino

    return f"openvino-{openvino.__version__}-fp16-ir"

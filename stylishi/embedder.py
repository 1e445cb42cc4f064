"""The CLIP embedder: pictures and text in, L2-normalised float32 vectors out.

Loaded once through `transformers`' own `from_pretrained` (a Hub id through the Hub cache, or a local folder),
so the tiny test models and the production checkpoint take the very same path.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from .errors import ModelError
from .gpu import gpu_method

log = logging.getLogger(__name__)

MODES = ("auto", "fp32", "bf16", "int8", "openvino")
# int8 must stay this close to fp32 on reference pictures, or we fall back to fp32 (real weights have outliers
# that random ones lack, so fidelity is checked on the loaded checkpoint itself, every time).
MIN_INT8_COSINE = 0.99


def pick_device(device: str = "auto") -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class Embedder:
    """One CLIP model and its processor, ready to embed batches."""

    def __init__(self, model, processor, model_id: str, revision: str | None, device: str, mode: str = "fp32"):
        self.model = model
        self.processor = processor
        self.model_id = model_id
        self.revision = revision
        self.device = device
        self.mode = mode
        self.dim = int(model.config.projection_dim)
        self._fast_image_tower = None  # an OpenVINO-compiled image tower, when that mode is on
        self._model_path: Path | None = None
        tok = getattr(processor, "tokenizer", None)
        self._max_text_tokens = int(min(getattr(tok, "model_max_length", 77) or 77,
                                        model.config.text_config.max_position_embeddings))

    @classmethod
    def load(cls, model_path: str | Path, *, model_id: str | None = None, revision: str | None = None,
             device: str = "auto", mode: str = "auto", check_fidelity: bool = True,
             neighbour_gap: float | None = None) -> "Embedder":
        """Load a checkpoint folder (or Hub id) with `CLIPModel`/`CLIPProcessor.from_pretrained`.

        mode: "auto" (int8 on CPU when it stays faithful to fp32, else fp32), "fp32", "bf16" or "int8".
        check_fidelity=False keeps int8 even where it is not faithful (benchmarks measure it themselves).
        neighbour_gap: the catalog's typical 1 - cosine between an item and its nearest neighbour; int8 is kept only
        if its error is well below it (see Catalog.neighbour_gap).
        """
        from transformers import CLIPModel, CLIPProcessor

        if mode not in MODES:
            raise ModelError(f"Unknown embedding mode {mode!r}; choose one of {', '.join(MODES)}.")
        device = pick_device(device)
        try:
            model = CLIPModel.from_pretrained(str(model_path), revision=revision, use_safetensors=True)  # never pickle
            processor = CLIPProcessor.from_pretrained(str(model_path), revision=revision)
        except OSError as exc:
            raise ModelError(
                f"Could not load the CLIP model {model_path!s}: {exc}. Give a Hub id such as "
                "'patrickjohncyh/fashion-clip' (needs internet the first time) or a local folder made with "
                "save_pretrained (e.g. the demo's: python build_index.py --demo --out DIR)."
            ) from exc
        model.eval().to(device)
        embedder = cls(model, processor, model_id or str(model_path), revision, device, "fp32")
        embedder._model_path = Path(str(model_path))
        if mode == "bf16":
            embedder.mode = "bf16"
        elif mode != "fp32" and device == "cpu":
            # auto: the fastest faithful CPU path; an explicit mode still has to pass the same check.
            candidates = {"auto": ("openvino", "int8"), "openvino": ("openvino",), "int8": ("int8",)}[mode]
            for candidate in candidates:
                if embedder._try_fast(candidate, check_fidelity, neighbour_gap):
                    break
        elif mode in ("int8", "openvino"):
            raise ModelError(f"{mode} mode runs on the CPU only; use fp32 or bf16 on a GPU.")
        return embedder

    # -- images -------------------------------------------------------------------------------------------
    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Resize, crop and normalise: the CLIP processor's exact recipe."""
        batch = self.processor(images=list(images), return_tensors="pt")
        return batch["pixel_values"]

    @gpu_method  # spaces.GPU on a ZeroGPU Space; the plain method elsewhere
    @torch.inference_mode()
    def embed_pixels(self, pixel_values: torch.Tensor) -> np.ndarray:
        if self._fast_image_tower is not None:
            return _normalise(torch.from_numpy(self._fast_image_tower(pixel_values.numpy())))
        pixel_values = pixel_values.to(self.device)
        with self._autocast():
            out = self.model.get_image_features(pixel_values=pixel_values)
        return _normalise(_features(out))

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """`[n, dim]` float32 unit vectors for RGB pictures (see `images.load_image`)."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.embed_pixels(self.preprocess(images))

    # -- text ---------------------------------------------------------------------------------------------
    @gpu_method
    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """`[n, dim]` float32 unit vectors in the same space as the pictures."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        batch = self.processor(text=list(texts), return_tensors="pt", padding=True, truncation=True,
                               max_length=self._max_text_tokens)
        batch = {k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}
        with self._autocast():
            out = self.model.get_text_features(**batch)
        return _normalise(_features(out))

    def _try_fast(self, candidate: str, check_fidelity: bool = True, neighbour_gap: float | None = None) -> bool:
        """Switch to a faster CPU path ("openvino" or "int8") if it stays faithful to fp32; True if switched.

        Faithful: cosine to fp32 >= 0.99 on probe pictures, and an error well below the gap between neighbouring
        catalog items (or, without a catalog, between the closest probes), so rankings survive. Real weights have
        outliers that random ones lack, so this runs on the loaded checkpoint itself, every time.
        """
        from .demo import garment_picture

        if candidate == "openvino":
            from . import openvino_backend

            if not openvino_backend.available():
                log.info("openvino is not installed: skipping the OpenVINO image tower")
                return False
        # Near neighbours (one garment in close colours or other patterns) as well as far ones.
        probes = [garment_picture(kind, colour, pattern, seed=1) for kind, colour, pattern in
                  [("Dresses", "Red", "Striped"), ("Dresses", "Red", "Polka Dot"), ("Dresses", "Orange", "Striped"),
                   ("Tshirts", "Navy Blue", "Checked"), ("Tshirts", "Blue", "Checked"),
                   ("Casual Shoes", "Beige", "Solid"), ("Caps", "Green", "Solid")]]
        reference = self._probe_reference(probes)
        undo = self._switch(candidate)
        cosine = float(np.min(np.sum(reference * self.embed_images(probes), axis=1)))
        gram = reference @ reference.T
        gap = neighbour_gap if neighbour_gap is not None else 1 - float(np.max(gram[~np.eye(len(probes), dtype=bool)]))
        faithful = cosine >= MIN_INT8_COSINE and (1 - cosine) < 0.25 * gap
        if not faithful and check_fidelity:
            log.info("%s embeddings of %s are not faithful enough (cosine %.5f to fp32; neighbours %.5f apart)",
                     candidate, self.model_id, cosine, gap)
            undo()
            return False
        if candidate == "int8":
            from torch.ao.quantization import quantize_dynamic

            self.model.text_model = quantize_dynamic(self.model.text_model, {torch.nn.Linear}, dtype=torch.qint8)
        else:
            # The compiled tower holds its own weights: the torch copy of the image tower is dead weight now.
            self.model.vision_model = None
            self.model.visual_projection = None
        _release_memory()
        self.mode = candidate
        self.fidelity_cosine = cosine
        log.info("embedding mode %s (cosine to fp32 on probe pictures: %.5f)", candidate, cosine)
        return True

    def weights_key(self) -> str:
        """What identifies the weights: id and revision, plus the weight file's path, size and time if local."""
        parts = [self.model_id, str(self.revision)]
        weights = (self._model_path or Path(self.model_id)) / "model.safetensors"
        if weights.exists():
            stat = weights.stat()
            parts += [str(weights.resolve()), str(stat.st_size), str(stat.st_mtime_ns)]
        return "|".join(parts)

    def _probe_reference(self, probes: Sequence[Image.Image]) -> np.ndarray:
        """fp32 vectors of the probe pictures, cached per checkpoint: later starts never run the torch image tower,
        so its weights are never paged in (~400 MB of RSS saved when a faster tower takes over)."""
        import hashlib

        from .config import cache_dir

        digest = hashlib.sha256(f"{self.weights_key()}|probes-v1|{len(probes)}".encode()).hexdigest()[:16]
        path = cache_dir() / "probes" / f"{digest}.npy"
        if path.exists():
            try:
                cached = np.load(path, allow_pickle=False)
                if cached.shape == (len(probes), self.dim):
                    return cached
            except (OSError, ValueError):
                pass
        reference = self.embed_images(probes)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.npy")
        np.save(tmp, reference, allow_pickle=False)
        tmp.replace(path)
        return reference

    def _switch(self, candidate: str):
        """Install a faster image tower; returns how to undo it."""
        if candidate == "int8":
            from torch.ao.quantization import quantize_dynamic

            fp32_vision = self.model.vision_model
            self.model.vision_model = quantize_dynamic(fp32_vision, {torch.nn.Linear}, dtype=torch.qint8)

            def undo() -> None:
                self.model.vision_model = fp32_vision
            return undo
        from . import openvino_backend
        from .config import cache_dir

        key = f"{self.weights_key()}|{openvino_backend.version()}"
        self._fast_image_tower = openvino_backend.OpenVINOImageTower(self.model, cache=cache_dir(), key=key,
                                                                     threads=torch.get_num_threads())
        log.info("OpenVINO image tower compiled (inference precision %s)", self._fast_image_tower.precision)

        def undo() -> None:
            self._fast_image_tower = None
        return undo

    def _autocast(self):
        if self.mode == "bf16":
            return torch.autocast(device_type=self.device.split(":")[0], dtype=torch.bfloat16)
        return torch.autocast(device_type=self.device.split(":")[0], enabled=False)


def _release_memory() -> None:
    """Hand freed heap back to the OS (conversion and quantisation leave large transient buffers behind)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc
        pass


def _features(out) -> torch.Tensor:
    # transformers 5 returns an output object whose pooler_output is the projected embedding; 4.x a tensor.
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def _normalise(x: torch.Tensor) -> np.ndarray:
    x = x.float()
    x = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return x.cpu().numpy().astype(np.float32, copy=False)

"""The embedder: pictures and text in, L2-normalised float32 vectors out, from any transformers dual encoder with
`get_image_features`/`get_text_features` (CLIP, SigLIP; what differs between them is in stylishi.families).

Loaded once through `transformers`' own `AutoModel`/`AutoProcessor.from_pretrained` (a Hub id through the Hub cache,
or a local folder), so the tiny test models and the production checkpoint take the very same path.
"""
from __future__ import annotations

import contextlib
import logging
import re
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from . import families, fidelity
from .errors import ModelError
from .gpu import gpu_method

log = logging.getLogger(__name__)

MODES = ("auto", "fp32", "bf16", "int8", "openvino")


# What transformers and torch say while a model loads or is traced for OpenVINO, written for someone training a
# model, not for a person starting the app: (logger, message) pairs dropped exactly; every other line still shows.
_FRAMEWORK_NOTICES = {
    "transformers.modeling_utils": re.compile(r"`loss_type=None` was set in the config but it is unrecognized"),
    "transformers.utils.import_utils": re.compile(r"`\w+ImageProcessor` requires torchvision \(not installed\); "
                                                  r"falling back to `\w+ImageProcessorPil`"),
    # SigLIP's config builds a default text config (CLIP's token ids, a 32k vocabulary) before reading the real one.
    "transformers.configuration_utils": re.compile(r"Model config: [be]os_token_id must be `None` or an integer "
                                                   r"within the vocabulary \(between 0 and 31999\), got 4940[67]"),
}


class _DropNotice(logging.Filter):
    def __init__(self, pattern: re.Pattern):
        super().__init__()
        self.pattern = pattern

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.search(str(record.msg))


for _name, _pattern in _FRAMEWORK_NOTICES.items():
    logging.getLogger(_name).addFilter(_DropNotice(_pattern))


@contextlib.contextmanager
def quiet_framework():
    """Around loading and tracing: no weight-loading progress bars, no TracerWarnings (the traced image tower is
    checked against fp32 by the fidelity gate), no deprecation notices from transformers' own internals."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated",
                                    category=FutureWarning)
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.trace(_method)?` is deprecated",
                                    category=DeprecationWarning)  # OpenVINO's converter traces; shown with -W only
            yield
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def pick_device(device: str = "auto") -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class Embedder:
    """One dual-encoder model (CLIP, SigLIP, ...) and its processor, ready to embed batches."""

    def __init__(self, model, processor, model_id: str, revision: str | None, device: str, mode: str = "fp32"):
        self.model = model
        self.processor = processor
        self.model_id = model_id
        self.revision = revision
        self.device = device
        self.mode = mode
        self.family = families.of_config(model.config)  # the manifest records family.name
        self.dim = self.family.dim(model.config)
        self._fast_image_tower = None  # an OpenVINO-compiled image tower, when that mode is on
        self._fast_text_tower = None  # an OpenVINO-compiled text tower, when it passed its own fidelity gate
        self._exact_image_tower = None  # OpenVINO at f32 for fp32 pictures (builds: use_exact_engine)
        self.text_mode = mode  # the text tower's path: fp32, bf16, int8 or openvino (logged, shown in /stats)
        self._model_path: Path | None = None
        self._max_text_tokens = self.family.max_text_tokens(model.config, getattr(processor, "tokenizer", None))
        self.fidelity_cosine: float | None = None  # the image tower's, when a faster path was judged
        self.text_fidelity_cosine: float | None = None  # the int8 or OpenVINO text tower's, when it was kept

    @classmethod
    def load(cls, model_path: str | Path, *, model_id: str | None = None, revision: str | None = None,
             device: str = "auto", mode: str = "auto", check_fidelity: bool = True,
             neighbour_gap: float | None = None) -> "Embedder":
        """Load a checkpoint folder (or Hub id) with `AutoModel`/`AutoProcessor.from_pretrained`.

        mode: "auto" (int8 on CPU when it stays faithful to fp32, else fp32), "fp32", "bf16" or "int8".
        check_fidelity=False keeps int8 even where it is not faithful (benchmarks measure it themselves).
        neighbour_gap: the catalog's typical 1 - cosine between an item and its nearest neighbour; int8 is kept only
        if its error is well below it (see Catalog.neighbour_gap).
        """
        from transformers import AutoModel, AutoProcessor

        if mode not in MODES:
            raise ModelError(f"Unknown embedding mode {mode!r}; choose one of {', '.join(MODES)}.")
        device = pick_device(device)
        try:
            with quiet_framework():
                model = AutoModel.from_pretrained(str(model_path), revision=revision, use_safetensors=True)  # no pickle
                processor = AutoProcessor.from_pretrained(str(model_path), revision=revision)
        except (OSError, ValueError, ImportError) as exc:
            raise ModelError(
                f"Could not load the model {model_path!s}: {exc}. Give a Hub id such as "
                "'patrickjohncyh/fashion-clip' or 'google/siglip-base-patch16-224' (needs internet the first time) or "
                "a local folder made with save_pretrained (e.g. the demo's: python build_index.py --demo --out DIR)."
            ) from exc
        missing = [name for name in ("get_image_features", "get_text_features") if not hasattr(model, name)]
        if missing or not hasattr(processor, "tokenizer") or not hasattr(processor, "image_processor"):
            raise ModelError(
                f"{model_path!s} is a {type(model).__name__}, not a dual encoder of pictures and text: StyliShi needs "
                "a model with get_image_features and get_text_features and a processor for both (CLIP, SigLIP), "
                "e.g. 'patrickjohncyh/fashion-clip' or 'google/siglip-base-patch16-224'.")
        model.eval().to(device)
        embedder = cls(model, processor, model_id or str(model_path), revision, device, "fp32")
        embedder._model_path = Path(str(model_path))
        if mode == "bf16":
            embedder.mode = embedder.text_mode = "bf16"
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
        """Resize, crop and normalise: the model's own processor's exact recipe."""
        batch = self.processor(images=list(images), return_tensors="pt")
        return batch["pixel_values"]

    @gpu_method  # spaces.GPU on a ZeroGPU Space; the plain method elsewhere
    @torch.inference_mode()
    def embed_pixels(self, pixel_values: torch.Tensor) -> np.ndarray:
        if self._fast_image_tower is not None:
            return _normalise(torch.from_numpy(self._fast_image_tower(pixel_values.numpy())))
        if self._exact_image_tower is not None and self.mode == "fp32":
            return _normalise(torch.from_numpy(self._exact_image_tower(pixel_values.numpy())))
        pixel_values = pixel_values.to(self.device)
        with self._autocast():
            out = self.model.get_image_features(pixel_values=pixel_values)
        return _normalise(_features(out))

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """`[n, dim]` float32 unit vectors for RGB pictures (see `images.load_image`)."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.embed_pixels(self.preprocess(images))

    def batching(self) -> dict | None:
        """How concurrent picture queries were batched (the OpenVINO tower's micro-batcher), or None."""
        batcher = getattr(self._fast_image_tower, "batcher", None)
        return batcher.snapshot() if batcher is not None else None

    # -- text ---------------------------------------------------------------------------------------------
    @gpu_method
    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """`[n, dim]` float32 unit vectors in the same space as the pictures."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        batch = self._tokenise(texts)
        if self._fast_text_tower is not None:
            return _normalise(torch.from_numpy(self._fast_text_tower.embed({k: v.numpy() for k, v in batch.items()})))
        batch = {k: v.to(self.device) for k, v in batch.items()}
        with self._autocast():
            out = self.model.get_text_features(**batch)
        return _normalise(_features(out))

    def _tokenise(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """The family's text inputs (CLIP: ids and mask, padded to the longest; SigLIP: ids, padded to the full length)."""
        batch = self.processor(text=list(texts), return_tensors="pt", padding=self.family.text_padding,
                               truncation=True, max_length=self._max_text_tokens)
        return {k: v for k, v in batch.items() if k in self.family.text_inputs}

    # -- faster CPU paths, kept only when faithful (see stylishi.fidelity) -------------------------------------
    def _try_fast(self, candidate: str, check_fidelity: bool = True, neighbour_gap: float | None = None) -> bool:
        """Switch to a faster CPU path ("openvino" or "int8") if it stays faithful to fp32; True if switched.

        Steps: the fp32 reference vectors of the probes; the faster image tower installed; judged against the
        reference (and undone if it is not faithful); the text tower too (int8 or OpenVINO), judged on its own; then
        the weights the new path no longer needs are released (with both towers in OpenVINO, the torch model's).
        """
        if candidate == "openvino" and not _openvino_available():
            return False
        reference = fidelity.reference_vectors(self, "image")
        undo = self._install_image_tower(candidate)
        verdict = fidelity.judge("image", reference, fidelity.embed_probes(self, "image"), neighbour_gap)
        if not verdict.faithful and check_fidelity:
            log.info("%s embeddings of %s are not faithful enough (%s)", candidate, self.model_id, verdict)
            undo()
            return False
        if candidate == "int8":
            if self._quantise_text_tower(check_fidelity, neighbour_gap):
                self.text_mode = "int8"
        else:
            self._drop_torch_modules(self.family.image_only)
            if self._compile_text_tower(check_fidelity, neighbour_gap):
                self.text_mode = "openvino"
                self._drop_torch_modules(self.family.text_only)  # both towers compiled: torch holds no weights now
        release_memory()
        self.mode = candidate
        self.fidelity_cosine = verdict.cosine
        log.info("embedding mode %s (cosine to fp32 on probe pictures: %.5f); text tower %s%s", candidate,
                 verdict.cosine, self.text_mode, "" if self.text_fidelity_cosine is None else
                 f" (cosine to fp32 on probe texts: {self.text_fidelity_cosine:.5f})")
        return True

    def use_image_path(self, mode: str):
        """Embed pictures through a faster path ("openvino" or "bf16") while the fp32 torch towers stay loaded, for a
        build whose own gate (stylishi.build_gate) judges it; returns how to switch back to fp32. Raises ModelError
        when the path cannot run here (no OpenVINO, not a CPU for openvino)."""
        if self.mode != "fp32" or self._fast_image_tower is not None:
            raise ModelError(f"use_image_path needs an fp32 embedder; this one is in {self.mode} mode.")
        if mode == "openvino":
            if self.device != "cpu" or not _openvino_available():
                raise ModelError("The OpenVINO image path runs on the CPU with the openvino package installed.")
            undo_tower = self._install_image_tower("openvino", in_child=False)  # a build's memory is short-lived
        elif mode == "bf16":
            undo_tower = None
        else:
            raise ModelError(f"Unknown image path {mode!r} for a build: openvino or bf16.")
        self.mode = mode

        def back() -> None:
            if undo_tower is not None:
                undo_tower()
            self.mode = "fp32"
        return back

    def use_exact_engine(self) -> bool:
        """fp32 picture embedding through OpenVINO at f32 (fp32 weights and arithmetic: ~2x torch eager on 2 cores),
        kept only if every probe picture's vector matches torch's at cosine >= fidelity.EXACT_COSINE. For builds,
        whose fp32 passes (the reference of the build gate, a catalog the gate sent back to fp32, calibration) are
        their slowest part; `mode` stays "fp32". True if in use."""
        if self.mode != "fp32" or self.device != "cpu" or self._fast_image_tower is not None:
            return False
        if not _openvino_available():
            return False
        from . import openvino_backend
        from .config import cache_dir

        reference = fidelity.reference_vectors(self, "image")
        key = self._openvino_key()
        with quiet_framework():
            tower = openvino_backend.OpenVINOImageTower(self.model, cache=cache_dir(), key=key, exact=True,
                                                        threads=torch.get_num_threads(), source=None)  # in process
        self._exact_image_tower = tower
        cosine = float(np.min(np.sum(reference * fidelity.embed_probes(self, "image"), axis=1)))
        if cosine < fidelity.EXACT_COSINE:
            log.info("OpenVINO f32 pictures of %s differ from torch's (cosine %.7f < %s): fp32 stays in torch",
                     self.model_id, cosine, fidelity.EXACT_COSINE)
            self._exact_image_tower = None
            return False
        log.info("fp32 pictures through OpenVINO at f32 (cosine to torch on probe pictures: %.7f)", cosine)
        return True

    def _install_image_tower(self, candidate: str, in_child: bool = True):
        """Install a faster image tower; returns how to undo it. in_child: a first conversion runs in a child process
        (what a server keeps; openvino_backend); a build converts in process, saving the child's Python start-up."""
        if candidate == "int8":
            tower = self.family.image_tower
            fp32_vision = getattr(self.model, tower)
            setattr(self.model, tower, _quantised(fp32_vision))

            def undo() -> None:
                setattr(self.model, tower, fp32_vision)
            return undo
        from . import openvino_backend
        from .config import cache_dir

        key = self._openvino_key()
        with quiet_framework():
            self._fast_image_tower = openvino_backend.OpenVINOImageTower(self.model, cache=cache_dir(), key=key,
                                                                         threads=torch.get_num_threads(),
                                                                         source=self._weights_source() if in_child
                                                                         else None)
        log.info("OpenVINO image tower compiled (inference precision %s)", self._fast_image_tower.precision)

        def undo() -> None:
            self._fast_image_tower = None
        return undo

    def _quantise_text_tower(self, check_fidelity: bool, neighbour_gap: float | None) -> bool:
        """int8 for the text tower too, kept only if its probe texts stay faithful to fp32 (judged on their own)."""
        reference = fidelity.reference_vectors(self, "text")
        fp32_text = getattr(self.model, self.family.text_tower)
        setattr(self.model, self.family.text_tower, _quantised(fp32_text))
        verdict = fidelity.judge("text", reference, fidelity.embed_probes(self, "text"), neighbour_gap)
        if not verdict.faithful and check_fidelity:
            log.info("int8 text embeddings of %s are not faithful enough (%s): the text tower stays fp32",
                     self.model_id, verdict)
            setattr(self.model, self.family.text_tower, fp32_text)
            return False
        self.text_fidelity_cosine = verdict.cosine
        return True

    def _compile_text_tower(self, check_fidelity: bool, neighbour_gap: float | None) -> bool:
        """The text tower through OpenVINO, kept only if its probe texts match fp32's (fidelity.TEXT_MIN_COSINE, and
        an error well below the gap between the things a text query ranks: the catalog's items, or without a catalog
        the probe pictures); else torch keeps embedding texts. True if kept."""
        from . import openvino_backend
        from .config import cache_dir

        if neighbour_gap is None:  # not the probe texts' own gap: a random text tower maps every text close together
            neighbour_gap = fidelity.closest_gap(fidelity.reference_vectors(self, "image"))
        reference = fidelity.reference_vectors(self, "text")
        key = self._openvino_key()
        try:
            with quiet_framework():
                self._fast_text_tower = openvino_backend.OpenVINOTextTower(
                    self.model, self._tokenise(list(fidelity.PROBE_TEXTS[:2])), self.family.text_inputs,
                    cache=cache_dir(), key=key, threads=torch.get_num_threads(), source=self._weights_source())
        except Exception as exc:  # noqa: BLE001 - a tower OpenVINO cannot convert is not an error: torch embeds texts
            log.info("the OpenVINO text tower of %s could not be made (%s): texts stay in fp32", self.model_id, exc)
            self._fast_text_tower = None
            return False
        verdict = fidelity.judge("text", reference, fidelity.embed_probes(self, "text"), neighbour_gap,
                                 min_cosine=fidelity.TEXT_MIN_COSINE)
        if not verdict.faithful and check_fidelity:
            log.info("OpenVINO text embeddings of %s are not faithful enough (%s): the text tower stays fp32",
                     self.model_id, verdict)
            self._fast_text_tower = None
            return False
        self.text_fidelity_cosine = verdict.cosine
        return True

    def _drop_torch_modules(self, names: Sequence[str]) -> None:
        """A compiled tower holds its own weights: the torch copy of that tower is dead weight now."""
        for name in names:
            if hasattr(self.model, name):
                setattr(self.model, name, None)
        left = [*self.model.parameters(), *self.model.buffers()]
        if sum(t.numel() for t in left) <= 1_000_000:
            # What is left (the logit scale) is a view into the weight file's map, and it would keep all of it, with
            # every page the fp32 probes read (~0.5 GB for a ViT-B/32), resident: a copy of its own lets the map go.
            for t in left:
                t.data = t.data.clone()

    def _weights_source(self) -> tuple[str, str | None] | None:
        """Where a child process finds these weights (to convert a tower there), or None: convert in process."""
        return (str(self._model_path), self.revision) if self._model_path is not None else None

    @property
    def engine(self) -> str:
        """What computes fp32 picture vectors: "torch", or "openvino-f32" (use_exact_engine)."""
        return "torch" if self._exact_image_tower is None else "openvino-f32"

    def _openvino_key(self) -> str:
        """The cache key of this model's OpenVINO towers: its weights and the OpenVINO version."""
        from . import openvino_backend

        return f"{self.weights_key()}|{openvino_backend.version()}"

    def weights_key(self) -> str:
        """What identifies the weights: id and revision, plus the weight file's path, size and time if local."""
        parts = [self.model_id, str(self.revision)]
        weights = (self._model_path or Path(self.model_id)) / "model.safetensors"
        if weights.exists():
            stat = weights.stat()
            parts += [str(weights.resolve()), str(stat.st_size), str(stat.st_mtime_ns)]
        return "|".join(parts)

    def _autocast(self):
        if self.mode == "bf16":
            return torch.autocast(device_type=self.device.split(":")[0], dtype=torch.bfloat16)
        return torch.autocast(device_type=self.device.split(":")[0], enabled=False)


def _quantised(module: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 for the Linear layers (activations quantised per batch, weights once)."""
    from torch.ao.quantization import quantize_dynamic

    return quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8)


def _openvino_available() -> bool:
    from . import openvino_backend

    if openvino_backend.available():
        return True
    log.info("openvino is not installed: skipping the OpenVINO image tower")
    return False


def release_memory() -> None:
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

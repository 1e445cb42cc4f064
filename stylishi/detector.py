"""The garment detector: a picture in, the garments in it out (label, confidence, box as fractions of the picture).

Any `transformers` object detector loads through `AutoModelForObjectDetection`/`AutoImageProcessor.from_pretrained`
(a Hub id at a pinned revision through the Hub cache, or a local folder), safetensors only, so the offline demo's
tiny trained detector and the default Hub detector take the very same path. The default,
`yainage90/fashion-object-detection` (Conditional DETR, 7 classes), names a timm ResNet-50 backbone: transformers
builds it with `use_pretrained_backbone=False` and fills it from the checkpoint, so loading never fetches separate
backbone weights; it needs the `timm` package (and torchvision), which a missing install is reported as.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from .embedder import pick_device, quiet_framework
from .errors import ModelError

DEFAULT_DETECTOR = "yainage90/fashion-object-detection"
THRESHOLD = 0.5  # the confidence a garment needs, unless the detector's config names its own (`detection_threshold`)
MIN_SIDE = 16  # pixels: a picture narrower or lower than this shows no garment (stylishi.region's smallest region)
MAX_ASPECT = 8  # a picture longer than this many times its width (or wider than its height) is a strip, not a scene
OVERLAP = 0.5  # a box overlapping a more confident one by more than this IoU is the same garment found twice


@dataclass(frozen=True)
class Detection:
    label: str
    score: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 as fractions of the picture's width and height


class Detector:
    def __init__(self, model, processor, model_id: str, revision: str | None, device: str):
        self.model, self.processor = model, processor
        self.model_id, self.revision, self.device = model_id, revision, device

    @classmethod
    def load(cls, model_path: str | Path, *, model_id: str | None = None, revision: str | None = None,
             device: str = "cpu") -> "Detector":
        from transformers import AutoConfig, AutoImageProcessor, AutoModelForObjectDetection

        device = pick_device(device)
        try:
            with quiet_framework():
                config = AutoConfig.from_pretrained(str(model_path), revision=revision)
                backbone = getattr(config, "backbone_config", None)
                if getattr(backbone, "model_type", None) == "timm_backbone" and not _has("timm"):
                    raise ModelError(
                        f"The detector {model_path!s} has a timm backbone ({getattr(backbone, 'backbone', '?')}): "
                        "install it with `pip install timm==1.0.31` (it needs torchvision), or set "
                        "STYLISHI_DETECTOR=off to run without shop-the-look.")
                model = AutoModelForObjectDetection.from_pretrained(str(model_path), revision=revision,
                                                                    use_safetensors=True)  # no pickle
                processor = AutoImageProcessor.from_pretrained(str(model_path), revision=revision)
        except ModelError:
            raise
        except Exception as exc:  # OSError, ValueError, ImportError, safetensors' own error for damaged weights
            raise ModelError(
                f"Could not load the garment detector {model_path!s}: {exc}. Give a Hub id such as "
                f"'{DEFAULT_DETECTOR}' (needs internet the first time), a local folder made with save_pretrained "
                "(the demo's is data/demo_detector), or STYLISHI_DETECTOR=off.") from exc
        model.eval().to(device)
        return cls(model, processor, model_id or str(model_path), revision, device)

    @property
    def labels(self) -> list[str]:
        return [self.model.config.id2label[i] for i in sorted(self.model.config.id2label)]

    @property
    def threshold(self) -> float:
        """The confidence a garment needs: the detector's own (`detection_threshold` in its config, measured when it
        was trained, e.g. the offline demo's), else THRESHOLD."""
        return float(getattr(self.model.config, "detection_threshold", None) or THRESHOLD)

    @torch.inference_mode()
    def detect(self, image: Image.Image, threshold: float | None = None, max_items: int = 8) -> list[Detection]:
        """The garments found with at least `threshold` confidence (default: the detector's own), best first; boxes
        that mostly repeat a better one are dropped (a set-prediction detector sometimes answers twice for one
        garment)."""
        threshold = self.threshold if threshold is None else threshold
        image = image.convert("RGB")
        w, h = image.size
        if min(w, h) < MIN_SIDE or max(w, h) > MAX_ASPECT * min(w, h):
            return []  # a strip: no garment to see, and the processor would shrink its short side to nothing
        inputs = self.processor(images=[image], return_tensors="pt").to(self.device)
        outputs = self.model(**inputs)
        found = self.processor.post_process_object_detection(outputs, threshold=threshold, target_sizes=[(h, w)])[0]
        kept: list[Detection] = []
        order = torch.argsort(found["scores"], descending=True)
        for i in order.tolist():
            x0, y0, x1, y1 = (float(v) for v in found["boxes"][i])
            box = (max(0.0, x0 / w), max(0.0, y0 / h), min(1.0, x1 / w), min(1.0, y1 / h))
            if box[2] - box[0] <= 0 or box[3] - box[1] <= 0:
                continue
            if any(iou(box, k.box) > OVERLAP for k in kept):
                continue
            kept.append(Detection(self.model.config.id2label[int(found["labels"][i])], float(found["scores"][i]),
                                  box))
            if len(kept) == max_items:
                break
        return kept


def iou(a, b) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _has(package: str) -> bool:
    return importlib.util.find_spec(package) is not None

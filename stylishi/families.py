"""Model families: what differs between the dual encoders we serve (CLIP, SigLIP), as data, in one place.

Every family loads through `AutoModel`/`AutoProcessor` and embeds with `get_image_features`/`get_text_features`;
vectors are L2-normalised and compared by cosine for both. What differs:
- SigLIP was trained on texts padded to the full 64 tokens, without an attention mask, and pools the LAST position
  (a pad token for short texts): its texts must be padded to `max_length` and given without the mask, or the vectors
  are wrong. CLIP pools the end-of-text token: it pads to the longest text and takes the mask.
- SigLIP has no projection layer: the space is as wide as its towers. CLIP projects to `projection_dim`.
- SigLIP scores a pair as sigmoid(scale · cosine + bias), its logit bias. For one query that is monotonic in the
  cosine, so ranking by cosine is the same ranking; the index stores cosines for both, and the "% match" calibration
  (stylishi.calibration) maps a cosine to a probability the same way for both.
The manifest records the family (`model.family`) so that an index is never served by a model of another family.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Family:
    name: str  # the transformers model_type, as the manifest's model.family records it: "clip", "siglip"
    label: str  # for people: "CLIP", "SigLIP"
    text_padding: bool | str  # the tokenizer's padding: True (to the longest text) or "max_length"
    text_inputs: tuple[str, ...]  # what get_text_features is given of the tokenizer's output
    image_only: tuple[str, ...]  # modules only the image tower uses (dropped once a compiled tower replaces them)
    text_only: tuple[str, ...]  # the same for the text tower
    text_tower: str = "text_model"  # the module int8 quantises for text
    image_tower: str = "vision_model"  # the module int8 quantises for pictures

    def dim(self, config: Any) -> int:
        """The size of the shared image-text space."""
        projection = getattr(config, "projection_dim", None)
        if projection:
            return int(projection)
        return int(getattr(config.text_config, "projection_size", None) or config.vision_config.hidden_size)

    def max_text_tokens(self, config: Any, tokenizer: Any) -> int:
        limit = getattr(tokenizer, "model_max_length", None) or 77
        if limit > 100_000:  # transformers' "no limit" sentinel
            limit = 77
        return int(min(limit, config.text_config.max_position_embeddings))


CLIP = Family("clip", "CLIP", text_padding=True, text_inputs=("input_ids", "attention_mask"),
              image_only=("vision_model", "visual_projection"), text_only=("text_model", "text_projection"))
SIGLIP = Family("siglip", "SigLIP", text_padding="max_length", text_inputs=("input_ids",),
                image_only=("vision_model",), text_only=("text_model",))
FAMILIES = {f.name: f for f in (CLIP, SIGLIP)}
DEFAULT = "clip"  # indexes written before the manifest recorded a family were all built with CLIP


def of_config(config: Any) -> Family:
    """The family of a loaded model's config; another dual encoder gets CLIP's conventions under its own name."""
    model_type = str(getattr(config, "model_type", "") or DEFAULT)
    known = FAMILIES.get(model_type)
    if known is not None:
        return known
    return Family(model_type, model_type, text_padding=True, text_inputs=("input_ids", "attention_mask"),
                  image_only=("vision_model", "visual_projection"), text_only=("text_model", "text_projection"))


def of_manifest(manifest: dict[str, Any]) -> str:
    """The family an index was built with (older manifests, without the key, were CLIP)."""
    return str((manifest.get("model") or {}).get("family") or DEFAULT)


def of_folder(ref: str) -> str | None:
    """The family of a model given as a local folder (its config.json), without loading it; None if unknown."""
    import json
    from pathlib import Path

    config = Path(str(ref)).expanduser() / "config.json"
    try:
        return str(json.loads(config.read_text()).get("model_type") or "") or None
    except (OSError, ValueError, AttributeError):
        return None


def label(name: str) -> str:
    known = FAMILIES.get(name)
    return known.label if known else name

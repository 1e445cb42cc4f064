"""The dataset card (README.md) pushed with an index: what it is, the model, the items, the source, how to use it.

Rendered from the manifest alone, so a card always describes the files it is uploaded with.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any


def dataset_card(manifest: dict[str, Any], repo_id: str) -> str:
    """A dataset card (README.md) for an index: what it is, the model, the items, the source and how to use it."""
    model = manifest.get("model") or {}
    source = manifest.get("source") or {}
    index = manifest.get("index") or {}
    emb = manifest.get("embedding") or {}
    count = int(manifest.get("count", 0))
    model_id = str(model.get("id", "unknown"))
    model_rev = model.get("revision")
    kind = source.get("kind", "unknown")
    licence = source.get("licence") or source.get("license")
    if kind == "hub-dataset":
        src_id = source.get("id", "?")
        src_line = (f"the Hub dataset [{src_id}](https://huggingface.co/datasets/{src_id}), split "
                    f"`{source.get('split', 'train')}`" + (f", revision `{source['revision']}`"
                                                           if source.get("revision") else ""))
    elif kind == "offline-demo":
        src_id, src_line = None, "generated garment pictures (the offline demo; no real products)"
    else:
        src_id, src_line = None, f"a local image folder (`{Path(str(source.get('path', '?'))).name}`)"
    yaml_licence = _spdx(licence)
    size = ("n<1K" if count < 1_000 else "1K<n<10K" if count < 10_000 else "10K<n<100K" if count < 100_000
            else "100K<n<1M")
    front = ["---", f"license: {yaml_licence}", f"pretty_name: StyliShi index of {count:,} products",
             "tags:", "- stylishi", "- faiss", "- clip", "- fashion", "- image-retrieval",
             "task_categories:", "- image-feature-extraction", "size_categories:", f"- {size}"]
    if src_id:
        front += ["source_datasets:", f"- {src_id}"]
    front += ["configs:", "- config_name: items", "  data_files: items.parquet", "  default: true", "---", ""]
    model_link = (f"[{model_id}](https://huggingface.co/{model_id})" if not model_id.startswith(("./", "/"))
                  else f"`{model_id}` (bundled in this repo)" if model_id.startswith("./") else f"`{model_id}`")
    lines = [
        f"# StyliShi catalog index: {count:,} products",
        "",
        "A ready-to-serve visual search index for StyliShi (real-time fashion visual search): "
        "upload or snap a photo of a garment and get the most similar products of this catalog.",
        "",
        "| | |", "|---|---|",
        f"| items | {count:,} |",
        f"| model | {model_link}" + (f" @ `{model_rev}`" if model_rev else "") + " |",
        f"| embedding | {emb.get('dim', '?')}-d, L2-normalised, inner product (= cosine) |",
        f"| FAISS index | `{index.get('type', '?')}` (factory `{index.get('factory', '?')}`) |",
        f"| source | {src_line} |",
        f"| source licence | {licence or 'not stated by the source; check it before reuse'} |",
        f"| built | {manifest.get('built_at', '?')} |",
        "",
        "## Files",
        "",
        "- `manifest.json`: format version, model id and revision, embedding size, index type, item count and the "
        "sha256 of every file. StyliShi refuses to serve an index whose files do not match it.",
        "- `index.faiss`: the FAISS index; row *i* is item *i*.",
        "- `items.parquet`: one row per item: id, name, category, colour, ... and its thumbnail's file name.",
        "- `thumbnails.parquet`: the gallery thumbnails (JPEG bytes), one row per item.",
    ]
    if model_id.startswith("./"):
        lines.append(f"- `{model_id[2:]}/`: the model that built the vectors (safetensors).")
    lines += [
        "",
        "No pickle anywhere: loading this index runs none of its author's code.",
        "",
        "## How it was built",
        "",
        f"Every readable picture of {src_line} was embedded with {model_link}, the vectors written to a FAISS index, "
        "and the finished index validated by searching a sample of its own pictures (each must find itself first):",
        "",
        "```bash",
        _build_command(manifest, repo_id),
        "```",
        "",
        "## How to use it",
        "",
        "```bash",
        f"python app.py --index {repo_id}            # or STYLISHI_INDEX={repo_id}",
        f"python app.py --index {repo_id}@<commit>   # pin a revision",
        "```",
        "",
        "```python",
        "import stylishi",
        f"service = stylishi.load(\"{repo_id}\")   # downloads (or reuses the cached) index and its model",
        "print(service.search_image(\"photo.jpg\", k=10).to_dict())",
        "```",
        "",
        "The app downloads this repo into the Hugging Face cache once; later starts, and starts with "
        "`HF_HUB_OFFLINE=1`, use the cached revision.",
        "",
    ]
    if licence:
        lines += ["## Licence", "",
                  f"The product pictures and metadata come from the source and keep its licence ({licence}); the "
                  "vectors derive from them and from the model, whose own licence applies too.", ""]
    return "\n".join(front + lines)


def _build_command(manifest: dict[str, Any], repo_id: str) -> str:
    source = manifest.get("source") or {}
    model_id = str((manifest.get("model") or {}).get("id", ""))
    if source.get("kind") == "offline-demo":
        return f"python build_index.py --demo --out index --push-to {repo_id}"
    parts = ["python build_index.py"]
    if source.get("kind") == "hub-dataset":
        parts.append(f"--dataset {source.get('id')}")
        if source.get("split", "train") != "train":
            parts.append(f"--split {source['split']}")
    else:
        parts.append("--images DIR")
    if model_id and not model_id.startswith(("./", "/")):
        parts.append(f"--model {model_id}")
    if source.get("limit"):
        parts.append(f"--limit {source['limit']}")
    parts += ["--out index", f"--push-to {repo_id}"]
    return " ".join(parts)


def _spdx(licence: str | None) -> str:
    """The card's `license:` value: the source's own id when it looks like one, else `other`."""
    if not licence:
        return "other"
    value = str(licence).strip().lower()
    known = {"mit", "apache-2.0", "cc0-1.0", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "cc-by-nc-sa-4.0",
             "bsd-3-clause", "odbl", "openrail", "other", "unknown"}
    return value if value in known else "other"

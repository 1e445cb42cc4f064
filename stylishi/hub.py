"""Hub artifact I/O: turn an index or model reference into a local folder, through the Hugging Face cache.

A reference is a local folder, or a Hub repo id with an optional revision: `owner/name@rev`.
"""
from __future__ import annotations

import logging
from pathlib import Path

from .errors import ArtifactError, ModelError

log = logging.getLogger(__name__)

MODEL_FILES = ["*.json", "*.txt", "*.safetensors", "*.model"]


def split_ref(ref: str) -> tuple[str, str | None]:
    """`owner/name@rev` → (`owner/name`, `rev`); no `@` → revision None (the default branch)."""
    if "@" in ref:
        repo, rev = ref.rsplit("@", 1)
        return repo, rev or None
    return ref, None


def resolve_index(ref: str) -> Path:
    """A local folder as is; a Hub dataset repo downloaded (or taken from cache) with snapshot_download."""
    path = Path(ref).expanduser()
    if path.exists() or ref.startswith((".", "/", "~")) or "/" not in ref:
        return path
    from huggingface_hub import snapshot_download

    repo, rev = split_ref(ref)
    try:
        return Path(snapshot_download(repo, repo_type="dataset", revision=rev))
    except Exception as exc:  # the hub raises many kinds; each means "not available"
        raise ArtifactError(f"Could not fetch the catalog index {ref} from the Hugging Face Hub ({type(exc).__name__}: "
                            f"{exc}). Check the repo id and your connection, or pass a local folder with --index.") from exc


def resolve_model(ref: str, index_root: Path | None = None) -> tuple[Path | str, str, str | None]:
    """(folder to load from, model id to record, revision) for a model reference."""
    if ref.startswith("./") and index_root is not None:
        return index_root / ref[2:], ref, None
    path = Path(ref).expanduser()
    if path.exists():
        return path, str(path), None
    if ref.startswith((".", "/", "~")) or ref.count("/") != 1:
        raise ModelError(f"Could not load the CLIP model {ref}: no such folder. Give a Hub id such as "
                         "'patrickjohncyh/fashion-clip' or a folder made with save_pretrained.")
    from huggingface_hub import snapshot_download

    repo, rev = split_ref(ref)
    try:
        folder = Path(snapshot_download(repo, revision=rev, allow_patterns=MODEL_FILES))
    except Exception as exc:
        raise ModelError(f"Could not fetch the model {ref} from the Hugging Face Hub ({type(exc).__name__}: {exc}). "
                         "Check the id and your connection, or pass a local folder made with save_pretrained.") from exc
    return folder, repo, folder.name  # the snapshot folder is named by its commit sha

"""Hub artifact I/O: turn an index or model reference into a local folder, through the Hugging Face cache.

A reference is a local folder, or a Hub repo id with an optional revision: `owner/name@rev`.

    resolve_index("owner/idx@v1")          # snapshot_download(repo_type="dataset") → the snapshot folder
    resolve_model("owner/clip")            # safetensors weights + configs only; never pickle
    probe("owner/idx", "dataset")          # one short request: is it there, at which commit, or is the Hub away?
    push_index("out/", "owner/idx")        # create_repo(exist_ok) + upload_folder, with a dataset card

Everything goes through the standard Hugging Face cache (HF_HOME / HF_HUB_CACHE), so `HF_HUB_OFFLINE=1` and
a warm cache work as the Hub's own tools do. `HF_ENDPOINT` is read by huggingface_hub once, at import.
"""
from __future__ import annotations

import fnmatch
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .card import dataset_card
from .errors import ArtifactError, ModelError, StyliShiError

log = logging.getLogger(__name__)

# What a model snapshot needs: configs, tokenizer files and safetensors weights. No *.bin/*.pt/*.h5/*.msgpack.
MODEL_FILES = ["*.json", "*.txt", "*.safetensors", "*.model"]
PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")
# What an index snapshot needs: the artifact, its card, and a model folder when the manifest says "./model".
INDEX_FILES = ["manifest.json", "index.faiss", "*.parquet", "README.md", "model/*"]
# Never uploaded with an index: the demo's generated source pictures, caches, editor litter.
PUSH_IGNORE = ["catalog_images/*", "catalog_images/**", ".cache/*", ".cache/**", "*.tmp", "*.partial*", "**/.DS_Store"]

def split_ref(ref: str) -> tuple[str, str | None]:
    """`owner/name@rev` → (`owner/name`, `rev`); no `@` → revision None (the default branch)."""
    if "@" in ref:
        repo, rev = ref.rsplit("@", 1)
        return repo, rev or None
    return ref, None


def is_local_ref(ref: str) -> bool:
    """A folder on disk (existing, or written like a path) rather than a Hub repo id `owner/name[@rev]`."""
    path = Path(ref).expanduser()
    repo = split_ref(ref)[0]
    return path.exists() or ref.startswith((".", "/", "~")) or repo.count("/") != 1


def offline_mode() -> bool:
    """HF_HUB_OFFLINE=1 (read by huggingface_hub at import): no request may be made."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def snapshot_revision(folder: str | Path) -> str | None:
    """The commit sha of a folder inside the Hugging Face cache (`.../snapshots/<sha>`), else None."""
    folder = Path(folder)
    return folder.name if folder.parent.name == "snapshots" and len(folder.name) == 40 else None


# -- reachability ---------------------------------------------------------------------------------------------
@dataclass
class Probe:
    """What one short request told about a repo: its commit, or that it is missing, or that the Hub is away."""

    repo_id: str
    repo_type: str
    revision: str | None
    sha: str | None = None  # the commit the revision points to, when the Hub answered with the repo
    missing: bool = False  # the Hub answered: no such repo / revision (or no access)
    unreachable: bool = False  # no answer in time: connection refused, DNS, time-out, 5xx, offline mode
    error: str = ""  # the reason, for people
    seconds: float = 0.0
    license: str | None = None  # from the repo card's metadata, when it has one

    @property
    def ok(self) -> bool:
        return self.sha is not None


def probe(repo_id: str, repo_type: str = "dataset", revision: str | None = None, *, timeout: float = 5.0) -> Probe:
    """One `repo_info` request with a short time-out (huggingface_hub does not retry it)."""
    import httpx2  # huggingface_hub's HTTP client
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    result = Probe(repo_id, repo_type, revision)
    t0 = time.perf_counter()
    if offline_mode():
        result.unreachable, result.error = True, "offline mode is on (HF_HUB_OFFLINE=1)"
        return result
    try:
        info = HfApi().repo_info(repo_id, repo_type=repo_type, revision=revision, timeout=timeout)
        result.sha = info.sha
        card = getattr(info, "card_data", None) or getattr(info, "cardData", None)
        lic = card.get("license") if card is not None and hasattr(card, "get") else None
        result.license = ", ".join(lic) if isinstance(lic, list) else lic
    except RevisionNotFoundError:
        result.missing, result.error = True, f"the {repo_type} repo {repo_id} has no revision {revision}"
    except GatedRepoError:
        result.missing, result.error = True, f"the {repo_type} repo {repo_id} is gated (accept its terms, log in)"
    except RepositoryNotFoundError:
        result.missing = True
        result.error = f"there is no {repo_type} repo {repo_id} on the Hub (or it is private and no token allows it)"
    except OfflineModeIsEnabled:
        result.unreachable, result.error = True, "offline mode is on (HF_HUB_OFFLINE=1)"
    except httpx2.TimeoutException:
        result.unreachable, result.error = True, f"the Hub did not answer within {timeout:g} s"
    except httpx2.TransportError as exc:
        result.unreachable, result.error = True, f"the Hub could not be reached ({type(exc).__name__}: {exc})"
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", 0) or 0
        if status >= 500:
            result.unreachable, result.error = True, f"the Hub answered {status} (down for now)"
        else:
            result.missing, result.error = True, f"the Hub refused {repo_id} ({status}: {_first_line(exc)})"
    result.seconds = time.perf_counter() - t0
    return result


def card_license(repo_id: str, repo_type: str = "dataset", revision: str | None = None) -> str | None:
    """The `license:` of a repo's card (README.md front matter), or None when it has none or cannot be read."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.repocard import metadata_load

    try:
        meta = metadata_load(hf_hub_download(repo_id, "README.md", repo_type=repo_type, revision=revision)) or {}
    except Exception:  # noqa: BLE001 - no card, no licence: the card we write then says so
        return None
    lic = meta.get("license")
    return ", ".join(map(str, lic)) if isinstance(lic, list) else (str(lic) if lic else None)


# -- indexes --------------------------------------------------------------------------------------------------
def resolve_index(ref: str, *, local_files_only: bool = False) -> Path:
    """A local folder as is; a Hub dataset repo downloaded (or, local_files_only, taken from the cache only)."""
    if is_local_ref(ref):
        return Path(ref).expanduser()
    from huggingface_hub import snapshot_download

    repo, rev = split_ref(ref)
    try:
        return Path(snapshot_download(repo, repo_type="dataset", revision=rev, allow_patterns=INDEX_FILES,
                                      local_files_only=local_files_only))
    except Exception as exc:  # the hub raises many kinds; each means "not available"
        where = "in the local Hugging Face cache" if local_files_only else "on the Hugging Face Hub"
        raise ArtifactError(f"Could not get the catalog index {ref} {where} ({type(exc).__name__}: "
                            f"{_first_line(exc)}). Check the repo id and your connection, or pass a local folder "
                            "with --index.") from exc


def evict_corrupt(folder: Path, manifest: dict[str, Any] | None) -> list[str]:
    """Remove from the Hugging Face cache the files of a snapshot that fail their manifest checksum.

    The cache keeps whatever bytes arrived; without this a damaged download would be refused again on every start
    (and offline forever). Afterwards the snapshot is incomplete, so the next online start downloads them again.
    Returns the removed paths (relative). Only touches folders inside a Hugging Face cache.
    """
    from .catalog import MANIFEST, sha256_file

    if snapshot_revision(folder) is None:
        return []
    bad: list[str] = []
    files = (manifest or {}).get("files") or {}
    if not files:
        bad.append(MANIFEST)  # unreadable manifest: drop it, and with it the snapshot's claim to be complete
    for name, entry in files.items():
        path = folder / name
        if path.exists() and (path.stat().st_size != entry.get("bytes") or sha256_file(path) != entry.get("sha256")):
            bad.append(name)
    for name in bad:
        link = folder / name
        try:
            blob = link.resolve() if link.is_symlink() else None
            link.unlink(missing_ok=True)
            if blob is not None and blob.parent.name == "blobs":
                blob.unlink(missing_ok=True)
        except OSError as exc:  # pragma: no cover - read-only cache
            log.warning("could not remove the damaged %s from the cache: %s", link, exc)
    if bad:
        log.warning("removed from the cache (failed their checksum): %s", ", ".join(bad))
    return bad


# -- models ---------------------------------------------------------------------------------------------------
def resolve_model(ref: str, index_root: Path | None = None, *,
                  local_files_only: bool = False) -> tuple[Path | str, str, str | None]:
    """(folder to load from, model id to record, revision) for a model reference.

    A Hub id is fetched through the Hub cache with its safetensors weights only: StyliShi never loads pickled
    weights (pytorch_model.bin), which can run code. When the index at `index_root` names this model with a
    revision, that revision is fetched: the model that built the vectors, even after the model repo moves on.
    """
    if ref.startswith("./") and index_root is not None:
        folder = index_root / ref[2:]
        if not folder.is_dir():
            raise ModelError(f"The index {index_root} was built with its own model folder {ref}, but {folder} is "
                             "missing. Copy or download the whole index folder again (with its model), or rebuild it "
                             "with build_index.py.")
        _require_safetensors(folder, ref)
        return folder, ref, None
    path = Path(ref).expanduser()
    if path.exists():
        _require_safetensors(path, ref)
        return path, str(path), None
    if ref.startswith((".", "/", "~")) or split_ref(ref)[0].count("/") != 1:
        raise ModelError(f"Could not load the model {ref}: no such folder. Give a Hub id such as "
                         "'patrickjohncyh/fashion-clip' or a folder made with save_pretrained.")
    from huggingface_hub import snapshot_download

    repo, rev = split_ref(ref)
    if rev is None and index_root is not None:
        rev = _manifest_revision(index_root, repo)
    try:
        folder = Path(snapshot_download(repo, revision=rev, allow_patterns=MODEL_FILES, local_files_only=local_files_only))
    except Exception as exc:
        if local_files_only:
            raise ModelError(f"The model {ref} is not in the local Hugging Face cache and the Hub cannot be used now "
                             f"({type(exc).__name__}). Run once with the Hub reachable to cache it, or pass a local "
                             "folder made with save_pretrained.") from exc
        raise ModelError(f"Could not fetch the model {ref} from the Hugging Face Hub ({type(exc).__name__}: "
                         f"{_first_line(exc)}). Check the id and your connection, or pass a local folder made with "
                         "save_pretrained.") from exc
    _require_safetensors(folder, ref, repo=repo, revision=snapshot_revision(folder) or rev, online=not local_files_only)
    return folder, repo, snapshot_revision(folder) or folder.name


def _manifest_revision(index_root: Path, repo: str) -> str | None:
    try:
        model = json.loads((index_root / "manifest.json").read_text()).get("model") or {}
    except (OSError, ValueError):
        return None
    rev = model.get("revision")
    return rev if model.get("id") == repo and isinstance(rev, str) and rev else None


def _require_safetensors(folder: Path, ref: str, *, repo: str | None = None, revision: str | None = None,
                         online: bool = False) -> None:
    if not folder.is_dir() or any(folder.glob("*.safetensors")):
        return  # a missing folder is reported by the loader, with its own hint
    pickled = sorted(p.name for pat in PICKLE_WEIGHTS for p in folder.glob(pat))
    if not pickled and repo is not None and online:
        try:
            from huggingface_hub import HfApi

            names = HfApi().list_repo_files(repo, revision=revision)
            pickled = sorted(n for n in names if any(fnmatch.fnmatch(n, pat) for pat in PICKLE_WEIGHTS))
        except Exception:  # noqa: BLE001 - only for a better message
            pass
    has = f"it has only {', '.join(pickled)}" if pickled else "it has no model.safetensors"
    raise ModelError(
        f"The model {ref} cannot be loaded: {has}. StyliShi loads safetensors weights only, never pickled "
        "PyTorch weights (loading those can run arbitrary code). Use a repo that has model.safetensors, or convert "
        "it yourself once (transformers: AutoModel.from_pretrained(..., use_safetensors=False).save_pretrained(dir) "
        "on a machine you trust) and pass that folder.")


# -- pushing --------------------------------------------------------------------------------------------------
def token_or_none() -> str | None:
    """The token huggingface_hub would use: HF_TOKEN, or the one saved by `hf auth login`."""
    from huggingface_hub import get_token

    return get_token()


NO_TOKEN_MESSAGE = ("Pushing to the Hub needs a write token, and none was found. Create one at "
                    "https://huggingface.co/settings/tokens (type: write), then either `export HF_TOKEN=hf_...` or "
                    "run `hf auth login` once, and run this again.")


def upload_patterns(folder: Path, manifest: dict[str, Any]) -> list[str]:
    """What of an artifact folder goes to the Hub: the artifact and its card, plus model/ when the index uses it."""
    patterns = ["manifest.json", "index.faiss", "items.parquet", "thumbnails.parquet", "README.md"]
    model_id = str((manifest.get("model") or {}).get("id", ""))
    if model_id.startswith("./"):
        sub = model_id[2:].strip("/")
        patterns += [f"{sub}/*"]
    return patterns


def push_index(folder: str | Path, repo_id: str, *, private: bool = False, token: str | None = None,
               card: str | None = None, commit_message: str | None = None) -> str:
    """Upload a built, verified index folder to a Hub dataset repo (created if needed). Returns the commit URL."""
    from huggingface_hub import HfApi

    from . import catalog as catalog_mod

    folder = Path(folder)
    token = token or token_or_none()
    if not token:
        raise StyliShiError(NO_TOKEN_MESSAGE)
    if split_ref(repo_id)[1] is not None or repo_id.count("/") != 1:
        raise StyliShiError(f"--push-to takes OWNER/NAME (a dataset repo id), not {repo_id!r}.")
    catalog_mod.load(folder)  # never push an index that does not verify
    manifest = catalog_mod.read_manifest(folder)
    (folder / "README.md").write_text(card if card is not None else dataset_card(manifest, repo_id))
    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        log.info("dataset repo %s ready; uploading %s", url, folder)
        info = api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=str(folder),
                                 allow_patterns=upload_patterns(folder, manifest), ignore_patterns=PUSH_IGNORE,
                                 commit_message=commit_message or
                                 f"StyliShi index: {manifest['count']} items, {manifest['model']['id']}")
    except Exception as exc:  # noqa: BLE001 - every failure here means the same to a person
        status = getattr(getattr(exc, "response", None), "status_code", None)
        hint = (" The token was refused: it needs write access to " + repo_id.split("/")[0] + "."
                if status in (401, 403) else " Check your connection and that the token may write there.")
        raise StyliShiError(f"Could not push the index to the Hub dataset repo {repo_id} "
                            f"({type(exc).__name__}: {_first_line(exc)}).{hint}") from exc
    return str(getattr(info, "commit_url", "") or url)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__

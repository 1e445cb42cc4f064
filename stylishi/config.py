"""Every setting in one place: an environment variable with a documented default.

Command-line flags (app.py, build_index.py) override these; nothing else reads the environment.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MODEL = "patrickjohncyh/fashion-clip"
ALT_MODELS = ("openai/clip-vit-base-patch32",)
DEFAULT_DATASET = "ashraq/fashion-product-images-small"
DEFAULT_INDEX_REPO = "stylishi/fashion-product-index"


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a whole number; unset it or give e.g. {name}={default}") from None


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a number; unset it or give e.g. {name}={default}") from None


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    return value in {"1", "true", "yes", "on"}


def cache_dir() -> Path:
    """Where StyliShi keeps what it derives (thumbnails, starter and demo indexes)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stylishi"
    return Path(_env("STYLISHI_CACHE", str(default))).expanduser()


@dataclass(frozen=True)
class Limits:
    """What an uploaded query may be. Anything outside is refused with a clear message."""

    max_bytes: int = field(default_factory=lambda: _env_int("STYLISHI_MAX_BYTES", 10 * 1024 * 1024))
    max_side: int = field(default_factory=lambda: _env_int("STYLISHI_MAX_SIDE", 4096))
    max_text_chars: int = field(default_factory=lambda: _env_int("STYLISHI_MAX_TEXT", 500))
    max_k: int = 50
    # Requests that do work (POSTs: uploads, queries) per client address and minute, in bursts of a fifth of it;
    # over it the app answers 429 with a sentence. 0 = no limit. Behind a proxy all visitors share its address.
    requests_per_minute: int = field(default_factory=lambda: _env_int("STYLISHI_RATE_LIMIT", 300))


@dataclass(frozen=True)
class Settings:
    model: str = field(default_factory=lambda: _env("STYLISHI_MODEL", ""))  # "" = the model named by the index
    index: str = field(default_factory=lambda: _env("STYLISHI_INDEX", DEFAULT_INDEX_REPO))
    device: str = field(default_factory=lambda: _env("STYLISHI_DEVICE", "auto"))
    # auto = int8 on CPU when it stays faithful to fp32 (checked at load), fp32 on GPU; or fp32 / bf16 / int8
    embed_mode: str = field(default_factory=lambda: _env("STYLISHI_EMBED_MODE", "auto"))
    threads: int = field(default_factory=lambda: _env_int("STYLISHI_THREADS", 0))  # 0 = all cores
    limits: Limits = field(default_factory=Limits)
    # Start-up policy (stylishi.startup.open_service): what to serve when the index asked for cannot be had.
    # The source dataset a starter index is built from (owner/name[@rev]) when the index repo is missing.
    dataset: str = field(default_factory=lambda: _env("STYLISHI_DATASET", DEFAULT_DATASET))
    # How many of the dataset's first items a starter index holds.
    starter_items: int = field(default_factory=lambda: _env_int("STYLISHI_STARTER_ITEMS", 2000))
    # STYLISHI_NO_FALLBACK=1: serve the index asked for (from the Hub or the cache) or stop with one message;
    # never a starter index or the offline demo instead.
    fallback: bool = field(default_factory=lambda: not _env_bool("STYLISHI_NO_FALLBACK", False))
    # Seconds the one reachability probe of the Hub may take before the cache is used instead.
    hub_timeout: float = field(default_factory=lambda: _env_float("STYLISHI_HUB_TIMEOUT", 5.0))


def set_threads(n: int = 0, faiss_threads: int | None = None) -> int:
    """Pin torch and FAISS thread counts so they do not oversubscribe a small box (0 = all cores).

    Serving passes faiss_threads=1: one query at a time is never faster on more FAISS threads (measured), and the
    cores are better left to the image tower and to the next request. Building keeps all of them for FAISS.
    """
    n = n or os.cpu_count() or 1
    import torch

    torch.set_num_threads(n)
    try:
        import faiss

        faiss.omp_set_num_threads(faiss_threads or n)
    except ImportError:  # pragma: no cover - faiss is a hard dependency
        pass
    return n

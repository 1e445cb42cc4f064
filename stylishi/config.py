"""Every setting in one place: an environment variable with a documented default, checked before anything loads.

Command-line flags (app.py, build_index.py) override these; nothing else reads the environment. A setting that
cannot be used stops the program at once with one line naming the setting and the values it accepts
(`Settings.from_env`, which the app and the build command call first): never a traceback, never work wasted.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import SettingError

DEFAULT_MODEL = "patrickjohncyh/fashion-clip"
ALT_MODELS = ("openai/clip-vit-base-patch32",)
DEFAULT_DATASET = "ashraq/fashion-product-images-small"
DEFAULT_INDEX_REPO = "stylishi/fashion-product-index"
# auto = the fastest CPU path that stays faithful to fp32 (checked at load), fp32 on a GPU.
EMBED_MODES = ("auto", "fp32", "bf16", "int8", "openvino")
# What to serve when the index cannot be had: nothing else, a starter index (Hub indexes), or also the offline demo.
FALLBACKS = ("none", "starter", "demo")
SEARCHES_AT_ONCE = 4  # default of STYLISHI_SEARCHES_AT_ONCE (Limits.searches_at_once)
FOCUS_SETTINGS = ("auto", "on", "off")  # photo searches focused on their main garment (stylishi.focus)
DEVICES = "auto, cpu, cuda, cuda:N, mps"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+(@\S+)?$")
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


# -- reading one value: each names the setting (env var or flag) and what it accepts ------------------------------
def _raw(name: str) -> str:
    return os.environ.get(name, "").strip()


def _env(name: str, default: str) -> str:
    return _raw(name) or default


def _whole(label: str, value: Any, default: int, minimum: int) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise SettingError(f"{label} is not a whole number: give a whole number of at least {minimum} "
                           f"(default {default}).") from None
    if number < minimum:
        raise SettingError(f"{label} is too small: give a whole number of at least {minimum} (default {default}).")
    return number


def _number(label: str, value: Any, default: float) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        number = float("nan")
    if not number > 0 or number == float("inf"):
        raise SettingError(f"{label} is not a usable number of seconds: give a number above 0 (default {default:g}).")
    return number


def _choice(label: str, value: str, choices: tuple[str, ...]) -> str:
    value = str(value).strip().lower()
    if value not in choices:
        raise SettingError(f"{label} is not one of the accepted values: {', '.join(choices)}.")
    return value


def _flag(label: str, value: str) -> bool:
    value = value.strip().lower()
    if value not in _TRUE + _FALSE:
        raise SettingError(f"{label} is not a yes/no value: use 1, true, yes or on (or 0, false, no, off).")
    return value in _TRUE


def _env_int(name: str, default: int, minimum: int = 0) -> int:
    value = _raw(name)
    return _whole(f"{name}={value}", value, default, minimum) if value else default


def _env_float(name: str, default: float) -> float:
    value = _raw(name)
    return _number(f"{name}={value}", value, default) if value else default


def _cosine(label: str, value: Any, default: float) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        number = float("nan")
    if not 0 < number <= 1:
        raise SettingError(f"{label} is not a usable cosine: give a number above 0 and at most 1 (default {default:g}; "
                           "1 folds only identical vectors).")
    return number


def dedup_threshold() -> float:
    """STYLISHI_DEDUP_THRESHOLD: the cosine at or above which two results are folded into one (stylishi.dedup)."""
    from .dedup import DEFAULT_THRESHOLD

    value = _raw("STYLISHI_DEDUP_THRESHOLD")
    return _cosine(f"STYLISHI_DEDUP_THRESHOLD={value}", value, DEFAULT_THRESHOLD) if value else DEFAULT_THRESHOLD


def _env_bool(name: str, default: bool = False) -> bool:
    value = _raw(name)
    return _flag(f"{name}={value}", value) if value else default


def _env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _raw(name)
    return _choice(f"{name}={value}", value, choices) if value else default


def _device(label: str, value: str) -> str:
    value = str(value).strip().lower()
    if not _DEVICE.match(value):
        raise SettingError(f"{label} is not a device: use one of {DEVICES}.")
    return value


def _detector(label: str, value: str) -> str:
    value = str(value).strip()
    if value.lower() in ("auto", "off") or _HUB_ID.match(value) or Path(value).expanduser().is_dir():
        return value
    raise SettingError(f"{label} is not a detector: use auto, off, a Hub id OWNER/NAME[@REVISION] or a folder made "
                       "with save_pretrained.")


def _hub_id(label: str, value: str) -> str:
    if not _HUB_ID.match(value):
        raise SettingError(f"{label} is not a Hub dataset id: use OWNER/NAME or OWNER/NAME@REVISION.")
    return value


def _env_fallback() -> str:
    """STYLISHI_FALLBACK (none/starter/demo); STYLISHI_NO_FALLBACK=1 means none. Unset: "auto" (see Settings)."""
    off = _env_bool("STYLISHI_NO_FALLBACK")
    value = _env_choice("STYLISHI_FALLBACK", "auto", FALLBACKS)
    if off and value not in ("auto", "none"):
        raise SettingError(f"STYLISHI_NO_FALLBACK={_raw('STYLISHI_NO_FALLBACK')} and STYLISHI_FALLBACK={value} "
                           "contradict each other: unset one of them.")
    return "none" if off else value


def cache_dir() -> Path:
    """Where StyliShi keeps what it derives (thumbnails, starter and demo indexes)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stylishi"
    return Path(_env("STYLISHI_CACHE", str(default))).expanduser()


@dataclass(frozen=True)
class Limits:
    """What an uploaded query may be. Anything outside is refused with a clear message."""

    max_bytes: int = field(default_factory=lambda: _env_int("STYLISHI_MAX_BYTES", 10 * 1024 * 1024, minimum=1))
    max_side: int = field(default_factory=lambda: _env_int("STYLISHI_MAX_SIDE", 4096, minimum=16))
    max_text_chars: int = field(default_factory=lambda: _env_int("STYLISHI_MAX_TEXT", 500, minimum=1))
    max_k: int = 50
    # Requests that do work (POSTs: uploads, queries) per client address and minute, in bursts of a fifth of it;
    # over it the app answers 429 with a sentence. 0 = no limit. Behind a proxy all visitors share its address.
    requests_per_minute: int = field(default_factory=lambda: _env_int("STYLISHI_RATE_LIMIT", 300))
    # Searches run at once (per route: the page and Gradio API share one queue, the REST route has its own); more
    # wait their turn. Picture queries running together share one pass of the image tower (stylishi.batching).
    searches_at_once: int = field(default_factory=lambda: _env_int("STYLISHI_SEARCHES_AT_ONCE", SEARCHES_AT_ONCE,
                                                                   minimum=1))


@dataclass(frozen=True)
class Settings:
    """The settings, read from the environment (each value checked as it is read; a bad one raises SettingError).

    `Settings.from_env(**flags)` is the one entry point for programs: it lays command-line flags over the
    environment and also checks what needs the machine (a CUDA device on a torch without CUDA).
    """

    model: str = field(default_factory=lambda: _env("STYLISHI_MODEL", ""))  # "" = the model named by the index
    index: str = field(default_factory=lambda: _env("STYLISHI_INDEX", DEFAULT_INDEX_REPO))
    # Whether a person named the index (STYLISHI_INDEX or --index): then failing to load it is an error, unless a
    # fallback is asked for; the default index falls back to a starter index, then the offline demo.
    index_named: bool = field(default_factory=lambda: bool(_raw("STYLISHI_INDEX")))
    device: str = field(default_factory=lambda: _device(f"STYLISHI_DEVICE={_raw('STYLISHI_DEVICE')}",
                                                        _env("STYLISHI_DEVICE", "auto")))
    # auto = OpenVINO or int8 on CPU when they stay faithful to fp32 (checked at load), fp32 on GPU; or an explicit
    # mode, which is checked the same way and falls back to fp32 when it is not faithful.
    embed_mode: str = field(default_factory=lambda: _env_choice("STYLISHI_EMBED_MODE", "auto", EMBED_MODES))
    threads: int = field(default_factory=lambda: _env_int("STYLISHI_THREADS", 0, minimum=0))  # 0 = all cores
    limits: Limits = field(default_factory=Limits)
    # Start-up policy (stylishi.startup.open_service): what to serve when the index asked for cannot be had.
    # The source dataset a starter index is built from (owner/name[@rev]) when the index repo is missing.
    dataset: str = field(default_factory=lambda: _hub_id(f"STYLISHI_DATASET={_raw('STYLISHI_DATASET')}",
                                                         _env("STYLISHI_DATASET", DEFAULT_DATASET)))
    # How many of the dataset's first items a starter index holds.
    starter_items: int = field(default_factory=lambda: _env_int("STYLISHI_STARTER_ITEMS", 2000, minimum=1))
    # none / starter / demo, or "auto": demo for the default index, none for an index a person named.
    fallback: str = field(default_factory=_env_fallback)
    # Seconds the one reachability probe of the Hub may take before the cache is used instead.
    hub_timeout: float = field(default_factory=lambda: _env_float("STYLISHI_HUB_TIMEOUT", 5.0))
    mcp: bool = field(default_factory=lambda: _env_bool("STYLISHI_MCP"))
    # Results whose vectors are at least this close (cosine) are folded into one card (stylishi.dedup).
    dedup_threshold: float = field(default_factory=dedup_threshold)
    cache: Path = field(default_factory=cache_dir)
    # Shop the look's garment detector (stylishi.look): auto (the demo's for the offline demo, else the default Hub
    # detector), off, a Hub id OWNER/NAME[@REV] or a folder made with save_pretrained.
    detector: str = field(default_factory=lambda: _detector(f"STYLISHI_DETECTOR={_raw('STYLISHI_DETECTOR')}",
                                                            _env("STYLISHI_DETECTOR", "auto")))
    # Photo searches focused on their main garment (stylishi.focus): auto (where the detector is cheap: the offline
    # demo's), on, off.
    focus: str = field(default_factory=lambda: _env_choice("STYLISHI_FOCUS", "auto", FOCUS_SETTINGS))

    @classmethod
    def from_env(cls, **flags: Any) -> "Settings":
        """Every setting checked, before anything loads: the environment, then the flags given (None = not given).

        Flags: index, model, device, embed_mode, threads, detector, focus, fallback ("none"/"starter"/"demo", or a bool: True =
        demo, False = none), starter_items, hub_timeout. Raises SettingError with one line naming the setting.
        """
        return cls().merged(**flags)

    def merged(self, **flags: Any) -> "Settings":
        """These settings with the given flags laid over them (None = keep), all checked (SettingError)."""
        changes: dict[str, Any] = {}
        for name, value in flags.items():
            if value is None:
                continue
            option = "--" + name.replace("_", "-")
            label = f"{option} {value}"
            if name in ("index", "model"):
                changes[name] = str(value).strip()
                if name == "index":
                    changes["index_named"] = bool(changes[name])
                    changes[name] = changes[name] or self.index
            elif name == "device":
                changes[name] = _device(label, value)
            elif name == "embed_mode":
                changes[name] = _choice(label, value, EMBED_MODES)
            elif name == "threads":
                changes[name] = _whole(label, value, 0, 0)
            elif name == "starter_items":
                changes[name] = _whole(label, value, 2000, 1)
            elif name == "hub_timeout":
                changes[name] = _number(label, value, 5.0)
            elif name == "detector":
                changes[name] = _detector(label, value)
            elif name == "focus":
                changes[name] = _choice(label, value, FOCUS_SETTINGS)
            elif name == "fallback":
                changes[name] = ("demo" if value else "none") if isinstance(value, bool) else \
                    _choice("--fallback " + str(value), value, FALLBACKS)
            else:
                raise TypeError(f"unknown setting {name!r}")
        settings = replace(self, **changes)
        settings.check_machine(device_label=f"--device {settings.device}" if "device" in changes
                               else f"STYLISHI_DEVICE={settings.device}")
        return settings

    def fallback_for_index(self) -> str:
        """The fallback in force: "auto" means the demo for the default index and none for a named one."""
        if self.fallback != "auto":
            return self.fallback
        return "none" if self.index_named else "demo"

    def check_machine(self, *, device_label: str = "STYLISHI_DEVICE", cuda_devices: int | None = None) -> None:
        """What only this machine can say: is the device there, does the embedding mode run on it?"""
        if self.cache.exists() and not self.cache.is_dir():
            raise SettingError(f"STYLISHI_CACHE={self.cache} is a file, not a folder: point it at a folder "
                               "(default ~/.cache/stylishi).")
        device = self.device
        if device.startswith("cuda") or (device == "auto" and self.embed_mode in ("int8", "openvino")):
            count = cuda_device_count() if cuda_devices is None else cuda_devices
            if device == "auto":
                device = "cuda" if count else "cpu"
            elif count == 0:
                raise SettingError(f"{device_label}: {_no_cuda_reason()} Use cpu or auto (accepted: {DEVICES}).")
            elif ":" in device and int(device.split(":")[1]) >= count:
                raise SettingError(f"{device_label}: this machine has {count} CUDA device(s), numbered from 0 "
                                   f"(accepted: {DEVICES}).")
        elif device == "mps":
            import torch

            if not torch.backends.mps.is_available():
                raise SettingError(f"{device_label}: Apple's MPS is not available here. Use cpu or auto "
                                   f"(accepted: {DEVICES}).")
        if self.embed_mode in ("int8", "openvino") and device != "cpu":
            raise SettingError(f"STYLISHI_EMBED_MODE / --embed-mode {self.embed_mode} runs on the CPU only, and the "
                               f"device is {device}: use fp32 or bf16 on a GPU, or --device cpu.")


def cuda_device_count() -> int:
    """CUDA devices torch can use here (0 on a CPU-only torch)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _no_cuda_reason() -> str:
    import torch

    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) was built without CUDA, so there is no GPU to use."
    return "no CUDA GPU is visible to torch here (torch.cuda.is_available() is False)."


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

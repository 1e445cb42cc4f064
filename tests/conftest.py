"""Shared fixtures: one offline demo index (tiny random CLIP + generated garments) built once per test session."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Offline, quiet, and never touching the developer's own caches. Read once at import by the HF libraries.
_SESSION_TMP = Path(tempfile.mkdtemp(prefix="stylishi-tests-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HOME", str(_SESSION_TMP / "hf_home"))
os.environ.setdefault("STYLISHI_CACHE", str(_SESSION_TMP / "stylishi_cache"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Child processes (app.py, bench/load.py, Hub clients) import this checkout's stylishi, installed or not.
_ROOT = str(Path(__file__).resolve().parents[1])
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH", "")) if p)

import pytest  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than a few seconds (browser, load, Hub stand-in)")
    config.addinivalue_line("markers", "browser: drives Debian's Chromium through Playwright")


@pytest.fixture(scope="session")
def demo_index(tmp_path_factory) -> Path:
    """The offline demo catalog index, built through the real builder (1,200 items; the shipped, trained 64-d tiny CLIP)."""
    from stylishi.builder import build_demo

    out = tmp_path_factory.mktemp("demo_index")
    report = build_demo(out, progress=False)
    assert report.validation_passed == report.validated > 0
    return out


@pytest.fixture(scope="session")
def service(demo_index):
    import stylishi

    return stylishi.load(demo_index)

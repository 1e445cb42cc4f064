"""Shared fixtures: one offline demo index (the trained tiny CLIP + generated garments) built once per test session."""
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


# The near-duplicate catalog (issue 11, part 5): a slice of the demo with one picture listed under three ids and two
# different pictures sharing a product group, built through the real folder builder with the demo's model.
DUP_SOURCE = "demo-0042"  # its picture is also listed as these two ids
DUP_COPIES = ("copy-0042-a", "copy-0042-b")
DUP_GROUP = ("demo-0040", "demo-0041")  # two pictures, one product_group


@pytest.fixture(scope="session")
def dup_index(demo_index, tmp_path_factory) -> Path:
    import shutil

    import pandas as pd

    from stylishi.builder import build, folder_records
    from stylishi.embedder import Embedder

    root = tmp_path_factory.mktemp("dup_index")
    pictures = root / "pictures"
    pictures.mkdir()
    meta = pd.read_csv(demo_index / "catalog_images" / "metadata.csv", dtype=str).set_index("id")
    ids = sorted({f"demo-{i:04d}" for i in range(0, 1200, 25)} | {f"demo-{i:04d}" for i in range(36, 48)})
    rows = []
    for item in ids:
        shutil.copy(demo_index / "catalog_images" / f"{item}.png", pictures / f"{item}.png")
        rows.append({"file_name": f"{item}.png", "id": item, **meta.loc[item].drop("file_name").to_dict(),
                     "product_group": "group-40" if item in DUP_GROUP else ""})
    for copy in DUP_COPIES:
        shutil.copy(demo_index / "catalog_images" / f"{DUP_SOURCE}.png", pictures / f"{copy}.png")
        rows.append({**rows[ids.index(DUP_SOURCE)], "file_name": f"{copy}.png", "id": copy, "product_group": ""})
    pd.DataFrame(rows).to_csv(pictures / "metadata.csv", index=False)
    embedder = Embedder.load(demo_index / "model", device="cpu", mode="fp32")
    out = root / "index"
    report = build(folder_records(pictures), embedder, out, progress=False, calibrate=False)
    assert report.validation_passed == report.validated > 0
    return out


@pytest.fixture(scope="module")
def app_url(service):
    """The app as main() builds it, launched in this process for one module's browser tests; its URL."""
    from tests.browsing import serve_page

    with serve_page(service) as url:
        yield url

"""Faults: a damaged index, a model that does not fit it, missing thumbnails, the Hub away. Each has a named outcome,
and none gives silent wrong results:

| fault                                              | outcome                                                        |
|----------------------------------------------------|----------------------------------------------------------------|
| index file truncated, corrupted, unreadable        | REFUSE: start-up stops, one message naming the fix, exit 2      |
| vectors damaged (checksums written to match)       | REFUSE (every stored vector must be finite and unit length)     |
| manifest/model mismatch: dim, model size, weights  | REFUSE (the model must reproduce the index's own vectors)       |
| --model other than the index's                     | REFUSE, with or without the fallback (a configuration error)    |
| metadata row count wrong, manifest incomplete      | REFUSE                                                          |
| thumbnail names unsafe or shared by two items      | REFUSE                                                          |
| model folder missing                               | REFUSE                                                          |
| any of the above, the index named (--index)        | REFUSE too: a named index has no fallback unless asked for      |
| any of the above with --fallback demo              | DEMO: the offline demo, with a notice naming the index's fault  |
| a setting that cannot be used (env var or flag)    | REFUSE before anything loads: one line naming it, no cache work |
| some thumbnails missing                            | PLACEHOLDER: served with a "no picture" card                    |
| thumbnail cache wiped while serving                | served: thumbnails unpacked again from the index                |
| Hub away, warm cache                               | CACHE: the cached revision is served (here, and in test_hub)    |
| damaged download in the cache                      | REFUSE + evicted, so the next start fetches it (here and there) |
| Hub away, cold cache                               | DEMO or REFUSE: tests/test_hub.py, against the Hub stand-in     |

REFUSE is checked on the real command line (`python app.py --index BROKEN --no-fallback`) for a few faults at once,
and for every fault through `app.main([...])` in this process (the same code, without paying a Python start-up each).
"""
from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from stylishi import catalog as catalog_mod
from stylishi.config import cache_dir
from stylishi.demo import save_tiny_clip
from tests.helpers import free_port, http_call, running_app

ROOT = Path(__file__).resolve().parents[1]
REBUILD = r"rebuild the folder with `python build_index.py --out DIR`"


# -- broken copies of the demo index -----------------------------------------------------------------------------------
def _copy(demo_index: Path, dst: Path) -> Path:
    shutil.copytree(demo_index, dst, ignore=shutil.ignore_patterns("catalog_images"))
    return dst


def _manifest(root: Path, change=None, **files_changed) -> None:
    manifest = json.loads((root / "manifest.json").read_text())
    if change:
        change(manifest)
    for name in files_changed.get("refresh", ()):  # checksums written to match a damaged file
        manifest["files"][name] = catalog_mod._file_entry(root / name)
    (root / "manifest.json").write_text(json.dumps(manifest))


def _edit_bytes(path: Path, edit) -> None:
    data = bytearray(path.read_bytes())
    path.write_bytes(bytes(edit(data)))


def _flip(data: bytearray) -> bytearray:
    data[len(data) // 2] ^= 0xFF
    return data


def _nan_last_vector(data: bytearray) -> bytearray:
    data[-64:-48] = b"\xff" * 16  # four float32 NaNs in the last row's vector
    return data


def _items(root: Path, edit) -> None:
    items = pd.read_parquet(root / "items.parquet")
    edit(items).to_parquet(root / "items.parquet", index=False)
    _manifest(root, refresh=["items.parquet"])


def _set_model(model_id: str):
    return lambda m: m["model"].__setitem__("id", model_id)


def _share_thumbnail(items: pd.DataFrame) -> pd.DataFrame:
    items.loc[1, "thumbnail"] = items.loc[0, "thumbnail"]
    return items


# name: (how to break a copy, the message's pattern)
BROKEN = {
    "index-truncated": (lambda r: (r / "index.faiss").write_bytes((r / "index.faiss").read_bytes()[:-1000]),
                        r"index\.faiss is \d+ bytes but the manifest says \d+: the file is truncated"),
    "index-corrupted": (lambda r: _edit_bytes(r / "index.faiss", _flip),
                        r"index\.faiss is corrupted: its sha256 is \w+… but the manifest says"),
    "index-unreadable-checksums-match": (
        lambda r: ((r / "index.faiss").write_bytes(b"\x00" * 4096), _manifest(r, refresh=["index.faiss"])),
        r"index\.faiss could not be read by FAISS"),
    "vectors-damaged-checksums-match": (
        lambda r: (_edit_bytes(r / "index.faiss", _nan_last_vector), _manifest(r, refresh=["index.faiss"])),
        r"index\.faiss is damaged: the vector of item row 1199 has length nan, not 1"),
    "manifest-dim-mismatch": (lambda r: _manifest(r, lambda m: m["embedding"].__setitem__("dim", 128)),
                              r"index\.faiss holds 64-d vectors but the manifest says 128"),
    "manifest-model-other-size": (
        lambda r: (save_tiny_clip(r / "model128", dim=128), _manifest(r, _set_model("./model128"))),
        r"names the model \./model128, which makes 128-d vectors, but it holds 64-d vectors: it was built with another"),
    "manifest-model-other-weights": (
        lambda r: (save_tiny_clip(r / "other", dim=64, seed=7), _manifest(r, _set_model("./other"))),
        r"The model \./other does not reproduce the vectors of the catalog index .*: its own pictures embed at a "
        r"cosine of -?\d\.\d\d to their stored vectors"),
    "items-row-count": (lambda r: _items(r, lambda items: items.iloc[:-1]),
                        r"item counts differ \(manifest 1200, index 1200, items\.parquet 1199, thumbnails\.parquet 1200\)"),
    "items-no-id-column": (lambda r: _items(r, lambda items: items.drop(columns=["id"])), r"has no 'id' column"),
    "thumbnail-shared": (lambda r: _items(r, _share_thumbnail), r"several items share the thumbnail"),
    "thumbnail-name-traversal": (
        lambda r: _items(r, lambda items: items.assign(thumbnail=["../../etc/x.jpg"] + list(items.thumbnail[1:]))),
        r"names a thumbnail '\.\./\.\./etc/x\.jpg', which is not a plain file name"),
    "model-folder-missing": (lambda r: shutil.rmtree(r / "model"),
                             r"was built with its own model folder \./model, but .*/model is missing\. Copy or download"),
    "manifest-incomplete": (lambda r: _manifest(r, lambda m: m.pop("embedding")),
                            r"manifest\.json is incomplete: embedding\.dim should be a positive whole number"),
    "manifest-not-json": (lambda r: (r / "manifest.json").write_text('{"format": "stylishi-catalog", '),
                          r"manifest\.json is not valid JSON"),
    "not-an-index": (lambda r: [p.unlink() if p.is_file() else shutil.rmtree(p) for p in list(r.iterdir())],
                     r"has no manifest\.json, so it is not a StyliShi catalog index"),
}
ON_THE_COMMAND_LINE = ["index-truncated", "vectors-damaged-checksums-match", "model-folder-missing"]


@pytest.fixture(scope="module")
def broken(demo_index, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("broken")
    out = {}
    for name, (breaking, _) in BROKEN.items():
        breaking(_copy(demo_index, folder / name))
        out[name] = folder / name
    return out


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(free_port()),
           "STYLISHI_EMBED_MODE": "fp32", "PYTHONUNBUFFERED": "1"}
    env.pop("STYLISHI_NO_FALLBACK", None)
    return subprocess.run([sys.executable, str(ROOT / "app.py"), "--device", "cpu", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def command_lines(broken, demo_index, tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """The real start-up, a few at once (each pays a Python start-up with torch and Gradio)."""
    other = save_tiny_clip(tmp_path_factory.mktemp("m") / "other", dim=64, seed=3)
    runs = {name: ("--index", str(broken[name]), "--no-fallback") for name in ON_THE_COMMAND_LINE}
    runs["explicit-model-with-fallback"] = ("--index", str(demo_index), "--model", str(other), "--fallback", "demo")
    runs["named-index-no-flag"] = ("--index", str(broken["index-truncated"]))  # no --no-fallback: refused all the same
    with ThreadPoolExecutor(max_workers=3) as pool:  # a shared 2-core box: not all start-ups at once
        futures = {name: pool.submit(_cli, *args) for name, args in runs.items()}
        return {name: future.result() for name, future in futures.items()}


def _one_clear_message(output: str) -> str:
    lines = [line for line in output.splitlines() if "cannot start:" in line]
    assert len(lines) == 1, output[-3000:]
    assert "Traceback" not in output and 'File "' not in output, output[-3000:]
    return lines[0].split("cannot start: ", 1)[1]


# -- REFUSE -------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ON_THE_COMMAND_LINE)
def test_the_command_line_refuses_a_broken_index_with_one_message(name, command_lines, broken):
    done = command_lines[name]
    assert done.returncode == 2, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    message = _one_clear_message(done.stdout + done.stderr)
    assert re.search(BROKEN[name][1], message), message
    assert str(broken[name]) in message and re.search(REBUILD, message) and "--no-fallback" in message
    assert "StyliShi ready" not in done.stdout + done.stderr  # nothing was served


def test_the_command_line_refuses_another_model_even_with_the_fallback_on(command_lines, demo_index):
    done = command_lines["explicit-model-with-fallback"]
    assert done.returncode == 2, (done.stdout[-2000:], done.stderr[-2000:])
    message = _one_clear_message(done.stdout + done.stderr)
    assert re.search(r"was built with the model \./model, but the model .*/other was asked for \(--model / "
                     r"STYLISHI_MODEL\)\. .* drop --model", message), message
    assert "offline demo" not in done.stdout + done.stderr


def test_a_named_index_that_cannot_be_loaded_stops_the_app_without_the_demo(command_lines, broken):
    """Issue 15.2: --index names what to serve; failing to load it is an error, not a silent swap for the demo."""
    done = command_lines["named-index-no-flag"]
    assert done.returncode == 2, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    message = _one_clear_message(done.stdout + done.stderr)
    assert str(broken["index-truncated"]) in message and re.search(BROKEN["index-truncated"][1], message), message
    assert "--fallback demo" in message  # how to get the demo anyway
    assert "offline demo" not in done.stdout.replace(message, "") and "StyliShi ready" not in done.stdout + done.stderr


BAD_SETTINGS = [  # (env, argv, the start of the one line)
    ({"STYLISHI_EMBED_MODE": "bogus"}, [], "STYLISHI_EMBED_MODE=bogus is not one of the accepted values: auto, fp32"),
    ({"STYLISHI_MAX_TEXT": "abc"}, [], "STYLISHI_MAX_TEXT=abc is not a whole number"),
    ({"STYLISHI_SEARCHES_AT_ONCE": "0"}, [], "STYLISHI_SEARCHES_AT_ONCE=0 is too small: give a whole number of at least 1"),
    ({}, ["--threads", "-2"], "--threads -2 is too small"),
    ({}, ["--fallback", "sometimes"], "--fallback sometimes is not one of the accepted values: none, starter, demo"),
]


@pytest.mark.parametrize("env,argv,says", BAD_SETTINGS, ids=[s for _, _, s in BAD_SETTINGS])
def test_app_main_refuses_a_bad_setting_before_loading_anything(env, argv, says, caplog, monkeypatch, tmp_path):
    """Issue 15.3: one line naming the setting and what it accepts, exit 2, and not one cache file built or touched
    (STYLISHI_EMBED_MODE=bogus used to fall back to the demo and rebuild it before stopping)."""
    import app

    monkeypatch.setenv("STYLISHI_CACHE", str(tmp_path / "cache"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with caplog.at_level(logging.INFO):
        status = app.main(["--index", "demo", *argv])
    assert status == 2
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert errors[0].getMessage().startswith(f"cannot start: {says}") and errors[0].exc_info is None
    assert not (tmp_path / "cache").exists()  # nothing loaded, nothing built


def test_app_main_refuses_cuda_on_a_machine_without_it(caplog, monkeypatch, tmp_path):
    import torch

    import app

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    monkeypatch.setenv("STYLISHI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("STYLISHI_DEVICE", "cuda")
    with caplog.at_level(logging.INFO):
        status = app.main(["--index", "demo"])
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert status == 2 and len(errors) == 1 and errors[0].startswith("cannot start: STYLISHI_DEVICE=cuda: "), errors
    assert "Use cpu or auto" in errors[0] and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("name", list(BROKEN))
def test_app_main_refuses_every_broken_index(name, broken, caplog, monkeypatch):
    """app.main with --no-fallback, in this process: exit status 2, one error line naming the fault and the fix."""
    import app

    monkeypatch.setenv("STYLISHI_EMBED_MODE", "fp32")  # no OpenVINO/int8 trial per case: the faults come first
    with caplog.at_level(logging.INFO):
        status = app.main(["--index", str(broken[name]), "--no-fallback", "--device", "cpu"])
    assert status == 2
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].getMessage().startswith("cannot start: "), [r.getMessage() for r in errors]
    assert errors[0].exc_info is None  # no traceback
    message = errors[0].getMessage()
    assert re.search(BROKEN[name][1], message), message
    assert str(broken[name]) in message and re.search(REBUILD, message)


# -- DEMO: the same faults with the fallback asked for ----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["index-truncated", "manifest-model-other-weights"])
def test_with_the_fallback_on_a_broken_index_gives_the_demo_and_a_notice_saying_why(name, broken, demo_index,
                                                                                   tmp_path, monkeypatch):
    from stylishi.startup import open_service

    monkeypatch.setenv("STYLISHI_CACHE", str(tmp_path / "cache"))
    _copy(demo_index, tmp_path / "cache" / "demo")  # the demo as a first start builds it, without the 10 s
    service = open_service(str(broken[name]), fallback="demo", device="cpu", mode="fp32")
    assert service.source == "demo" and len(service.catalog) == 1200
    assert service.notice == f"Offline demo: the catalog index {broken[name]} could not be loaded."  # one short line
    (why,) = service.startup.details()  # the reason, for the page's <details>
    assert why.startswith(f"The folder {broken[name]}: ") and re.search(BROKEN[name][1], why), why
    assert "--index DIR" in why  # how to serve a real catalog


# -- PLACEHOLDER: some thumbnails missing; and the thumbnail cache wiped while serving --------------------------------------
ANCHOR = "demo-0001"  # its picture and those of its two nearest neighbours (whatever the model) are missing


@pytest.fixture(scope="module")
def pictureless(demo_index) -> list[str]:
    """The anchor and its two nearest neighbours in the demo index: "more like this" on the anchor shows both."""
    from stylishi import index as faiss_index

    cat = catalog_mod.load(demo_index)
    vectors = faiss_index.reconstruct(cat.index, list(range(len(cat))))
    row = cat.row_of(ANCHOR)
    sims = vectors @ vectors[row]
    sims[row] = -np.inf
    return [ANCHOR] + [str(cat.items["id"].iloc[r]) for r in np.argsort(-sims)[:2]]


@pytest.fixture(scope="module")
def gappy_index(demo_index, pictureless, tmp_path_factory) -> Path:
    """The demo index rewritten with no thumbnail for a few items (as a builder does for an unreadable picture)."""
    from stylishi import index as faiss_index

    root = tmp_path_factory.mktemp("gappy") / "index"
    cat = catalog_mod.load(demo_index)
    vectors = faiss_index.reconstruct(cat.index, list(range(len(cat))))
    items = cat.items.drop(columns=["thumbnail"])
    jpegs = cat.thumbnails.column("jpeg").to_pylist()
    thumbnails = [None if item_id in pictureless else data for item_id, data in zip(items["id"], jpegs)]
    catalog_mod.write(root, vectors=vectors, items=items, thumbnails=thumbnails, model=cat.manifest["model"],
                      factory="Flat")
    shutil.copytree(demo_index / "model", root / "model")
    return root


@pytest.fixture(scope="module")
def gappy_server(gappy_index, tmp_path_factory):
    with running_app(gappy_index, tmp_path_factory.mktemp("gappy-app")) as running:
        yield running


def test_missing_thumbnails_are_served_as_a_placeholder(gappy_server, pictureless):
    with httpx.Client(base_url=gappy_server.url, timeout=60) as http:
        for item in [ANCHOR]:
            kind, (gallery, results) = http_call(http, "more_like_this", [item, 5, None])
            # The item itself is left out; its picture-less neighbours come back, only their pictures missing.
            assert kind == "complete" and item not in {r["id"] for r in results}
            gaps = [(r, g) for r, g in zip(results, gallery) if r["id"] in pictureless]
            assert len(gaps) == 2 and all(r["thumbnail"].endswith("/_missing.jpg") and g["image"]["path"].endswith(
                "/_missing.jpg") for r, g in gaps)
            others = [r for r in results if r["id"] not in pictureless]
            assert others and all(r["thumbnail"].endswith(f"/{r['id']}.jpg") for r in others)
            card = http.get(gaps[0][0]["thumbnail"])
            assert card.status_code == 200 and card.headers["content-type"] == "image/jpeg"
            assert Image.open(io.BytesIO(card.content)).size == (128, 128)


def test_a_wiped_thumbnail_cache_is_unpacked_again_while_serving(gappy_server, gappy_index):
    with httpx.Client(base_url=gappy_server.url, timeout=60) as http:
        kind, (_, results) = http_call(http, "more_like_this", ["demo-0100", 3, None])
        # The thumbnail folder (URLs name no server folder: /media/thumbs/<name>), as stylishi.catalog places it.
        manifest = catalog_mod.read_manifest(gappy_index)
        folder = cache_dir() / "thumbs" / manifest["files"][catalog_mod.THUMBS_FILE]["sha256"][:16]
        assert (folder / Path(results[0]["thumbnail"]).name).is_file()
        shutil.rmtree(folder)  # e.g. a temp cleaner, or a disk swap, under a running app
        kind, (_, results) = http_call(http, "more_like_this", ["demo-0100", 3, None])
        assert kind == "complete" and len(results) == 3
        for r in results:
            assert http.get(r["thumbnail"]).status_code == 200
        kind, (_, results) = http_call(http, "more_like_this", ["demo-0001", 1, None])
        assert kind == "complete" and http.get(results[0]["thumbnail"]).status_code == 200  # placeholder made again
    assert gappy_server.proc.poll() is None and "Traceback" not in gappy_server.log_text()


# -- CACHE: a Hub download in the Hugging Face cache, with the Hub away (its stand-in scenarios live in test_hub) ------
def _as_cached_download(index: Path, cache: Path, repo: str) -> tuple[Path, Path]:
    """The index laid out as huggingface_hub caches a dataset repo: blobs, one snapshot of symlinks, refs/main."""
    import hashlib

    sha = hashlib.sha1(repo.encode()).hexdigest()
    folder = cache / ("datasets--" + repo.replace("/", "--"))
    snapshot = folder / "snapshots" / sha
    for path in sorted(p for p in index.rglob("*") if p.is_file() and "catalog_images" not in p.parts):
        blob = folder / "blobs" / hashlib.sha256(path.read_bytes()).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, blob)
        link = snapshot / path.relative_to(index)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(blob)
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(sha)
    return snapshot, folder / "blobs"


def test_a_cached_download_is_served_offline_and_a_damaged_one_is_refused_and_evicted(demo_index, tmp_path,
                                                                                       monkeypatch):
    from huggingface_hub import constants

    from stylishi.errors import StyliShiError
    from stylishi.startup import open_service

    assert constants.HF_HUB_OFFLINE  # tests/conftest.py: the Hub is away for the whole session
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    snapshot, blobs = _as_cached_download(demo_index, tmp_path / "hub", "owner/idx")
    service = open_service("owner/idx", fallback=False, device="cpu", mode="fp32")
    assert service.source == f"owner/idx@{snapshot.name}" and len(service.catalog) == 1200
    assert service.search_image(demo_index / "catalog_images" / "demo-0042.png", k=1).results[0].id == "demo-0042"

    damaged = (snapshot / "index.faiss").resolve()
    _edit_bytes(damaged, _flip)
    with pytest.raises(StyliShiError) as refused:
        open_service("owner/idx", fallback=False, device="cpu", mode="fp32")
    assert re.search(r"index\.faiss is corrupted", str(refused.value)), refused.value
    assert not damaged.exists() and not (snapshot / "index.faiss").is_symlink()  # evicted: fetched again next time
    assert (snapshot / "items.parquet").resolve().parent == blobs  # the healthy files stay cached

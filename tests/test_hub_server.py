"""The Hub stand-in (tests/hub_server.py) against the real huggingface_hub and datasets.

Client code runs in a subprocess so that HF_ENDPOINT / HF_HOME are set before those libraries
are imported (they read them once, at import).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.hub_server import HubStandIn, git_blob_sha1

HUB_SERVER = Path(__file__).resolve().parent / "hub_server.py"

README_DATASET = b"""---
dataset_info:
  features:
  - name: image
    dtype: image
  - name: label
    dtype: string
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*
---
# Tiny image set
"""


def _png(color: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 6), color).save(buf, format="PNG")
    return buf.getvalue()


def _parquet_shard(colors: list[str]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])), ("label", pa.string())]
    )
    rows = [{"image": {"bytes": _png(c), "path": f"{c}.png"}, "label": c} for c in colors]
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), buf, row_group_size=1)
    return buf.getvalue()


@pytest.fixture(scope="module")
def hub():
    with HubStandIn() as server:
        yield server


def run_client(hub: HubStandIn, tmp_path: Path, code: str, **extra_env: str):
    """Run ``code`` in a fresh interpreter pointed at the stand-in; return the JSON it printed last."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(
        HF_ENDPOINT=hub.url,
        HF_HOME=str(tmp_path / "hf_home"),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_DATASETS_DISABLE_PROGRESS_BARS="1",
        NO_PROXY="*",
        no_proxy="*",
    )
    env.update(extra_env)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"client failed:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _http(hub: HubStandIn, method: str, path: str, headers: dict | None = None):
    req = urllib.request.Request(hub.url + path, method=method, headers=headers or {})
    try:
        with _NO_PROXY_OPENER.open(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


# ---------------------------------------------------------------------- protocol (no client library)


def test_protocol_headers_ranges_and_errors(hub):
    data = bytes(range(256)) * 4
    sha = hub.add_repo("proto/files", files={"a/b.bin": data, "c.txt": b"hello"})

    status, headers, body = _http(hub, "HEAD", "/proto/files/resolve/main/a/b.bin")
    assert status == 200 and body == b""
    assert headers["X-Repo-Commit"] == sha
    assert headers["ETag"] == f'"{git_blob_sha1(data)}"'
    assert int(headers["Content-Length"]) == len(data)
    assert "X-Xet-Hash" not in headers and "xet" not in headers.get("Link", "")

    status, headers, body = _http(hub, "GET", f"/proto/files/resolve/{sha}/a/b.bin", {"Range": "bytes=10-19"})
    assert status == 206 and body == data[10:20] and headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    assert _http(hub, "GET", "/proto/files/resolve/main/c.txt", {"Range": "bytes=-2"})[2] == b"lo"
    assert _http(hub, "GET", "/proto/files/resolve/main/c.txt", {"Range": "bytes=99-"})[0] == 416

    status, headers, _ = _http(hub, "HEAD", "/proto/files/resolve/main/nope.txt")
    assert (status, headers["X-Error-Code"], headers["X-Repo-Commit"]) == (404, "EntryNotFound", sha)
    assert _http(hub, "HEAD", "/proto/nope/resolve/main/c.txt")[1]["X-Error-Code"] == "RepoNotFound"
    assert _http(hub, "GET", "/api/models/proto/files/revision/v9")[1]["X-Error-Code"] == "RevisionNotFound"
    assert _http(hub, "GET", "/api/datasets/proto/files")[1]["X-Error-Code"] == "RepoNotFound"  # it is a model
    assert _http(hub, "GET", "/api/whoami-v2")[0] == 401
    assert json.loads(_http(hub, "GET", "/api/whoami-v2", {"Authorization": "Bearer hf_x"})[2])["name"] == "tester"

    tree = json.loads(_http(hub, "GET", f"/api/models/proto/files/tree/{sha}?recursive=true")[2])
    assert {(e["type"], e["path"]) for e in tree} == {("directory", "a"), ("file", "a/b.bin"), ("file", "c.txt")}

    # Corruption: other bytes of the same size, advertised metadata unchanged.
    hub.corrupt("proto/files", "model", "c.txt")
    status, headers, body = _http(hub, "GET", "/proto/files/resolve/main/c.txt")
    assert status == 200 and len(body) == 5 and body != b"hello"
    assert headers["ETag"] == f'"{git_blob_sha1(b"hello")}"' != f'"{git_blob_sha1(body)}"'

    hub.clear_requests()
    assert hub.requests == []
    _http(hub, "GET", "/api/models/proto/files/tree/main%2Fx")
    assert hub.requests == [("GET", "/api/models/proto/files/tree/main/x")]


def test_lfs_sized_files_are_advertised_with_sha256(hub):
    big = os.urandom(hub.lfs_threshold + 1)
    hub.add_repo("proto/big", files={"w.bin": big})
    _, headers, _ = _http(hub, "HEAD", "/proto/big/resolve/main/w.bin")
    digest = hashlib.sha256(big).hexdigest()
    assert headers["ETag"] == f'"{digest}"' and headers["X-Linked-Size"] == str(len(big))
    (entry,) = json.loads(_http(hub, "GET", "/api/models/proto/big/tree/main")[2])
    assert entry["lfs"]["oid"] == digest and entry["size"] == len(big)


def test_cli_serves_folders(tmp_path):
    (tmp_path / "m" / "sub").mkdir(parents=True)
    (tmp_path / "m" / "sub" / "x.txt").write_bytes(b"from a folder")
    proc = subprocess.Popen(
        [sys.executable, str(HUB_SERVER), "--port", "0", "--repo", f"dataset:me/idx={tmp_path / 'm'}"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = None
        for line in proc.stdout:
            if "HF_ENDPOINT=" in line:
                url = line.split("HF_ENDPOINT=")[1].strip(" )\n")
                break
        assert url
        with _NO_PROXY_OPENER.open(url + "/datasets/me/idx/resolve/main/sub/x.txt", timeout=10) as r:
            assert r.read() == b"from a folder"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ---------------------------------------------------------------------- real huggingface_hub


def test_hf_hub_download(hub, tmp_path):
    sha = hub.add_repo("acme/clip-tiny", files={"config.json": b'{"hidden": 8}', "docs/notes.md": b"# notes"})
    hub.clear_requests()
    out = run_client(
        hub,
        tmp_path,
        """
        import json
        from huggingface_hub import hf_hub_download
        p = hf_hub_download("acme/clip-tiny", "docs/notes.md")
        print(json.dumps({"path": p, "text": open(p).read()}))
        """,
    )
    assert out["text"] == "# notes"
    assert f"/snapshots/{sha}/docs/notes.md" in out["path"]
    assert ("HEAD", "/acme/clip-tiny/resolve/main/docs/notes.md") in hub.requests
    assert ("GET", "/acme/clip-tiny/resolve/main/docs/notes.md") in hub.requests


def test_snapshot_download_main_and_pinned_sha(hub, tmp_path):
    old = hub.add_repo("acme/index", files={"index.faiss": b"v1-index", "meta/ids.json": b"[1, 2]"})
    new = hub.commit("acme/index", "model", files={"index.faiss": b"v2-index!"}, delete=["meta/ids.json"])
    assert old != new and hub.head_sha("acme/index") == new
    out = run_client(
        hub,
        tmp_path,
        f"""
        import json, os
        from huggingface_hub import snapshot_download

        def read(d):
            return {{os.path.relpath(os.path.join(r, f), d): open(os.path.join(r, f), "rb").read().decode()
                    for r, _, fs in os.walk(d) for f in fs}}

        main = snapshot_download("acme/index")
        pinned = snapshot_download("acme/index", revision="{old}")
        print(json.dumps({{"main": main, "pinned": pinned, "main_files": read(main), "pinned_files": read(pinned)}}))
        """,
    )
    assert out["main"].endswith(new) and out["pinned"].endswith(old)
    assert out["main_files"] == {"index.faiss": "v2-index!"}
    assert out["pinned_files"] == {"index.faiss": "v1-index", os.path.join("meta", "ids.json"): "[1, 2]"}


def test_corrupted_file_keeps_metadata_and_fails_checksum_verification(hub, tmp_path):
    hub.add_repo("acme/weights", files={"w.bin": b"\x01" * 1000, "ok.txt": b"fine"})
    hub.corrupt("acme/weights", "model", "w.bin")
    out = run_client(
        hub,
        tmp_path,
        """
        import json
        from huggingface_hub import HfApi, hf_hub_download
        p = hf_hub_download("acme/weights", "w.bin")  # same size => huggingface_hub itself accepts it
        check = HfApi().verify_repo_checksums("acme/weights")
        print(json.dumps({"first": open(p, "rb").read()[:1].hex(), "mismatches": [m["path"] for m in check.mismatches]}))
        """,
    )
    assert out == {"first": "fe", "mismatches": ["w.bin"]}


def test_missing_repo_revision_and_file_raise_the_right_errors(hub, tmp_path):
    hub.add_repo("acme/present", files={"a.txt": b"a"})
    out = run_client(
        hub,
        tmp_path,
        """
        import json
        from huggingface_hub import hf_hub_download, snapshot_download
        from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError
        seen = {}
        for name, call in {
            "download_missing_repo": lambda: hf_hub_download("acme/absent", "a.txt"),
            "snapshot_missing_repo": lambda: snapshot_download("acme/absent"),
            "missing_revision": lambda: snapshot_download("acme/present", revision="nope"),
            "missing_file": lambda: hf_hub_download("acme/present", "b.txt"),
        }.items():
            try:
                call()
                seen[name] = None
            except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as e:
                seen[name] = type(e).__name__
        print(json.dumps(seen))
        """,
    )
    assert out == {
        "download_missing_repo": "RepositoryNotFoundError",
        "snapshot_missing_repo": "RepositoryNotFoundError",
        "missing_revision": "RevisionNotFoundError",
        "missing_file": "RemoteEntryNotFoundError",
    }


def test_create_repo_and_upload_folder_then_download(hub, tmp_path):
    folder = tmp_path / "to_upload"
    (folder / "shards").mkdir(parents=True)
    (folder / "shards" / "part-0.bin").write_bytes(os.urandom(2048))
    (folder / "manifest.json").write_text('{"n": 1}')
    out = run_client(
        hub,
        tmp_path,
        f"""
        import json, os
        from huggingface_hub import HfApi, snapshot_download
        api = HfApi(token="hf_test")
        url = api.create_repo("tester/uploaded", repo_type="dataset")
        again = api.create_repo("tester/uploaded", repo_type="dataset", exist_ok=True)
        try:
            api.create_repo("tester/uploaded", repo_type="dataset")
            conflict = None
        except Exception as e:
            conflict = getattr(getattr(e, "response", None), "status_code", None)
        info = api.upload_folder(repo_id="tester/uploaded", repo_type="dataset", folder_path={str(folder)!r})
        d = snapshot_download("tester/uploaded", repo_type="dataset")
        files = {{os.path.relpath(os.path.join(r, f), d): os.path.getsize(os.path.join(r, f))
                 for r, _, fs in os.walk(d) for f in fs}}
        print(json.dumps({{"url": str(url), "again": str(again), "conflict": conflict, "oid": info.oid, "files": files,
                          "user": api.whoami()["name"]}}))
        """,
    )
    assert out["url"] == out["again"] == f"{hub.url}/datasets/tester/uploaded"
    assert out["conflict"] == 409 and out["user"] == "tester"
    assert out["oid"] == hub.head_sha("tester/uploaded", "dataset")
    assert out["files"] == {"manifest.json": 8, os.path.join("shards", "part-0.bin"): 2048}
    assert hub.files_at("tester/uploaded", "dataset")["manifest.json"] == b'{"n": 1}'
    assert not any("lfs" in path or "xet" in path for _, path in hub.requests)


# ---------------------------------------------------------------------- real datasets


@pytest.mark.slow
def test_load_dataset_streaming_and_not_yields_pil_images(hub, tmp_path):
    colors = ["red", "green", "blue"]
    hub.add_repo(
        "acme/tiny-images",
        "dataset",
        files={"README.md": README_DATASET, "data/train-00000-of-00001.parquet": _parquet_shard(colors)},
    )
    hub.clear_requests()
    out = run_client(
        hub,
        tmp_path,
        """
        import json
        import datasets
        from PIL import Image
        result = {}
        for streaming in (True, False):
            ds = datasets.load_dataset("acme/tiny-images", split="train", streaming=streaming)
            rows = list(ds)
            result[str(streaming)] = {
                "features": str(ds.features["image"]),
                "labels": [r["label"] for r in rows],
                "images": [isinstance(r["image"], Image.Image) and r["image"].size == (8, 6) for r in rows],
                "pixel": list(rows[0]["image"].convert("RGB").getpixel((0, 0))),
            }
        print(json.dumps(result))
        """,
    )
    for streaming in ("True", "False"):
        assert out[streaming]["labels"] == colors
        assert out[streaming]["images"] == [True] * 3
        assert out[streaming]["pixel"] == [255, 0, 0]
        assert out[streaming]["features"].startswith("Image(")
    shard = "/datasets/acme/tiny-images/resolve/"
    assert any(m == "GET" and p.startswith(shard) and p.endswith(".parquet") for m, p in hub.requests)


@pytest.mark.slow
def test_lfs_upload_mode_serves_datasets_push_to_hub(tmp_path):
    with HubStandIn() as hub:
        hub.upload_mode = "lfs"
        out = run_client(
            hub,
            tmp_path,
            """
            import json
            import datasets
            datasets.Dataset.from_dict({"x": [1, 2, 3]}).push_to_hub("tester/pushed", token="hf_test")
            print(json.dumps({"ok": True}))
            """,
            HF_HUB_DISABLE_XET="1",
        )
        assert out == {"ok": True}
        files = hub.files_at("tester/pushed", "dataset")
        assert any(p.startswith("data/train-") and p.endswith(".parquet") for p in files)
        assert any(m == "PUT" and p.startswith("/_lfs/upload/") for m, p in hub.requests)

        import pyarrow.parquet as pq

        (shard,) = [d for p, d in files.items() if p.endswith(".parquet")]
        assert pq.read_table(io.BytesIO(shard)).column("x").to_pylist() == [1, 2, 3]

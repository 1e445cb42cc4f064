"""Helpers shared by the test files: free ports, Gradio's HTTP API, and the app started the way production starts it.

Test files import from here (`from tests.helpers import ...`), never from each other.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_call(http: httpx.Client, api_name: str, data: list) -> tuple[str, object]:
    """POST /gradio_api/call/<name>, then read its event stream: ("complete", outputs) or ("error", message)."""
    event_id = http.post(f"/gradio_api/call/{api_name}", json={"data": data}).json()["event_id"]
    kind, payload = None, None
    with http.stream("GET", f"/gradio_api/call/{api_name}/{event_id}") as stream:
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind in ("complete", "error"):
                payload = json.loads(line[6:])
                break
    return kind, payload


@dataclass
class RunningApp:
    url: str
    log: Path
    uploads: Path  # GRADIO_TEMP_DIR: Gradio's upload cache for this server
    proc: subprocess.Popen

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def running_app(index: Path | str, workdir: Path, *args: str, env: dict | None = None, timeout: float = 120):
    """`python app.py --index INDEX --no-fallback` on a free loopback port, with its own upload cache and log."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    uploads = workdir / "gradio-uploads"
    log_path = workdir / "app.log"
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_TEMP_DIR": str(uploads), "PYTHONUNBUFFERED": "1", "STYLISHI_EMBED_MODE": "fp32", **(env or {})}
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--index", str(index), "--device", "cpu",
                                 "--no-fallback", *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while "StyliShi ready" not in log_path.read_text(errors="replace"):
            if proc.poll() is not None:
                pytest.fail(f"app.py exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"app.py did not start in {timeout:.0f} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        yield RunningApp(f"http://127.0.0.1:{port}", log_path, uploads, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def sandbox_env(root: Path) -> dict[str, str]:
    """HOME, TMPDIR, the Hub cache and StyliShi's cache as fresh folders under `root`: whatever the app writes shows
    there, and only there."""
    env = {name: str(root / name.lower()) for name in ("HOME", "TMPDIR", "HF_HOME", "STYLISHI_CACHE")}
    for folder in env.values():
        Path(folder).mkdir()
    return env


def api_client(url: str, **kwargs):
    """A quiet gradio_client for a running app."""
    from gradio_client import Client

    return Client(url, verbose=False, analytics_enabled=False, **kwargs)


def upload_bytes(http: httpx.Client, name: str, data: bytes) -> httpx.Response:
    """Gradio's upload route, as a browser calls it."""
    return http.post("/gradio_api/upload", files={"files": (name, data, "application/octet-stream")})


def file_data(path: str, name: str) -> dict:
    """The FileData a Gradio client sends for an uploaded file."""
    return {"path": path, "meta": {"_type": "gradio.FileData"}, "orig_name": name}


def files_in(folder: Path) -> list[Path]:
    """The files under `folder` now; one that a janitor removes during the walk is simply not counted."""
    return [Path(root) / name for root, _, names in os.walk(folder) for name in names
            if (Path(root) / name).is_file()]


def wait_until(condition: Callable[[], bool], timeout: float = 15, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True

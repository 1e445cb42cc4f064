"""A small local stand-in for the Hugging Face Hub HTTP API (stdlib only).

It speaks enough of the Hub protocol for the *real* ``huggingface_hub``
(``hf_hub_download``, ``snapshot_download``, ``HfApi().create_repo``,
``HfApi().upload_folder``, ``HfFileSystem``) and ``datasets.load_dataset``
(streaming and not) to work against it when ``HF_ENDPOINT`` points at
``HubStandIn.url``. ``HF_ENDPOINT`` is read once when those libraries are
imported, so set it before importing them (e.g. run the client code in a
subprocess).

Usage in tests::

    from tests.hub_server import HubStandIn

    with HubStandIn() as hub:
        sha = hub.add_repo("owner/model", files={"config.json": b"{}"})
        ...  # subprocess with HF_ENDPOINT=hub.url, HF_HOME=<tmp>
        assert ("GET", "/api/models/owner/model/revision/main") in hub.requests

From the command line::

    python tests/hub_server.py --port 8765 \\
        --repo model:owner/name=/path/to/folder --repo dataset:owner/idx=/path

What it implements (all state lives in memory):

* ``HEAD``/``GET /{prefix}{repo}/resolve/{rev}/{path}`` (prefix ``""`` for models,
  ``datasets/`` and ``spaces/``), also ``/raw/``: ``X-Repo-Commit``, ``ETag``
  (git blob sha1, or sha256 for files above ``lfs_threshold``), ``X-Linked-Size``,
  ``X-Linked-Etag``, ``Accept-Ranges``, ``Range`` -> 206/416.
* ``GET /api/{type}s/{repo}`` and ``/api/{type}s/{repo}/revision/{rev}`` (info with siblings).
* ``GET /api/{type}s/{repo}/tree/{rev}[/{path}]?recursive=&expand=`` with ``Link`` pagination.
* ``POST /api/{type}s/{repo}/paths-info/{rev}``.
* ``GET /api/{type}s/{repo}/refs`` and ``/commits/{rev}`` (history of a branch or sha).
* ``POST /api/repos/create`` (409 if it exists), ``DELETE /api/repos/delete``.
* ``POST /api/{type}s/{repo}/preupload/{rev}`` (answers ``uploadMode: regular`` by default, so
  neither LFS nor Xet transfer is used) and ``POST /api/{type}s/{repo}/commit/{rev}`` (NDJSON).
  With ``hub.upload_mode = "lfs"``: ``POST /{prefix}{repo}.git/info/lfs/objects/batch`` (basic
  transfer), ``PUT /_lfs/upload/{sha256}``, ``POST /_lfs/verify/{sha256}`` (clients need
  ``HF_HUB_DISABLE_XET=1``).
* ``GET /api/whoami-v2`` (user ``tester`` when an ``Authorization`` header is present, else 401).
* ``GET /api/agent-harnesses`` (empty registry), ``/api/telemetry/...`` and
  ``POST /api/validate-yaml`` (always fine).
* 404s carry ``X-Error-Code: RepoNotFound | RevisionNotFound | EntryNotFound``.

Not implemented: Xet (never advertised: no ``X-Xet-Hash`` header / ``xet-auth`` link), LFS
multipart uploads and LFS batch downloads, pull requests, tags and other branches, gated or
private repos (everything is public; only writes need an ``Authorization`` header, any token).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

__all__ = ["HubStandIn", "main"]

REPO_TYPES = ("model", "dataset", "space")
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_PREFIX_TO_TYPE = {"datasets": "dataset", "spaces": "space"}
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")
_DEFAULT_USER = "tester"


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob holding ``data`` (what the Hub calls ``oid`` / ``blob_id``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class _Blob:
    data: bytes
    oid: str  # git blob sha1 of the content
    sha256: str

    @classmethod
    def of(cls, data: bytes) -> "_Blob":
        data = bytes(data)
        return cls(data=data, oid=git_blob_sha1(data), sha256=hashlib.sha256(data).hexdigest())


@dataclass
class _Commit:
    sha: str
    parent: str | None
    files: dict[str, _Blob]
    title: str
    date: float


@dataclass
class _Repo:
    repo_id: str
    repo_type: str
    created: float
    commits: dict[str, _Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)


class _HubError(ValueError):
    def __init__(
        self, status: int, message: str, code: str | None = None, headers: dict | None = None, extra: dict | None = None
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}
        self.extra = extra or {}


class HubStandIn:
    """An in-memory Hugging Face Hub served over HTTP from a daemon thread."""

    #: Files strictly larger than this are advertised as LFS files (tree ``lfs`` field, sha256 ETag).
    lfs_threshold: int = 1024 * 1024
    #: What ``preupload`` answers: ``"regular"`` (default: content travels base64 in the commit, works with
    #: or without ``hf_xet``) or ``"lfs"`` (every file goes through the LFS batch API + a basic PUT; the
    #: client then needs ``HF_HUB_DISABLE_XET=1``, since with ``hf_xet`` installed it would try Xet storage
    #: for LFS files). ``datasets``' ``push_to_hub`` needs ``"lfs"``: it deletes its shard files after
    #: the pre-upload step.
    upload_mode: str = "regular"
    #: Entries per page of a tree listing (the Hub uses 1000); further pages via the ``Link`` header.
    tree_page_size: int = 1000

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._host = host
        self._port = port
        self._lock = threading.RLock()
        self._repos: dict[tuple[str, str], _Repo] = {}
        self._corrupt: dict[tuple[str, str, str], bytes] = {}
        self._lfs_objects: dict[str, bytes] = {}  # sha256 -> content, from LFS uploads
        self._counter = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.requests: list[tuple[str, str]] = []
        self.verbose = False
        self.url = ""
        self._bind()  # the port (and so ``url``) is known before ``start()``

    # ------------------------------------------------------------------ lifecycle

    def _bind(self) -> None:
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True
            address_family = socket.AF_INET6 if ":" in self._host else socket.AF_INET

            def handle_error(self, request, client_address):
                if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
                    return  # a client hung up (e.g. after a Range read): not worth a traceback
                super().handle_error(request, client_address)

        self._server = Server((self._host, self._port), Handler)
        host, port = self._server.server_address[:2]
        self._port = port  # a restart after stop() reuses the same port
        display_host = f"[{host}]" if ":" in host else host
        self.url = f"http://{display_host}:{port}"

    def start(self) -> "HubStandIn":
        """Serve from a daemon thread (idempotent)."""
        if self._thread is not None:
            return self
        if self._server is None:
            self._bind()
        self._thread = threading.Thread(target=self._server.serve_forever, name="hub-stand-in", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()
        self._server = None
        self._thread = None

    def __enter__(self) -> "HubStandIn":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Block until interrupted (used by :func:`main`)."""
        self.start()
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    # ------------------------------------------------------------------ state API

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def add_repo(
        self,
        repo_id: str,
        repo_type: str = "model",
        files: dict[str, bytes] | None = None,
        folder: str | Path | None = None,
    ) -> str:
        """Create (or add a new commit to) a repo whose tree is exactly these files.

        ``folder`` is read recursively (paths relative to it, ``/``-separated, ``.git`` skipped);
        ``files`` entries win over folder entries with the same path. Returns the new 40-hex commit
        sha; ``main`` moves to it and older commits stay addressable by sha.
        """
        tree: dict[str, bytes] = {}
        if folder is not None:
            tree.update(_read_folder(Path(folder)))
        tree.update(files or {})
        with self._lock:
            repo = self._get_or_create(repo_id, repo_type)
            return self._new_commit(repo, "main", {_clean_path(p): _Blob.of(d) for p, d in tree.items()}, "Add files")

    def commit(
        self,
        repo_id: str,
        repo_type: str = "model",
        files: dict[str, bytes] | None = None,
        delete: list[str] | tuple[str, ...] = (),
    ) -> str:
        """New commit on ``main`` of an existing repo: add/overwrite ``files``, remove ``delete``
        (a path, or a folder prefix ending with ``/``). Returns the new sha."""
        with self._lock:
            repo = self._repo(repo_id, repo_type)
            head = repo.commits[repo.branches["main"]]
            tree = dict(head.files)
            for path in delete:
                _delete_path(tree, path)
            for path, data in (files or {}).items():
                tree[_clean_path(path)] = _Blob.of(data)
            return self._new_commit(repo, "main", tree, "Update files")

    def corrupt(self, repo_id: str, repo_type: str, path: str, data: bytes | None = None) -> None:
        """Serve ``data`` instead of the real content of ``path`` (in every revision), while the
        advertised ETag, oid, sha256 and size stay those of the original. Without ``data`` the
        content of ``main`` is served with every byte flipped (same size)."""
        with self._lock:
            repo = self._repo(repo_id, repo_type)
            if data is None:
                blob = repo.commits[repo.branches["main"]].files.get(_clean_path(path))
                if blob is None:
                    raise KeyError(f"{path} not in {repo_type} {repo_id}@main")
                data = bytes(b ^ 0xFF for b in blob.data) if blob.data else b"\0"
            self._corrupt[(repo_type, repo_id, _clean_path(path))] = bytes(data)

    def uncorrupt(self, repo_id: str, repo_type: str, path: str) -> None:
        with self._lock:
            self._corrupt.pop((repo_type, repo_id, _clean_path(path)), None)

    def head_sha(self, repo_id: str, repo_type: str = "model", branch: str = "main") -> str:
        with self._lock:
            return self._repo(repo_id, repo_type).branches[branch]

    def files_at(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> dict[str, bytes]:
        """The files of a repo at a revision (for assertions)."""
        with self._lock:
            commit = self._resolve(self._repo(repo_id, repo_type), revision)
            return {p: b.data for p, b in commit.files.items()}

    def has_repo(self, repo_id: str, repo_type: str = "model") -> bool:
        with self._lock:
            return (repo_type, repo_id) in self._repos

    # ------------------------------------------------------------------ internals

    def _get_or_create(self, repo_id: str, repo_type: str) -> _Repo:
        if repo_type not in REPO_TYPES:
            raise ValueError(f"repo_type must be one of {REPO_TYPES}, not {repo_type!r}")
        key = (repo_type, repo_id)
        if key not in self._repos:
            self._repos[key] = _Repo(repo_id=repo_id, repo_type=repo_type, created=time.time())
        return self._repos[key]

    def _repo(self, repo_id: str, repo_type: str) -> _Repo:
        repo = self._repos.get((repo_type, repo_id))
        if repo is None:
            raise _HubError(404, f"Repository not found: {repo_type} {repo_id}", "RepoNotFound")
        return repo

    def _new_commit(self, repo: _Repo, branch: str, files: dict[str, _Blob], title: str) -> str:
        self._counter += 1
        parent = repo.branches.get(branch)
        seed = f"{repo.repo_type}/{repo.repo_id}|{parent}|{self._counter}|{time.time_ns()}|" + ",".join(
            f"{p}:{b.oid}" for p, b in sorted(files.items())
        )
        sha = hashlib.sha1(seed.encode()).hexdigest()
        repo.commits[sha] = _Commit(sha=sha, parent=parent, files=dict(files), title=title, date=time.time())
        repo.branches[branch] = sha
        return sha

    def _resolve(self, repo: _Repo, revision: str) -> _Commit:
        if revision in repo.branches:
            return repo.commits[repo.branches[revision]]
        if _SHA_RE.match(revision) and revision in repo.commits:
            return repo.commits[revision]
        if re.fullmatch(r"[0-9a-f]{7,39}", revision):
            matches = [c for sha, c in repo.commits.items() if sha.startswith(revision)]
            if len(matches) == 1:
                return matches[0]
        raise _HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def _is_lfs(self, blob: _Blob) -> bool:
        return len(blob.data) > self.lfs_threshold

    def _etag(self, blob: _Blob) -> str:
        return blob.sha256 if self._is_lfs(blob) else blob.oid

    def _file_entry(self, path: str, blob: _Blob) -> dict:
        entry: dict = {"type": "file", "path": path, "size": len(blob.data), "oid": blob.oid}
        if self._is_lfs(blob):
            pointer = _lfs_pointer(blob.sha256, len(blob.data))
            entry["oid"] = git_blob_sha1(pointer)
            entry["lfs"] = {"oid": blob.sha256, "size": len(blob.data), "pointerSize": len(pointer)}
        return entry

    def _dir_entry(self, commit: _Commit, path: str) -> dict:
        listing = ",".join(f"{p}:{b.oid}" for p, b in sorted(commit.files.items()) if p.startswith(path + "/"))
        return {"type": "directory", "path": path, "oid": hashlib.sha1(listing.encode()).hexdigest(), "size": 0}

    def _last_commit(self, commit: _Commit) -> dict:
        return {"id": commit.sha, "title": commit.title, "date": _iso(commit.date)}

    def _tree(self, commit: _Commit, path: str, recursive: bool) -> list[dict]:
        path = path.strip("/")
        if path and path in commit.files:
            raise _HubError(404, f"{path} is a file, not a directory", "EntryNotFound")
        prefix = path + "/" if path else ""
        dirs: set[str] = set()
        files: list[str] = []
        for p in commit.files:
            if not p.startswith(prefix):
                continue
            rest = p[len(prefix):]
            parts = rest.split("/")
            if len(parts) == 1:
                files.append(p)
            else:
                limit = len(parts) if recursive else 2
                for i in range(1, limit):
                    dirs.add(prefix + "/".join(parts[:i]))
                if recursive:
                    files.append(p)
        if path and not files and not dirs:
            raise _HubError(404, f"Entry not found: {path}", "EntryNotFound")
        entries = [self._dir_entry(commit, d) for d in dirs] + [self._file_entry(p, commit.files[p]) for p in files]
        entries.sort(key=lambda e: (e["path"].count("/"), e["type"] != "directory", e["path"]))
        return entries

    def _info(self, repo: _Repo, commit: _Commit, blobs: bool) -> dict:
        siblings = []
        for p in sorted(commit.files):
            sib: dict = {"rfilename": p}
            if blobs:
                blob = commit.files[p]
                sib["size"] = len(blob.data)
                sib["blobId"] = self._file_entry(p, blob)["oid"]
                if self._is_lfs(blob):
                    pointer = _lfs_pointer(blob.sha256, len(blob.data))
                    sib["lfs"] = {"size": len(blob.data), "sha256": blob.sha256, "pointerSize": len(pointer)}
            siblings.append(sib)
        author = repo.repo_id.split("/")[0] if "/" in repo.repo_id else None
        info = {
            "_id": hashlib.md5(f"{repo.repo_type}/{repo.repo_id}".encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": author,
            "sha": commit.sha,
            "lastModified": _iso(commit.date),
            "createdAt": _iso(repo.created),
            "private": False,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
            "usedStorage": sum(len(b.data) for b in commit.files.values()),
        }
        if repo.repo_type == "space":
            info["sdk"] = "gradio"
            info["runtime"] = {"stage": "RUNNING", "hardware": {"current": "cpu-basic", "requested": "cpu-basic"}}
        return info


class _Handler(BaseHTTPRequestHandler):
    hub: HubStandIn
    protocol_version = "HTTP/1.1"
    server_version = "HubStandIn/1.0"

    # -------------------------------------------------------------- plumbing

    def log_message(self, format, *args):  # noqa: A002 - signature from BaseHTTPRequestHandler
        if self.hub.verbose:
            sys.stderr.write(f"[hub] {self.address_string()} {format % args}\n")

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                line = self.rfile.readline().strip()
                size = int(line.split(b";")[0] or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, content_type: str | None = None):
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            self.send_header(k, str(v).encode("latin-1", "backslashreplace").decode("latin-1"))
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _json(self, obj, status: int = 200, headers: dict | None = None):
        self._send(status, json.dumps(obj).encode(), headers, "application/json; charset=utf-8")

    def _dispatch(self, method: str):
        split = urlsplit(self.path)
        raw_path = split.path
        query = parse_qs(split.query, keep_blank_values=True)
        with self.hub._lock:
            self.hub.requests.append((method, unquote(raw_path)))
        try:
            body = self._read_body() if method in ("POST", "PUT", "DELETE") else b""
            self._route(method, raw_path, query, body)
        except _HubError as e:
            headers = dict(e.headers)
            if e.code:
                headers["X-Error-Code"] = e.code
            headers["X-Error-Message"] = e.message
            self._json({"error": e.message, **e.extra}, e.status, headers)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:  # a bug in the stand-in: say so loudly
            import traceback

            traceback.print_exc()
            self.close_connection = True
            try:
                self._json({"error": f"stand-in error: {type(e).__name__}: {e}"}, 500)
            except Exception:
                pass

    # -------------------------------------------------------------- routing

    def _route(self, method: str, raw_path: str, query: dict, body: bytes):
        segs = [unquote(s) for s in raw_path.strip("/").split("/")] if raw_path.strip("/") else []
        hub = self.hub

        if segs[:1] == ["api"]:
            return self._route_api(method, segs[1:], query, body)
        if len(segs) == 3 and segs[0] == "_lfs" and segs[1] in ("upload", "verify"):
            return self._lfs_object(method, segs[1], segs[2], body)

        # /{prefix}{repo}/resolve/{rev}/{path}  and  /raw/
        repo_type = "model"
        if segs and segs[0] in _PREFIX_TO_TYPE and len(segs) > 1:
            # "datasets/owner/name/resolve/..." (a model owned by "datasets" is not allowed on the Hub)
            repo_type = _PREFIX_TO_TYPE[segs[0]]
            segs = segs[1:]
        for n in (2, 1):
            if segs[n:] == ["info", "lfs", "objects", "batch"] and segs[n - 1].endswith(".git") and method == "POST":
                repo_id = "/".join(segs[:n])[: -len(".git")]
                return self._lfs_batch(repo_type, repo_id, body)
        for n in (2, 1):
            if len(segs) > n + 1 and segs[n] in ("resolve", "raw"):
                repo_id = "/".join(segs[:n])
                rev = segs[n + 1]
                path = "/".join(segs[n + 2:])
                if method not in ("GET", "HEAD"):
                    break
                return self._resolve_file(method, repo_type, repo_id, rev, path)
        if method in ("GET", "HEAD") and len(segs) in (1, 2) and hub.has_repo("/".join(segs), repo_type):
            return self._send(200, b"<html>stand-in repo page</html>", content_type="text/html")
        raise _HubError(404, f"Not found: {method} {raw_path}")

    def _route_api(self, method: str, segs: list[str], query: dict, body: bytes):
        hub = self.hub
        if segs[:1] == ["telemetry"]:
            return self._json({})
        if segs == ["validate-yaml"] and method == "POST":  # README.md metadata check of create_commit
            return self._json({"warnings": [], "errors": []})
        if segs == ["agent-harnesses"] and method == "GET":
            return self._json({"standardEnvVars": [], "harnesses": {}})
        if segs == ["whoami-v2"] and method == "GET":
            if not self.headers.get("Authorization"):
                raise _HubError(401, "Invalid credentials in Authorization header")
            return self._json(
                {
                    "type": "user",
                    "id": "0" * 24,
                    "name": _DEFAULT_USER,
                    "fullname": "Test User",
                    "email": "tester@example.invalid",
                    "emailVerified": True,
                    "canPay": False,
                    "isPro": False,
                    "periodEnd": None,
                    "orgs": [],
                    "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}},
                }
            )
        if segs[:1] == ["repos"] and len(segs) == 2:
            return self._repos_api(method, segs[1], body)

        if not segs or segs[0] not in ("models", "datasets", "spaces") or len(segs) < 2:
            raise _HubError(404, f"Not found: /api/{'/'.join(segs)}")
        repo_type = segs[0][:-1]
        rest = segs[1:]
        # repo id is "owner/name" (or a legacy single "name" when followed by a known action)
        actions = ("revision", "tree", "paths-info", "preupload", "commit", "commits", "refs")
        if len(rest) >= 2 and (rest[1] not in actions or hub.has_repo("/".join(rest[:2]), repo_type)):
            repo_id, rest = "/".join(rest[:2]), rest[2:]
        else:
            repo_id, rest = rest[0], rest[1:]

        with hub._lock:
            result = self._repo_api(method, repo_type, repo_id, rest, query, body)
        if result is None:
            raise _HubError(404, f"Not found: {method} /api/{'/'.join(segs)}")
        obj, headers = result
        return self._json(obj, 200, headers)

    def _repo_api(self, method, repo_type, repo_id, rest, query, body):
        """Answers /api/{type}s/{repo_id}/...; runs under the hub lock; returns (json, headers) or None."""
        hub = self.hub
        repo = hub._repo(repo_id, repo_type)
        blobs = _flag(query, "blobs")
        if not rest and method == "GET":
            return hub._info(repo, hub._resolve(repo, "main"), blobs), {}
        action = rest[0] if rest else ""
        if action == "revision" and len(rest) >= 2 and method == "GET":
            rev = "/".join(rest[1:])
            return hub._info(repo, hub._resolve(repo, rev), blobs), {}
        if action == "refs" and method == "GET":
            branches = [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": s} for b, s in repo.branches.items()]
            return {"branches": branches, "converts": [], "tags": []}, {}
        if action == "commits" and len(rest) >= 2 and method == "GET":
            commit, history = hub._resolve(repo, "/".join(rest[1:])), []
            while commit is not None:
                history.append(
                    {**hub._last_commit(commit), "message": commit.title, "authors": [{"user": _DEFAULT_USER}]}
                )
                commit = repo.commits.get(commit.parent) if commit.parent else None
            return self._paged(history, query)
        if action == "tree" and len(rest) >= 2 and method == "GET":
            commit = hub._resolve(repo, rest[1])
            entries = hub._tree(commit, "/".join(rest[2:]), _flag(query, "recursive"))
            if _flag(query, "expand"):
                for e in entries:
                    e["lastCommit"] = hub._last_commit(commit)
            return self._paged(entries, query)
        if action == "paths-info" and len(rest) >= 2 and method == "POST":
            commit = hub._resolve(repo, rest[1])
            return self._paths_info(commit, body, _flag(query, "expand")), {}
        if action == "preupload" and len(rest) >= 2 and method == "POST":
            return self._preupload(repo, "/".join(rest[1:]), body, query), {}
        if action == "commit" and len(rest) >= 2 and method == "POST":
            return self._commit(repo, "/".join(rest[1:]), body, query), {}
        return None

    # -------------------------------------------------------------- endpoints

    def _resolve_file(self, method: str, repo_type: str, repo_id: str, rev: str, path: str):
        hub = self.hub
        with hub._lock:
            repo = hub._repo(repo_id, repo_type)
            commit = hub._resolve(repo, rev)
            blob = commit.files.get(path)
            if blob is None:
                raise _HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit.sha})
            data = hub._corrupt.get((repo_type, repo_id, path), blob.data)
            etag = hub._etag(blob)
            size = len(blob.data)
            is_lfs = hub._is_lfs(blob)
        headers = {
            "X-Repo-Commit": commit.sha,
            "ETag": f'"{etag}"',
            "Accept-Ranges": "bytes",
            "Content-Disposition": f'inline; filename="{path.rsplit("/", 1)[-1]}"',
        }
        if is_lfs:
            headers["X-Linked-Etag"] = f'"{etag}"'
            headers["X-Linked-Size"] = str(size)
        rng = self.headers.get("Range")
        if rng:
            span = _parse_range(rng, len(data))
            if span is None:
                headers["Content-Range"] = f"bytes */{len(data)}"
                return self._send(416, b"", headers)
            start, end = span
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            part = data[start : end + 1]
            headers["Content-Length"] = str(len(part))
            return self._send(206, part, headers, "application/octet-stream")
        headers["Content-Length"] = str(len(data))
        return self._send(200, data, headers, "application/octet-stream")

    def _paged(self, entries: list[dict], query: dict):
        try:
            start = int((query.get("cursor") or ["0"])[0])
        except ValueError:
            start = 0
        size = max(1, self.hub.tree_page_size)
        page = entries[start : start + size]
        headers = {}
        if start + size < len(entries):
            q = {k: v[0] for k, v in query.items() if k != "cursor"}
            q["cursor"] = str(start + size)
            qs = "&".join(f"{quote(k)}={quote(v)}" for k, v in q.items())
            host = self.headers.get("Host") or f"{self.server.server_address[0]}:{self.server.server_address[1]}"
            headers["Link"] = f'<http://{host}{urlsplit(self.path).path}?{qs}>; rel="next"'
        return page, headers

    def _paths_info(self, commit: _Commit, body: bytes, expand: bool) -> list[dict]:
        ctype = self.headers.get("Content-Type", "")
        if "json" in ctype:
            payload = json.loads(body or b"{}")
            paths = payload.get("paths", [])
            expand = expand or bool(payload.get("expand"))
        else:
            form = parse_qs(body.decode(), keep_blank_values=True)
            paths = form.get("paths", [])
            expand = expand or (form.get("expand", ["false"])[0].lower() in ("1", "true"))
        out = []
        for raw in paths:
            p = raw.strip("/")
            if p in commit.files:
                entry = self.hub._file_entry(p, commit.files[p])
            elif p == "" or any(f.startswith(p + "/") for f in commit.files):
                entry = self.hub._dir_entry(commit, p)
            else:
                continue
            if expand:
                entry["lastCommit"] = self.hub._last_commit(commit)
            out.append(entry)
        return out

    def _preupload(self, repo: _Repo, rev: str, body: bytes, query: dict) -> dict:
        hub = self.hub
        commit = hub._resolve(repo, rev)
        payload = json.loads(body or b"{}")
        files = []
        for f in payload.get("files", []):
            path = f["path"]
            existing = commit.files.get(path)
            files.append(
                {
                    "path": path,
                    "uploadMode": "lfs" if hub.upload_mode == "lfs" and f.get("size") else "regular",
                    "shouldIgnore": False,
                    # git sha1 of the content: what the client compares its regular-file oid with.
                    "oid": existing.oid if existing is not None else None,
                }
            )
        return {"files": files, "commitOid": commit.sha}

    def _commit(self, repo: _Repo, rev: str, body: bytes, query: dict) -> dict:
        hub = self.hub
        if _flag(query, "create_pr"):
            raise _HubError(400, "The Hub stand-in does not support pull requests")
        if rev not in repo.branches:
            if _SHA_RE.match(rev) or rev in repo.commits:
                raise _HubError(400, f"Cannot commit to a commit sha ({rev}), only to a branch")
            raise _HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        if not self.headers.get("Authorization"):
            raise _HubError(401, "You must be authenticated to commit")
        head = repo.commits[repo.branches[rev]]
        tree = dict(head.files)
        title = "Commit"
        by_sha256 = {b.sha256: b for c in repo.commits.values() for b in c.files.values()}
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item.get("key"), item.get("value") or {}
            if key == "header":
                title = value.get("summary") or title
                parent = value.get("parentCommit")
                if parent and not head.sha.startswith(parent):
                    raise _HubError(412, f"A commit has happened since. Parent {parent} is not {head.sha}")
            elif key == "file":
                content = value.get("content", "")
                data = base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
                tree[_clean_path(value["path"])] = _Blob.of(data)
            elif key == "lfsFile":
                oid = value.get("oid")
                blob = by_sha256.get(oid)
                if blob is None and oid in hub._lfs_objects:
                    blob = _Blob.of(hub._lfs_objects[oid])
                if blob is None:
                    raise _HubError(400, f"LFS object {oid} was never uploaded")
                tree[_clean_path(value["path"])] = blob
            elif key in ("deletedFile", "deletedFolder"):
                path = value["path"].strip("/")
                _delete_path(tree, path + "/" if key == "deletedFolder" else path)
            else:
                raise _HubError(400, f"Unsupported commit operation {key!r}")
        sha = hub._new_commit(repo, rev, tree, title)
        url = f"{hub.url}/{_URL_PREFIX[repo.repo_type]}{repo.repo_id}/commit/{sha}"
        return {"success": True, "commitOid": sha, "commitUrl": url, "pullRequestUrl": None, "hookOutput": ""}

    def _lfs_batch(self, repo_type: str, repo_id: str, body: bytes):
        hub = self.hub
        if not self.headers.get("Authorization"):
            raise _HubError(401, "You must be authenticated to upload")
        payload = json.loads(body or b"{}")
        if payload.get("operation") != "upload":
            raise _HubError(400, "The stand-in's LFS batch API only supports uploads (downloads use /resolve/)")
        base = f"http://{self.headers.get('Host') or hub.url.split('://', 1)[1]}"
        objects = []
        with hub._lock:
            hub._repo(repo_id, repo_type)
            known = set(hub._lfs_objects) | {
                b.sha256 for c in hub._repos[(repo_type, repo_id)].commits.values() for b in c.files.values()
            }
            for obj in payload.get("objects", []):
                oid, size = obj["oid"], int(obj["size"])
                entry: dict = {"oid": oid, "size": size, "authenticated": True}
                if oid not in known:
                    entry["actions"] = {
                        "upload": {"href": f"{base}/_lfs/upload/{oid}", "header": {}},
                        "verify": {"href": f"{base}/_lfs/verify/{oid}", "header": {}},
                    }
                objects.append(entry)
        self._send(
            200,
            json.dumps({"transfer": "basic", "objects": objects, "hash_algo": "sha256"}).encode(),
            content_type="application/vnd.git-lfs+json",
        )

    def _lfs_object(self, method: str, action: str, oid: str, body: bytes):
        hub = self.hub
        if action == "upload" and method == "PUT":
            if hashlib.sha256(body).hexdigest() != oid:
                raise _HubError(400, f"Uploaded content does not match sha256 {oid}")
            with hub._lock:
                hub._lfs_objects[oid] = body
            return self._send(200)
        if action == "verify" and method == "POST":
            with hub._lock:
                present = oid in hub._lfs_objects
            if not present:
                raise _HubError(404, f"LFS object {oid} not uploaded")
            return self._json({})
        raise _HubError(404, f"Not found: {method} /_lfs/{action}/{oid}")

    def _repos_api(self, method: str, action: str, body: bytes):
        hub = self.hub
        if not self.headers.get("Authorization"):
            raise _HubError(401, "Invalid credentials in Authorization header")
        payload = json.loads(body or b"{}")
        name = payload.get("name")
        if not name:
            raise _HubError(400, "Missing 'name'")
        org = payload.get("organization") or _DEFAULT_USER
        repo_id = f"{org}/{name}"
        repo_type = payload.get("type") or "model"
        if repo_type not in REPO_TYPES:
            raise _HubError(400, f"Invalid repo type {repo_type!r}")
        url = f"{hub.url}/{_URL_PREFIX[repo_type]}{repo_id}"
        with hub._lock:
            if action == "delete" and method == "DELETE":
                hub._repo(repo_id, repo_type)
                del hub._repos[(repo_type, repo_id)]
                for key in [k for k in hub._corrupt if k[:2] == (repo_type, repo_id)]:
                    del hub._corrupt[key]
                result = {}
            elif action == "create" and method == "POST":
                if (repo_type, repo_id) in hub._repos:
                    raise _HubError(409, f"You already created this {repo_type} repo", extra={"url": url})
                repo = hub._get_or_create(repo_id, repo_type)
                hub._new_commit(repo, "main", {}, "initial commit")
                result = {"url": url, "name": repo_id, "id": hub._info(repo, repo.commits[repo.branches["main"]], False)["_id"]}
            else:
                result = None
        if result is None:
            raise _HubError(404, f"Not found: {method} /api/repos/{action}")
        return self._json(result)


# ---------------------------------------------------------------------- helpers


def _flag(query: dict, name: str) -> bool:
    values = query.get(name)
    return bool(values) and values[0].lower() in ("1", "true", "yes")


def _clean_path(path: str) -> str:
    path = path.replace("\\", "/").strip("/")
    if not path or any(part in ("", ".", "..") for part in path.split("/")):
        raise _HubError(400, f"Invalid path in repo: {path!r}")
    return path


def _delete_path(tree: dict, path: str) -> None:
    if path.endswith("/"):
        for p in [p for p in tree if p.startswith(path)]:
            del tree[p]
    else:
        tree.pop(path.strip("/"), None)


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    m = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
    if not m or (not m.group(1) and not m.group(2)):
        return None
    if m.group(1):
        start = int(m.group(1))
        end = int(m.group(2)) if m.group(2) else size - 1
    else:  # suffix range: last N bytes
        n = int(m.group(2))
        if n == 0:
            return None
        start, end = max(0, size - n), size - 1
    end = min(end, size - 1)
    if start >= size or start > end:
        return None
    return start, end


def _read_folder(folder: Path) -> dict[str, bytes]:
    if not folder.is_dir():
        raise FileNotFoundError(f"not a folder: {folder}")
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if p.is_file() and ".git" not in rel.parts:
            out[rel.as_posix()] = p.read_bytes()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve local folders as a stand-in Hugging Face Hub.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument(
        "--repo",
        action="append",
        default=[],
        metavar="[TYPE:]OWNER/NAME=FOLDER",
        help="serve FOLDER as a repo; TYPE is model (default), dataset or space. Repeatable.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    hub = HubStandIn(args.host, args.port)
    hub.verbose = args.verbose
    for spec in args.repo:
        target, sep, folder = spec.partition("=")
        if not sep or not folder:
            parser.error(f"--repo needs [TYPE:]OWNER/NAME=FOLDER, got {spec!r}")
        repo_type, _, repo_id = target.rpartition(":")
        repo_type = repo_type or "model"
        if repo_type not in REPO_TYPES:
            parser.error(f"unknown repo type {repo_type!r} in {spec!r}")
        sha = hub.add_repo(repo_id, repo_type, folder=folder)
        print(f"{repo_type} {repo_id} <- {folder} @ {sha}", flush=True)
    hub.start()
    print(f"Hub stand-in at {hub.url}  (export HF_ENDPOINT={hub.url})", flush=True)
    hub.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())

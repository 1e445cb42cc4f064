"""Keep nothing: a query's upload, and anything else tied to one query, is let go a few seconds after the query.

    forget = UploadJanitor(upload_folder, after_s=5, spare=[thumbnail_folder, examples_folder])
    forget.uploaded(path)         # an upload handed out this path (the request guard tells)
    forget(path)                  # after the query: the file (and its now-empty folder) goes `after_s` seconds later
    forget.later(drop_session)    # any other clean-up of one query, on the same schedule

Only files inside `upload_folder` are ever deleted, never anything under a `spare` folder (catalog thumbnails and
example pictures are served from there and are also valid queries). The short delay lets the page finish showing
the picture it just uploaded. Uploads of identical bytes under one name share one path, and the web framework does
not write a file again that is still there: so each upload of a path is counted (`uploaded`, told by the request
guard), and a query's deletion waits while another upload of the same path still awaits its own query. A file is
also deleted only if it is still the very upload its query read (same inode and mtime). One daemon thread does the
work; memory stays bounded by what is waiting, a few seconds' worth (counts of uploads never queried are dropped
after CLAIM_TTL_S, when the framework's own purge has taken their files).
"""
from __future__ import annotations

import functools
import logging
import os
import stat
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable, Iterable

log = logging.getLogger(__name__)

CLAIM_TTL_S = 600.0  # an upload never queried stops holding its path back after this (the cache purge took it)


class UploadJanitor:
    def __init__(self, upload_folder: str | os.PathLike, *, after_s: float = 5.0,
                 spare: Iterable[str | os.PathLike] = (), on_delete: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.root = Path(upload_folder).resolve()
        self.after_s = float(after_s)
        self.spare = [Path(p).resolve() for p in spare]
        self.on_delete = on_delete  # e.g. drop the path from the web framework's own list of temporary files
        self._clock = clock
        self._due: deque[tuple[float, Callable[[], None]]] = deque()  # (when, what); appended in time order
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._claims: dict[Path, tuple[int, float]] = {}  # path → (uploads awaiting their query, last upload's time)
        self.deleted = 0

    def __call__(self, path: object) -> bool:
        """Schedule an uploaded file for deletion; False (and nothing done) for anything that is not an upload."""
        target = self._upload(path)
        identity = _identity(target) if target is not None else None
        if identity is None:
            return False
        self.later(functools.partial(self._delete, target, str(path), identity))
        return True

    def uploaded(self, path: object) -> None:
        """An upload handed out this path (again): the deletion of an earlier query of it must wait for this one's."""
        target = self._upload(path)
        if target is None:
            return
        with self._wake:
            now = self._clock()
            for stale in [p for p, (_, t) in self._claims.items() if now - t > CLAIM_TTL_S]:
                del self._claims[stale]
            count, _ = self._claims.get(target, (0, now))
            self._claims[target] = (count + 1, now)

    def awaiting(self, path: object) -> int:
        """How many uploads of this path await their query (as told by `uploaded`)."""
        target = self._upload(path)
        with self._wake:
            return self._claims.get(target, (0, 0.0))[0] if target is not None else 0

    def _released(self, target: Path) -> bool:
        """One query of this path is done: True when no other upload of it awaits a query."""
        with self._wake:
            count, when = self._claims.pop(target, (0, 0.0))
            if count > 1:
                self._claims[target] = (count - 1, when)
                return False
            return True

    def later(self, action: Callable[[], None]) -> None:
        """Run `action` (quick, no arguments) `after_s` seconds from now on the janitor's thread."""
        if self.after_s <= 0:
            self._do(action)
            return
        with self._wake:
            self._due.append((self._clock() + self.after_s, action))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="stylishi-janitor", daemon=True)
                self._thread.start()
            self._wake.notify()

    @property
    def pending(self) -> int:
        return len(self._due)

    def flush(self) -> None:
        """Do everything scheduled now (tests, shutdown)."""
        with self._wake:
            due, self._due = list(self._due), deque()
        for _, action in due:
            self._do(action)

    # -- machinery ---------------------------------------------------------------------------------------------
    def _upload(self, path: object) -> Path | None:
        if not isinstance(path, (str, os.PathLike)) or not str(path):
            return None  # bytes from a data URL, a PIL image, None: nothing on disk
        try:
            target = Path(path).resolve()
        except (OSError, RuntimeError, ValueError):
            return None
        if target == self.root or not target.is_relative_to(self.root):
            return None
        if any(target.is_relative_to(folder) for folder in self.spare):
            return None
        return target

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._due:
                    self._wake.wait()
                when, action = self._due[0]
                wait = when - self._clock()
                if wait > 0:
                    self._wake.wait(timeout=wait)
                    continue
                self._due.popleft()
            self._do(action)

    @staticmethod
    def _do(action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - one failed clean-up must not stop the others
            log.warning("a clean-up after a query failed (%s)", type(exc).__name__)

    def _delete(self, target: Path, given: str, identity: tuple) -> None:
        if not self._released(target):
            return  # the same picture was uploaded again and awaits its query: that query's deletion takes it
        if _identity(target) != identity:
            return  # gone already, or replaced by a newer upload of the same bytes: that one's query deletes it
        target.unlink(missing_ok=True)
        parent = target.parent
        if parent != self.root and parent.is_relative_to(self.root):
            try:
                parent.rmdir()  # the per-upload folder, once empty
            except OSError:
                pass  # not empty (the same bytes under another name) or already gone
        self.deleted += 1
        if self.on_delete is not None:
            self.on_delete(given)


def _identity(path: Path) -> tuple | None:
    """Which file is at `path` now: (device, inode, mtime), or None if there is no regular file."""
    try:
        st = path.stat()
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return st.st_dev, st.st_ino, st.st_mtime_ns


def app_temp_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The app's own temporary folder (uploads wait there for their query): `<STYLISHI_CACHE>/tmp`, or a
    `stylishi` folder inside an explicitly given GRADIO_TEMP_DIR; never a folder shared with other apps.

    Created with mode 0700 (only this user can list or read it) and emptied: nothing from an earlier run survives,
    even one that was killed before its deletions were done. Set GRADIO_TEMP_DIR to it before importing gradio.
    """
    from .config import cache_dir

    folder = (Path(explicit) / "stylishi") if explicit else cache_dir() / "tmp"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    empty_folder(folder)
    return folder.resolve()


def empty_folder(folder: str | os.PathLike) -> int:
    """Delete everything inside `folder` (not the folder itself); returns how many files went. Links are removed,
    never followed."""
    import shutil

    removed = 0
    root = Path(folder)
    if not root.is_dir():
        return 0
    for entry in list(root.iterdir()):
        try:
            if entry.is_dir() and not entry.is_symlink():
                removed += sum(1 for p in entry.rglob("*") if not p.is_dir())
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
                removed += 1
        except OSError as exc:
            log.warning("could not remove a temporary file (%s)", type(exc).__name__)
    return removed

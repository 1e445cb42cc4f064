"""Keep no one's pictures: query uploads are deleted a few seconds after their query.

    forget = UploadJanitor(upload_folder, after_s=5, spare=[thumbnail_folder, examples_folder])
    forget(path)         # after the query: the file (and its now-empty folder) goes `after_s` seconds later

Only files inside `upload_folder` are ever deleted, never anything under a `spare` folder (catalog thumbnails and
example pictures are served from there and are also valid queries). The short delay lets the page finish showing
the picture it just uploaded, and lets a second request that uploaded the very same bytes (uploads of identical
content share one path) finish its own query. One daemon thread does the deleting; memory stays bounded by the
number of uploads waiting, at most a few seconds' worth.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable, Iterable

log = logging.getLogger(__name__)


class UploadJanitor:
    def __init__(self, upload_folder: str | os.PathLike, *, after_s: float = 5.0,
                 spare: Iterable[str | os.PathLike] = (), on_delete: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.root = Path(upload_folder).resolve()
        self.after_s = float(after_s)
        self.spare = [Path(p).resolve() for p in spare]
        self.on_delete = on_delete  # e.g. drop the path from the web framework's own list of temporary files
        self._clock = clock
        self._due: deque[tuple[float, Path, str]] = deque()  # (when, file, as given); FIFO = in time order
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self.deleted = 0

    def __call__(self, path: object) -> bool:
        """Schedule an uploaded file for deletion; False (and nothing done) for anything that is not an upload."""
        target = self._upload(path)
        if target is None:
            return False
        if self.after_s <= 0:
            self._delete(target, str(path))
            return True
        with self._wake:
            self._due.append((self._clock() + self.after_s, target, str(path)))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="stylishi-upload-janitor", daemon=True)
                self._thread.start()
            self._wake.notify()
        return True

    @property
    def pending(self) -> int:
        return len(self._due)

    def flush(self) -> None:
        """Delete everything scheduled now (tests, shutdown)."""
        with self._wake:
            due, self._due = list(self._due), deque()
        for _, target, given in due:
            self._delete(target, given)

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
                when, target, given = self._due[0]
                wait = when - self._clock()
                if wait > 0:
                    self._wake.wait(timeout=wait)
                    continue
                self._due.popleft()
            self._delete(target, given)

    def _delete(self, target: Path, given: str) -> None:
        try:
            target.unlink(missing_ok=True)
            parent = target.parent
            if parent != self.root and parent.is_relative_to(self.root):
                try:
                    parent.rmdir()  # the per-upload folder, once empty
                except OSError:
                    pass  # not empty (another upload of the same bytes) or already gone
            self.deleted += 1
        except OSError as exc:  # never let one file stop the janitor; say which kind of problem, not which file
            log.warning("could not delete an uploaded query picture (%s)", type(exc).__name__)
        if self.on_delete is not None:
            try:
                self.on_delete(given)
            except Exception:  # noqa: BLE001
                log.debug("on_delete hook failed", exc_info=True)

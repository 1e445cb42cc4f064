"""Micro-batching: queries that arrive together share one pass of the image tower.

On 2 CPU cores a ViT tower runs a batch of 4 pictures in less time per picture than 4 single passes (bigger matrix
products; BENCHMARKS.md has the figures), and a tower runs one batch at a time anyway. So a caller that finds the
tower busy leaves its rows in a queue; whoever runs the tower next takes everything queued (up to `max_rows`) in one
batch and hands each caller its own rows. No timer, no extra thread: a lone query runs at once, as before, and a
query never waits for a batch to fill, only for the pass ahead of it, which it would have waited for anyway.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass
class _Request:
    rows: np.ndarray
    done: bool = False
    result: np.ndarray | None = None
    error: BaseException | None = None


@dataclass
class MicroBatcher:
    """Wrap `run` (rows in, one output row per input row) so that concurrent calls are run together."""

    run: Callable[[np.ndarray], np.ndarray]
    max_rows: int = 8
    counts: dict[str, int] = field(default_factory=lambda: {"passes": 0, "rows": 0, "largest": 0})
    _queue: list[_Request] = field(default_factory=list)
    _busy: bool = False
    _cv: threading.Condition = field(default_factory=threading.Condition)

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        mine = _Request(rows)
        with self._cv:
            self._queue.append(mine)
        while True:
            with self._cv:
                while self._busy and not mine.done:
                    self._cv.wait()
                if mine.done:
                    break
                self._busy = True
                batch = self._take()
            self._run_batch(batch)
        if mine.error is not None:
            raise mine.error
        return mine.result

    def _take(self) -> list[_Request]:
        """The oldest queued requests whose rows fit in max_rows (always at least one)."""
        batch, total = [], 0
        while self._queue and (not batch or total + len(self._queue[0].rows) <= self.max_rows):
            request = self._queue.pop(0)
            batch.append(request)
            total += len(request.rows)
        return batch

    def _run_batch(self, batch: list[_Request]) -> None:
        try:
            rows = batch[0].rows if len(batch) == 1 else np.concatenate([r.rows for r in batch])
            out = self.run(rows)
            start = 0
            for request in batch:
                request.result = out[start:start + len(request.rows)]
                start += len(request.rows)
        except BaseException as exc:  # noqa: BLE001 - each caller gets the error of the pass it was in
            for request in batch:
                request.error = exc
        finally:
            with self._cv:
                for request in batch:
                    request.done = True
                self.counts["passes"] += 1
                self.counts["rows"] += sum(len(r.rows) for r in batch)
                self.counts["largest"] = max(self.counts["largest"], sum(len(r.rows) for r in batch))
                self._busy = False
                self._cv.notify_all()

    def snapshot(self) -> dict[str, float]:
        """For /stats: passes run, rows embedded, the largest batch and the mean batch."""
        with self._cv:
            c = dict(self.counts)
        c["mean"] = round(c["rows"] / c["passes"], 2) if c["passes"] else 0.0
        return c

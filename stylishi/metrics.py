"""Query statistics and the per-query log line: what an operator needs to see that search is up, fast and sane.

    metrics = Metrics()                       # one per SearchService (service.metrics)
    metrics.record("image", 41.2, top_score=0.93, results=10)
    metrics.record_error("text", 0.4, "QueryError")
    metrics.snapshot()   # {"queries", "errors", "qps", "latency_ms": {"p50", "p95", "p99"}, "avg_top_similarity", ...}

Thread-safe; memory is bounded (latencies and top scores are kept for the last `window` queries only).
`log_query` writes one JSON line per query to the "stylishi.query" logger. It takes only numbers and catalog
values: never a picture, a file name, or the words a person typed (a text query is logged as its length).
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from typing import Any, Callable, Mapping

query_log = logging.getLogger("stylishi.query")

WINDOW = 1000  # latencies and top scores of the last this-many queries (per kind, and overall)


class _Series:
    """Counts since start, and a bounded window of recent latencies and top scores."""

    def __init__(self, window: int):
        self.queries = 0
        self.errors = 0
        self.error_kinds: dict[str, int] = {}
        self.latency_ms: deque[float] = deque(maxlen=window)
        self.top_scores: deque[float] = deque(maxlen=window)

    def summary(self, elapsed_s: float) -> dict[str, Any]:
        lat = sorted(self.latency_ms)
        return {
            "queries": self.queries,
            "errors": self.errors,
            "error_kinds": dict(sorted(self.error_kinds.items())),
            "qps": round(self.queries / elapsed_s, 3) if elapsed_s > 0 else 0.0,
            "latency_ms": {f"p{q}": _percentile(lat, q) for q in (50, 95, 99)},
            "avg_top_similarity": (round(sum(self.top_scores) / len(self.top_scores), 4)
                                   if self.top_scores else None),
        }


class Metrics:
    """Queries, errors, QPS since start, p50/p95/p99 latency and average top similarity, overall and by kind."""

    def __init__(self, window: int = WINDOW, clock: Callable[[], float] = time.monotonic):
        self.window = int(window)
        self._clock = clock
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget everything (e.g. after the warm-up queries); the QPS clock starts again."""
        with self._lock:
            self._started = self._clock()
            self._all = _Series(self.window)
            self._kinds: dict[str, _Series] = {}

    def record(self, kind: str, latency_ms: float, *, top_score: float | None = None, results: int = 0) -> None:
        """One answered query (results may be 0: a filter that matches nothing is not an error)."""
        with self._lock:
            for series in (self._all, self._kind(kind)):
                series.queries += 1
                series.latency_ms.append(float(latency_ms))
                if top_score is not None:
                    series.top_scores.append(float(top_score))

    def record_error(self, kind: str, latency_ms: float, error: str) -> None:
        """One refused or failed query; `error` is the error's class name (never its message)."""
        with self._lock:
            for series in (self._all, self._kind(kind)):
                series.queries += 1
                series.errors += 1
                series.error_kinds[error] = series.error_kinds.get(error, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready summary: totals since start, percentiles and averages over the recent window."""
        with self._lock:
            elapsed = max(self._clock() - self._started, 1e-9)
            out = {"uptime_s": round(elapsed, 1), "window": self.window, **self._all.summary(elapsed)}
            out["by_kind"] = {kind: series.summary(elapsed) for kind, series in sorted(self._kinds.items())}
        return out

    def _kind(self, kind: str) -> _Series:
        series = self._kinds.get(kind)
        if series is None:
            series = self._kinds[kind] = _Series(self.window)
        return series


def _percentile(sorted_values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile of an already sorted list (None when empty)."""
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return round(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo), 3)


def log_query(kind: str, *, ok: bool, k: int | None, timings_ms: Mapping[str, float] | None = None,
              total_ms: float | None = None, filters: Mapping[str, list[str]] | None = None,
              results: int | None = None, top_score: float | None = None, error: str | None = None,
              text_chars: int | None = None) -> None:
    """One structured line per query. Only numbers, the query kind, error class names and catalog filter values."""
    if not query_log.isEnabledFor(logging.INFO):
        return
    line: dict[str, Any] = {"event": "query", "kind": kind, "ok": ok, "k": k}
    if text_chars is not None:
        line["text_chars"] = text_chars
    if filters:
        line["filters"] = {str(col): list(values) for col, values in filters.items()}
    if results is not None:
        line["results"] = results
    if top_score is not None:
        line["top_score"] = round(float(top_score), 4)
    if error:
        line["error"] = error
    if timings_ms:
        line["timings_ms"] = dict(timings_ms)
    elif total_ms is not None:
        line["timings_ms"] = {"total": round(float(total_ms), 3)}
    query_log.info("%s", json.dumps(line, ensure_ascii=True, separators=(",", ":")))

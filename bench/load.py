#!/usr/bin/env python
"""StyliShi sustained load: N concurrent clients for T seconds, mixing image and text queries over the raw HTTP API.

    .venv/bin/python bench/load.py                            # 8 clients × 60 s against the offline demo (started here)
    .venv/bin/python bench/load.py --clients 4 --seconds 15   # the short run the test suite makes
    .venv/bin/python bench/load.py --index DIR                # an index folder or OWNER/NAME (started here)
    .venv/bin/python bench/load.py --url http://127.0.0.1:7860 --pid PID --uploads DIR    # an app already running

Each client loops: an image query the way the page sends one (upload → call → event stream; bench/benchmark.py's
`gradio_search`, k=10) or, for --text-share of them, a text query (call → event stream). Every client sends its own
pictures (640×480 webcam-like JPEGs of the demo garments), so no two clients upload the same bytes at once.

Bounded and local: the target must be on the loopback interface; the run stops by itself after --seconds (at most
600) or --max-requests requests, whichever comes first. The app started here gets a fresh GRADIO_TEMP_DIR (its upload
cache) in a temporary folder, removed afterwards.

Reports: requests, failures (with the first reasons), queries/s, p50/p95/p99 latency (all, image, text), the app's RSS
over time (VmRSS from /proc/<pid>/status) and its growth after the warm-up, the upload cache's files and bytes over
time (and after the run, once the app has deleted the last uploads), and the app's own /stats. --json writes it all.
Exit status 0 when the run meets the targets: no failures, RSS growth after warm-up under --max-rss-growth %, and
the upload cache back to empty after the run.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

from benchmark import ROOT, http_call, gradio_search, jpeg, pct, rss_mb, start_app, webcam_frame  # this folder

MAX_SECONDS = 600
MAX_CLIENTS = 64
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
TEXTS = ["red floral summer dress", "black leather jacket", "blue striped t-shirt", "white sneakers",
         "green checked skirt", "pink running shoes", "yellow handbag", "navy blue jeans", "grey hoodie",
         "brown boots", "beige trench coat", "purple scarf", "orange cap", "black formal shoes", "red polka dot top"]


# -- one text query over the raw HTTP API (an image query is benchmark.gradio_search) ------------------------------------
def http_text(base: str, text: str, k: int = 10) -> float:
    """call → event stream, the way a program calls /search_text. Returns ms; raises on an error or no results."""
    t = time.perf_counter()
    results = http_call(base, "search_text", [text, k, None])[1]
    if not results or results[0]["rank"] != 1:
        raise RuntimeError(f"no results for {text!r}")
    return (time.perf_counter() - t) * 1000


# -- what is measured -----------------------------------------------------------------------------------------------
class Run:
    def __init__(self, base: str, clients: int, seconds: float, text_share: float, max_requests: int,
                 pictures: list[bytes]):
        self.base, self.clients, self.seconds = base, clients, seconds
        self.text_share, self.max_requests, self.pictures = text_share, max_requests, pictures
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = {"image": [], "text": []}
        self.failures: list[str] = []
        self.sent = 0
        self.t0 = 0.0
        self.stop_at = 0.0

    @property
    def done(self) -> int:
        return len(self.latency["image"]) + len(self.latency["text"]) + len(self.failures)

    def worker(self, w: int) -> None:
        rng = random.Random(w)
        n = 0
        while time.perf_counter() < self.stop_at:
            with self.lock:
                if self.sent >= self.max_requests:
                    return
                self.sent += 1
            kind = "text" if rng.random() < self.text_share else "image"
            try:
                if kind == "text":
                    ms = http_text(self.base, rng.choice(TEXTS))
                else:  # client w sends pictures w, w + clients, ...: never the bytes another client is sending
                    ms = gradio_search(self.base, self.pictures[(w + n * self.clients) % len(self.pictures)])
                    n += 1
                with self.lock:
                    self.latency[kind].append(ms)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                with self.lock:
                    self.failures.append(f"{kind}: {type(exc).__name__}: {str(exc)[:160]}")

    def go(self, sample: "Sampler") -> float:
        threads = [threading.Thread(target=self.worker, args=(w,), daemon=True) for w in range(self.clients)]
        self.t0 = time.perf_counter()
        self.stop_at = self.t0 + self.seconds
        sample.start(self)
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=self.seconds + 120)
        wall = time.perf_counter() - self.t0
        sample.stop()
        return wall


def _folder_size(folder: Path | None) -> tuple[int, int]:
    if folder is None or not folder.exists():
        return 0, 0
    files = size = 0
    for root, _, names in os.walk(folder):
        for name in names:
            try:
                size += os.lstat(os.path.join(root, name)).st_size
                files += 1
            except OSError:
                pass
    return files, size


def _threads_and_fds(pid: int | None) -> tuple[int | None, int | None]:
    if pid is None:
        return None, None
    try:
        threads = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                       if line.startswith("Threads:"))
        return threads, len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, StopIteration):
        return None, None


class Sampler:
    """Every `every` seconds: the app's RSS, threads and open files, and the upload cache's files and bytes."""

    def __init__(self, pid: int | None, uploads: Path | None, every: float):
        self.pid, self.uploads, self.every = pid, uploads, every
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def take(self, run: Run | None, t: float) -> dict:
        rss = rss_mb(self.pid)[0] if self.pid else None
        files, size = _folder_size(self.uploads)
        threads, fds = _threads_and_fds(self.pid)
        sample = {"t": round(t, 1), "rss_mb": round(rss, 1) if rss else None, "cache_files": files,
                  "cache_kb": round(size / 1024, 1), "threads": threads, "open_files": fds,
                  "requests": run.done if run else 0, "failures": len(run.failures) if run else 0}
        self.samples.append(sample)
        return sample

    def start(self, run: Run) -> None:
        def loop():
            while not self._stop.wait(self.every):
                self.take(run, time.perf_counter() - run.t0)
        self.take(run, 0.0)
        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()


# -- the report -----------------------------------------------------------------------------------------------------
def summarise(run: Run, wall: float, samples: list[dict], after: dict, warmup_s: float, stats: dict | None,
              max_growth: float) -> dict:
    lat_all = run.latency["image"] + run.latency["text"]
    dist = lambda xs: {"n": len(xs), "p50": round(pct(xs, 50), 1), "p95": round(pct(xs, 95), 1),  # noqa: E731
                       "p99": round(pct(xs, 99), 1)}
    rss = [s for s in samples if s["rss_mb"]]
    warm = next((s for s in rss if s["t"] >= warmup_s), rss[-1] if rss else None)
    end = rss[-1] if rss else None
    growth = round((end["rss_mb"] - warm["rss_mb"]) / warm["rss_mb"] * 100, 1) if warm and end else None
    report = {
        "clients": run.clients, "seconds": run.seconds, "wall_s": round(wall, 1), "text_share": run.text_share,
        "requests": run.done, "failures": len(run.failures), "first_failures": run.failures[:5],
        "qps": round(run.done / wall, 1) if wall else 0.0,
        "latency_ms": {"all": dist(lat_all), "image": dist(run.latency["image"]), "text": dist(run.latency["text"])},
        "rss_mb": {"start": rss[0]["rss_mb"] if rss else None, "after_warmup": warm["rss_mb"] if warm else None,
                   "warmup_s": warmup_s, "end": end["rss_mb"] if end else None,
                   "max": max(s["rss_mb"] for s in rss) if rss else None, "growth_after_warmup_pct": growth},
        "upload_cache": {"max_files": max((s["cache_files"] for s in samples), default=0),
                         "max_kb": max((s["cache_kb"] for s in samples), default=0),
                         "end_files": samples[-1]["cache_files"] if samples else 0,
                         "after_files": after.get("cache_files"), "after_kb": after.get("cache_kb"),
                         "after_s": after.get("t")},
        "server_stats": stats,
        "samples": samples + [dict(after, phase="after")],
    }
    checks = {"no failures": report["failures"] == 0,
              f"RSS growth after warm-up under {max_growth:g} %": growth is None or growth < max_growth,
              "upload cache empty after the run": after.get("cache_files") in (0, None)}
    report["checks"] = checks
    report["ok"] = all(checks.values())
    return report


def print_report(r: dict, every_s: float) -> None:
    lat = r["latency_ms"]
    print(f"\n# StyliShi load: {r['clients']} clients × {r['seconds']:g} s, {r['text_share']:.0%} text queries "
          f"(wall {r['wall_s']} s)\n")
    print(f"requests {r['requests']:,} · failures {r['failures']} · {r['qps']} queries/s")
    for kind in ("all", "image", "text"):
        d = lat[kind]
        print(f"latency {kind:5} n={d['n']:<6} p50 {d['p50']:7.1f} ms · p95 {d['p95']:7.1f} ms · p99 {d['p99']:7.1f} ms")
    m = r["rss_mb"]
    if m["start"]:
        print(f"app RSS: start {m['start']} MB · after {m['warmup_s']:g} s warm-up {m['after_warmup']} MB · end "
              f"{m['end']} MB · max {m['max']} MB · growth after warm-up {m['growth_after_warmup_pct']} %")
    c = r["upload_cache"]
    print(f"upload cache: at most {c['max_files']} files / {c['max_kb']:.0f} KB during the run, {c['end_files']} at "
          f"its end, {c['after_files']} files {c['after_s']} s after the start (the app deletes each upload 5 s after "
          "its query)")
    if r["server_stats"]:
        s = r["server_stats"]
        print(f"the app's /stats: {s['queries']:,} queries, {s['errors']} errors, p50 {s['latency_ms']['p50']} ms, "
              f"p95 {s['latency_ms']['p95']} ms, p99 {s['latency_ms']['p99']} ms (server-side, last {s['window']})")
    for failure in r["first_failures"]:
        print(f"failure: {failure}")
    print("\n|    t (s) | requests | failures | RSS (MB) | threads | open files | cache files | cache KB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    last = -1e9
    for s in r["samples"]:
        if s.get("phase") == "after" or s["t"] - last >= every_s or s is r["samples"][-2]:
            print(f"| {s['t']:>6}{' (after)' if s.get('phase') else ''} | {s['requests']} | {s['failures']} | "
                  f"{s['rss_mb']} | {s['threads']} | {s['open_files']} | {s['cache_files']} | {s['cache_kb']} |")
            last = s["t"]
    print("\n" + " · ".join(f"{'PASS' if ok else 'FAIL'} {name}" for name, ok in r["checks"].items()))


# -- main -------------------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pictures(n: int = 64) -> list[bytes]:
    from stylishi.demo import demo_items

    return [jpeg(webcam_frame(it.image, i)) for i, it in enumerate(demo_items(limit=n))]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=8, help=f"concurrent clients, 1 to {MAX_CLIENTS} (default 8)")
    p.add_argument("--seconds", type=float, default=60, help=f"how long, at most {MAX_SECONDS} (default 60)")
    p.add_argument("--text-share", type=float, default=0.3, help="share of text queries, 0 to 1 (default 0.3)")
    p.add_argument("--max-requests", type=int, default=100_000, help="stop after this many requests")
    p.add_argument("--index", default="demo", help="index for the app started here (default: the offline demo, "
                                                   "built once into the StyliShi cache, then reused)")
    p.add_argument("--mode", default=os.environ.get("STYLISHI_EMBED_MODE", "auto"), help="embedding mode of the app")
    p.add_argument("--url", help="load an app already running on this machine instead (loopback only)")
    p.add_argument("--pid", type=int, help="with --url: the app's process id, for its RSS")
    p.add_argument("--uploads", help="with --url: the app's GRADIO_TEMP_DIR, for the upload cache size")
    p.add_argument("--warmup", type=float, help="seconds of warm-up before RSS growth is measured "
                                                "(default: a quarter of the run, at most 10)")
    p.add_argument("--sample-every", type=float, default=1.0, help="seconds between samples (default 1)")
    p.add_argument("--max-rss-growth", type=float, default=10.0, help="target, percent (default 10)")
    p.add_argument("--json", help="also write the full report (with every sample) here")
    args = p.parse_args(argv)
    if not 1 <= args.clients <= MAX_CLIENTS:
        p.error(f"--clients must be from 1 to {MAX_CLIENTS}")
    if not 0 < args.seconds <= MAX_SECONDS:
        p.error(f"--seconds must be over 0 and at most {MAX_SECONDS}")
    if not 0 <= args.text_share <= 1:
        p.error("--text-share must be from 0 to 1")
    if args.url and urllib.parse.urlsplit(args.url).hostname not in LOOPBACK:
        p.error(f"--url must be on this machine's loopback interface ({', '.join(sorted(LOOPBACK))})")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warmup = args.warmup if args.warmup is not None else min(10.0, args.seconds / 4)
    tmp = Path(tempfile.mkdtemp(prefix="stylishi-load-"))
    proc = None
    try:
        if args.url:
            base, pid = args.url.rstrip("/"), args.pid
            uploads = Path(args.uploads) if args.uploads else None
        else:
            uploads = tmp / "gradio-uploads"
            os.environ["GRADIO_TEMP_DIR"] = str(uploads)  # the app started here inherits it (its folder: uploads/stylishi)
            os.environ.setdefault("STYLISHI_RATE_LIMIT", "0")  # a load test measures capacity, not the rate limit
            port = free_port()
            print(f"starting app.py --index {args.index} on 127.0.0.1:{port} (upload cache {uploads}) ...", flush=True)
            proc, ready = start_app(args.index, port, args.mode)
            base, pid = f"http://127.0.0.1:{port}", proc.pid
            print(f"ready in {ready:.1f} s", flush=True)
        pics = pictures()
        for picture in pics[:2]:  # the first requests through each path, before the clock starts
            gradio_search(base, picture)
        http_text(base, TEXTS[0])
        run = Run(base, args.clients, args.seconds, args.text_share, args.max_requests, pics)
        sampler = Sampler(pid, uploads, args.sample_every)
        wall = run.go(sampler)
        time.sleep(6.5)  # the app deletes each upload 5 s after its query
        after = sampler.take(run, time.perf_counter() - run.t0)
        try:
            stats = json.loads(urllib.request.urlopen(f"{base}/stats", timeout=10).read())
        except (OSError, ValueError):
            stats = None
        report = summarise(run, wall, sampler.samples[:-1], after, warmup, stats, args.max_rss_growth)
        print_report(report, max(args.sample_every, args.seconds / 12))
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        return 0 if report["ok"] else 1
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except Exception:  # noqa: BLE001
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

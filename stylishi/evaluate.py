"""How good is the search? One command that measures it on any index, with the real search service.

    stylishi eval --index OWNER/NAME[@rev]|DIR [--sample 1000] [--seed 0] [--out eval_report]
    stylishi eval --index DIR --models patrickjohncyh/fashion-clip openai/clip-vit-base-patch32

The index is opened by the app's own start-up code (stylishi.startup.open_service, no fallback) and every query goes
through its SearchService: the same embedder, FAISS index and result code a shopper gets. On a seeded sample of the
catalog it measures (see METRICS for one line on each):

- camera-like exact-item retrieval: a phone/webcam-like shot of each item (stylishi.camera) must find that item;
- "similar" retrieval, leave-one-out: does "more like this" return the same article type, colour, category;
- text -> image, the protocol of Marqo's fashion benchmark: product names find their product, article-type names
  and "{colour} {article type}" phrases find products of that kind;
- zero-shot classification: weighted F1 of article type from "a photo of a {article type}" prompts (FashionCLIP's
  KAGL figure).

`--models A B ...` embeds the same sample with each model (a temporary index per model, made by the real builder)
and sets them side by side with CPU milliseconds per image. A metric the catalog cannot support (no article types,
no names, no pictures) is reported as n/a with the reason. Outputs: a printed table, report.json, report.md, and a
bar chart (PNG) when several models are compared.
"""
from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from .config import FOCUS_SETTINGS
from .errors import StyliShiError

if TYPE_CHECKING:  # pragma: no cover
    from .service import SearchService

log = logging.getLogger(__name__)

K = 10  # the results a shopper sees
DEPTH = 50  # how deep ranks are looked for (MRR, mAP): the service's largest k
ZERO_SHOT_PROMPT = "a photo of a {}"
MAX_PAIR_QUERIES = 200  # "{colour} {article type}" phrases per run, at most

# key → (group, label, what it means). The order is the report's.
METRICS: dict[str, tuple[str, str, str]] = {
    "camera.recall@1": ("Camera-like shot → the item itself", "recall@1",
                        "share of camera-like shots whose own product is result #1"),
    "camera.recall@10": ("Camera-like shot → the item itself", "recall@10",
                         "share of camera-like shots whose own product is in the top 10"),
    "camera.mrr": ("Camera-like shot → the item itself", "MRR",
                   f"mean of 1/rank of the product itself (0 when below rank {DEPTH})"),
    "similar.type_p@10": ("More like this (item left out)", "article type p@10",
                          "share of the top 10 with the item's article type"),
    "similar.colour_p@10": ("More like this (item left out)", "colour p@10",
                            "share of the top 10 with the item's colour"),
    "similar.category_p@10": ("More like this (item left out)", "category p@10",
                              "share of the top 10 with the item's category"),
    "similar.type_map": ("More like this (item left out)", "article type mAP@50",
                         f"mean average precision of same-article-type items in the top {DEPTH}"),
    "text.name_recall@1": ("Text → image", "product name recall@1",
                           "share of product names whose own product is result #1 (Marqo's protocol)"),
    "text.name_recall@10": ("Text → image", "product name recall@10",
                            "share of product names whose own product is in the top 10"),
    "text.name_mrr": ("Text → image", "product name MRR", f"mean of 1/rank of the named product (to rank {DEPTH})"),
    "text.type_p@1": ("Text → image", "article type p@1",
                      "share of article-type names (\"Dresses\") whose first result is of that type"),
    "text.type_mrr": ("Text → image", "article type MRR", "mean of 1/rank of the first result of the named type"),
    "text.colour_type_p@10": ("Text → image", "\"{colour} {type}\" p@10",
                              "share of the top 10 matching both the colour and the type of \"red dresses\"-like "
                              "phrases"),
    "zeroshot.type_f1": ("Zero-shot classification", "article type weighted F1",
                         f"\"{ZERO_SHOT_PROMPT.format('{article type}')}\" prompts, F1 weighted by class size"),
    "speed.ms_per_image": ("Speed", "ms per image",
                           "median preprocess + embed time of one query picture (+ the detector's, when focused)"),
}
PRECISION_NOTE = ("p@10 counts out of min(10, number of other items that qualify), so a kind with 4 items can "
                  "still score 1.0")

# Published figures to set a number beside (see the README's "How good is it?").
ANCHORS = {
    "zeroshot.type_f1": {"FashionCLIP 2.0 (KAGL)": 0.73, "OpenAI CLIP (KAGL)": 0.63},
    "text.name_recall@1": {"FashionCLIP 2.0 (Marqo, 6-set average)": 0.077,
                           "SigLIP ViT-B/16 webli (Marqo, 6-set average)": 0.111,
                           "Marqo-FashionSigLIP (Marqo, 6-set average)": 0.121},
}


@dataclass
class Run:
    """One model's numbers on one sample."""

    label: str
    model: str
    catalog_size: int
    sample: int
    metrics: dict[str, float | None] = field(default_factory=dict)
    na: dict[str, str] = field(default_factory=dict)  # metric key → why the catalog cannot support it
    queries: dict[str, int] = field(default_factory=dict)  # metric group → how many queries it averaged
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "model": self.model, "catalog_size": self.catalog_size, "sample": self.sample,
                "metrics": self.metrics, "na": self.na, "queries": self.queries, "seconds": round(self.seconds, 2)}


# -- the measurements -------------------------------------------------------------------------------------------
def sample_rows(n: int, size: int, seed: int) -> np.ndarray:
    """A seeded sample of catalog rows (the whole catalog when it is smaller)."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.permutation(n)[:min(size, n)])


def evaluate_service(service: "SearchService", rows: Sequence[int], *, seed: int = 0, label: str = "",
                     progress: bool = False, groups: Sequence[str] = ("camera", "similar", "text", "zeroshot")) -> Run:
    """The metrics of `groups` for `service` on the catalog rows `rows`, each query through the service's public
    methods (search_image, search_item, search_text; zero-shot reads the index's own vectors)."""
    t0 = time.perf_counter()
    rows = [int(r) for r in rows]
    run = Run(label=label or service.embedder.model_id, model=service.embedder.model_id,
              catalog_size=len(service.catalog), sample=len(rows))
    items = service.catalog.items
    steps = {"camera": _camera, "similar": _similar, "text": _text, "zeroshot": _zero_shot}
    for group in groups:
        steps[group](service, items, rows, run, seed, progress)
    run.seconds = time.perf_counter() - t0
    return run


def _column(items, name: str) -> np.ndarray | None:
    """A metadata column as plain strings ("" when missing), or None when the catalog has no such column."""
    if name not in items.columns:
        return None
    return np.array(["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip()
                     for v in items[name]], dtype=object)


def _na(run: Run, keys: Iterable[str], reason: str) -> None:
    for key in keys:
        run.metrics[key] = None
        run.na[key] = reason


def _bar(iterable, total: int, desc: str, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="query", disable=not progress, leave=False, dynamic_ncols=True)


def _rank(results, item_id: str) -> int | None:
    return next((r.rank for r in results if r.id == item_id), None)


def _camera(service, items, rows, run, seed, progress) -> None:
    from .camera import camera_shot
    from .images import load_image

    keys = ("camera.recall@1", "camera.recall@10", "camera.mrr", "speed.ms_per_image")
    jpegs = service.catalog.thumbnails.column("jpeg")
    usable = [r for r in rows if jpegs[r].is_valid]
    if not usable:
        _na(run, keys, "the index holds no pictures (thumbnails) to photograph")
        return
    ranks, ms = [], []
    for row in _bar(usable, len(usable), "camera-like shots", progress):
        # One seed per item, in a namespace of its own: the same shot whatever else is sampled, and never a shot
        # the demo model was trained on.
        shot = camera_shot(load_image(jpegs[row].as_py()), random.Random(f"stylishi-eval-{seed}-{row}"))
        response = service.search_image(shot, k=DEPTH)
        ranks.append(_rank(response.results, str(items.at[row, "id"])))
        t = response.timings_ms  # the detector's time too, when photos are focused (stylishi.focus)
        ms.append(t["preprocess"] + t["embed"] + t.get("detect", 0.0))
    _rank_metrics(run, "camera.", ranks)
    run.metrics["speed.ms_per_image"] = round(float(np.median(ms)), 2)
    run.queries["camera"] = len(ranks)


def _rank_metrics(run: Run, prefix: str, ranks: list[int | None]) -> None:
    r = np.array([x if x is not None else np.inf for x in ranks], dtype=float)
    run.metrics[f"{prefix}recall@1"] = _mean(r <= 1)
    run.metrics[f"{prefix}recall@10"] = _mean(r <= K)
    run.metrics[f"{prefix}mrr"] = _mean(np.where(np.isfinite(r), 1.0 / r, 0.0))


def _mean(values) -> float:
    return round(float(np.mean(values)), 4)


def _similar(service, items, rows, run, seed, progress) -> None:
    columns = {"type": _column(items, "article_type"), "colour": _column(items, "colour"),
               "category": _column(items, "category")}
    counts = {name: _counts(col) for name, col in columns.items() if col is not None}
    p10: dict[str, list[float]] = {name: [] for name in columns}
    aps: list[float] = []
    ids = items["id"].astype(str).to_numpy()
    for row in _bar(rows, len(rows), "more like this", progress):
        results = [r for r in service.search_item(ids[row], k=DEPTH).results if r.id != ids[row]]
        hit_rows = np.array([service.catalog.row_of(r.id) for r in results], dtype=int)
        for name, col in columns.items():
            if col is None or not col[row]:
                continue
            others = counts[name][col[row]] - 1  # the item itself is left out
            if others <= 0:
                continue
            relevant = col[hit_rows] == col[row] if len(hit_rows) else np.zeros(0, dtype=bool)
            p10[name].append(relevant[:K].sum() / min(K, others))
            if name == "type":
                aps.append(_average_precision(relevant, min(others, DEPTH)))
    for name, key in (("type", "similar.type_p@10"), ("colour", "similar.colour_p@10"),
                      ("category", "similar.category_p@10")):
        if columns[name] is None:
            _na(run, [key], f"the catalog has no {'article_type' if name == 'type' else name} column")
        elif not p10[name]:
            _na(run, [key], f"no sampled item shares its {name} with another item")
        else:
            run.metrics[key] = _mean(p10[name])
    if aps:
        run.metrics["similar.type_map"] = _mean(aps)
    else:
        _na(run, ["similar.type_map"], run.na.get("similar.type_p@10", "no article types to rank by"))
    run.queries["similar"] = len(rows)


def _counts(col: np.ndarray) -> dict[str, int]:
    values, counts = np.unique(col[col != ""], return_counts=True)
    return dict(zip(values.tolist(), counts.tolist()))


def _average_precision(relevant: np.ndarray, wanted: int) -> float:
    """AP over a ranked list, out of `wanted` relevant items (those ranked below the list count as missed)."""
    if wanted <= 0:
        return 0.0
    hits = np.flatnonzero(relevant)
    return float(np.sum((np.arange(len(hits)) + 1) / (hits + 1)) / wanted)


def _text(service, items, rows, run, seed, progress) -> None:
    limit = service.limits.max_text_chars
    names = _column(items, "name")
    ids = items["id"].astype(str).to_numpy()
    name_keys = ("text.name_recall@1", "text.name_recall@10", "text.name_mrr")
    if names is None:
        _na(run, name_keys, "the catalog has no name column")
    else:
        queries = [r for r in rows if names[r]]
        if not queries:
            _na(run, name_keys, "no sampled item has a name")
        else:
            ranks = [_rank(service.search_text(names[r][:limit], k=DEPTH).results, ids[r])
                     for r in _bar(queries, len(queries), "product names", progress)]
            _rank_metrics(run, "text.name_", ranks)
            run.queries["text.name"] = len(ranks)

    types = _column(items, "article_type")
    if types is None:
        _na(run, ("text.type_p@1", "text.type_mrr", "text.colour_type_p@10"), "the catalog has no article_type column")
        return
    kinds = sorted({types[r] for r in rows if types[r]})
    if not kinds:
        _na(run, ("text.type_p@1", "text.type_mrr", "text.colour_type_p@10"), "no sampled item has an article type")
        return
    first, reciprocal = [], []
    for kind in _bar(kinds, len(kinds), "article types", progress):
        results = service.search_text(kind[:limit], k=DEPTH).results
        rank = next((r.rank for r in results if types[service.catalog.row_of(r.id)] == kind), None)
        first.append(rank == 1)
        reciprocal.append(1.0 / rank if rank else 0.0)
    run.metrics["text.type_p@1"] = _mean(first)
    run.metrics["text.type_mrr"] = _mean(reciprocal)
    run.queries["text.type"] = len(kinds)

    colours = _column(items, "colour")
    if colours is None:
        _na(run, ["text.colour_type_p@10"], "the catalog has no colour column")
        return
    pair_counts: dict[tuple[str, str], int] = {}
    for c, t in zip(colours, types):
        if c and t:
            pair_counts[(c, t)] = pair_counts.get((c, t), 0) + 1
    pairs = sorted({(colours[r], types[r]) for r in rows if colours[r] and types[r]})
    if not pairs:
        _na(run, ["text.colour_type_p@10"], "no sampled item has both a colour and an article type")
        return
    rng = np.random.default_rng([seed, 2])
    pairs = [pairs[i] for i in sorted(rng.permutation(len(pairs))[:MAX_PAIR_QUERIES])]
    scores = []
    for colour, kind in _bar(pairs, len(pairs), "colour + type", progress):
        results = service.search_text(f"{colour} {kind}"[:limit], k=K).results
        hits = sum(1 for r in results if (colours[row := service.catalog.row_of(r.id)], types[row]) == (colour, kind))
        scores.append(hits / min(K, pair_counts[(colour, kind)]))
    run.metrics["text.colour_type_p@10"] = _mean(scores)
    run.queries["text.colour_type"] = len(pairs)


def _zero_shot(service, items, rows, run, seed, progress) -> None:
    types = _column(items, "article_type")
    if types is None:
        _na(run, ["zeroshot.type_f1"], "the catalog has no article_type column")
        return
    labelled = np.array([r for r in rows if types[r]], dtype=np.int64)
    classes = sorted({t for t in types if t})
    if len(classes) < 2 or not len(labelled):
        _na(run, ["zeroshot.type_f1"], "fewer than two article types to choose between")
        return
    prompts = service.embedder.embed_texts([ZERO_SHOT_PROMPT.format(c) for c in classes])
    pictures = service.catalog.store.vectors(labelled)  # the vectors the index serves
    pictures /= np.maximum(np.linalg.norm(pictures, axis=1, keepdims=True), 1e-12)
    predicted = np.array(classes, dtype=object)[np.argmax(pictures @ prompts.T, axis=1)]
    run.metrics["zeroshot.type_f1"] = round(weighted_f1(types[labelled], predicted), 4)
    run.queries["zeroshot"] = len(labelled)


def weighted_f1(truth: Sequence[str], predicted: Sequence[str]) -> float:
    """F1 per true class, averaged with the class sizes as weights (scikit-learn's average="weighted")."""
    truth, predicted = np.asarray(truth, dtype=object), np.asarray(predicted, dtype=object)
    total, score = len(truth), 0.0
    for c in set(truth.tolist()):
        tp = float(np.sum((truth == c) & (predicted == c)))
        fp = float(np.sum((truth != c) & (predicted == c)))
        fn = float(np.sum((truth == c) & (predicted != c)))
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        score += f1 * np.sum(truth == c) / total
    return float(score)


# -- several models on the same sample ---------------------------------------------------------------------------
def sample_index(service: "SearchService", rows: Sequence[int], model: str, out: Path, *, device: str = "cpu",
                 seed: int = 0) -> Path:
    """A temporary index of the sampled items embedded with `model`, made by the real builder."""
    from . import builder
    from .embedder import Embedder
    from .hub import resolve_model

    items = service.catalog.items
    jpegs = service.catalog.thumbnails.column("jpeg")
    records = []
    for row in rows:
        if not jpegs[row].is_valid:
            continue
        metadata = {k: v for k, v in items.iloc[int(row)].items() if k not in ("id", "thumbnail") and v is not None}
        records.append(builder.Record(id=str(items.at[int(row), "id"]), image=jpegs[row].as_py(), metadata=metadata))
    if not records:
        raise StyliShiError(f"The index {service.source} holds no pictures, so other models cannot embed its items.")
    path, model_id, revision = resolve_model(model)
    embedder = Embedder.load(path, model_id=model_id, revision=revision, device=device, mode="fp32")
    builder.build(records, embedder, out, progress=False, seed=seed, calibrate=False,
                  source={"kind": "evaluation-sample", "index": service.source, "items": len(records)})
    return out


# -- outputs ----------------------------------------------------------------------------------------------------
def _fmt(value: float | None, key: str) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1f}" if key.startswith("speed.") else f"{value:.3f}"


def table(runs: Sequence[Run]) -> str:
    """A Markdown table, one column per model."""
    head = "| metric | " + " | ".join(r.label for r in runs) + " |"
    lines = [head, "|---|" + "---:|" * len(runs)]
    group = None
    for key, (g, label, _) in METRICS.items():
        if g != group:
            lines.append(f"| **{g}** |" + " |" * len(runs))
            group = g
        lines.append(f"| {label} | " + " | ".join(_fmt(r.metrics.get(key), key) for r in runs) + " |")
    return "\n".join(lines)


def focus_line(status: dict[str, Any] | None) -> str:
    """Whether photo queries were focused on their main garment (stylishi.focus), and why."""
    if not status:
        return ""
    return f"Photo queries {'focused on their main garment' if status['on'] else 'searched whole'}: {status['why']}."


def markdown(report: dict[str, Any], runs: Sequence[Run]) -> str:
    out = [f"# StyliShi evaluation: {report['index']}", "",
           f"Catalog of {report['catalog_size']} items; a sample of {report['sample']} (seed {report['seed']}); "
           f"device {report['device']}; {report['date']}.", "", focus_line(report.get("focus")), "", table(runs), "", f"*{PRECISION_NOTE}.*", ""]
    na = {(k, why) for r in runs for k, why in r.na.items()}
    if na:
        out += ["## Not available", ""] + [f"- {METRICS[k][0]}, {METRICS[k][1]}: {why}" for k, why in sorted(na)] + [""]
    out += ["## What each number means", ""] + [f"- **{g}, {label}**: {what}" for g, label, what in METRICS.values()]
    out += ["", "## Published anchors", ""]
    for key, figures in ANCHORS.items():
        out += [f"- {METRICS[key][1]}: " + "; ".join(f"{who} {v:.3f}" for who, v in figures.items())]
    if report.get("calibration"):
        out += ["", "## Calibration written to the index", "", "```json",
                json.dumps(report["calibration"], indent=2), "```"]
    return "\n".join(out) + "\n"


def bar_chart(runs: Sequence[Run], path: Path) -> Path:
    """Grouped bars (one colour per model) for every 0..1 metric, drawn with PIL (no plotting dependency)."""
    from PIL import Image, ImageDraw

    keys = [k for k in METRICS if not k.startswith("speed.")]
    palette = [(52, 101, 164), (204, 85, 0), (78, 154, 6), (117, 80, 123), (193, 125, 17), (164, 0, 0)]
    group_w, bar_gap, left, top, plot_h = 18 * len(runs) + 26, 2, 60, 40, 300
    width, height = left + group_w * len(keys) + 20, top + plot_h + 170
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    for tick in range(0, 11, 2):
        y = top + plot_h - tick / 10 * plot_h
        draw.line([(left, y), (width - 10, y)], fill=(225, 225, 225))
        draw.text((left - 30, y - 6), f"{tick / 10:.1f}", fill="black")
    for i, key in enumerate(keys):
        x0 = left + i * group_w + 8
        for j, run in enumerate(runs):
            value = run.metrics.get(key)
            x = x0 + j * (18 + bar_gap)
            if value is None:
                draw.text((x + 2, top + plot_h - 12), "-", fill=(150, 150, 150))
                continue
            draw.rectangle([x, top + plot_h - max(0.0, min(1.0, value)) * plot_h, x + 16, top + plot_h],
                           fill=palette[j % len(palette)])
        label = METRICS[key][1][:22]
        text_img = Image.new("RGBA", (150, 14), (255, 255, 255, 0))
        ImageDraw.Draw(text_img).text((0, 0), label, fill="black")
        rotated = text_img.rotate(60, expand=True)
        img.paste(rotated, (x0 - 10, top + plot_h + 6), rotated)
    for j, run in enumerate(runs):
        draw.rectangle([left + j * 260, 10, left + j * 260 + 12, 22], fill=palette[j % len(palette)])
        draw.text((left + j * 260 + 18, 10), run.label[:38], fill="black")
    img.save(path)
    return path


# -- the command ------------------------------------------------------------------------------------------------
def parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Measure how well an index finds the right products, through the real "
        "search service: camera-like exact-item retrieval, more-like-this, text → image, zero-shot classification.")
    p.add_argument("--index", required=True, help="a catalog index folder, a Hub dataset repo OWNER/NAME[@rev], "
                   "or 'demo' (the offline demo)")
    p.add_argument("--sample", type=int, default=1000, help="items to query with (default 1,000, or the whole "
                   "catalog when smaller)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample and of the camera-like shots")
    p.add_argument("--models", nargs="+", metavar="MODEL", help="embed the sample with each of these models (Hub "
                   "ids or folders) in a temporary index and compare them side by side")
    p.add_argument("--out", default="eval_report", help="folder for report.json, report.md (and models.png)")
    p.add_argument("--device", default="cpu", help="cpu (default: the milliseconds are CPU ones), cuda or auto")
    p.add_argument("--calibrate", action="store_true", help="also fit the %% match calibration and store it in the "
                   "index's manifest (a local index folder only)")
    p.add_argument("--focus", default=None, choices=FOCUS_SETTINGS,
                   help="photo queries also look at their main garment (STYLISHI_FOCUS; default auto: as the app "
                        "serves this index)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """`stylishi eval` / `python evaluate.py`: 0 when the report is written, 2 with one line naming the fix."""
    args = parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _main(args)
    except StyliShiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _main(args: argparse.Namespace) -> int:
    from .config import Settings, set_threads
    from .hub import is_local_ref
    from .startup import DEMO, open_service

    set_threads(Settings().threads, faiss_threads=1)  # as the app serves: one query at a time

    if args.sample < 1:
        raise StyliShiError("--sample must be at least 1.")
    if args.calibrate and not (is_local_ref(args.index) or args.index == DEMO):
        raise StyliShiError(f"--calibrate writes into the index's manifest, so it needs a local folder, not "
                            f"{args.index}. Download the index (huggingface-cli / hf download --repo-type dataset) or "
                            "build one with build_index.py, then pass its folder.")
    settings = Settings.from_env(focus=args.focus)
    service = open_service(args.index, fallback=False, device=args.device, settings=settings)
    progress = not args.no_progress
    rows = sample_rows(len(service.catalog), args.sample, args.seed)
    runs: list[Run] = []
    if args.models:
        with tempfile.TemporaryDirectory(prefix="stylishi-eval-") as tmp:
            for n, model in enumerate(args.models):
                folder = sample_index(service, rows, model, Path(tmp) / f"m{n}", device=args.device, seed=args.seed)
                candidate = open_service(str(folder), fallback=False, device=args.device, settings=settings)
                run = evaluate_service(candidate, np.arange(len(candidate.catalog)), seed=args.seed, label=model,
                                       progress=progress)
                runs.append(run)
                print(f"{model}: done in {run.seconds:.1f} s", file=sys.stderr)
    else:
        runs.append(evaluate_service(service, rows, seed=args.seed, label=service.embedder.model_id,
                                     progress=progress))
    calibration = None
    if args.calibrate:
        from . import calibration as calibration_mod

        calibration = calibration_mod.fit(service, seed=args.seed, fitted_by="evaluate")
        if calibration is None:
            print("no calibration written: the catalog has no article_type column", file=sys.stderr)
        else:
            calibration_mod.write(service.catalog.root, calibration)
    report = {
        "index": service.source, "model": service.embedder.model_id, "catalog_size": len(service.catalog),
        "sample": len(rows), "seed": args.seed, "device": service.embedder.device,
        "focus": service.focus.status(),  # photo queries focused on their main garment, or not (stylishi.focus)
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "runs": [r.to_dict() for r in runs],
        "definitions": {k: {"group": g, "label": label, "meaning": what} for k, (g, label, what) in METRICS.items()},
        "precision_note": PRECISION_NOTE, "anchors": ANCHORS, "calibration": calibration,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    (out / "report.md").write_text(markdown(report, runs))
    if len(runs) > 1:
        bar_chart(runs, out / "models.png")
    print(focus_line(report["focus"]))
    print(table(runs))
    for key, why in sorted({(k, w) for r in runs for k, w in r.na.items()}):
        print(f"n/a  {METRICS[key][1]}: {why}")
    print(f"report: {out / 'report.md'}, {out / 'report.json'}" + (f", {out / 'models.png'}" if len(runs) > 1 else ""))
    return 0


__all__ = ["main", "evaluate_service", "Run", "METRICS", "ANCHORS", "weighted_f1", "sample_rows", "table"]

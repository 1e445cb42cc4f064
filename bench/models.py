#!/usr/bin/env python
"""CPU milliseconds per picture (and per text query) for each model architecture the app serves: CLIP and SigLIP.

    .venv/bin/python bench/models.py                 # 30 single-picture calls each, 2 threads, ~6 min on 2 cores
    .venv/bin/python bench/models.py --calls 10      # a quicker look

Nothing can be downloaded here, so each architecture is built from its published config with random weights (speed
does not depend on the weights): CLIP ViT-B/32 (the architecture of patrickjohncyh/fashion-clip and openai/clip-vit-
base-patch32) and SigLIP base patch16-224 (google/siglip-base-patch16-224). Each is loaded through the app's own
`Embedder.load`, in fp32 and on the fast path `auto` picks (its fidelity gate is reported, not applied: random
weights say nothing about a real checkpoint's outliers). The calls are interleaved (one call of each set-up in turn),
so a machine shared with other work slows every set-up alike; the load average is printed with the table.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def make_models(work: Path) -> dict[str, Path]:
    """The two full-size random stand-ins, made once into `work` (~1.3 GB)."""
    from stylishi.demo import VIT_B32, save_random_clip
    from stylishi.standins import SIGLIP_B16_224, save_random_siglip

    folders = {"CLIP ViT-B/32": work / "clip-vit-b32", "SigLIP B/16-224": work / "siglip-b16-224"}
    if not (folders["CLIP ViT-B/32"] / "model.safetensors").exists():
        save_random_clip(folders["CLIP ViT-B/32"], **VIT_B32)
    if not (folders["SigLIP B/16-224"] / "model.safetensors").exists():
        save_random_siglip(folders["SigLIP B/16-224"], **SIGLIP_B16_224)
    return folders


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=30, help="single-picture calls per set-up (median reported)")
    ap.add_argument("--threads", type=int, default=2, help="torch/OpenVINO threads")
    ap.add_argument("--work", default=str(Path.home() / ".cache" / "stylishi" / "bench-models"),
                    help="where the random full-size models are written (reused)")
    ap.add_argument("--out", default=None, help="also write the markdown table here")
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from stylishi.demo import garment_picture
    from stylishi.embedder import Embedder

    folders = make_models(Path(args.work))
    setups = []
    for arch, folder in folders.items():
        for mode in ("fp32", "auto"):
            t0 = time.perf_counter()
            emb = Embedder.load(folder, device="cpu", mode=mode, check_fidelity=False)
            setups.append({"arch": arch, "asked": mode, "emb": emb, "load_s": time.perf_counter() - t0,
                           "image": [], "text": []})
            print(f"loaded {arch} {mode} -> {emb.mode} in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    picture = garment_picture("Dresses", "Red", "Striped", seed=3)
    query = "red striped summer dress"
    for s in setups:  # warm-up: first calls allocate and compile
        for _ in range(3):
            s["emb"].embed_images([picture])
            s["emb"].embed_texts([query])
    print(f"measuring: {args.calls} rounds of {len(setups)} set-ups", file=sys.stderr, flush=True)
    load_before = os.getloadavg()
    for i in range(args.calls):
        order = setups[i % len(setups):] + setups[:i % len(setups)]  # rotate who goes first
        for s in order:
            t = time.perf_counter()
            s["emb"].embed_images([picture])
            s["image"].append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            s["emb"].embed_texts([query])
            s["text"].append((time.perf_counter() - t) * 1000)
    load_after = os.getloadavg()

    lines = [f"{args.calls} single calls per set-up, interleaved, {args.threads} threads; "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
             f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after (other work shared the machine)",
             "",
             "| architecture | mode asked | mode used | ms / picture (median) | p90 | ms / text query (median) "
             "| fast path vs fp32 (cosine, random weights) |",
             "|---|---|---|---|---|---|---|"]
    for s in setups:
        emb = s["emb"]
        cosine = f"{emb.fidelity_cosine:.4f}" if getattr(emb, "fidelity_cosine", None) is not None else "—"
        lines.append(f"| {s['arch']} | {s['asked']} | {emb.mode} | {statistics.median(s['image']):.1f} | "
                     f"{np.percentile(s['image'], 90):.1f} | {statistics.median(s['text']):.1f} | {cosine} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
